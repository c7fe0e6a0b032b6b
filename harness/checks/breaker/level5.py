"""Level 5: the open period backs off on repeated trips; listeners hear every change."""

from __future__ import annotations

from .. import Context, level
from .scene import Scene


def _probe_at(scene: Scene, rejected_at: float, reached_at: float, *, why: str, behaviour: str = "fail") -> None:
    scene.at(rejected_at)
    scene.expect_rejected(scene.call("ok"), why=why)
    scene.at(reached_at)
    scene.expect_reached(scene.call(behaviour), expected=f"the probe at t={reached_at:g} reaches the function",
                         why=why)


@level(5)
def open_period_backs_off_on_repeated_trips(ctx: Context) -> None:
    """Trip k in a row stays open reset_timeout * backoff_multiplier ** k, capped at max_reset_timeout."""
    scene = Scene(ctx, fail_max=1, reset_timeout=10, backoff_multiplier=2, max_reset_timeout=35)
    scene.trip()
    _probe_at(scene, 9.5, 10, why="the first trip stays open reset_timeout (10 s): backoff applies "
                                  "only to the trips that follow it")
    _probe_at(scene, 29.5, 30, why="the 2nd trip in a row stays open 10 * 2 = 20 s, from t=10 to t=30: "
                                   "the open period does not back off")
    _probe_at(scene, 64.5, 65, why="the 3rd trip in a row would stay open 10 * 4 = 40 s, but "
                                   "max_reset_timeout caps it at 35 s: from t=30 to t=65")
    _probe_at(scene, 99.5, 100, why="the 4th trip in a row stays at the 35 s cap: from t=65 to t=100")


@level(5)
def backoff_starts_over_when_the_breaker_closes(ctx: Context) -> None:
    """Closing resets the backoff: the next trip waits reset_timeout again."""
    scene = Scene(ctx, fail_max=1, reset_timeout=10, backoff_multiplier=2)
    scene.trip()
    _probe_at(scene, 9.5, 10, why="the first trip stays open reset_timeout")
    _probe_at(scene, 29.5, 30, why="the 2nd trip in a row stays open 20 s", behaviour="ok")
    scene.expect_state("closed", after=" after a successful probe")
    scene.expect_tripped(scene.call("fail"), why="fail_max=1: one failure opens the breaker")
    _probe_at(scene, 39.5, 40, why="the breaker closed in between, so this trip is the first in a row "
                                   "again: 10 s, not 40 s. Reset the backoff when the breaker closes")


EXPECTED_CHANGES = [("closed", "open", 0.0), ("open", "half-open", 10.0), ("half-open", "open", 10.0),
                    ("open", "half-open", 20.0), ("half-open", "closed", 20.0)]


def _lifecycle(scene: Scene) -> None:
    """Trip at t=0, a failed probe at t=10, a successful one at t=20."""
    scene.trip()
    scene.at(10)
    scene.call("fail")
    scene.at(20)
    scene.call("ok")


@level(5)
def listeners_hear_every_change_in_order(ctx: Context) -> None:
    """listener(old, new, at) is called once per change of state, in order, at the virtual time of the change."""
    heard: list[tuple] = []
    scene = Scene(ctx, fail_max=2, reset_timeout=10, listeners=[lambda *args: heard.append(args)])
    _lifecycle(scene)
    if heard == EXPECTED_CHANGES:
        return
    why = None
    if not heard:
        why = "the listeners are never called"
    elif [(new, old, at) for old, new, at in heard] == EXPECTED_CHANGES:
        why = "the listener is called as listener(new, old, at): the old state comes first"
    elif [(old, new) for old, new, *_ in heard] == [(old, new) for old, new, _ in EXPECTED_CHANGES]:
        why = "the times are wrong: `at` is self.clock.now() when the state changes"
    elif ("open", "half-open") not in [tuple(h[:2]) for h in heard]:
        why = "the change open -> half-open, when the first probe arrives, is never announced"
    elif any(len(h) == 3 and h[0] == h[1] for h in heard):
        why = "a listener is called although the state did not change"
    scene.fail(got=f"the listener heard {heard}", expected=f"{EXPECTED_CHANGES}", why=why)


@level(5)
def added_listeners_run_in_order_after_the_change(ctx: Context) -> None:
    """add_listener adds to the listeners given at construction; each runs after the state changed."""
    heard: list[tuple] = []
    scene = Scene(ctx, fail_max=2, reset_timeout=10, listeners=[lambda old, new, at: heard.append(("first", new))])
    scene.breaker.add_listener(lambda old, new, at: heard.append(("second", new, scene.breaker.state)))
    scene.breaker.add_listener(lambda old, new, at: heard.append(("third", new)))
    scene.note("breaker.add_listener(second); breaker.add_listener(third)")
    scene.trip()
    expected = [("first", "open"), ("second", "open", "open"), ("third", "open")]
    if heard != expected:
        why = None
        if len(heard) == 3 and heard[1][2:] == ("closed",):
            why = "listeners run before the state has changed: change it first, then tell them"
        elif not any(h[0] == "second" for h in heard):
            why = "listeners added with add_listener are not called"
        scene.fail(got=f"the listeners heard {heard}",
                   expected=f"{expected}: each listener once, in the order they were added, "
                            "and breaker.state already 'open'", why=why)


@level(5)
def calls_that_change_nothing_are_not_announced(ctx: Context) -> None:
    """Successes while closed and rejected calls while open change nothing: no listener call."""
    heard: list[tuple] = []
    scene = Scene(ctx, fail_max=2, reset_timeout=10, listeners=[lambda *args: heard.append(args)])
    scene.calls("ok", 3)
    scene.trip()
    scene.at(5)
    scene.calls("ok", 3)
    if heard != [("closed", "open", 0.0)]:
        scene.fail(got=f"the listener heard {heard}", expected="[('closed', 'open', 0.0)]: one change only",
                   why="a listener is called on calls that do not change the state")
