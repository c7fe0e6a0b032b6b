"""How fast is feedback? ``kata check breaker`` in a fresh interpreter, next to bare start-ups.

For ``kata bench``: each figure is the best of ``repeat`` runs in a
subprocess (the best run is the one least disturbed by the machine), and the
ratios compare them within one run, never against a fixed number.

>>> figures = check_timings(repeat=1)  # doctest: +SKIP
>>> sorted(figures)  # doctest: +SKIP
['check_breaker_over_import_pytest', 'check_breaker_over_python', 'import_pytest_s', 'kata_check_breaker_s', 'python_s']
"""

from __future__ import annotations

import subprocess
import sys
import time

__all__ = ["COMMANDS", "check_timings", "wall_time"]

_KATA = "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))"

COMMANDS: dict[str, list[str]] = {
    "python_s": [sys.executable, "-c", "pass"],
    "import_pytest_s": [sys.executable, "-c", "import pytest"],
    # The same entry point as the `kata` script; the stubs fail (exit 1), which is fine here.
    "kata_check_breaker_s": [sys.executable, "-c", _KATA, "check", "breaker"],
}


def wall_time(command: list[str], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs of ``command``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        best = min(best, time.perf_counter() - start)
    return best


def check_timings(repeat: int = 3) -> dict[str, float]:
    """Wall times of the three commands, and the ratios the speed bar is about.

    Goal (issue 3): ``kata_check_breaker_s`` within 1 s and no more than 3x ``import_pytest_s``.
    """
    figures = {name: round(wall_time(command, repeat), 4) for name, command in COMMANDS.items()}
    figures["check_breaker_over_import_pytest"] = round(figures["kata_check_breaker_s"] / figures["import_pytest_s"], 3)
    figures["check_breaker_over_python"] = round(figures["kata_check_breaker_s"] / figures["python_s"], 3)
    return figures
