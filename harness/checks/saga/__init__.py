"""Checks of the saga kata, one module per level (see ``harness.toolchain.catalogue``).

Each check builds a fresh shop (:mod:`.shop`), runs the learner's saga
through a client that keeps a story (:mod:`.scene`), and judges the outcome
with the invariants of :mod:`harness.invariants`. Each level also has a
property check (:mod:`.explore`) that runs 200 generated fault schedules.

For ``kata bench``: :func:`saga_check_timing` measures the whole
``kata check saga --against solutions`` in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import time

from . import level1, level2, level3, level4, level5  # noqa: F401  (registers the checks)

__all__ = ["saga_check_timing"]

_KATA = "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))"


def saga_check_timing(repeat: int = 3, *, command: list[str] | None = None) -> dict[str, float]:
    """Best wall time, in seconds, of ``kata check saga --against solutions`` run in a subprocess.

    >>> figures = saga_check_timing(repeat=1, command=[sys.executable, "-c", "pass"])
    >>> sorted(figures), figures["kata_check_saga_wall_s"] < 5
    (['kata_check_saga_wall_s'], True)
    """
    command = command or [sys.executable, "-c", _KATA, "check", "saga", "--against", "solutions"]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()  # wall time of a benchmark, never read by a check
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        best = min(best, time.perf_counter() - start)
    return {"kata_check_saga_wall_s": round(best, 3)}
