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
import contextlib
import contextvars
import gc
import heapq
from asyncio import format_helpers
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["Clock", "Deadlock", "VirtualTimeLoop", "now", "run", "sleep"]


class Deadlock(RuntimeError):
    """Every task is waiting and no timer is pending: nothing can ever happen."""


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time, starting at ``start`` seconds.

    Timers live in a heap of ``(when, sequence, handle)`` tuples: compared in
    C rather than through ``TimerHandle.__lt__``, and timers due at the same
    instant run in the order they were set (first in, first out), which keeps
    histories easy to reason about.
    """

    def __init__(self, start: float = 0.0):
        super().__init__()
        self._virtual_now = float(start)
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._timer_seq = 0
        self._cancelled_timers = 0
        self._polls_skipped = 0
        self._wakeup_pending = False

    def time(self) -> float:
        return self._virtual_now

    def run_until_complete(self, future):
        # Jupyter's kernel runs its own asyncio loop in this thread, and asyncio
        # refuses to start a second loop while one is marked running. The
        # kernel's loop is blocked in this cell anyway: step it aside while the
        # virtual loop runs, and put it back afterwards.
        outer = asyncio.events._get_running_loop()
        with _fewer_collections():
            if outer is None or outer is self:
                return super().run_until_complete(future)
            asyncio.events._set_running_loop(None)
            try:
                return super().run_until_complete(future)
            finally:
                asyncio.events._set_running_loop(outer)

    def _advance_to(self, when: float) -> None:
        # Refuses to go backwards, like trio's MockClock.
        if when > self._virtual_now:
            self._virtual_now = when

    def create_task(self, coro, *, name=None, context=None):
        if self._debug or self._task_factory is not None or self._closed:
            task = super().create_task(coro, name=name, context=context)
        else:  # what the base class does in this case, minus a call and its checks (hot path)
            task = asyncio.Task(coro, loop=self, name=name, context=context)
        # A world dropped unclosed leaves its load, schedules and requests waiting
        # forever; in virtual time that is normal, not worth "Task was destroyed
        # but it is pending!" on stderr when the collector frees them.
        task._log_destroy_pending = False
        return task

    def call_soon(self, callback, *args, context=None):
        # The base version re-checks debug settings on every call; this one is
        # on the path of every task step, so keep it to the essentials.
        if self._closed:
            raise RuntimeError("Event loop is closed")
        handle = (asyncio.Handle if self._debug else _Callback)(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(self, delay, callback, *args, context=None):
        if delay is None:
            raise TypeError("delay must not be None")
        return self.call_at(self._virtual_now + delay, callback, *args, context=context)

    def call_at(self, when, callback, *args, context=None):
        if self._closed:
            raise RuntimeError("Event loop is closed")
        handle = (asyncio.TimerHandle if self._debug else _Timer)(when, callback, args, self, context)
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, handle))
        handle._scheduled = True
        return handle

    def call_series(self, times, callback, *args) -> None:
        """Call ``callback(i, *args)`` at each of ``times`` (ascending), in the order that
        setting all the timers now would give, but with one timer pending at a time.

        An open-loop load of 14,000 arrivals then keeps a heap of hundreds of timers,
        not of 14,000: every push and pop of the run is cheaper.
        """
        if not times:
            return
        first = self._timer_seq + 1
        self._timer_seq += len(times)  # the series' places in the FIFO order, kept now

        def arrive(i: int) -> None:
            if i + 1 < len(times):
                self._push(times[i + 1], first + i + 1, arrive, i + 1)
            callback(i, *args)

        self._push(times[0], first, arrive, 0)

    def _push(self, when, seq, callback, *args) -> None:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        handle = (asyncio.TimerHandle if self._debug else _Timer)(when, callback, args, self, None)
        heapq.heappush(self._timers, (when, seq, handle))
        handle._scheduled = True

    def _timer_handle_cancelled(self, handle):
        if handle._scheduled:
            self._cancelled_timers += 1
            if self._cancelled_timers > 64 and self._cancelled_timers * 2 > len(self._timers):
                # Mostly dead timers (timeouts that never fired): rebuild the heap.
                # (`handle` is being cancelled: its flag is set just after this call.)
                live = [e for e in self._timers if not e[2]._cancelled and e[2] is not handle]
                for entry in self._timers:
                    if entry[2]._cancelled or entry[2] is handle:
                        entry[2]._scheduled = False
                heapq.heapify(live)
                self._timers = live
                self._cancelled_timers = 0

    def _write_to_self(self):
        # Another thread's call_soon_threadsafe: note it, so the next poll is not skipped.
        self._wakeup_pending = True
        super()._write_to_self()

    def _poll(self) -> None:
        """Let the OS deliver thread-safe wake-ups (the self-pipe), never blocking.

        Asking the OS costs a system call before nearly every jump of the clock
        (35,000 in one cascade variant). Only the self-pipe is ever
        registered on a virtual loop, so the call is skipped unless a wake-up
        was written, a signal handler is set, or someone registered another
        file descriptor.
        """
        if not (self._wakeup_pending or self._signal_handlers or len(self._selector._fd_to_key) > 1):
            return
        self._wakeup_pending = False
        events = self._selector.select(0)
        if events:
            self._process_events(events)

    def _run_once(self):
        ready = self._ready
        timers = self._timers
        if ready or self._stopping:
            # Work is ready: polling the OS every iteration costs more than the
            # work. Wake-ups are still seen every 64 iterations and always
            # before the clock moves.
            self._polls_skipped += 1
            if self._polls_skipped >= 64:
                self._polls_skipped = 0
                self._poll()
        else:
            self._poll()
            if not ready:
                while timers and timers[0][2]._cancelled:
                    heapq.heappop(timers)[2]._scheduled = False
                    self._cancelled_timers -= 1
                if not timers:
                    raise Deadlock(
                        "every task is waiting and no timer is pending "
                        "(an await with no timeout on something that never happens?)"
                    )
                # Nothing to do until the next timer: jump exactly to it.
                self._advance_to(timers[0][0])
        now = self._virtual_now
        while timers and timers[0][0] <= now:
            handle = heapq.heappop(timers)[2]
            handle._scheduled = False
            if handle._cancelled:
                self._cancelled_timers -= 1
                continue
            ready.append(handle)
        if self._debug:
            for _ in range(len(ready)):
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
            return
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                # Handle._run, inlined: one Python frame fewer per step of the loop.
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # reported as Handle._run reports it
                    source = format_helpers._format_callback_source(handle._callback, handle._args)
                    self.call_exception_handler({"message": f"Exception in callback {source}",
                                                 "exception": exc, "handle": handle})

    def close(self) -> None:
        self._timers.clear()
        super().close()


YOUNG_GENERATION = 100_000  # allocations between two young collections while a loop runs


@contextlib.contextmanager
def _fewer_collections():
    """Collect young garbage less often while a virtual loop runs.

    Every exchange allocates tasks, futures, handles and dicts that die within
    virtual milliseconds; with Python's default threshold (700) the collector
    keeps scanning them and promoting survivors, which cost a big scenario
    about a tenth of its time. Nearly all of it is freed by reference counting
    anyway, so the memory peak barely moves. The setting is put back after.
    """
    first, *older = gc.get_threshold()
    if first == 0 or first >= YOUNG_GENERATION:  # collection off, or already roomy
        yield
        return
    gc.set_threshold(YOUNG_GENERATION, *older)
    try:
        yield
    finally:
        if gc.get_threshold()[0] == YOUNG_GENERATION:  # unless someone changed it meanwhile
            gc.set_threshold(first, *older)


class _Callback(asyncio.Handle):
    """A ``Handle`` made without asking the loop for its debug setting.

    Every task step and every timer makes one of these, so the one method call
    saved per handle shows in big scenarios. In debug mode the loop makes
    asyncio's own handles, which record where they were created.
    """

    __slots__ = ()

    def __init__(self, callback, args, loop, context=None):
        self._context = contextvars.copy_context() if context is None else context
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None


class _Timer(asyncio.TimerHandle):
    """A ``TimerHandle`` made the same lean way as :class:`_Callback`."""

    __slots__ = ()

    def __init__(self, when, callback, args, loop, context=None):
        self._context = contextvars.copy_context() if context is None else context
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None
        self._when = when
        self._scheduled = False


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
