"""Level 3: compensations retried (with backoff) until they succeed; a saga log a new orchestrator finishes from."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import strategies as st

from .. import Context, level
from .explore import LAST_RUN, explore
from .scene import BOUND, DECLINED, ORDER, Scene, describe_fault
from .shop import orders_replay_keys


def _still_reserved(scene: Scene) -> list[dict[str, Any]]:
    return [r for r in scene.db("inventory")["reservations"].values() if r["status"] == "reserved"]


@level(3)
def failed_release_is_retried_until_it_succeeds(ctx: Context) -> None:
    """Release answers 503 for 20 s after a declined card: the saga keeps trying, and ends cancelled."""
    scene = Scene(ctx)
    scene.inject({"at": 0.0, "until": 20.0, "fault": "error", "target": "inventory", "route": "DELETE /reservations",
                  "status": 503})
    result = scene.run(scene.saga(), DECLINED, "saga-1")
    releases = scene.calls("release")
    if _still_reserved(scene):
        last = releases[-1] if releases else None
        got = "reservation res-1 of order ord-1 is still reserved"
        if last is not None:
            got += f": the last DELETE /reservations/res-1 was at t={last.start:g} ({last.outcome})"
        scene.fail(got=got, expected="released once inventory answers again (from t=20)",
                   why="the saga gave up on a failed compensation: retry each compensation until it succeeds, "
                       "or the stock stays held for an order that does not exist")
    if getattr(result, "status", None) != "cancelled":
        scene.fail(got=f"saga.run returned {result!r}", expected="status 'cancelled'")
    scene.expect_invariants(results=[result])
    scene.close()


@level(3)
def compensation_retries_back_off(ctx: Context) -> None:
    """Retries of a compensation pause retry_delay, then twice that, ... at most max_retry_delay."""
    scene = Scene(ctx)
    scene.inject({"at": 0.0, "until": 20.0, "fault": "error", "target": "inventory", "route": "DELETE /reservations",
                  "status": 503})
    result = scene.run(scene.saga(retry_delay=1.0, max_retry_delay=4.0), DECLINED, "saga-1")
    releases = scene.calls("release")
    during = [c for c in releases if c.start < 20.0]
    starts = [c.start for c in releases]
    if len(during) > 9:
        scene.fail(got=f"{len(during)} tries of DELETE /reservations/res-1 while inventory failed (t=0 to 20), "
                       f"at t={', '.join(f'{t:g}' for t in starts[:8])}, ...",
                   expected="at most 9: pauses of 1, 2, 4, 4, 4 ... s (retry_delay=1, doubling, max_retry_delay=4)",
                   why="back off: double the pause after each failure, up to max_retry_delay; "
                       "a retry every few milliseconds hammers a service that is already down")
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    if any(gap < 0.999 for gap in gaps):
        scene.fail(got=f"tries at t={', '.join(f'{t:g}' for t in starts[:8])}",
                   expected="a pause of at least retry_delay (1 s) between tries")
    done = [c for c in releases if c.ok]
    if not done or done[0].start > 20.0 + 4.0 + 1.0:
        when = f"at t={done[0].start:g}" if done else "never"
        scene.fail(got=f"the release succeeded {when}; tries at t={', '.join(f'{t:g}' for t in starts[:10])}",
                   expected="by t=25: inventory answers again from t=20 and no pause is longer than "
                            "max_retry_delay (4 s)",
                   why="cap the pause at max_retry_delay" if done else "retry until the compensation succeeds")
    scene.expect_invariants(results=[result])
    scene.close()


@level(3)
def compensations_finish_in_reverse_order(ctx: Context) -> None:
    """The refund fails for 10 s: the saga retries it, and only then releases and cancels."""
    scene = Scene(ctx)
    scene.inject({"fault": "error", "target": "orders", "route": "POST /orders/ord-1/confirm", "status": 503},
                 {"at": 0.0, "until": 10.0, "fault": "error", "target": "payments", "route": "POST /refunds",
                  "status": 503})
    result = scene.run(scene.saga(), ORDER, "saga-1")
    refunds = [c for c in scene.calls("refund") if c.ok]
    if not refunds:
        scene.fail(got="the charge was never refunded", expected="a refund once payments answers again (t=10)",
                   why="retry each compensation until it succeeds")
    early = [c for c in scene.calls() if c.step in ("release", "cancel") and c.start < refunds[0].start]
    if early:
        scene.fail(got=f"{early[0].method} {early[0].path} at t={early[0].start:g}, while the refund was still "
                       f"failing (it succeeded at t={refunds[0].start:g})",
                   expected="release and cancel after the refund succeeded",
                   why="compensate in reverse order, one after the other: the next compensation waits "
                       "for the previous one to succeed")
    if getattr(result, "status", None) != "cancelled":
        scene.fail(got=f"saga.run returned {result!r}", expected="status 'cancelled'")
    scene.expect_invariants(results=[result])
    scene.close()


@level(3)
def saga_log_keeps_records_and_knows_what_is_unfinished(ctx: Context) -> None:
    """SagaLog: append(saga_id, event, **data), records(saga_id), unfinished() in the order sagas started."""
    scene = Scene(ctx)
    log = ctx.module.SagaLog()
    log.append("saga-1", "started", order={"amount": 30.0})
    log.append("saga-2", "started", order={"amount": 20.0})
    log.append("saga-3", "started", order={"amount": 10.0})
    log.append("saga-2", "ended", status="confirmed")
    scene.story.append("log = SagaLog(); started saga-1, saga-2, saga-3; ended saga-2")
    unfinished = log.unfinished()
    if list(unfinished) != ["saga-1", "saga-3"]:
        scene.fail(got=f"log.unfinished() returned {unfinished!r}", expected="['saga-1', 'saga-3']",
                   why="a saga is unfinished when it has a 'started' record and no 'ended' one; keep the "
                       "order in which they started")
    records = log.records("saga-2")
    events = [(r.get("saga_id"), r.get("event"), r.get("status")) for r in records] if isinstance(records, list) else []
    if events != [("saga-2", "started", None), ("saga-2", "ended", "confirmed")] or records[0].get("order") != {
            "amount": 20.0}:
        scene.fail(got=f"log.records('saga-2') returned {records!r}",
                   expected="[{'saga_id': 'saga-2', 'event': 'started', 'order': {'amount': 20.0}}, "
                            "{'saga_id': 'saga-2', 'event': 'ended', 'status': 'confirmed'}]")
    if len(log.records()) != 4:
        scene.fail(got=f"log.records() returned {len(log.records())} records", expected="all 4")
    scene.close()


# -- crashes ---------------------------------------------------------------------------------------
def crash_and_recover(scene: Scene, orders: list[tuple], number: int | None, when: str, *,
                      config: dict[str, Any] | None = None) -> tuple[list[Any], bool, list[str]]:
    """Run the sagas (concurrently) on an orchestrator that dies at its ``number``-th call; then a new one recovers.

    ``orders``: ``(order, saga_id)`` or ``(order, saga_id, start)``, a saga starting at virtual time
    ``start`` (once the orchestrator is dead, no new saga starts). Returns what the sagas returned
    (on the first orchestrator, then from recover()), whether the orchestrator crashed, and the ids
    of the sagas that started. ``number=None``: no crash.
    """
    from .scene import _show_order

    config = dict(config or {})
    log = scene.module.SagaLog()
    saga = scene.saga(log=log, **config)
    if number is not None:
        scene.client.crash_at(number, when)
        scene.story.append(f"the orchestrator will crash at its call {number}, " + (
            "before sending it" if when == "before" else "after the service did it, before the answer"))
    started: list[str] = []

    async def one(order: dict[str, Any], saga_id: str, start: float) -> Any:
        await asyncio.sleep(start)
        if scene.client.dead:
            return None  # a dead orchestrator starts nothing
        started.append(saga_id)
        scene.story.append(f"t={scene.world.now():g}  saga.run({_show_order(order)}, {saga_id!r})")
        return await saga.run(order, saga_id)

    async def story() -> tuple[list[Any], bool]:
        runs = [asyncio.ensure_future(one(spec[0], spec[1], spec[2] if len(spec) > 2 else 0.0)) for spec in orders]
        crashed = scene.client._died()
        everything = asyncio.ensure_future(asyncio.gather(*runs))
        await asyncio.wait({everything, crashed}, return_when=asyncio.FIRST_COMPLETED)
        if not crashed.done():
            return [r for r in everything.result() if r is not None], False
        everything.add_done_callback(lambda f: f.cancelled() or f.exception())  # it may never finish
        await scene.client.settled(runs)
        for run in runs:
            if run.done() and not run.cancelled() and run.exception() is not None:
                raise run.exception()
        finished = [run.result() for run in runs if run.done() and not run.cancelled() and run.result() is not None]
        scene.story.append(f"t={scene.world.now():g}  the orchestrator crashed; a new one starts with the same log:")
        scene.story.append(f"t={scene.world.now():g}  await OrderSaga(client, log=log).recover()")
        successor = scene.module.OrderSaga(scene.client.successor(), log=log, **config)
        recovered = await successor.recover()
        return finished + list(recovered or []), True

    finished, outcome = scene.drive(story(), horizon=BOUND)
    if not finished:
        scene.fail(got=f"the sagas had not ended at t={BOUND:g} s", expected=f"every saga ends within {BOUND:g} s",
                   why="a retry loop that never stops, or a call without a timeout")
    results, crashed = outcome
    return results, crashed, started


def _crash_points() -> list[tuple[dict[str, Any], int, str]]:
    points = []
    for order in (ORDER, DECLINED):
        for number in range(1, 6):
            for when in ("before", "after"):
                if number == 1 and when == "after" and not orders_replay_keys():
                    continue  # orders cannot replay a create yet: a lost create answer is not recoverable
                points.append((order, number, when))
    return points


def _judge_recovery(scene: Scene, results: list[Any], crashed: bool, saga_ids: list[str]) -> None:
    ended = {getattr(r, "saga_id", None) for r in results}
    missing = [s for s in saga_ids if s not in ended]
    died = scene.client.died_at
    where = (f"at call {died.number} ({died.method} {died.path}, {died.outcome})" if died else "")
    found = scene.violations(results=results)
    if crashed and (missing or found):
        got = found[0].message() if found else f"recover() returned no result for {', '.join(missing)}"
        if missing and not any(c.by != "orchestrator" for c in scene.client.calls):
            why = ("recover() did nothing: write each step to the SagaLog before you call it (and its outcome "
                   "after), and in recover() finish every saga of log.unfinished()")
        else:
            why = (f"after the crash {where}, the new orchestrator must finish from the log alone: redo a step "
                   "whose outcome was not logged, with the same Idempotency-Key, or compensate it")
        scene.fail(got=got, expected="every saga confirmed or cancelled, every invariant holding", why=why)
    if found:
        scene.fail(got=found[0].message(), expected="every saga invariant holds", why=found[0].why)
    if missing:
        scene.fail(got=f"no SagaResult for {', '.join(missing)}", expected="one for every saga that started")


@level(3)
def crashed_orchestrator_is_finished_from_the_log(ctx: Context) -> None:
    """The orchestrator dies at each call in turn (before sending, or after the work, before the answer)."""
    for order, number, when in _crash_points():
        scene = Scene(ctx)
        results, crashed, started = crash_and_recover(scene, [(order, "saga-1")], number, when)
        _judge_recovery(scene, results, crashed, started)
        scene.close()


@level(3)
def recover_leaves_finished_sagas_alone(ctx: Context) -> None:
    """After every saga ended, recover() on the same log does nothing and returns []."""
    scene = Scene(ctx)
    log = ctx.module.SagaLog()
    scene.run(scene.saga(log=log), ORDER, "saga-1")
    before = len(scene.client.calls)
    scene.story.append("await OrderSaga(client, log=log).recover()")
    finished, recovered = scene.drive(ctx.module.OrderSaga(scene.client.successor(), log=log).recover())
    extra = scene.client.calls[before:]
    if not finished or list(recovered or []) != [] or extra:
        scene.fail(got=f"recover() returned {recovered!r} after {len(extra)} call(s)",
                   expected="[] and no call: saga-1 had ended",
                   why="log an 'ended' record when a saga ends, and recover only log.unfinished()")
    scene.close()


# -- many cases ------------------------------------------------------------------------------------
# A case is a tuple of small numbers (hypothesis shrinks each toward 0: no fault, first instant, shortest);
# decode() turns it into orders, a fault schedule and a crash point.
OUTAGES = [
    None,
    lambda at, d: {"at": at, "until": at + d, "fault": "crash", "target": "inventory-1"},
    lambda at, d: {"at": at, "until": at + d, "fault": "crash", "target": "payments-1"},
    lambda at, d: {"at": at, "until": at + d, "fault": "crash", "target": "orders-1"},
    lambda at, d: {"at": at, "until": at + d, "fault": "hang", "target": "inventory"},
    lambda at, d: {"at": at, "until": at + d, "fault": "hang", "target": "payments"},
    lambda at, d: {"at": at, "until": at + d, "fault": "hang", "target": "orders"},
    lambda at, d: {"at": at, "until": at + d, "fault": "partition", "source": "client", "target": "payments",
                   "direction": "response"},
    lambda at, d: {"at": at, "until": at + d, "fault": "partition", "source": "client", "target": "inventory",
                   "direction": "response"},
    lambda at, d: {"at": at, "until": at + d, "fault": "error", "target": "inventory",
                   "route": "DELETE /reservations", "status": 503},
    lambda at, d: {"at": at, "until": at + d, "fault": "error", "target": "payments", "route": "POST /refunds",
                   "status": 503},
    lambda at, d: {"at": at, "until": at + d, "fault": "error", "target": "orders", "route": "/orders/ord-1",
                   "status": 503},
]
BUSINESS = ["fine", "declined", "confirm always fails"]

outage = st.tuples(st.integers(0, len(OUTAGES) - 1), st.integers(0, 20), st.integers(0, 29))
case_strategy = st.tuples(st.integers(0, len(BUSINESS) - 1), st.integers(0, 12), outage, outage,
                          st.integers(0, 7), st.integers(0, 1))
LATENCY = 0.1  # every call takes 0.1 s, so that a saga lasts long enough to meet the faults


def decode(case: tuple) -> dict[str, Any]:
    business, start, first, second, crash_number, crash_when = case
    faults = []
    for kind, at, length in (first, second):
        if OUTAGES[kind] is not None:
            faults.append(OUTAGES[kind](at / 2, length / 2 + 0.5))  # from t=0 to 10 s, 0.5 to 15 s long
    when = "after" if crash_when else "before"
    if crash_number == 1 and when == "after" and not orders_replay_keys():
        when = "before"
    return {"business": BUSINESS[business], "start": start / 2, "faults": faults,
            "crash": (crash_number, when) if crash_number else None}


def describe_case(case: tuple) -> str:
    spec = decode(case)
    faults = "; ".join(describe_fault(f) for f in spec["faults"]) or "no fault"
    crash = (f"the orchestrator crashes at its call {spec['crash'][0]} ({spec['crash'][1]})" if spec["crash"]
             else "no crash")
    return (f"one saga ({spec['business']}) starting at t={spec['start']:g}, every call taking {LATENCY:g} s. "
            f"Faults: {faults}. Then {crash}")


def run_case(ctx: Context, case: tuple) -> None:
    spec = decode(case)
    scene = Scene(ctx, latency=LATENCY)
    try:
        order = DECLINED if spec["business"] == "declined" else ORDER
        faults = list(spec["faults"])
        if spec["business"] == "confirm always fails":
            faults.append({"fault": "error", "target": "orders", "route": "POST /orders/ord-1/confirm",
                           "status": 503})
        if faults:
            scene.inject(*faults)
        number, when = spec["crash"] or (None, "before")
        results, crashed, started = crash_and_recover(scene, [(order, "saga-1", spec["start"])], number, when)
        _judge_recovery(scene, results, crashed, started)
        LAST_RUN["bitten"] += scene.bitten()
    finally:
        scene.close()


@level(3)
def outages_and_crashes_leave_nothing_half_done(ctx: Context) -> None:
    """200 generated schedules of crashes, hangs, lost answers and 503s, with or without an orchestrator crash."""
    explore(ctx, case_strategy, lambda case: run_case(ctx, case), describe=describe_case,
            first=(0, 0, (0, 0, 0), (0, 0, 0), 0, 0))
