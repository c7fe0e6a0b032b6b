"""Checkers that explain: "expected X, got Y, at t=…, seed=…", and how to replay it.

Modelled on Maelstrom's checkers and Exercism's messages: a failure says
what was done, what came back, what was expected, when (virtual time) and
with which seed, so the learner can reproduce it.

>>> try:
...     expect_equal(503, 200, what="GET /orders answered", at=11.725, seed=7,
...                  replay="kata simulate cascade --seed 7")
... except CheckFailed as failure:
...     print(failure)
GET /orders answered 503, expected 200 (at t=11.725 s, seed=7)
  replay: kata simulate cascade --seed 7
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .http import Response
    from .recorder import Recorder
    from .world import World

__all__ = [
    "CheckFailed",
    "expect",
    "expect_availability",
    "expect_equal",
    "expect_no_leftover_tasks",
    "expect_status",
    "explain",
    "leftover_tasks",
]


class CheckFailed(AssertionError):
    """A check's verdict, with the facts needed to understand and replay it."""

    def __init__(self, message: str, *, at: float | None = None, seed: int | None = None,
                 replay: str | None = None):
        super().__init__(message)
        self.at = at
        self.seed = seed
        self.replay = replay


def explain(what: str, got: Any, expected: Any, *, at: float | None = None, seed: int | None = None,
            replay: str | None = None, why: str | None = None) -> str:
    """The one format of every failure message.

    >>> explain("the breaker state", "'half-open'", "'open'", at=31.0, seed=3, why="a failed probe re-opens it")
    "the breaker state 'half-open', expected 'open' (at t=31 s, seed=3): a failed probe re-opens it"
    """
    where = []
    if at is not None:
        where.append(f"at t={at:g} s")
    if seed is not None:
        where.append(f"seed={seed}")
    text = f"{what} {got}, expected {expected}"
    if where:
        text += f" ({', '.join(where)})"
    if why:
        text += f": {why}"
    if replay:
        text += f"\n  replay: {replay}"
    return text


def expect(condition: bool, message: str, *, at: float | None = None, seed: int | None = None,
           replay: str | None = None) -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message, at=at, seed=seed, replay=replay)


def expect_equal(got: Any, expected: Any, *, what: str, at: float | None = None, seed: int | None = None,
                 replay: str | None = None, why: str | None = None) -> None:
    """``got == expected``, or a message saying both."""
    if got != expected:
        raise CheckFailed(explain(what, got, expected, at=at, seed=seed, replay=replay, why=why),
                          at=at, seed=seed, replay=replay)


def expect_status(response: Response, expected: int, *, what: str = "the call", at: float | None = None,
                  seed: int | None = None, replay: str | None = None) -> None:
    """A response's status, with its body in the message when it differs.

    >>> from harness.http import Response
    >>> expect_status(Response(201, {}, b"{}"), 201)
    """
    if response.status != expected:
        body = response.body[:120].decode("utf-8", "replace")
        got = f"answered {response.status} ({body})"
        raise CheckFailed(explain(what, got, expected, at=at, seed=seed, replay=replay),
                          at=at, seed=seed, replay=replay)


def expect_availability(recorder: Recorder, service: str, at_least: float, *, since: float | None = None,
                        until: float | None = None, caller: str | None = None, seed: int | None = None,
                        replay: str | None = None) -> float:
    """The share of successful answers of ``service`` in a window; names the first failure.

    >>> from harness.recorder import Recorder
    >>> rec = Recorder()
    >>> _ = rec.exchange(1.0, 1.1, "client", "orders", "orders-1", "GET", "/orders", 200)
    >>> _ = rec.exchange(2.0, 2.0, "client", "orders", "orders-1", "GET", "/orders", 503, error="overloaded")
    >>> expect_availability(rec, "orders", 0.99, seed=7)
    Traceback (most recent call last):
    ...
    harness.checkers.CheckFailed: orders availability 50.0% of 2 requests, expected at least 99.0% (seed=7): first failure at t=2 s: GET /orders -> 503 (overloaded)
    """
    xs = recorder.select(service=service, since=since, until=until, caller=caller)
    if not xs:
        raise CheckFailed(f"no requests to {service} were recorded in the window: nothing to judge "
                          f"(no data is a failed check)", seed=seed, replay=replay)
    good = sum(1 for x in xs if not x.failed)
    share = good / len(xs)
    if share < at_least:
        first = next(x for x in xs if x.failed)
        outcome = first.status if first.status is not None else first.outcome
        detail = f" ({first.error})" if first.error else ""
        window = ""
        if since is not None or until is not None:
            window = f" between t={since or 0:g} s and t={until:g} s" if until is not None else f" after t={since:g} s"
        raise CheckFailed(
            explain(f"{service} availability{window}", f"{100 * share:.1f}% of {len(xs)} requests",
                    f"at least {100 * at_least:.1f}%", seed=seed, replay=replay,
                    why=f"first failure at t={first.start:g} s: {first.method} {first.path} -> {outcome}{detail}"),
            at=first.start, seed=seed, replay=replay)
    return share


def leftover_tasks(world: World) -> list:
    """Tasks still running in ``world`` that somebody's code started and left behind.

    Ignored: the task asking (the check itself), the world's own background
    tasks (``world.spawn``: load, fault schedules, the bus) and the network's
    deliveries: a server keeps working on a request its caller gave up on,
    as real servers do, and that work is not the caller's task.
    """
    import asyncio

    from .network import is_delivery

    loop = world.loop
    current = asyncio.current_task(loop) if loop.is_running() else None
    return [task for task in asyncio.all_tasks(loop)
            if not task.done() and task is not current and task not in world._tasks and not is_delivery(task)]


def task_name(task) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", type(coro).__name__)


def expect_no_leftover_tasks(world: World, *, what: str = "after the call", seed: int | None = None) -> None:
    """Nothing the learner started is still running (a leaked task is a bug, not a detail)."""
    leftovers = leftover_tasks(world)
    if leftovers:
        names = ", ".join(sorted({task_name(t) for t in leftovers})[:3])
        raise CheckFailed(explain(f"tasks still running {what}:", f"{len(leftovers)} ({names})", "none",
                                  at=world.now(), seed=seed,
                                  why="cancel what you no longer wait for, and await the cancellation"),
                          at=world.now(), seed=seed)
