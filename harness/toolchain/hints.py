"""``kata hint``: the hint of the first level that does not pass yet.

>>> from harness.toolchain.runner import check_kata
>>> print(hint(check_kata("breaker", "katas")).splitlines()[0])
breaker, level 1 (Trip and fail fast):
"""

from __future__ import annotations

from textwrap import fill

from .reports import KataReport

__all__ = ["hint"]


def hint(report: KataReport) -> str:
    """The hint text for the learner: which level, its hint, and how to check again."""
    if report.load_error is not None:
        return f"{report.kata}: fix this first: {report.load_error}"
    first = report.first_failure()
    if first is None:
        return f"{report.kata}: every level passes; nothing to hint. On to the next kata (kata list)."
    level, test = first
    return "\n".join([
        f"{report.kata}, level {level.level} ({level.title}):",
        fill(test.hint or "", width=88, initial_indent="  ", subsequent_indent="  "),
        "",
        f"First failing check: {test.name} ({test.summary})",
        f"Check it again with: {test.replay}",
    ])
