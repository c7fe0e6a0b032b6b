"""Level 4: failure-rate and slow-call-rate windows (resilience4j's COUNT_BASED window).

``fail_max`` is set out of reach here, so that only the windows can trip the breaker.
"""

from __future__ import annotations

from collections import deque

from .. import Context, level
from .scene import Scene

OUT_OF_REACH = 10_000  # fail_max: consecutive failures never trip in these checks


def _window(ctx: Context, **config) -> Scene:
    return Scene(ctx, fail_max=OUT_OF_REACH, reset_timeout=30, **config)


def _expect_closed_after(scene: Scene, behaviours: list[str], *, why: str, expected: str) -> None:
    for behaviour in behaviours:
        outcome = scene.call(behaviour)
        if not outcome.reached or scene.state != "closed":
            scene.fail(got=f"the call {outcome.describe(scene.module)}, state {scene.state!r}",
                       expected=expected, why=why)


@level(4)
def no_verdict_before_minimum_number_of_calls(ctx: Context) -> None:
    """The rates mean nothing until the window holds minimum_number_of_calls outcomes."""
    scene = _window(ctx, window_size=10, minimum_number_of_calls=10, failure_rate_threshold=0.5)
    _expect_closed_after(scene, ["fail"] * 9,
                         expected="closed: 9 calls < minimum_number_of_calls=10, so no verdict yet",
                         why="the window judges without a minimum number of calls: one failure out of one "
                             "call is a 100% failure rate")
    scene.expect_tripped(scene.call("fail"), why="the 10th failure makes a full window with a 100% failure rate")


@level(4)
def failure_rate_equal_to_threshold_opens(ctx: Context) -> None:
    """A failure rate equal to failure_rate_threshold opens the breaker (resilience4j: >=)."""
    scene = _window(ctx, window_size=4, minimum_number_of_calls=4, failure_rate_threshold=0.5)
    _expect_closed_after(scene, ["ok", "fail", "ok"], expected="closed: fewer than 4 calls so far",
                         why="it judges before minimum_number_of_calls")
    scene.expect_tripped(scene.call("fail"), why="2 failures in the last 4 calls is a 50% failure rate: equal to "
                                                 "the threshold, so it opens (>=, not >)")


@level(4)
def window_holds_only_the_last_calls(ctx: Context) -> None:
    """The window slides: it holds the outcomes of the last window_size calls only."""
    scene = _window(ctx, window_size=4, minimum_number_of_calls=4, failure_rate_threshold=0.5)
    _expect_closed_after(scene, ["ok", "ok", "ok", "fail", "ok"], expected="closed: at most 25% failures",
                         why="the failure rate is computed wrongly")
    scene.expect_tripped(scene.call("fail"),
                         why="the last 4 calls are ok, fail, ok, fail: 50%, so the breaker opens. Counting every "
                             "call since the start (2 of 6) or emptying the window every 4 calls misses it")


@level(4)
def slow_calls_open_on_slow_call_rate(ctx: Context) -> None:
    """Calls slower than slow_call_duration_threshold count towards slow_call_rate_threshold."""
    scene = _window(ctx, window_size=4, minimum_number_of_calls=4,
                    slow_call_duration_threshold=2, slow_call_rate_threshold=0.5)
    scene.call("ok")
    scene.call("ok", takes=3)
    scene.call("ok")
    last = scene.call("ok", takes=3)
    if last.error is not None:
        scene.fail(got=f"the 4th call {last.describe(scene.module)}",
                   expected="it returns 'ok': a slow call that succeeded is a success for its caller, "
                            "even when it opens the breaker")
    scene.expect_state("open", after=" after 2 calls of 3 s in the last 4 (slow_call_rate_threshold=0.5)",
                       why="slow calls are not counted. Measure each call with the injected clock "
                           "(self.clock.now() before and after): the function moved it on by 3 s")


@level(4)
def slow_means_strictly_longer_than_threshold(ctx: Context) -> None:
    """A call that takes exactly slow_call_duration_threshold is not slow (resilience4j: >)."""
    scene = _window(ctx, window_size=4, minimum_number_of_calls=4,
                    slow_call_duration_threshold=2, slow_call_rate_threshold=0.5)
    for _ in range(4):
        scene.call("ok", takes=2)
    scene.expect_state("closed", after=" after 4 calls of exactly 2 s (slow_call_duration_threshold=2)",
                       why="a call is slow only when it takes strictly longer than the threshold")


@level(4)
def slow_failures_count_as_slow_too(ctx: Context) -> None:
    """A slow call that fails counts as a failure and as a slow call."""
    scene = _window(ctx, window_size=4, minimum_number_of_calls=4, failure_rate_threshold=0.75,
                    slow_call_duration_threshold=2, slow_call_rate_threshold=0.5)
    for behaviour, takes in (("fail", 3), ("ok", 0), ("fail", 3), ("ok", 0)):
        scene.call(behaviour, takes=takes)
    scene.expect_state("open", after=" after 2 slow failures in the last 4 calls",
                       why="slow failures are not counted as slow: record (failed, slow) for every call")


@level(4)
def window_starts_empty_after_closing(ctx: Context) -> None:
    """A breaker that closes again judges the recovered dependency on fresh calls only."""
    scene = _window(ctx, window_size=4, minimum_number_of_calls=4, failure_rate_threshold=0.5)
    for behaviour in ("ok", "ok", "fail"):
        scene.call(behaviour)
    scene.expect_tripped(scene.call("fail"), why="2 failures in 4 calls is 50%")
    scene.at(30)
    scene.expect_value(scene.call("ok"), "ok")
    scene.expect_state("closed", after=" after a successful probe")
    _expect_closed_after(scene, ["fail"], expected="closed: 1 call since closing < minimum_number_of_calls",
                         why="it keeps the outcomes from before it opened: empty the window when it closes")


@level(4)
def random_outcomes_follow_the_window_rule(ctx: Context) -> None:
    """Random outcomes (seeded): open exactly when the last calls' failure rate reaches the threshold."""
    size = ctx.rng.randint(3, 8)
    minimum = ctx.rng.randint(1, size)
    threshold = ctx.rng.choice([0.25, 0.5, 0.75, 1.0])
    scene = _window(ctx, window_size=size, minimum_number_of_calls=minimum, failure_rate_threshold=threshold)
    window: deque[bool] = deque(maxlen=size)
    for _ in range(80):
        behaviour = ctx.rng.choice(["ok", "ok", "fail"])
        outcome = scene.call(behaviour)
        window.append(behaviour == "fail")
        rate = sum(window) / len(window)
        if len(window) >= minimum and rate >= threshold:
            why = f"the last {len(window)} calls have a failure rate of {rate:.0%} >= {threshold:.0%}"
            if behaviour == "fail":
                scene.expect_tripped(outcome, why=why)
            else:  # a success can complete the window too: it returns, and the breaker opens
                scene.expect_value(outcome, "ok")
                scene.expect_state("open", why=why)
            return
        if not outcome.reached or scene.state != "closed":
            scene.fail(got=f"the call {outcome.describe(scene.module)}, state {scene.state!r}",
                       expected=f"closed: the last {len(window)} calls have a failure rate of {rate:.0%} "
                                f"(threshold {threshold:.0%}, minimum {minimum} calls)")
