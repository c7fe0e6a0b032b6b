"""Level 2: retry a step whose outcome is unknown, with the same Idempotency-Key: never twice."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .. import Context, level
from .explore import LAST_RUN, explore
from .scene import ORDER, Call, Scene


def _lost_answer(service: str, at: float, until: float) -> dict[str, Any]:
    """The service does the work, but its answers to the saga are lost (a one-way partition)."""
    return {"at": at, "until": until, "fault": "partition", "source": "client", "target": service,
            "direction": "response"}


def _why_twice(scene: Scene, step: str) -> str:
    """Name what the retries of a step did wrong with their keys."""
    calls = scene.calls(step)
    keys = [c.key for c in calls]
    if len(calls) < 2:
        return f"the {step} was not retried"
    if keys[0] is None:
        return (f"the retry of the {step} carried no Idempotency-Key, so the service could not know it was the "
                f"same request: send one on every try, derived from the saga id (f\"{{saga_id}}:{step}\")")
    if len(set(keys)) > 1:
        return (f"each try of the {step} carried another Idempotency-Key ({', '.join(map(str, keys[:3]))}): "
                "a retry must send the same key as the first try")
    return "the same key was sent each time, yet the work was done twice"


def _why_422(scene: Scene) -> str | None:
    """A 422 is a key sent again with another payload: name it."""
    refused = [c for c in scene.calls() if c.status == 422 and c.key]
    if not refused:
        return None
    call = refused[0]
    return (f"{call.method} {call.path} answered 422 ({call.detail.strip('()')}): the key {call.key!r} had "
            "been used by another saga, with another payload. Derive each key from the saga id")


def _expect_once(scene: Scene, step: str, ledger: list[dict[str, Any]], what: str) -> None:
    if len(ledger) != 1:
        first_lost = next((c for c in scene.calls(step) if not c.answered), None)
        context = (f"the answer to the {step} at t={first_lost.start:g} was lost (the service did the work)"
                   if first_lost else f"the {step}")
        scene.fail(got=f"order ord-1 has {len(ledger)} {what}: {', '.join(r['id'] for r in ledger) or 'none'}",
                   expected=f"exactly one: {context}, and the retry replayed it",
                   why=_why_twice(scene, step) if ledger else f"the {step} was never retried after its answer was lost")


def _expect_confirmed(scene: Scene, result: Any, *, why: str) -> None:
    if getattr(result, "status", None) != "confirmed":
        scene.fail(got=f"saga.run returned {result!r}", expected="status 'confirmed': the fault was short", why=why)


def _timed_out(calls: list[Call]) -> bool:
    return any(c.outcome.startswith("timeout") for c in calls)


@level(2)
def lost_charge_answer_is_retried_with_the_same_key(ctx: Context) -> None:
    """The charge's answer is lost: the retry carries the same key, and the card is charged once."""
    scene = Scene(ctx)
    scene.inject(_lost_answer("payments", 0.0, 0.5))
    result = scene.run(scene.saga(), ORDER, "saga-1")
    charges = [c for c in scene.db("payments")["charges"].values() if c["order_id"] == "ord-1"]
    _expect_once(scene, "charge", charges, "charge(s)")
    _expect_confirmed(scene, result, why="a timed-out charge is not a failure: retry it with the same key, "
                                         "and payments replays the charge it made")
    scene.expect_invariants(results=[result])
    scene.close()


@level(2)
def lost_reservation_answer_is_retried_with_the_same_key(ctx: Context) -> None:
    """The reservation's answer is lost: the retry carries the same key, and the stock is reserved once."""
    scene = Scene(ctx)
    scene.inject(_lost_answer("inventory", 0.0, 0.5))
    result = scene.run(scene.saga(), ORDER, "saga-1")
    reservations = [r for r in scene.db("inventory")["reservations"].values() if r["order_id"] == "ord-1"]
    _expect_once(scene, "reserve", reservations, "reservation(s)")
    _expect_confirmed(scene, result, why="a timed-out reservation is not a failure: retry it with the same key")
    scene.expect_invariants(results=[result])
    scene.close()


