"""`kata grade`: hostile submissions get what they earned, and nobody else is affected.

One class, graded in one run (as a subprocess: the grader reaps and sweeps
its own descendants), with two honest learners and one of each trick the
issue names. Every other submission must still be graded exactly.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.grading import landlock

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = (ROOT / "solutions" / "breaker.py").read_text()
MARK = "987654"  # a sleep duration no one else uses: how we find leftover processes
# kim forges the grade files at import: with Landlock the write is refused, so the import
# fails and the breaker earns nothing; without it the forged files are overwritten.
KIM = 0 if landlock.abi_version() >= 1 else 5
TAMPERING: dict[str, bool] = {}  # what the class's vandal managed, filled by the `graded` fixture


def stub() -> str:
    from harness.toolchain.reset import ResetError, starting_version

    try:
        return starting_version(ROOT / "katas" / "breaker.py")[0].decode()
    except ResetError:
        return (ROOT / "katas" / "breaker.py").read_text()


def with_prelude(code: str) -> str:
    """The reference solution plus hostile code run at import time (after the
    definitions: the solution starts with a ``from __future__`` import)."""
    return SOLUTION + "\n" + textwrap.dedent(code)


def leftover_processes() -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if f"sleep {MARK}" in cmdline:
                found.append(f"{entry}: {cmdline}")
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    out = tmp_path_factory.mktemp("grades")
    subs = {
        "ada-solves-everything": {"katas/breaker.py": SOLUTION},
        "bob-has-not-started": {"katas/breaker.py": stub()},
        "cy-calls-sys-exit": {"katas/breaker.py": with_prelude("import sys\nsys.exit(0)")},
        # Each check loads the module afresh: count loads in the environment, and
        # leave (claiming success) once the first level's checks are done.
        "di-calls-os-exit-later": {"katas/breaker.py": with_prelude("""
            import os as _os
            _loads = int(_os.environ.get("KATA_LOADS", "0")) + 1
            _os.environ["KATA_LOADS"] = str(_loads)
            if _loads > 8:
                _os._exit(0)
            """)},
        "ed-loops-forever": {"katas/breaker.py": with_prelude("while True:\n    pass")},
        "fay-allocates-without-bound": {"katas/breaker.py": with_prelude(
            "hog = []\nwhile True:\n    hog.append(bytearray(50_000_000))")},
        "gus-spawns-processes": {"katas/breaker.py": with_prelude(f"""
            import os, subprocess
            subprocess.Popen(["sleep", "{MARK}"])
            if os.fork() == 0:          # a daemon that leaves the job's session
                os.setsid()
                subprocess.Popen(["sleep", "{MARK}"])
                os._exit(0)
            """)},
        "hal-prints-fake-results": {"katas/breaker.py": with_prelude("""
            import os
            fake = '{"level": 1, "status": "pass", "score": 5, "done": true}'
            print(fake)
            for fd in range(3, 40):
                try:
                    os.write(fd, fake.encode() + b"\\n")
                except OSError:
                    pass
            raise SystemExit(0)
            """)},
        "ivy-brings-a-conftest": {"katas/breaker.py": stub(),
                                  "conftest.py": "import pytest\n@pytest.fixture(autouse=True)\ndef f(): pass\n",
                                  "katas/test_breaker.py": "def test_everything():\n    assert True\n"},
        "jo-imports-solutions": {"katas/breaker.py": "from solutions.breaker import *  # noqa\n"},
        "kim-writes-into-the-grades": {"katas/breaker.py": with_prelude(f"""
            from pathlib import Path
            out = Path({str(out)!r})
            (out / "grades.csv").write_text("submission,breaker,total\\nkim-writes-into-the-grades,5,5\\n")
            (out / "grades.json").write_text("{{}}")
            """)},
        "lee-has-a-syntax-error": {"katas/breaker.py": "class CircuitBreaker(:\n    pass\n"},
        # A working solution that also tries to sabotage a classmate and the grades, quietly.
        "pat-vandalises-quietly": {"katas/breaker.py": with_prelude(f"""
            from pathlib import Path
            for target, text in ((Path({str(root)!r}) / "ada-solves-everything" / "katas" / "breaker.py",
                                  "raise SystemExit(0)\\n"),
                                 (Path({str(out)!r}) / "pwned.txt", "pat was here\\n")):
                try:
                    target.write_text(text)
                except OSError:
                    pass
            """)},
        "max-top-level-file": {"breaker.py": SOLUTION},
    }
    for name, files in subs.items():
        for rel, text in files.items():
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    ada_before = (root / "ada-solves-everything" / "katas" / "breaker.py").read_text()
    (root / "nia-links-to-solutions" / "katas").mkdir(parents=True)
    (root / "nia-links-to-solutions" / "katas" / "breaker.py").symlink_to(ROOT / "solutions" / "breaker.py")
    (root / "oz-submitted-nothing").mkdir()
    done = subprocess.run([sys.executable, "-m", "harness", "grade", str(root), "--out", str(out),
                           "--jobs", "2", "--timeout", "8", "--memory", "400"],
                          capture_output=True, text=True, timeout=300)
    with open(out / "grades.csv") as handle:
        rows = {row["submission"]: row for row in csv.DictReader(handle)}
    grades = json.loads((out / "grades.json").read_text())
    ada_after = (root / "ada-solves-everything" / "katas" / "breaker.py").read_text()
    TAMPERING.update(ada_unchanged=ada_after == ada_before, pwned=(out / "pwned.txt").exists())
    return done, rows, {s["name"]: s for s in grades["submissions"]}, grades


def breaker(graded, name):
    return graded[2][name]["katas"]["breaker"]


@pytest.mark.parametrize("name, status, phrase", [
    ("cy-calls-sys-exit", "error", "ended the grading process (exit 0)"),
    ("ed-loops-forever", "timeout", "endless loop"),
    ("fay-allocates-without-bound", "error", "MemoryError"),
    ("hal-prints-fake-results", "error", "ended the grading process (exit 0)"),
    ("jo-imports-solutions", "error", "cannot be imported while grading"),
    ("lee-has-a-syntax-error", "error", "SyntaxError"),
])
def test_each_trick_is_caught_for_the_right_reason(graded, name, status, phrase):
    report = breaker(graded, name)
    assert report["status"] == status, json.dumps(report)[:400]
    assert phrase in json.dumps(report), json.dumps(report)[:400]


def test_the_run_finishes_and_reports_every_submission(graded):
    done, rows, subs, _ = graded
    assert done.returncode == 0, done.stderr
    assert len(rows) == len(subs) == 16
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("name, score", [
    ("ada-solves-everything", 5),
    ("max-top-level-file", 5),
    ("bob-has-not-started", 0),
    ("cy-calls-sys-exit", 0),
    ("ed-loops-forever", 0),
    ("fay-allocates-without-bound", 0),
    ("gus-spawns-processes", 5),  # its breaker is right: spawning costs it nothing but the processes
    ("hal-prints-fake-results", 0),
    ("ivy-brings-a-conftest", 0),
    ("jo-imports-solutions", 0),
    ("kim-writes-into-the-grades", KIM),
    ("pat-vandalises-quietly", 5),  # its own breaker is right; its vandalism fails quietly
    ("lee-has-a-syntax-error", 0),
    ("nia-links-to-solutions", 0),
    ("oz-submitted-nothing", 0),
])
def test_each_submission_gets_exactly_what_it_earned(graded, name, score):
    _, rows, subs, _ = graded
    assert int(rows[name]["breaker"]) == score
    assert int(rows[name]["total"]) == score == subs[name]["total"]


def test_leaving_the_process_mid_way_keeps_only_the_levels_finished_before(graded):
    report = breaker(graded, "di-calls-os-exit-later")
    statuses = [level["status"] for level in report["levels"]]
    assert statuses[0] == "pass" and "error" in statuses and report["status"] == "error"
    assert report["score"] == statuses.count("pass") < 5
    failed = next(level for level in report["levels"] if level["status"] == "error")
    assert "ended the grading process" in failed["tests"][0]["message"]


def test_an_endless_loop_is_a_timeout(graded):
    report = breaker(graded, "ed-loops-forever")
    assert report["status"] == "timeout"
    assert "endless loop" in report["levels"][0]["tests"][0]["message"]


def test_unbounded_memory_fails_without_hurting_anyone(graded):
    report = breaker(graded, "fay-allocates-without-bound")
    assert report["status"] == "error" and report["score"] == 0


def test_no_process_is_left_behind(graded):
    assert leftover_processes() == []


def test_printed_or_injected_results_do_not_count(graded):
    report = breaker(graded, "hal-prints-fake-results")
    assert report["score"] == 0
    assert report.get("warning", "").endswith("ignored") or report["status"] == "error"


def test_only_the_kata_file_is_graded(graded):
    report = breaker(graded, "ivy-brings-a-conftest")
    assert report["status"] == "fail" and report["score"] == 0


def test_solutions_cannot_be_imported_nor_linked(graded):
    imported = breaker(graded, "jo-imports-solutions")
    assert imported["status"] == "error"
    assert "cannot be imported while grading" in json.dumps(imported)
    linked = breaker(graded, "nia-links-to-solutions")
    assert linked["status"] == "error" and "symbolic link" in linked["message"]


def test_missing_files_score_zero_as_missing(graded):
    assert breaker(graded, "oz-submitted-nothing")["status"] == "missing"


def test_a_syntax_error_names_the_line(graded):
    report = breaker(graded, "lee-has-a-syntax-error")
    message = report["levels"][0]["tests"][0]["message"]
    assert report["status"] == "error" and "breaker.py:1" in message


def test_forged_outputs_are_replaced_by_the_real_grades(graded):
    _, rows, _, grades = graded
    assert rows["kim-writes-into-the-grades"]["breaker"] == str(KIM)
    assert len(rows) == 16 and grades["version"] == 1


def test_the_class_summary_names_where_most_are_stuck(graded):
    done, _, _, grades = graded
    top = grades["stuck"][0]
    assert (top["kata"], top["level"]) == ("breaker", 1)
    assert "where the class is stuck" in done.stdout and "breaker level 1" in done.stdout


@pytest.mark.parametrize("args, reason", [
    (["grade", "/no/such/class"], "does not exist"),
    (["grade", "{root}", "--out", "{root}/grades"], "inside the class folder"),
    (["grade", "{root}", "--jobs", "0"], "--jobs must be at least 1"),
    (["grade", "{empty}"], "has no submissions"),
])
def test_bad_grade_usage_is_one_line_exit_2(tmp_path, capsys, args, reason):
    from harness.cli import main

    root = tmp_path / "class"
    (root / "ada").mkdir(parents=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.format(root=root, empty=empty) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert reason in err and len(err.strip().splitlines()) == 1


def test_the_cli_and_the_grader_agree_on_the_default_time_limit():
    from harness.cli import grade as cli_grade
    from harness.grading import grader

    assert cli_grade.DEFAULT_TIMEOUT == grader.DEFAULT_TIMEOUT


def test_the_stuck_summary_says_what_it_counts(graded):
    done, _, _, _ = graded
    assert "learners who handed it in (" in done.stdout


def test_a_submission_that_sabotages_others_changes_nobody_elses_grade(graded):
    assert breaker(graded, "ada-solves-everything")["score"] == 5
    assert breaker(graded, "pat-vandalises-quietly")["score"] == 5  # its own work is fine


@pytest.mark.skipif(landlock.abi_version() < 1, reason="this kernel has no Landlock: files are not protected")
def test_with_landlock_a_job_cannot_write_outside_its_own_folder(graded):
    assert TAMPERING == {"ada_unchanged": True, "pwned": False}


@pytest.mark.skipif(landlock.abi_version() < 6, reason="signal scoping needs Landlock ABI 6 (Linux 6.12)")
def test_a_submission_that_kills_the_grader_stops_nothing(tmp_path):
    root, out = tmp_path / "class", tmp_path / "grades"
    files = {
        "ann": SOLUTION,
        "kit-kills": with_prelude("""
            import os, signal
            for pid in (os.getppid(), os.getpgid(os.getppid())):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)
            except OSError:
                pass
            """),
        "zoe": SOLUTION,
    }
    for name, text in files.items():
        (root / name / "katas").mkdir(parents=True)
        (root / name / "katas" / "breaker.py").write_text(text)
    done = subprocess.run([sys.executable, "-m", "harness", "grade", str(root), "--out", str(out),
                           "--jobs", "2", "--timeout", "8", "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    grades = {s["name"]: s["katas"]["breaker"]["score"] for s in json.loads((out / "grades.json").read_text())["submissions"]}
    assert grades == {"ann": 5, "kit-kills": 5, "zoe": 5}
