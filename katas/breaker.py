"""Circuit breaker kata: protect a caller from a dependency that fails or hangs.

Implement :class:`CircuitBreaker` level by level; check your work with::

    kata check breaker          # every level
    kata check breaker --level 1
    kata hint breaker           # the hint of the first level that fails

Look for ``# TODO (level N):`` below. Replace each ``raise
NotImplementedError`` with your code; keep the names and signatures (the
checks and the chapters use them).

The three states::

    closed --(fail_max consecutive failures)--> open
    open --(first call at or after opened_at + reset_timeout)--> half-open
    half-open --(success_threshold successes)--> closed
    half-open --(any failure)--> open (with a fresh timer)

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

- Levels 1 and 2 behave exactly like pybreaker 1.4: the call that trips the
  breaker raises :class:`CircuitBreakerError` chained from the original error
  (``raise CircuitBreakerError(...) from error``); the first call at or after
  ``opened_at + reset_timeout`` is the probe; an excluded error counts as a
  success and is re-raised unchanged.
- Level 4 follows resilience4j's COUNT_BASED sliding window: the last
  ``window_size`` outcomes of calls made while closed; no verdict before
  ``minimum_number_of_calls`` outcomes (capped at ``window_size``); a rate
  equal to its threshold opens; a call is slow when it took strictly longer
  than ``slow_call_duration_threshold``. Excluded errors are recorded as
  successes (resilience4j would not record them at all). Thresholds are
  fractions (0.5), not percentages (50).
- ``half_open_max_calls`` bounds the probes *in flight* at once.

Read time only from ``self.clock.now()``: never ``time.time()``. The checks
drive a virtual clock, so a 30 s timeout takes no time at all.

Plugging your breaker into the harness: the orders service accepts a guard for
its payments call (see :mod:`harness.services.orders`)::

    breaker = CircuitBreaker(fail_max=5, reset_timeout=30, clock=world.clock)
    breaker.add_listener(lambda old, new, at: world.recorder.event(at, "breaker", "orders->payments", state=new))
    world.add_service("orders", options={"payments_guard": breaker.guard})

One breaker per orders instance instead (what the ``cascade`` scenario's
``guard_factory`` does): ``options={"payments_guard_factory": lambda ctx:
CircuitBreaker(clock=ctx.world.clock).guard}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
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
        # TODO (level 1): the state you need: which state the breaker is in,
        #   how many failures in a row.
        # TODO (level 2): when it opened; successes in a row while half-open.
        # TODO (level 3): how many probes are in flight.
        # TODO (level 4): the outcomes of the last window_size calls.
        # TODO (level 5): how many times it has tripped since it last closed.

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (use the constants above).

        Reading it never changes it: an open breaker whose timer has run out
        stays open until the next call arrives, and moves to half-open then.

        >>> from harness.clock import Clock
        >>> CircuitBreaker(clock=Clock.manual()).state
        'closed'
        """
        # TODO (level 1): report the current state.
        raise NotImplementedError

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker and return its result.

        - closed: call it. A failure (any ``Exception``) adds one to the
          failures in a row, a success sets them back to 0; the failure that
          makes fail_max in a row opens the breaker and raises
          ``CircuitBreakerError`` from it. Other failures are re-raised.
        - open: raise ``CircuitBreakerError`` without calling ``fn``; the first
          call at or after ``opened_at + reset_timeout`` is let through as a
          probe (half-open).
        - half-open: a failure re-opens (fresh timer) and raises
          ``CircuitBreakerError`` from it; ``success_threshold`` successes in
          a row close.
        - an error matching ``exclude`` counts as a success, and is re-raised.

        >>> from harness.clock import Clock
        >>> CircuitBreaker(clock=Clock.manual()).call(max, 3, 7)
        7
        """
        # TODO (level 1): closed counts failures in a row and trips at fail_max;
        #   open fails fast.
        # TODO (level 2): half-open after reset_timeout, success_threshold,
        #   exclude.
        # TODO (level 4): record each outcome (failed? slow?) in the window.
        raise NotImplementedError

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker; same rules as :meth:`call`.

        The outcome is known only once the coroutine has finished: await it
        *inside* the breaker.

        >>> import asyncio
        >>> from harness.clock import Clock, run
        >>> async def fetch(sku):
        ...     await asyncio.sleep(0.1)
        ...     return {"sku": sku}
        >>> run(CircuitBreaker(clock=Clock.of_running_loop()).call_async(fetch, "book"))
        {'sku': 'book'}
        """
        # TODO (level 3): await the call; count its outcome like call() does.
        # TODO (level 3): in half-open, reject calls beyond half_open_max_calls
        #   probes in flight, and free a probe's slot however it ends.
        raise NotImplementedError

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
        # TODO (level 3): wrap fn; an `async def` function needs an async
        #   wrapper that awaits it through call_async (see pybreaker issue #7).
        raise NotImplementedError

    async def guard(self, call: Callable[[], Awaitable[T]]) -> T:
        """The harness's plug: ``options={"payments_guard": breaker.guard}`` on orders."""
        return await self.call_async(call)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(old_state, new_state, at)`` after every change of state.

        ``at`` is ``self.clock.now()`` when the change happens; listeners run in
        the order they were added, once per change, after the state changed.

        >>> from harness.clock import Clock
        >>> breaker = CircuitBreaker(fail_max=1, clock=Clock.manual(start=5))
        >>> breaker.add_listener(lambda old, new, at: print(old, "->", new, "at", at))
        >>> try:
        ...     breaker.call(int, "not a number")
        ... except CircuitBreakerError:
        ...     pass
        closed -> open at 5.0
        """
        # TODO (level 5): remember the listener; call every listener on each
        #   change of state.
        # TODO (level 5): back off: the k-th trip in a row stays open for
        #   reset_timeout * backoff_multiplier ** k, at most max_reset_timeout.
        raise NotImplementedError
