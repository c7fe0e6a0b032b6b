"""Circuit breaker: the reference solution of the breaker kata.

Same public API as ``katas/breaker.py``; the comments explain why each rule is
there. A breaker wraps calls to a dependency that may fail or hang. After
enough failures it *opens* and fails fast instead of calling, which gives the
dependency room to recover and keeps the caller's workers free. After a while
it lets a few *probe* calls through (*half-open*) and closes again when they
succeed.

>>> from harness.clock import Clock
>>> clock = Clock.manual()
>>> breaker = CircuitBreaker(fail_max=2, reset_timeout=30, clock=clock)
>>> def charge():
...     raise ConnectionError("payments is down")
>>> for _ in range(2):
...     try:
...         breaker.call(charge)
...     except (ConnectionError, CircuitBreakerError) as error:
...         print(type(error).__name__)
ConnectionError
CircuitBreakerError
>>> breaker.state
'open'
>>> clock.advance(30); breaker.call(lambda: "paid"), breaker.state
('paid', 'closed')

Semantics, and whom we follow where trusted systems differ:

- Consecutive failures, half-open, ``success_threshold`` and ``exclude``
  behave exactly like pybreaker 1.4 (a differential test checks it): the call
  that trips the breaker raises :class:`CircuitBreakerError` chained from the
  original error; the first call at or after ``opened_at + reset_timeout`` is
  the probe; an excluded error counts as a success and is re-raised.
- The rate windows follow resilience4j's COUNT_BASED window: the last
  ``window_size`` outcomes of calls made while closed; no verdict before
  ``minimum_number_of_calls`` outcomes (capped at ``window_size``); a rate
  equal to its threshold opens; a call is slow when it took strictly longer
  than ``slow_call_duration_threshold``. Unlike resilience4j's
  ``ignoreExceptions`` (not recorded at all), excluded errors are recorded as
  successes, as pybreaker counts them. Thresholds are fractions (0.5), not
  percentages (50).
- ``half_open_max_calls`` bounds the probes *in flight*; resilience4j's
  ``permittedNumberOfCallsInHalfOpenState`` bounds their total. With
  pybreaker's "success_threshold successes close" rule, a limit on
  concurrency is the part that protects a recovering dependency.

Plugging a breaker into the harness: the orders service accepts a guard for
its payments call (see :mod:`harness.services.orders`)::

    breaker = CircuitBreaker(fail_max=5, reset_timeout=30, clock=world.clock)
    breaker.add_listener(lambda old, new, at: world.recorder.event(at, "breaker", "orders->payments", state=new))
    world.add_service("orders", options={"payments_guard": breaker.guard})

One breaker per orders instance instead (what the ``cascade`` scenario's
``guard_factory`` does): ``options={"payments_guard_factory": lambda ctx:
CircuitBreaker(clock=ctx.world.clock).guard}``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from harness.clock import Clock

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker", "CircuitBreakerError", "Listener", "SupportsNow"]

T = TypeVar("T")

# The same strings as pybreaker's STATE_* constants.
CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class CircuitBreakerError(Exception):
    """The breaker refused the call (open, or half-open with every probe slot taken),
    or the call just tripped it (then ``__cause__`` is the failure that did)."""


class SupportsNow(Protocol):
    """A clock: ``now()`` in seconds (``harness.clock.Clock`` is one)."""

    def now(self) -> float: ...


Listener = Callable[[str, str, float], Any]
"""``listener(old_state, new_state, at)``, called after each change of state."""

Exclusion = type[BaseException] | Callable[[BaseException], bool]


@dataclass(slots=True)
class _Ticket:
    """What the breaker remembers about one admitted call until it settles."""

    started_at: float
    generation: int  # which stint in a state admitted it (see _move)
    probe: bool  # holds a half-open probe slot


class CircuitBreaker:
    """Guards calls to one dependency: closed, open or half-open.

    >>> from harness.clock import Clock
    >>> breaker = CircuitBreaker(fail_max=3, reset_timeout=10, clock=Clock.manual())
    >>> breaker.call(lambda amount: amount * 2, 21), breaker.state
    (42, 'closed')

    Level 1: ``fail_max`` consecutive failures open it. Level 2:
    ``reset_timeout``, ``success_threshold``, ``exclude``. Level 3:
    :meth:`call_async`, the decorator, ``half_open_max_calls``. Level 4:
    ``window_size``, ``minimum_number_of_calls``, ``failure_rate_threshold``,
    ``slow_call_duration_threshold``, ``slow_call_rate_threshold`` (a rate
    rule is off while its threshold is None). Level 5:
    ``backoff_multiplier``, ``max_reset_timeout``, ``listeners``.

    ``clock`` is any object with ``now()``; by default the running event
    loop's clock (virtual time inside the harness). Outside an event loop,
    pass one: ``Clock.manual()``.
    """

    def __init__(
        self,
        fail_max: int = 5,
        reset_timeout: float = 60.0,
        *,
        success_threshold: int = 1,
        exclude: Iterable[Exclusion] = (),
        half_open_max_calls: int = 1,
        window_size: int = 100,
        minimum_number_of_calls: int = 100,
        failure_rate_threshold: float | None = None,
        slow_call_duration_threshold: float = 60.0,
        slow_call_rate_threshold: float | None = None,
        backoff_multiplier: float = 1.0,
        max_reset_timeout: float | None = None,
        listeners: Iterable[Listener] = (),
        clock: SupportsNow | None = None,
        name: str = "breaker",
    ) -> None:
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self.success_threshold = success_threshold
        self.exclude = tuple(exclude)
        self.half_open_max_calls = half_open_max_calls
        self.window_size = window_size
        self.minimum_number_of_calls = minimum_number_of_calls
        self.failure_rate_threshold = failure_rate_threshold
        self.slow_call_duration_threshold = slow_call_duration_threshold
        self.slow_call_rate_threshold = slow_call_rate_threshold
        self.backoff_multiplier = backoff_multiplier
        self.max_reset_timeout = max_reset_timeout
        self.listeners: list[Listener] = list(listeners)
        self.clock = clock if clock is not None else Clock.of_running_loop()
        self.name = name
        _validate(self)

        self._state = CLOSED
        self._generation = 0
        self._failures = 0  # consecutive failures while closed
        self._successes = 0  # consecutive successes while half-open
        self._probes_in_flight = 0
        self._opened_at = 0.0
        self._open_for = reset_timeout
        self._trips_in_a_row = 0  # trips since the breaker last closed: drives the backoff
        # (failed, slow) for the last calls made while closed; resilience4j caps
        # the minimum at the window size, or a small window could never judge.
        self._window: deque[tuple[bool, bool]] = deque(maxlen=window_size)
        self._minimum_calls = min(minimum_number_of_calls, window_size)

    # -- what callers use ------------------------------------------------------------
    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``.

        Reading it never changes it: an open breaker whose timer has run out
        stays open until the next call arrives (pybreaker and resilience4j
        do the same), so the open -> half-open change happens at that call.
        """
        return self._state

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker.

        >>> from harness.clock import Clock
        >>> CircuitBreaker(clock=Clock.manual()).call(max, 3, 7)
        7
        """
        if inspect.iscoroutinefunction(fn):
            # The trap of pybreaker issue #7: calling it would only create a
            # coroutine, "succeed", and leave the failure to whoever awaits it.
            raise TypeError(f"{fn.__qualname__} is a coroutine function: use `await breaker.call_async(...)`")
        with self._attempt():
            return fn(*args, **kwargs)

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker.

        The outcome is known only once the coroutine has finished, so the
        breaker awaits it itself before counting anything.
        """
        with self._attempt():
            return await fn(*args, **kwargs)

    def __call__(self, fn: Callable[..., T]) -> Callable[..., T]:
        """Use the breaker as a decorator, on plain and on ``async def`` functions.

        >>> from harness.clock import Clock
        >>> breaker = CircuitBreaker(clock=Clock.manual())
        >>> @breaker
        ... def price(sku):
        ...     return 20
        >>> price("book")
        20
        """
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_coroutine(*args: Any, **kwargs: Any) -> Any:
                return await self.call_async(fn, *args, **kwargs)

            return guarded_coroutine

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> T:
            return self.call(fn, *args, **kwargs)

        return guarded

    async def guard(self, call: Callable[[], Awaitable[T]]) -> T:
        """The harness's plug: ``options={"payments_guard": breaker.guard}`` on orders."""
        return await self.call_async(call)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(old_state, new_state, at)`` after every change of state."""
        self.listeners.append(listener)

    # -- the state machine -------------------------------------------------------------
    @contextlib.contextmanager
    def _attempt(self) -> Iterator[None]:
        """One call, sync or async: admit it, run the body, count how it ended.

        Both call() and call_async() go through here, so the rules live in
        one place; only *when* the outcome is known differs (after the await).
        """
        ticket = self._admit()
        try:
            yield
        except BaseException as error:
            reason = self._settle_error(ticket, error)
            if reason is not None:
                raise CircuitBreakerError(f"{self.name} opened: {reason}") from error
            raise
        self._settle_success(ticket)

    def _admit(self) -> _Ticket:
        """Let a call in, or raise CircuitBreakerError without calling anything."""
        now = self.clock.now()
        if self._state == OPEN:
            # Rejected calls leave the timer alone: a caller retrying in a loop
            # must not keep the breaker open forever.
            if now < self._opened_at + self._open_for:
                raise CircuitBreakerError(f"{self.name} is open until t={self._opened_at + self._open_for:g}")
            self._move(HALF_OPEN, now)
        if self._state == HALF_OPEN:
            # A recovering dependency gets a trickle of probes, not the whole
            # backlog at once.
            if self._probes_in_flight >= self.half_open_max_calls:
                raise CircuitBreakerError(
                    f"{self.name} is half-open and {self._probes_in_flight} probe(s) are already in flight")
            self._probes_in_flight += 1
            return _Ticket(now, self._generation, probe=True)
        return _Ticket(now, self._generation, probe=False)

    def _settle_success(self, ticket: _Ticket) -> None:
        self._release(ticket)
        if ticket.generation != self._generation:
            return  # admitted before the last change of state: old news
        now = self.clock.now()
        if self._state == HALF_OPEN:
            self._successes += 1
            if self._successes >= self.success_threshold:
                self._move(CLOSED, now)
            return
        self._failures = 0  # only *consecutive* failures trip the breaker
        verdict = self._record(failed=False, duration=now - ticket.started_at)
        if verdict is not None:
            self._trip(now)

    def _settle_error(self, ticket: _Ticket, error: BaseException) -> str | None:
        """Count a failed call; the reason, when this failure opened the breaker."""
        if not isinstance(error, Exception):
            # Cancelled (or interrupted): that says nothing about the dependency.
            # Free the probe slot all the same, or half-open would wedge.
            self._release(ticket)
            return None
        if self._is_excluded(error):
            self._settle_success(ticket)  # a business error: the dependency did its job
            return None
        self._release(ticket)
        if ticket.generation != self._generation:
            return None
        now = self.clock.now()
        if self._state == HALF_OPEN:
            # One failed probe is enough: the dependency has not recovered.
            self._trip(now)
            return "a probe failed in half-open"
        self._failures += 1
        verdict = self._record(failed=True, duration=now - ticket.started_at)
        if self._failures >= self.fail_max:
            verdict = f"{self._failures} consecutive failures (fail_max={self.fail_max})"
        if verdict is not None:
            self._trip(now)
        return verdict

    def _release(self, ticket: _Ticket) -> None:
        # A change of state resets the count, so only this stint's probes give back.
        if ticket.probe and ticket.generation == self._generation:
            self._probes_in_flight -= 1

    def _is_excluded(self, error: BaseException) -> bool:
        """pybreaker's rule: an exception class matches subclasses; a callable is a predicate."""
        for rule in self.exclude:
            if isinstance(rule, type):
                if isinstance(error, rule):
                    return True
            elif rule(error):
                return True
        return False

    def _record(self, *, failed: bool, duration: float) -> str | None:
        """Add one outcome to the window; the reason, when a rate says open."""
        if self.failure_rate_threshold is None and self.slow_call_rate_threshold is None:
            return None
        self._window.append((failed, duration > self.slow_call_duration_threshold))
        calls = len(self._window)
        if calls < self._minimum_calls:
            return None  # too few calls for a rate to mean anything
        failure_rate = sum(f for f, _ in self._window) / calls
        slow_rate = sum(s for _, s in self._window) / calls
        if self.failure_rate_threshold is not None and failure_rate >= self.failure_rate_threshold:
            return f"failure rate {failure_rate:.0%} >= {self.failure_rate_threshold:.0%} over the last {calls} calls"
        if self.slow_call_rate_threshold is not None and slow_rate >= self.slow_call_rate_threshold:
            return f"slow-call rate {slow_rate:.0%} >= {self.slow_call_rate_threshold:.0%} over the last {calls} calls"
        return None

    def _trip(self, now: float) -> None:
        # Each trip in a row waits longer, so a dependency that keeps failing
        # its probes is not probed every reset_timeout forever.
        self._open_for = self.reset_timeout * self.backoff_multiplier ** self._trips_in_a_row
        if self.max_reset_timeout is not None:
            self._open_for = min(self._open_for, self.max_reset_timeout)
        self._trips_in_a_row += 1
        self._opened_at = now
        self._move(OPEN, now)

    def _move(self, new: str, now: float) -> None:
        old, self._state = self._state, new
        # A new generation: calls admitted before this change settle as old news.
        self._generation += 1
        self._probes_in_flight = 0
        self._successes = 0
        if new == CLOSED:
            self._failures = 0
            self._trips_in_a_row = 0
            self._window.clear()  # judge the recovered dependency on fresh calls only
        for listener in list(self.listeners):
            listener(old, new, now)


def _validate(breaker: CircuitBreaker) -> None:
    """Refuse settings that would make a breaker that never trips or never recovers."""
    rules = [
        (breaker.fail_max >= 1, "fail_max must be >= 1"),
        (breaker.reset_timeout >= 0, "reset_timeout must be >= 0"),
        (breaker.success_threshold >= 1, "success_threshold must be >= 1"),
        (breaker.half_open_max_calls >= 1, "half_open_max_calls must be >= 1"),
        (breaker.window_size >= 1, "window_size must be >= 1"),
        (breaker.minimum_number_of_calls >= 1, "minimum_number_of_calls must be >= 1"),
        (breaker.backoff_multiplier >= 1, "backoff_multiplier must be >= 1"),
        (breaker.max_reset_timeout is None or breaker.max_reset_timeout >= breaker.reset_timeout,
         "max_reset_timeout must be >= reset_timeout"),
    ]
    for threshold in (breaker.failure_rate_threshold, breaker.slow_call_rate_threshold):
        rules.append((threshold is None or 0 < threshold <= 1, "rate thresholds are fractions in (0, 1]"))
    for ok, message in rules:
        if not ok:
            raise ValueError(message)
