"""Level 3: async callables (pybreaker issue #7) and a limit on half-open probes.

Each check runs on a fresh virtual-time loop: ``await asyncio.sleep(30)``
takes no real time, and the breaker reads the loop's clock.
"""

from __future__ import annotations

import asyncio
import contextlib

from harness.clock import Clock, run

from .. import Context, level
from .scene import Outage, Scene


def _scene(ctx: Context, **config) -> Scene:
    return Scene(ctx, clock=Clock.of_running_loop(), **config)


@level(3)
def call_async_awaits_and_returns_the_result(ctx: Context) -> None:
    """``await breaker.call_async(fn)`` awaits fn inside the breaker and returns its result."""

    async def scenario() -> None:
        scene = _scene(ctx, fail_max=2, reset_timeout=10)
        outcome = await scene.call_async("ok", takes=1.5)
        if asyncio.iscoroutine(outcome.value):
            scene.fail(got="call_async returned a coroutine object",
                       expected="the coroutine's result, 'ok'",
                       why="it calls the async function without awaiting it: `return await fn(*args, **kwargs)`")
        scene.expect_value(outcome, "ok")
        if scene.clock.now() != 1.5:
            scene.fail(got=f"the call ended at t={scene.clock.now():g}",
                       expected="t=1.5: the call awaits the function, which takes 1.5 s")

    run(scenario())


@level(3)
def async_failures_trip_the_breaker(ctx: Context) -> None:
    """Failures of awaited calls count: fail_max of them open it, then calls fail fast."""

    async def scenario() -> None:
        scene = _scene(ctx, fail_max=2, reset_timeout=10)
        first, second = [await scene.call_async("fail", takes=0.5) for _ in range(2)]
        scene.expect_error(first, Outage, why="an async failure below fail_max is re-raised unchanged")
        scene.expect_tripped(second, why="the 2nd async failure in a row must open the breaker: its outcome "
                                         "is known only once the coroutine has been awaited")
        scene.expect_rejected(await scene.call_async("ok"),
                              why="open: the async function must not even be called")

    run(scenario())


@level(3)
def decorator_awaits_coroutine_functions(ctx: Context) -> None:
    """``@breaker`` on an ``async def`` counts the coroutine's failures (pybreaker issue #7)."""

    async def scenario() -> None:
        scene = _scene(ctx, fail_max=2, reset_timeout=10)
        runs = []

        @scene.breaker
        async def charge(amount: float) -> str:
            runs.append(amount)
            await asyncio.sleep(0.5)
            raise Outage("payments is down")

        errors = []
        for attempt in range(3):
            start = scene.clock.now()
            try:
                await charge(20)
                errors.append(None)
            except Exception as error:
                errors.append(error)
            scene.note(f"t={start:g}  await charge(20) (decorated async def that fails) -> "
                       f"{type(errors[-1]).__name__ if errors[-1] else 'returned'}")
            if attempt == 2 and len(runs) == 3:
                scene.fail(got="the decorated coroutine function ran a 3rd time: the breaker never opened",
                           expected="the 3rd call raises CircuitBreakerError without running charge()",
                           why="the decorator wraps the coroutine without awaiting it: the wrapper calls "
                               "charge(), gets a coroutine back and counts a success, and the failure happens "
                               "later, outside the breaker (pybreaker issue #7). Detect coroutine functions "
                               "(inspect.iscoroutinefunction) and await them through call_async")
        if not isinstance(errors[2], scene.module.CircuitBreakerError):
            scene.fail(got=f"the 3rd call raised {type(errors[2]).__name__}",
                       expected="CircuitBreakerError: the breaker is open")

    run(scenario())


@level(3)
def decorator_keeps_plain_functions_plain(ctx: Context) -> None:
    """``@breaker`` on a plain function returns a plain function with the same name."""
    scene = Scene(ctx, fail_max=2, reset_timeout=10)

    @scene.breaker
    def price(sku: str) -> int:
        """The price of a product."""
        return 20

    value = price("book")
    scene.note("t=0  price('book') where price is a plain function decorated with @breaker")
    if value != 20:
        scene.fail(got=f"price('book') returned {value!r}", expected="20",
                   why="a plain function must be called directly (through call), not awaited")
    if getattr(price, "__name__", None) != "price":
        scene.fail(got=f"the decorated function is called {getattr(price, '__name__', None)!r}",
                   expected="'price': keep the name and docstring with functools.wraps")


