"""The kata toolchain as a learner meets it: commands, exit codes, JSON, and bad input.

Exit codes: 0 every check passes, 1 some fail, 2 bad usage or a kata file
that does not load, always with one line for the learner and no traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cli import main
from harness.toolchain import catalogue, check_kata
from harness.toolchain.timing import check_timings
from harness.toolchain.watch import watch

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "breaker.py"
STUB = ROOT / "katas" / "breaker.py"


def kata(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``kata ARGV`` in-process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def folder_with(tmp_path: Path, source: str | None, name: str = "breaker.py") -> str:
    """A submission folder holding one kata file with ``source`` (None: no file)."""
    folder = tmp_path / "submission"
    folder.mkdir(exist_ok=True)
    if source is not None:
        (folder / name).write_text(source)
    return str(folder)


# -- the catalogue ---------------------------------------------------------------------
def test_catalogue_lists_the_six_katas_in_learning_order():
    assert [k.name for k in catalogue.katas()] == ["registry", "breaker", "composer", "saga", "tracing", "canary"]
    breaker = catalogue.kata("breaker")
    assert len(breaker.levels) == 5 and all(level.title and level.hint for level in breaker.levels)
    assert [k.name for k in catalogue.katas()] == ["registry", "breaker", "composer", "saga", "tracing", "canary"]
    assert all(len(k.levels) == 5 for k in catalogue.katas() if not k.coming)


def test_every_level_has_checks_and_every_check_a_level():
    from harness.checks import checks_for

    levels = {check.level for check in checks_for("breaker")}
    assert levels == {level.number for level in catalogue.kata("breaker").levels}


# -- list and progress -------------------------------------------------------------------
def test_list_shows_every_kata_and_the_breaker_levels(capsys):
    code, out, _ = kata(capsys, "list")
    assert code == 0
    assert [line.split()[1] for line in out.splitlines() if line[:1].isdigit()] == [
        k.name for k in catalogue.katas()]
    assert "level 5  Backoff and state-change listeners" in out
    if any(not k.levels for k in catalogue.katas()):
        assert "coming soon" in out


def test_bare_kata_shows_progress_and_the_next_step(capsys):
    code, out, _ = kata(capsys)
    assert code == 0
    assert "breaker" in out and "0/5" in out
    first = next(k for k in catalogue.katas() if k.levels)  # the stubs fail everything
    assert f"Next: {first.name} level 1" in out


# -- check -----------------------------------------------------------------------------
def test_check_against_solutions_passes_every_level(capsys):
    code, out, _ = kata(capsys, "check", "breaker", "--against", "solutions")
    assert code == 0
    assert out.count("level ") == 5 and "5/5 levels pass" in out


def test_check_against_the_stub_fails_with_the_first_failure_and_a_replay(capsys):
    code, out, _ = kata(capsys, "check", "breaker")
    assert code == 1
    assert "not implemented yet: CircuitBreaker.call (level 1)" in out
    assert "Replay: kata check breaker --level 1 --seed 0" in out
    assert "Hint: Count *consecutive* failures" in out


def test_json_report_has_exactly_the_design_schema(capsys):
    code, out, _ = kata(capsys, "check", "breaker", "--against", "solutions", "--json")
    report = json.loads(out)
    assert code == 0
    assert list(report) == ["version", "kata", "against", "status", "seed", "score", "max_score", "levels"]
    assert (report["kata"], report["against"], report["status"]) == ("breaker", "solutions", "pass")
    assert (report["score"], report["max_score"]) == (5, 5)
    for number, level in enumerate(report["levels"], start=1):
        assert list(level) == ["level", "title", "status", "tests"]
        assert level["level"] == number and level["status"] == "pass"
        for test in level["tests"]:
            assert list(test) == ["name", "status", "message", "hint", "replay"]
            assert test["status"] == "pass" and test["replay"].startswith(f"kata check breaker --level {number}")


def test_json_of_the_stub_is_fail_not_error(capsys):
    code, out, _ = kata(capsys, "check", "breaker", "--json")
    report = json.loads(out)
    assert code == 1 and report["status"] == "fail" and report["score"] == 0
    statuses = {test["status"] for level in report["levels"] for test in level["tests"]}
    assert statuses == {"fail"}
    assert all(level["tests"][0]["hint"] for level in report["levels"])


def test_level_and_seed_select_and_show_in_the_replay(capsys):
    code, out, _ = kata(capsys, "check", "breaker", "--level", "2", "--seed", "7", "--json")
    report = json.loads(out)
    assert code == 1 and report["seed"] == 7
    assert [level["level"] for level in report["levels"]] == [2] and report["max_score"] == 1
    assert report["levels"][0]["tests"][0]["replay"] == "kata check breaker --level 2 --seed 7"


def test_check_all_reports_every_kata_with_levels(capsys):
    code, out, _ = kata(capsys, "check", "--all", "--against", "solutions", "--json")
    report = json.loads(out)
    assert code == 0 and list(report) == ["version", "katas"]
    assert [k["kata"] for k in report["katas"]] == [k.name for k in catalogue.katas() if k.levels]


def test_a_seeded_check_fails_the_same_way_every_time(tmp_path):
    wrong = SOLUTION.read_text().replace("failure_rate >= self.failure_rate_threshold",
                                         "failure_rate > self.failure_rate_threshold")
    folder = folder_with(tmp_path, wrong)
    first = check_kata("breaker", folder, level=4, seed=11).to_json()
    assert first["status"] == "fail"
    assert check_kata("breaker", folder, level=4, seed=11).to_json() == first


# -- bad usage and bad input: exit 2, one line, no traceback ------------------------------
@pytest.mark.parametrize(("argv", "reason"), [
    (["check", "nope"], "unknown kata 'nope'"),
    (["check"], "give one kata, or --all"),
    (["check", "breaker", "--all"], "give one kata, or --all"),
    (["check", "breaker", "--level", "9"], "levels 1 to 5"),
    (["check", "breaker", "--level", "0"], "levels start at 1"),
    (["check", "breaker", "--seed", "x"], "seed must be a whole number"),
    (["check", "breaker", "--against", "/no/such/folder"], "no folder"),
    (["check", "--all", "--level", "1"], "--level goes with one kata"),
    (["hint", "nope"], "unknown kata"),
    (["reset", "nope"], "unknown kata"),
])
def test_bad_usage_is_one_line_and_exit_2(capsys, argv, reason):
    code, out, err = kata(capsys, *argv)
    assert code == 2
    assert reason in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


@pytest.mark.parametrize(("source", "reason"), [
    (None, "no file "),
    ("x = 1\ndef broken(:\n    pass\n", "breaker.py:2: SyntaxError"),
    ("import os\nimport no_such_module_for_kata\n", "breaker.py:2: importing it raised ModuleNotFoundError"),
    ("def helper():\n    return 1 / 0\n\nVALUE = helper()\n", "breaker.py:2: importing it raised ZeroDivisionError"),
])
def test_a_kata_file_that_does_not_load_is_one_line_and_exit_2(capsys, tmp_path, source, reason):
    folder = folder_with(tmp_path, source)
    code, out, err = kata(capsys, "check", "breaker", "--against", folder)
    assert code == 2
    assert reason in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err + out
    code, out, _ = kata(capsys, "check", "breaker", "--against", folder, "--json")
    report = json.loads(out)
    assert code == 2 and report["status"] == "error"
    assert {level["status"] for level in report["levels"]} == {"error"}
    assert reason in report["levels"][0]["tests"][0]["message"]


def test_a_learner_error_names_the_line_in_their_file(tmp_path):
    source = SOLUTION.read_text().replace("return self._state\n", "return self.statte\n")
    report = check_kata("breaker", folder_with(tmp_path, source), level=1)
    messages = [t.message for t in report.levels[0].failures]
    assert any("AttributeError" in m and "breaker.py:" in m for m in messages), messages


def test_a_file_missing_a_name_the_checks_need_is_named_not_the_toolchains_module(tmp_path):
    source = SOLUTION.read_text().replace("class CircuitBreaker:", "class Breaker:")
    report = check_kata("breaker", folder_with(tmp_path, source), level=1)
    message = report.levels[0].failures[0].message
    assert "breaker.py defines no CircuitBreaker (the starting version has it" in message, message
    assert "_kata_under_test" not in message


def test_only_the_kata_file_of_a_submission_is_used(capsys, tmp_path):
    folder = folder_with(tmp_path, SOLUTION.read_text())
    (Path(folder) / "conftest.py").write_text("raise SystemExit('a conftest must never run')\n")
    (Path(folder) / "test_breaker.py").write_text("def test_fake():\n    assert True\n")
    code, out, _ = kata(capsys, "check", "breaker", "--against", folder, "--json")
    assert code == 0 and json.loads(out)["status"] == "pass"


def test_what_learner_code_prints_stays_out_of_the_json(capsys, tmp_path):
    noisy = SOLUTION.read_text().replace("        ticket = self._admit()\n        try:\n            result = fn(",
                                         "        print('debug!')\n        ticket = self._admit()\n"
                                         "        try:\n            result = fn(", 1)
    code, out, _ = kata(capsys, "check", "breaker", "--against", folder_with(tmp_path, noisy), "--json")
    assert code == 0 and json.loads(out)["status"] == "pass"


def test_an_endless_loop_times_out(tmp_path):
    looping = SOLUTION.read_text().replace("return self._state\n", "while True:\n            pass\n")
    report = check_kata("breaker", folder_with(tmp_path, looping), level=1, time_limit=0.05)
    statuses = {t.status for t in report.levels[0].tests}
    assert "timeout" in statuses
    assert "endless loop" in next(t.message for t in report.levels[0].tests if t.status == "timeout")


def test_after_one_timeout_the_rest_of_the_level_is_not_run(tmp_path):
    looping = SOLUTION.read_text().replace("return self._state\n", "while True:\n            pass\n")
    report = check_kata("breaker", folder_with(tmp_path, looping), level=1, time_limit=0.05)
    messages = [t.message for t in report.levels[0].tests if t.status == "timeout"]
    assert sum("endless loop" in m for m in messages) == 1  # one limit spent, not one per check
    assert all("not run: an earlier check" in m for m in messages if "endless loop" not in m)


# -- hint --------------------------------------------------------------------------------
def test_hint_gives_the_first_failing_levels_hint(capsys, tmp_path):
    code, out, _ = kata(capsys, "hint", "breaker")
    assert code == 0 and "level 1 (Trip and fail fast)" in out and "consecutive" in out
    no_backoff = SOLUTION.read_text().replace("self.backoff_multiplier ** self._trips_in_a_row", "1")
    code, out, _ = kata(capsys, "hint", "breaker", "--against", folder_with(tmp_path, no_backoff))
    assert code == 0 and "level 5 (Backoff and state-change listeners)" in out
    code, out, _ = kata(capsys, "hint", "breaker", "--against", "solutions")
    assert code == 0 and "every level passes" in out


def test_hint_on_a_file_that_does_not_load_says_why(capsys, tmp_path):
    code, _, err = kata(capsys, "hint", "breaker", "--against", folder_with(tmp_path, "def (\n"))
    assert code == 2 and "breaker.py:1: SyntaxError" in err


# -- reset -------------------------------------------------------------------------------
def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=kata", "-c", "user.email=kata@example.org", *args],
                   check=True, capture_output=True)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A learner's clone: katas/breaker.py committed as the stub."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "clone"
    (repo / "katas").mkdir(parents=True)
    shutil.copy(STUB, repo / "katas" / "breaker.py")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "the stubs")
    return repo


def test_reset_backs_up_then_restores_and_never_loses_work(capsys, clone):
    kata_file = clone / "katas" / "breaker.py"
    for n in (1, 2):
        kata_file.write_text(f"# my attempt {n}\n")
        code, out, _ = kata(capsys, "reset", "breaker", "--against", str(clone / "katas"))
        assert code == 0 and f"breaker-{n}.py" in out
        assert kata_file.read_bytes() == STUB.read_bytes()
        assert (clone / ".kata" / "backups" / f"breaker-{n}.py").read_text() == f"# my attempt {n}\n"
    code, out, _ = kata(capsys, "reset", "breaker", "--against", str(clone / "katas"))
    assert code == 0 and "nothing to back up" in out
    assert sorted(p.name for p in (clone / ".kata" / "backups").iterdir()) == ["breaker-1.py", "breaker-2.py"]


def test_reset_finds_the_stub_even_after_the_learner_commits(capsys, clone):
    kata_file = clone / "katas" / "breaker.py"
    git(clone, "branch", "-q", "-M", "main")
    git(clone, "clone", "-q", str(clone), str(clone.parent / "learner"))
    learner = clone.parent / "learner"
    (learner / "katas" / "breaker.py").write_text("# committed progress\n")
    git(learner, "commit", "-q", "-am", "my progress")
    code, out, _ = kata(capsys, "reset", "breaker", "--against", str(learner / "katas"))
    assert code == 0 and "@{upstream}" in out
    assert (learner / "katas" / "breaker.py").read_bytes() == kata_file.read_bytes()


def test_reset_outside_git_refuses_and_leaves_the_file(capsys, tmp_path):
    folder = folder_with(tmp_path, "# my work\n")
    code, _, err = kata(capsys, "reset", "breaker", "--against", folder)
    assert code == 2 and "untouched" in err
    assert (Path(folder) / "breaker.py").read_text() == "# my work\n"


# -- watch -------------------------------------------------------------------------------
def test_watch_checks_once_and_stops(capsys):
    code, out, _ = kata(capsys, "watch", "breaker", "--against", "solutions", "--max-checks", "1")
    assert code == 0 and "5/5 levels pass" in out and "Watching" in out


def test_watch_checks_again_after_each_save(tmp_path):
    path = tmp_path / "breaker.py"
    path.write_text("v1")
    saves = iter(["v2", "v3 longer"])
    checks = []

    def save_instead_of_sleeping(_seconds: float) -> None:
        path.write_text(next(saves, path.read_text()))

    code = watch([path], lambda: checks.append(path.read_text()) or len(checks), sleep=save_instead_of_sleeping,
                 max_checks=3)
    assert checks == ["v1", "v2", "v3 longer"] and code == 3


# -- timings for `kata bench` --------------------------------------------------------------
def test_check_timings_reports_each_figure_and_ratio():
    figures = check_timings(repeat=1)
    assert set(figures) == {"python_s", "import_pytest_s", "kata_check_breaker_s",
                            "check_breaker_over_import_pytest", "check_breaker_over_python"}
    assert all(value > 0 for value in figures.values())


def test_running_out_of_memory_in_a_check_is_an_error_that_says_so(tmp_path):
    # What RLIMIT_AS does to a breaker that allocates without bound once it goes half-open.
    source = SOLUTION.read_text().replace("            self._move(HALF_OPEN, now)\n",
                                          "            self._move(HALF_OPEN, now)\n            raise MemoryError\n", 1)
    report = check_kata("breaker", folder_with(tmp_path, source), level=2)
    errors = [t for t in report.levels[0].tests if t.status == "error"]
    assert errors and all("ran out of memory" in t.message for t in errors), [t.message for t in report.levels[0].tests]
    assert "breaker.py:" in errors[0].message


# -- reset, in a learner's words ------------------------------------------------------------
def test_reset_says_in_plain_words_where_the_starting_version_came_from(capsys, clone):
    (clone / "katas" / "breaker.py").write_text("# my attempt\n")
    code, out, _ = kata(capsys, "reset", "breaker", "--against", str(clone / "katas"))
    backup = clone / ".kata" / "backups" / "breaker-1.py"
    assert code == 0 and "the starting version from the latest commit in your copy" in out
    assert f"your file is kept in {backup}" in out
    learner = clone.parent / "learner"
    git(clone, "clone", "-q", str(clone), str(learner))
    (learner / "katas" / "breaker.py").write_text("# my attempt\n")
    code, out, _ = kata(capsys, "reset", "breaker", "--against", str(learner / "katas"))
    assert code == 0 and "the starting version from the course's repository" in out
    assert str(learner / ".kata" / "backups" / "breaker-1.py") in out
