"""Level 2: half-open after reset_timeout, success_threshold, excluded business errors."""

from __future__ import annotations

from .. import Context, level
from .scene import CardDeclined, Scene


@level(2)
def probe_allowed_at_reset_timeout(ctx: Context) -> None:
    """Calls are refused until opened_at + reset_timeout; the call at that instant is the probe."""
    scene = Scene(ctx, fail_max=2, reset_timeout=30)
    scene.trip()
    scene.at(29.5)
    scene.expect_rejected(scene.call("ok"), why="the breaker let a call through before reset_timeout had passed")
    scene.at(30)
    scene.expect_reached(scene.call("ok"), expected="at t=30 = opened_at 0 + reset_timeout 30, the probe reaches "
                                                    "the function (pybreaker: open while now < opened_at + reset_timeout)",
                         why="the timer compares with > instead of >=, or the breaker never leaves open")


@level(2)
def rejected_calls_do_not_restart_the_timer(ctx: Context) -> None:
    """A refused call leaves the timer alone: the probe comes reset_timeout after opening."""
    scene = Scene(ctx, fail_max=2, reset_timeout=30)
    scene.trip()
    for when in (10, 20, 29):
        scene.at(when)
        scene.expect_rejected(scene.call("ok"))
    scene.at(30)
    scene.expect_reached(scene.call("ok"), expected="the probe at t=30, reset_timeout after the breaker opened",
                         why="it restarts the timer on every rejected call: a client retrying in a loop "
                             "would keep the breaker open forever")


@level(2)
def successful_probe_closes_and_counting_restarts(ctx: Context) -> None:
    """A successful probe closes the breaker, and failures are counted from zero again."""
    scene = Scene(ctx, fail_max=3, reset_timeout=30)
    scene.trip()
    scene.at(30)
    scene.expect_value(scene.call("ok"), "ok")
    scene.expect_state("closed", after=" after a successful probe (success_threshold=1)")
    for outcome in scene.calls("fail", 2):
        if not outcome.reached or scene.state != "closed":
            scene.fail(got=f"the call {outcome.describe(scene.module)}, state {scene.state!r}",
                       expected="closed: only 2 failures since the breaker closed (fail_max=3)",
                       why="closing does not reset the failure count")
    scene.expect_tripped(scene.call("fail"), why="the 3rd failure since closing must open the breaker again")


@level(2)
def failed_probe_reopens_with_a_fresh_timer(ctx: Context) -> None:
    """A failed probe re-opens the breaker, raises CircuitBreakerError, and restarts the timer."""
    scene = Scene(ctx, fail_max=2, reset_timeout=30)
    scene.trip()
    scene.at(30)
    scene.expect_tripped(scene.call("fail"), why="a failed probe re-opens the breaker, like pybreaker")
    scene.expect_state("open", after=" after a failed probe")
    scene.at(59)
    scene.expect_rejected(scene.call("ok"), why="re-opening keeps the old timer: the open period must start "
                                                "again from the failed probe (t=30), so it lasts until t=60")
    scene.at(60)
    scene.expect_reached(scene.call("ok"), expected="the next probe at t=60 = 30 + reset_timeout")


@level(2)
def success_threshold_successes_close(ctx: Context) -> None:
    """With success_threshold=3, the breaker closes on the 3rd successful probe, not before."""
    scene = Scene(ctx, fail_max=2, reset_timeout=30, success_threshold=3)
    scene.trip()
    scene.at(30)
    for n in (1, 2):
        scene.expect_value(scene.call("ok"), "ok")
        scene.expect_state("half-open", after=f" after {n} successful probe(s)",
                           why="it closes before success_threshold successes")
    scene.expect_value(scene.call("ok"), "ok")
    scene.expect_state("closed", after=" after 3 successful probes", why="it does not close at success_threshold")


@level(2)
def failure_after_a_successful_probe_reopens(ctx: Context) -> None:
    """In half-open, a failure re-opens the breaker even after successful probes."""
    scene = Scene(ctx, fail_max=3, reset_timeout=30, success_threshold=3)
    scene.trip()
    scene.at(30)
    scene.expect_value(scene.call("ok"), "ok")
    outcome = scene.call("fail")
    scene.expect_reached(outcome, expected="the 2nd probe reaches the function: the 1st one has ended")
    if scene.state != "open":
        scene.fail(got=f"the failing probe {outcome.describe(scene.module)} and the breaker stays {scene.state!r}",
                   expected="any failure in half-open re-opens the breaker (CircuitBreakerError from the Outage)",
                   why="it stays half-open after a success followed by failures: in half-open, one failure "
                       "is enough, whatever came before")
    scene.expect_tripped(outcome)
    scene.expect_rejected(scene.call("ok"), why="the breaker re-opened, so it must fail fast again")


@level(2)
def excluded_errors_count_as_success(ctx: Context) -> None:
    """An excluded (business) error is re-raised unchanged and counts as a success."""
    scene = Scene(ctx, fail_max=3, reset_timeout=30, exclude=[CardDeclined])
    for behaviour in ("fail", "fail", "business", "fail", "fail"):
        outcome = scene.call(behaviour)
        if behaviour == "business":
            counted = isinstance(outcome.error, scene.module.CircuitBreakerError)
            scene.expect_error(outcome, CardDeclined,
                               why="it counts excluded errors as failures: they count as successes" if counted
                               else "excluded errors are the caller's problem: re-raise them as they are")
        elif not outcome.reached or scene.state != "closed":
            scene.fail(got=f"the call {outcome.describe(scene.module)}, state {scene.state!r}",
                       expected="closed: CardDeclined is excluded, so it counts as a success and "
                                "breaks the run of failures",
                       why="it counts excluded errors as failures")
    scene.expect_state("closed")


@level(2)
def exclude_takes_subclasses_and_predicates(ctx: Context) -> None:
    """``exclude`` holds exception classes (subclasses match) and predicates on the error."""
    declined = Scene(ctx, fail_max=1, reset_timeout=30, exclude=[ValueError])
    declined.expect_error(declined.call("business"), CardDeclined,
                          why="CardDeclined is a subclass of ValueError: excluded (use isinstance)")
    declined.expect_state("closed", why="an excluded error must not trip the breaker")
    predicate = Scene(ctx, fail_max=1, reset_timeout=30, exclude=[lambda error: "declined" in str(error)])
    predicate.expect_error(predicate.call("business"), CardDeclined,
                           why="a callable in exclude is a predicate: exclude the error when it returns True")
    predicate.expect_state("closed", why="an error the predicate accepts must not trip the breaker")


@level(2)
def excluded_error_in_half_open_counts_as_success(ctx: Context) -> None:
    """In half-open, an excluded error is a successful probe: it closes the breaker."""
    scene = Scene(ctx, fail_max=2, reset_timeout=30, exclude=[CardDeclined])
    scene.trip()
    scene.at(30)
    scene.expect_error(scene.call("business"), CardDeclined)
    scene.expect_state("closed", after=" after a probe that raised the excluded CardDeclined",
                       why="an excluded error counts as a success in half-open too")
