"""Level 1: consecutive failures trip the breaker; open fails fast."""

from __future__ import annotations

from .. import Context, level
from .scene import Outage, Scene


@level(1)
def returns_the_result_while_closed(ctx: Context) -> None:
    """A closed breaker calls the function with its arguments and returns its result."""
    scene = Scene(ctx, fail_max=3, reset_timeout=30)
    seen = []
    value = scene.breaker.call(lambda *args, **kwargs: seen.append((args, kwargs)) or "paid", 20, currency="EUR")
    scene.note("t=0  breaker.call(fn, 20, currency='EUR') where fn records its arguments and returns 'paid'")
    if seen != [((20,), {"currency": "EUR"})] or value != "paid":
        scene.fail(got=f"fn was called with {seen} and the call returned {value!r}",
                   expected="fn called once as fn(20, currency='EUR'), and 'paid' returned")
    scene.expect_state("closed", why="a new breaker starts closed (the CLOSED constant)")


@level(1)
def reraises_failures_below_fail_max(ctx: Context) -> None:
    """Below fail_max, a failure is re-raised unchanged and the breaker stays closed."""
    scene = Scene(ctx, fail_max=3, reset_timeout=30)
    for outcome in scene.calls("fail", 2):
        scene.expect_error(outcome, Outage, why="only the failure that trips the breaker becomes a CircuitBreakerError")
    scene.expect_state("closed", why="the breaker opened before fail_max failures (off by one?)")


@level(1)
def trips_at_fail_max_failures_in_a_row(ctx: Context) -> None:
    """The fail_max-th failure in a row opens the breaker and raises CircuitBreakerError."""
    scene = Scene(ctx, fail_max=3, reset_timeout=30)
    outcomes = scene.calls("fail", 3)
    scene.expect_state("open", after=" after 3 failures in a row",
                       why="the breaker must open when failures in a row reach fail_max (>=, not >)")
    scene.expect_tripped(outcomes[-1], why="the call that trips the breaker raises CircuitBreakerError, like pybreaker")


@level(1)
def open_breaker_fails_fast_without_calling(ctx: Context) -> None:
    """Once open, every call raises CircuitBreakerError and never reaches the function."""
    scene = Scene(ctx, fail_max=2, reset_timeout=30)
    scene.trip()
    for when in (0, 1, 29):
        scene.at(when)
        outcome = scene.call("ok")
        scene.expect_rejected(outcome, why="the breaker calls the function while open: "
                                           "an open breaker must fail fast, that is its whole point")
    scene.expect_state("open")


@level(1)
def counts_consecutive_failures_not_total(ctx: Context) -> None:
    """A success sets the failure count back to zero: only failures in a row count."""
    scene = Scene(ctx, fail_max=3, reset_timeout=30)
    for behaviour in ("fail", "fail", "ok", "fail", "fail", "ok", "fail", "fail"):
        outcome = scene.call(behaviour)
        if not outcome.reached:
            scene.fail(got=f"the call {outcome.describe(scene.module)}; the breaker opened after "
                           f"{scene.reached} calls with never more than 2 failures in a row",
                       expected="the breaker stays closed (fail_max=3)",
                       why="it counts failures in total instead of in a row: reset the count on every success")
    scene.expect_state("closed", why="it counts failures in total instead of in a row")


@level(1)
def random_outcomes_trip_exactly_at_fail_max(ctx: Context) -> None:
    """Random successes and failures (seeded): open exactly when fail_max failures come in a row."""
    fail_max = ctx.rng.randint(2, 5)
    scene = Scene(ctx, fail_max=fail_max, reset_timeout=30)
    in_a_row = 0
    for _ in range(60):
        behaviour = ctx.rng.choice(["ok", "fail", "fail"])
        outcome = scene.call(behaviour)
        in_a_row = in_a_row + 1 if behaviour == "fail" else 0
        if in_a_row == fail_max:
            scene.expect_tripped(outcome, why=f"this was failure number {fail_max} in a row")
            return
        scene.expect_state("closed", after=f" with {in_a_row} failure(s) in a row",
                           why="the breaker must open only when the failures in a row reach fail_max")
