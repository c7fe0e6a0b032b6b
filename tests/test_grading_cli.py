"""`kata grade` as an instructor meets it: bad options refused before any grading, the
summary a class of 30 can be read from, and a note when a submission hands a kata in twice.

Most tests stand in for the grader (``harness.grading.grade_class``), so they take
milliseconds; one grades a tiny class for real, in a subprocess like tests/test_grading.py.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.cli.common import UsageError
from harness.cli.grade import ambiguous_files, prepare_out, summary_table
from harness.dashboard import SAMPLE
from harness.grading import find_submissions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def klass(tmp_path: Path) -> Path:
    root = tmp_path / "class"
    (root / "ada" / "katas").mkdir(parents=True)
    (root / "ada" / "katas" / "breaker.py").write_text("# ada's breaker\n")
    return root


@pytest.fixture
def no_grading(monkeypatch):
    """Grading that must not happen: a bad option is refused before it starts."""
    import harness.grading

    def refuse(*_args, **_kwargs):
        raise AssertionError("grading started")

    monkeypatch.setattr(harness.grading, "grade_class", refuse)


def one_line_exit_2(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    return err


# -- --out is checked before grading ------------------------------------------------------------


def test_an_out_that_is_a_file_is_refused_before_grading(capsys, klass, tmp_path, no_grading):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    err = one_line_exit_2(capsys, ["grade", str(klass), "--out", str(afile)])
    assert "is a file, not a folder" in err and str(afile) in err
    assert afile.read_text() == "keep me\n"


@pytest.mark.parametrize("where", ["/proc/kata-grades", "{afile}/grades"])
def test_an_out_that_cannot_be_created_is_refused_before_grading(capsys, klass, tmp_path, no_grading, where):
    afile = tmp_path / "afile"
    afile.write_text("")
    out = where.format(afile=afile)
    err = one_line_exit_2(capsys, ["grade", str(klass), "--out", out])
    assert f"--out {out!r} cannot be created" in err
    assert not Path(out).exists()


def test_an_out_holding_a_folder_named_like_the_grades_is_refused(capsys, klass, tmp_path, no_grading):
    (tmp_path / "grades" / "grades.json").mkdir(parents=True)
    err = one_line_exit_2(capsys, ["grade", str(klass), "--out", str(tmp_path / "grades")])
    assert "holds a folder named grades.json" in err


def test_an_out_that_is_not_writable_is_refused_and_what_was_created_is_taken_back(tmp_path, monkeypatch):
    # Root can write anywhere, so make the probe fail the way a read-only folder would.
    def denied(self, data):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", denied)
    out = tmp_path / "new" / "grades"
    with pytest.raises(UsageError, match="is not writable: Permission denied"):
        prepare_out(out, str(out))
    assert not (tmp_path / "new").exists()


def test_a_good_out_is_created_and_left_without_the_probe(tmp_path):
    out = tmp_path / "term-1" / "grades"
    created = prepare_out(out, str(out))
    assert created == [tmp_path / "term-1", out]
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_missing_class_folder_creates_no_out_folder(capsys, tmp_path, no_grading):
    err = one_line_exit_2(capsys, ["grade", str(tmp_path / "no-class"), "--out", str(tmp_path / "grades")])
    assert "does not exist" in err and not (tmp_path / "grades").exists()


# -- --timeout and --memory, each with its own message ---------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--timeout", "-1"], "--timeout must be a positive number of seconds, got -1"),
    (["--timeout", "0"], "--timeout must be a positive number of seconds, got 0"),
    (["--timeout", "nan"], "--timeout must be a positive number of seconds, got nan"),
    (["--memory", "10"], "--memory must be at least 64 (MB), got 10"),
    (["--memory", "-5"], "--memory must be at least 64 (MB), got -5"),
])
def test_timeout_and_memory_each_have_their_own_message(capsys, klass, tmp_path, no_grading, args, message):
    err = one_line_exit_2(capsys, ["grade", str(klass), "--out", str(tmp_path / "grades"), *args])
    assert message in err
    assert ("--memory" in err) != ("--timeout" in err)
    assert not (tmp_path / "grades").exists()


# -- the summary -----------------------------------------------------------------------------------


def test_the_summary_is_a_table_a_class_of_30_can_be_read_from():
    grades = json.loads(SAMPLE.read_text())
    lines = summary_table(grades)
    assert len(lines) == 1 + 30
    assert lines[0].split() == ["submission", "total", *grades["katas"]]
    assert max(len(line) for line in lines) <= 80
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["ada"] == ["30/30", "5", "5", "5", "5", "5", "5"]
    assert rows["bruno"] == ["0/30"] + ["-"] * 6  # handed in nothing: no "(missing)" six times
    assert rows["gus"] == ["7/30", "3", "2", "2t", "-", "-", "-"]  # composer stopped at the time limit
    assert rows["omar"][2] == "1e" and rows["rosa"][4] == "0e"  # a sys.exit, a syntax error
    assert "missing" not in "\n".join(lines)


def test_the_summary_names_the_levels_of_a_kata_when_katas_differ():
    grades = json.loads(SAMPLE.read_text())
    for submission in grades["submissions"]:
        submission["katas"]["saga"]["max_score"] = 4
    assert "saga/4" in summary_table(grades)[0].split() and "registry/5" in summary_table(grades)[0].split()


def fake_grades(root: Path) -> dict:
    names = [name for name, _ in find_submissions(root)]
    reports = {"breaker": {"status": "fail", "score": 2, "max_score": 5, "levels": []},
               "saga": {"status": "missing", "score": 0, "max_score": 5, "levels": []}}
    return {"version": 1, "seed": 0, "katas": ["breaker", "saga"], "stuck": [],
            "submissions": [{"name": n, "total": 2, "max_total": 10, "katas": reports} for n in names]}


def test_the_cli_prints_the_table_and_a_legend(capsys, klass, tmp_path, monkeypatch):
    import harness.grading

    monkeypatch.setattr(harness.grading, "grade_class", lambda root, **_: fake_grades(root))
    assert main(["grade", str(klass), "--out", str(tmp_path / "grades"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "graded 1 submission on 2 katas, 5 levels each" in out
    assert out.splitlines()[2].split() == ["ada", "2/10", "2", "-"]
    assert "(- not handed in)" in out
    with open(tmp_path / "grades" / "grades.csv") as handle:  # the files are as before
        assert list(csv.reader(handle)) == [["submission", "breaker", "saga", "total"], ["ada", "2", "0", "2"]]


# -- a kata handed in twice -------------------------------------------------------------------------


def test_a_kata_handed_in_twice_is_noted_once_per_case(tmp_path):
    root = tmp_path / "class"
    for rel in ("gina/canary.py", "gina/katas/canary.py", "gina/breaker.py", "hal/katas/saga.py",
                "hal/saga.py", "hal/katas/breaker.py", "ivy/katas/canary.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    assert ambiguous_files(find_submissions(root)) == [
        "gina has both canary.py and katas/canary.py: grading katas/canary.py",
        "hal has both saga.py and katas/saga.py: grading katas/saga.py",
    ]


def test_the_note_goes_to_stderr_before_grading(capsys, klass, tmp_path, monkeypatch):
    import harness.grading

    (klass / "ada" / "breaker.py").write_text("# an older copy\n")
    monkeypatch.setattr(harness.grading, "grade_class", lambda root, **_: fake_grades(root))
    assert main(["grade", str(klass), "--out", str(tmp_path / "grades"), "--quiet"]) == 0
    _, err = capsys.readouterr()
    assert err.strip() == "kata: note: ada has both breaker.py and katas/breaker.py: grading katas/breaker.py"


def test_the_note_says_which_file_the_grader_really_grades(tmp_path):
    """End to end: the solution in katas/, the stub at the top; the grade is the solution's."""
    root, out = tmp_path / "class", tmp_path / "grades"
    (root / "gina" / "katas").mkdir(parents=True)
    (root / "gina" / "katas" / "breaker.py").write_text((ROOT / "solutions" / "breaker.py").read_text())
    (root / "gina" / "breaker.py").write_text("class CircuitBreaker:\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "harness", "grade", str(root), "--out", str(out), "--jobs", "2",
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "kata: note: gina has both breaker.py and katas/breaker.py: grading katas/breaker.py" in done.stderr
    grades = json.loads((out / "grades.json").read_text())
    assert grades["submissions"][0]["katas"]["breaker"]["score"] == 5
    row = next(line.split() for line in done.stdout.splitlines() if line.split()[:1] == ["gina"])
    assert row[1] == "5/30" and row[1 + 1 + grades["katas"].index("breaker")] == "5"
