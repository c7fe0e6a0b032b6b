"""Virtual time: an asyncio event loop whose clock jumps to the next timer.

When every task is waiting, real time would pass doing nothing; here the clock
jumps straight to the earliest pending timer instead (trio's autojump clock is
the model). A 30 s timeout therefore costs microseconds, and every timestamp is
exact and reproducible.

>>> loop = VirtualTimeLoop()
>>> loop.run_until_complete(asyncio.sleep(30))
>>> loop.time()
30.0
>>> loop.close()

Nothing in the harness reads the wall clock: services, katas and checkers ask
the running loop (``now()``) or an injected :class:`Clock`.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["Clock", "Deadlock", "VirtualTimeLoop", "now", "run", "sleep"]


class Deadlock(RuntimeError):
    """Every task is waiting and no timer is pending: nothing can ever happen."""


class _JumpingSelector:
    """Wraps the real selector: never blocks, advances the loop's clock instead.

    The real selector is still polled (with a zero timeout) so that the
    loop's self-pipe keeps working for thread-safe callbacks.
    """

    def __init__(self, loop: VirtualTimeLoop, real: selectors.BaseSelector):
        self._loop = loop
        self._real = real
        self._skipped = 0

    def select(self, timeout: float | None = None):
        if timeout == 0 and self._skipped < 64:
            # Work is ready: polling the OS every iteration costs more than
            # the work. Thread-safe wake-ups are still seen at least every
            # 64 iterations and always before the clock moves.
            self._skipped += 1
            return []
        self._skipped = 0
        events = self._real.select(0)
        if events:
            return events
        if timeout is None:
            raise Deadlock(
                "every task is waiting and no timer is pending "
                "(an await with no timeout on something that never happens?)"
            )
        if timeout > 0:
            scheduled = self._loop._scheduled  # heap of TimerHandles; head is live
            if scheduled:
                # Jump exactly to the timer's deadline, not now + timeout, so that
                # times stay exact (no float drift from the subtraction).
                self._loop._advance_to(scheduled[0].when())
        return []

    def __getattr__(self, name: str) -> Any:  # register/unregister/close/...
        return getattr(self._real, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time, starting at ``start`` seconds."""

    def __init__(self, start: float = 0.0):
        super().__init__()
        self._virtual_now = float(start)
        self._selector = _JumpingSelector(self, self._selector)

    def time(self) -> float:
        return self._virtual_now

    def _advance_to(self, when: float) -> None:
        # Refuses to go backwards, like trio's MockClock.
        if when > self._virtual_now:
            self._virtual_now = when


class Clock:
    """The injected clock: what katas and services use to read virtual time.

    >>> clock = Clock.manual(start=5.0)
    >>> clock.now()
    5.0
    >>> clock.advance(2.5); clock.now()
    7.5

    ``Clock.of_running_loop()`` reads the running virtual loop; a manual clock
    is handy for unit tests of pure logic (a breaker, a lease table).
    """

    def __init__(self, read=None):
        self._read = read
        self._manual = 0.0

    @classmethod
    def manual(cls, start: float = 0.0) -> Clock:
        clock = cls()
        clock._manual = float(start)
        return clock

    @classmethod
    def of_running_loop(cls) -> Clock:
        return cls(read=lambda: asyncio.get_running_loop().time())

    @classmethod
    def of_loop(cls, loop: asyncio.AbstractEventLoop) -> Clock:
        return cls(read=loop.time)

    def now(self) -> float:
        """Current virtual time in seconds."""
        return self._read() if self._read is not None else self._manual

    def advance(self, seconds: float) -> None:
        """Move a manual clock forward (refuses to go backwards)."""
        if self._read is not None:
            raise TypeError("only a manual clock can be advanced by hand")
        if seconds < 0:
            raise ValueError("a clock never goes backwards")
        self._manual += seconds

    def set(self, when: float) -> None:
        """Set a manual clock to an absolute time (never backwards)."""
        self.advance(when - self.now())


def now() -> float:
    """Virtual time of the running loop, in seconds."""
    return asyncio.get_running_loop().time()


async def sleep(seconds: float) -> None:
    """Sleep in virtual time (an alias of ``asyncio.sleep``, for discoverability)."""
    await asyncio.sleep(seconds)


def run(main: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run a coroutine to completion on a fresh virtual-time loop.

    >>> async def wait():
    ...     await asyncio.sleep(120)
    ...     return now()
    >>> run(wait())
    120.0
    """
    loop = VirtualTimeLoop(start=start)
    try:
        return loop.run_until_complete(main)
    finally:
        _cancel_leftovers(loop)
        loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel tasks still pending when the main coroutine returns."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
