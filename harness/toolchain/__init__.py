"""The kata toolchain: the catalogue, the check runner, reports, hints, reset and watch.

What the ``kata`` command, the chapters and the grader share:

>>> from harness.toolchain import check_kata, kata
>>> kata("breaker").levels[1].title
'Half-open, recovery and business errors'
>>> check_kata("breaker", "solutions").status
'pass'
"""

from .catalogue import Kata, Level, UnknownKata, kata, katas
from .loader import KataLoadError
from .reports import KataReport, LevelResult, TestResult, render
from .runner import check_kata

__all__ = [
    "Kata",
    "KataLoadError",
    "KataReport",
    "Level",
    "LevelResult",
    "TestResult",
    "UnknownKata",
    "check_kata",
    "kata",
    "katas",
    "render",
]