@level(2)
def each_saga_has_its_own_keys(ctx: Context) -> None:
    """Two sagas for the same customer and items, one after the other: both confirmed, each charged once."""
    scene = Scene(ctx)
    saga = scene.saga()
    results = [scene.run(saga, ORDER, "saga-1"), scene.run(saga, ORDER, "saga-2")]
    second = results[1]
    if getattr(second, "status", None) != "confirmed":
        scene.fail(got=f"the second saga returned {second!r}", expected="status 'confirmed'", why=_why_422(scene))
    charges = list(scene.db("payments")["charges"].values())
    if sorted(c["order_id"] for c in charges) != ["ord-1", "ord-2"]:
        scene.fail(got=f"charges {[(c['id'], c['order_id']) for c in charges]}",
                   expected="one charge for ord-1 and one for ord-2",
                   why="a key shared between sagas replays the first saga's answer to the second")
    scene.expect_invariants(results=results)
    scene.close()


@level(2)
def transient_errors_are_retried(ctx: Context) -> None:
    """A charge that answers 503 twice and then works: the saga retries, with a pause, and ends confirmed."""
    scene = Scene(ctx)
    scene.inject({"at": 0.0, "until": 0.8, "fault": "error", "target": "payments", "route": "POST /charges",
                  "status": 503})
    result = scene.run(scene.saga(), ORDER, "saga-1")
    tries = scene.calls("charge")
    if len({c.start for c in tries}) < len(tries):
        scene.fail(got=f"{len(tries)} tries of the charge at t={[c.start for c in tries]}",
                   expected="a pause before each retry", why="retry after asyncio.sleep(retry_delay), not at once")
    _expect_confirmed(scene, result, why="a 503 is an answer without a verdict: retry the step (up to attempts "
                                         "times) before you decide that it failed")
    scene.expect_invariants(results=[result])
    scene.close()


@level(2)
def lost_confirmation_is_retried_not_compensated(ctx: Context) -> None:
    """The confirmation is slow: its first answer comes too late, but the order was confirmed. Keep it."""
    scene = Scene(ctx)
    scene.inject({"at": 0.0, "until": 1.0, "fault": "latency", "target": "orders",
                  "route": "POST /orders/ord-1/confirm", "dist": "constant", "value": 1.5})
    result = scene.run(scene.saga(), ORDER, "saga-1")
    refunded = scene.calls("refund")
    if refunded:
        scene.fail(got=f"the saga refunded the charge at t={refunded[0].start:g}: the customer gets the goods "
                       "and the money back" + (", and the order stays confirmed"
                                               if scene.db("orders")["orders"]["ord-1"]["status"] == "confirmed"
                                               else ""),
                   expected="no refund: the order was confirmed at t=1.5",
                   why="the confirm timed out but had happened: retry it (confirming twice is harmless), "
                       "or look at the order (GET /orders/{id}) before compensating")
    _expect_confirmed(scene, result, why="retry the confirmation: a timeout is not a refusal")
    scene.expect_invariants(results=[result])
    scene.close()


# -- many cases ------------------------------------------------------------------------------------
FAULTS = {
    "inventory": [None, lambda at, d: _lost_answer("inventory", at, at + d),
                  lambda at, d: _error("inventory", "POST /reservations", at, d)],
    "payments": [None, lambda at, d: _lost_answer("payments", at, at + d),
                 lambda at, d: _error("payments", "POST /charges", at, d)],
    "orders": [None] + [lambda at, d, n=n: {"at": at, "until": at + d, "fault": "latency", "target": "orders",
                                            "route": f"POST /orders/ord-{n}/confirm", "dist": "constant",
                                            "value": 1.5} for n in (1, 2)],
}
QTYS, AMOUNTS = [1, 2, 3], [20.0, 35.5, 6000.0]


def _error(service: str, route: str, at: float, length: float) -> dict[str, Any]:
    # 503s come back at once: shorter than lost answers, so that `attempts` tries outlast them.
    return {"at": at, "until": at + min(length, 1.0), "fault": "error", "target": service, "route": route,
            "status": 503}


