"""Check reports: the JSON of DESIGN.md §6 (modelled on Exercism's results.json) and the text a learner reads.

>>> test = TestResult("trips", "pass", replay="kata check breaker --level 1 --seed 0")
>>> report = KataReport("breaker", "katas", 0, [LevelResult(1, "Trip and fail fast", [test])])
>>> report.status, report.score, report.max_score
('pass', 1, 1)
>>> sorted(report.to_json())
['against', 'kata', 'levels', 'max_score', 'score', 'seed', 'status', 'version']
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REPORT_VERSION", "KataReport", "LevelResult", "TestResult", "render", "render_all", "stuck_levels",
           "to_json_all"]

REPORT_VERSION = 1


@dataclass
class TestResult:
    """One check's verdict. ``output`` (what the learner's code printed) stays out of the JSON."""

    name: str
    status: str  # pass | fail | error | timeout
    message: str | None = None
    hint: str | None = None
    replay: str | None = None
    summary: str = ""  # the check's docstring, first line
    output: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message,
                "hint": self.hint, "replay": self.replay}


@dataclass
class LevelResult:
    level: int
    title: str
    tests: list[TestResult] = field(default_factory=list)
    error: bool = False  # the kata file could not be loaded: nothing ran

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        return "pass" if all(t.status == "pass" for t in self.tests) else "fail"

    @property
    def failures(self) -> list[TestResult]:
        return [t for t in self.tests if t.status != "pass"]

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "title": self.title, "status": self.status,
                "tests": [t.to_json() for t in self.tests]}


@dataclass
class KataReport:
    """The result of ``kata check KATA``: one entry per level that ran."""

    kata: str
    against: str
    seed: int
    levels: list[LevelResult]
    load_error: str | None = None  # one line, when the kata file could not be loaded
    path: str = ""

    @property
    def status(self) -> str:
        if self.load_error is not None:
            return "error"
        return "pass" if all(level.status == "pass" for level in self.levels) else "fail"

    @property
    def score(self) -> int:
        """Levels passed: a level counts only when every one of its checks passes."""
        return sum(level.status == "pass" for level in self.levels)

    @property
    def max_score(self) -> int:
        return len(self.levels)

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "fail": 1, "error": 2}[self.status]

    def first_failure(self) -> tuple[LevelResult, TestResult] | None:
        for level in self.levels:
            if level.failures:
                return level, level.failures[0]
        return None

    def __str__(self) -> str:  # print(check_kata("breaker")) in a notebook
        return render(self)

    def to_json(self) -> dict[str, Any]:
        return {"version": REPORT_VERSION, "kata": self.kata, "against": self.against, "status": self.status,
                "seed": self.seed, "score": self.score, "max_score": self.max_score,
                "levels": [level.to_json() for level in self.levels]}


def stuck_levels(submissions: list[dict[str, Any]], katas: list[str],
                 title: Callable[[str, int], str]) -> list[dict[str, Any]]:
    """Where a class is stuck: for each kata, the first level that each learner who handed it in
    does not pass (a report without levels, such as a refused file, counts at level 1), with
    ``failing`` of ``of`` learners and the share, largest share first.

    The rule of ``kata grade``'s ``stuck`` list and of the class dashboard.

    >>> subs = [{"katas": {"saga": {"status": "fail", "levels": [{"level": 1, "status": "pass"},
    ...                                                          {"level": 2, "status": "fail"}]}}},
    ...         {"katas": {"saga": {"status": "missing", "levels": []}}}]
    >>> [(e["level"], e["failing"], e["of"]) for e in stuck_levels(subs, ["saga"], lambda k, n: f"level {n}")]
    [(2, 1, 1)]
    """
    counts: dict[tuple[str, int], int] = {}
    handed_in: dict[str, int] = {}
    for submission in submissions:
        for kata in katas:
            report = submission["katas"].get(kata)
            if report is None or report["status"] == "missing":
                continue
            handed_in[kata] = handed_in.get(kata, 0) + 1
            levels = report.get("levels", [])
            first = next((lv["level"] for lv in levels if lv["status"] != "pass"), None if levels else 1)
            if first is not None:
                counts[kata, first] = counts.get((kata, first), 0) + 1
    entries = [{"kata": kata, "level": level, "title": title(kata, level), "failing": failing,
                "of": handed_in[kata], "share": round(failing / handed_in[kata], 3)}
               for (kata, level), failing in counts.items()]
    entries.sort(key=lambda e: (-e["share"], katas.index(e["kata"]), e["level"]))
    return entries


def to_json_all(reports: list[KataReport]) -> dict[str, Any]:
    """``check --all --json``: every kata's report."""
    return {"version": REPORT_VERSION, "katas": [r.to_json() for r in reports]}


# -- text for the learner -------------------------------------------------------------
def _marks() -> tuple[str, str]:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower()
    return ("✓", "✗") if encoding.startswith("utf") else ("ok", "XX")


def render(report: KataReport, *, show_first_failure: bool = True) -> str:
    """Per level a line with ✓/✗, then the first failure in full, its hint and replay command."""
    passed, failed = _marks()
    lines = [f"{report.kata}: {report.path or report.against} (seed {report.seed})"]
    if report.load_error is not None:
        lines.append(f"  {failed} {report.load_error}")
        return "\n".join(lines)
    for level in report.levels:
        mark = passed if level.status == "pass" else failed
        count = len(level.failures)
        tail = "" if not count else f"   ({count} of {len(level.tests)} checks fail)"
        lines.append(f"  {mark} level {level.level}  {level.title}{tail}")
    first = report.first_failure()
    if first is not None and show_first_failure:
        level, test = first
        lines += ["", f"Level {level.level}, {test.name}: {test.summary}"]
        lines += [f"  {line}" for line in (test.message or test.status).splitlines()]
        if test.output.strip():
            printed = test.output.strip().splitlines()
            lines += ["  Your code printed:", *(f"    {line}" for line in printed[-10:])]
        if test.hint:
            lines += ["", f"Hint: {test.hint}"]
        lines += [f"Replay: {test.replay}"]
    lines += ["", f"{report.score}/{report.max_score} levels pass"]
    return "\n".join(lines)


def render_all(reports: list[KataReport]) -> str:
    return "\n\n".join(render(r) for r in reports)
