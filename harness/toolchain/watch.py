"""``kata watch``: check again every time the kata file is saved.

Polls modification times (no extra dependency, works on every filesystem).
``sleep`` is injectable so that tests drive the loop without waiting.

>>> runs = []
>>> watch([], lambda: runs.append(1) or 0, max_checks=1)
0
>>> runs
[1]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["INTERVAL", "snapshot", "watch"]

INTERVAL = 0.3  # seconds between polls: feels instant, costs nothing


def snapshot(paths: Iterable[Path]) -> dict[Path, tuple[int, int] | None]:
    """(mtime in ns, size) per path; None for a file that is missing (mid-save)."""
    state: dict[Path, tuple[int, int] | None] = {}
    for path in paths:
        try:
            stat = path.stat()
            state[path] = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            state[path] = None
    return state


def watch(paths: Iterable[Path], check: Callable[[], int], *, interval: float = INTERVAL,
          max_checks: int | None = None, sleep: Callable[[float], None] = time.sleep,
          on_change: Callable[[], None] | None = None) -> int:
    """Run ``check()`` now and after every change to ``paths``; return its last exit code.

    Stops after ``max_checks`` checks (tests, scripts) or on Ctrl-C.
    """
    paths = list(paths)
    seen = snapshot(paths)
    code, checks = check(), 1
    try:
        while max_checks is None or checks < max_checks:
            sleep(interval)
            now = snapshot(paths)
            if now != seen and all(v is not None for v in now.values()):
                seen = now
                if on_change is not None:
                    on_change()
                code, checks = check(), checks + 1
    except KeyboardInterrupt:
        pass
    return code