# At most one fault per service, so each step's tries outlast its fault. A case is a tuple of small
# numbers that hypothesis shrinks toward 0 (no fault, earliest, shortest, one order, small amounts).
fault = st.tuples(st.integers(0, 2), st.integers(0, 11), st.integers(1, 5))
order = st.tuples(st.integers(0, 2), st.integers(0, 2))
case_strategy = st.tuples(fault, fault, fault, st.integers(0, 8), st.integers(1, 2), order, order)
LATENCY = 0.1  # every call takes 0.1 s, so that the sagas meet the faults


def decode(case: tuple) -> dict[str, Any]:
    inventory, payments, orders, start, count, *specs = case
    faults = []
    for service, (kind, start, length) in zip(("inventory", "payments", "orders"), (inventory, payments, orders),
                                              strict=True):
        if FAULTS[service][kind] is not None:
            # Faults switch at t = 0.25, 0.75, ...: never at the instant of a retry, so no case hangs on a tie.
            faults.append(FAULTS[service][kind](start / 2 + 0.25, length / 2))
    return {"faults": faults, "start": start / 2,
            "orders": [{"qty": QTYS[q], "amount": AMOUNTS[a]} for q, a in specs[:count]]}


ATTEMPTS = 4


def describe_case(case: tuple) -> str:
    from .scene import describe_fault

    case = decode(case)
    orders = "; ".join(f"saga-{n}: {o['qty']} x sku-1 for {o['amount']:g}" for n, o in enumerate(case["orders"], 1))
    faults = "; ".join(describe_fault(f) for f in case["faults"]) or "no fault"
    return (f"OrderSaga(client, attempts={ATTEMPTS}); {orders}, one after the other from t={case['start']:g}, "
            f"every call taking {LATENCY:g} s. Faults: {faults}")


def _suspect(scene: Scene, sagas: int) -> str | None:
    """The step whose tries carried no key, or several keys, if any."""
    for step in ("charge", "reserve"):
        calls = scene.calls(step)
        if len(calls) > sagas and (any(c.key is None for c in calls) or len({c.key for c in calls}) > sagas):
            return _why_twice(scene, step)
    return None


def run_case(ctx: Context, case: tuple) -> None:
    case = decode(case)
    scene = Scene(ctx, latency=LATENCY)
    try:
        if case["faults"]:
            scene.inject(*case["faults"])
        saga = scene.saga(attempts=ATTEMPTS)
        results = []
        for n, spec in enumerate(case["orders"], 1):
            order = {"user_id": "user-1", "items": [{"sku": "sku-1", "qty": spec["qty"]}], "amount": spec["amount"]}
            results.append(scene.run(saga, order, f"saga-{n}", start=case["start"]))
        LAST_RUN["bitten"] += scene.bitten()
        found = scene.violations(results=results)
        if found:
            scene.fail(got=str(found[0]), expected="every saga invariant holds",
                       why=_suspect(scene, len(results)) or found[0].why)
        for n, (spec, result) in enumerate(zip(case["orders"], results, strict=True), 1):
            expected = "cancelled" if spec["amount"] > 5000 else "confirmed"
            if getattr(result, "status", None) != expected:
                why = ("the card is declined above 5000" if expected == "cancelled" else
                       _why_422(scene) or f"every fault here is shorter than {ATTEMPTS} tries: retry a step whose "
                       "answer was lost or a 5xx, with the same key, pausing retry_delay, then twice that, ...")
                scene.fail(got=f"saga-{n} returned {result!r}", expected=f"status {expected!r}", why=why)
    finally:
        scene.close()


@level(2)
def lost_answers_and_errors_never_do_anything_twice(ctx: Context) -> None:
    """200 generated schedules of lost answers, 503s and slow confirmations: each order charged and reserved once."""
    explore(ctx, case_strategy, lambda case: run_case(ctx, case), describe=describe_case,
            first=((0, 0, 1), (0, 0, 1), (0, 0, 1), 0, 1, (0, 0), (0, 0)))
