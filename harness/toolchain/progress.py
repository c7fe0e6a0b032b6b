"""``kata`` with no command: the learner's progress through the katas, in learning order.

>>> print(overview("solutions").splitlines()[3])
  2. breaker   Circuit breaker                   [#####] 5/5
"""

from __future__ import annotations

from . import catalogue
from .reports import KataReport
from .runner import check_kata

__all__ = ["overview"]


def overview(against: str = "katas", *, seed: int = 0) -> str:
    """One line per kata: levels passed, or "coming soon"; then what to do next."""
    lines = [f"Microservice Katas: your progress ({against}/)", ""]
    next_step = None
    for number, kata in enumerate(catalogue.katas(), start=1):
        head = f"  {number}. {kata.name:<9} {kata.title:<33}"
        if kata.coming:
            lines.append(f"{head} coming soon")
            continue
        report = check_kata(kata.name, against, seed=seed)
        lines.append(f"{head} {_progress(report)}")
        if next_step is None and report.status != "pass":
            next_step = _next(report)
    lines += ["", next_step or "Every kata that has levels passes. Well done!"]
    return "\n".join(lines)


def _progress(report: KataReport) -> str:
    if report.load_error is not None:
        return f"does not load: {report.load_error}"
    bar = "#" * report.score + "." * (report.max_score - report.score)
    return f"[{bar}] {report.score}/{report.max_score}"


def _next(report: KataReport) -> str:
    first = report.first_failure()
    if first is None or report.load_error is not None:
        return f"Next: fix {report.path}, then `kata check {report.kata}`."
    level, _ = first
    return (f"Next: {report.kata} level {level.level}, {level.title}. "
            f"Run `kata check {report.kata}`; stuck? `kata hint {report.kata}`.")