@level(3)
def half_open_admits_at_most_max_probes(ctx: Context) -> None:
    """In half-open, at most half_open_max_calls probes run at once; extra calls are rejected at once."""

    async def scenario() -> None:
        scene = _scene(ctx, fail_max=1, reset_timeout=10, half_open_max_calls=1)
        scene.trip()
        await asyncio.sleep(10)
        scene.note("t=10  three calls at once, each taking 1 s")
        outcomes = await asyncio.gather(*(scene.call_async("ok", takes=1) for _ in range(3)))
        reached = sum(o.reached for o in outcomes)
        if reached > 1:
            scene.fail(got=f"{reached} of the 3 calls reached the function while half-open",
                       expected="1 probe (half_open_max_calls=1); the other 2 rejected with CircuitBreakerError",
                       why="it lets unlimited probes through in half-open: a recovering service gets the whole "
                           "backlog at once. Count the probes in flight and reject the extra ones")
        for outcome in outcomes[1:]:
            scene.expect_rejected(outcome, why="the extra calls must be rejected while a probe is in flight")

    run(scenario())


@level(3)
def probe_slot_is_freed_when_a_probe_ends(ctx: Context) -> None:
    """A probe gives its slot back when it ends, so the next probe can run."""

    async def scenario() -> None:
        scene = _scene(ctx, fail_max=1, reset_timeout=10, half_open_max_calls=2, success_threshold=3)
        scene.trip()
        await asyncio.sleep(10)
        scene.note("t=10  three calls at once, each taking 1 s")
        outcomes = await asyncio.gather(*(scene.call_async("ok", takes=1) for _ in range(3)))
        reached = sum(o.reached for o in outcomes)
        if reached != 2:
            scene.fail(got=f"{reached} of the 3 calls reached the function",
                       expected="2 probes (half_open_max_calls=2), the 3rd rejected")
        scene.expect_state("half-open", after=" after 2 successful probes (success_threshold=3)")
        scene.expect_reached(await scene.call_async("ok"),
                             expected="both probes have ended, so a new probe reaches the function",
                             why="it never frees a probe's slot: count probes *in flight*, not probes so far")
        scene.expect_state("closed", after=" after the 3rd successful probe")

    run(scenario())


@level(3)
def failed_probe_frees_its_slot(ctx: Context) -> None:
    """A failed probe frees its slot: the next half-open period admits a probe again."""

    async def scenario() -> None:
        scene = _scene(ctx, fail_max=1, reset_timeout=10, half_open_max_calls=1)
        scene.trip()
        await asyncio.sleep(10)
        scene.expect_tripped(await scene.call_async("fail", takes=1), why="a failed probe re-opens the breaker")
        await asyncio.sleep(10)
        scene.expect_reached(await scene.call_async("ok"),
                             expected="at t=21 (re-opened at t=11, reset_timeout 10) a new probe reaches the function",
                             why="the failed probe kept its slot: free it however the probe ends (try/finally), "
                                 "or the breaker never admits a probe again")

    run(scenario())


@level(3)
def cancelled_probe_frees_its_slot(ctx: Context) -> None:
    """A probe cancelled by its caller's timeout frees its slot; the breaker does not wedge."""

    async def scenario() -> None:
        scene = _scene(ctx, fail_max=1, reset_timeout=10, half_open_max_calls=1)
        scene.trip()
        await asyncio.sleep(10)
        with contextlib.suppress(TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
            await asyncio.wait_for(scene.call_async("ok", takes=5), timeout=1)
        scene.note("t=10  await asyncio.wait_for(breaker.call_async(takes 5 s), timeout=1) -> cancelled at t=11")
        if scene.state == "open":  # counted the cancellation as a failure: fine, wait it out
            await asyncio.sleep(10)
        scene.expect_reached(await scene.call_async("ok"),
                             expected="the cancelled probe is over, so a new probe reaches the function",
                             why="a cancelled probe kept its slot: asyncio.CancelledError is not an Exception, "
                                 "so `except Exception` misses it. Free the slot in a `finally:`")

    run(scenario())
