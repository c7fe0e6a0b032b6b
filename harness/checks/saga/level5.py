"""Level 5: the invariants under random fault schedules, several sagas at once, orchestrated and choreographed."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .. import Context, level
from .explore import LAST_RUN, explore
from .level3 import crash_and_recover
from .level4 import Choreography
from .scene import Scene, describe_fault
from .shop import orders_replay_keys


def _window(make):  # noqa: ANN001, ANN202  (a tiny adapter: fault maker -> (at, length) maker)
    return lambda at, length: {"at": at, "until": at + length, **make()}


# Everything the harness can do to a request that a saga must survive. Left out on purpose: answers of
# POST /orders lost (orders cannot replay a create yet), and latency beyond the timeout. A request that
# does its work after its caller gave up can land after the saga looked and decided (a look-up that found
# no charge, a cancel): no saga can see a request that has not happened yet.
SERVICE_FAULTS = [
    None,
    _window(lambda: {"fault": "crash", "target": "inventory-1"}),
    _window(lambda: {"fault": "crash", "target": "payments-1"}),
    _window(lambda: {"fault": "crash", "target": "orders-1"}),
    _window(lambda: {"fault": "crash", "target": "notifications-1"}),
    _window(lambda: {"fault": "hang", "target": "inventory"}),
    _window(lambda: {"fault": "hang", "target": "payments"}),
    _window(lambda: {"fault": "hang", "target": "orders"}),
    _window(lambda: {"fault": "partition", "source": "client", "target": "payments", "direction": "response"}),
    _window(lambda: {"fault": "partition", "source": "client", "target": "inventory", "direction": "response"}),
    _window(lambda: {"fault": "partition", "source": "client", "target": "notifications", "direction": "response"}),
    _window(lambda: {"fault": "partition", "source": "client", "target": "payments", "direction": "request"}),
    _window(lambda: {"fault": "error", "target": "payments", "status": 503}),
    _window(lambda: {"fault": "error", "target": "inventory", "status": 500}),
    _window(lambda: {"fault": "error", "target": "orders", "route": "/orders/ord-1", "status": 503}),
    _window(lambda: {"fault": "error", "target": "orders", "route": "/orders/ord-2", "status": 503}),
    _window(lambda: {"fault": "error", "target": "payments", "route": "POST /refunds", "status": 503}),
    _window(lambda: {"fault": "latency", "target": "payments", "dist": "uniform", "low": 0.1, "high": 0.9}),
    _window(lambda: {"fault": "latency", "target": "inventory", "dist": "constant", "value": 0.6}),
    _window(lambda: {"fault": "error", "target": "payments", "status": 503, "probability": 0.5}),
]

# sku, qty, amount: two orders of 60 x sku-1 cannot both have the stock; above 5000 the card is declined.
ORDERS = [("sku-1", 2, 30.0), ("sku-1", 60, 45.0), ("sku-2", 1, 6000.0), ("sku-3", 500, 20.0), ("sku-1", 60, 5.5)]

LATENCY = 0.1  # every call takes 0.1 s: sagas last long enough to overlap each other and the faults
# A fault: which, when it starts (0 to 10 s), how long it lasts (1 to 30 s).
fault = st.tuples(st.integers(0, len(SERVICE_FAULTS) - 1), st.integers(0, 20), st.integers(0, 29))
order = st.tuples(st.integers(0, len(ORDERS) - 1), st.integers(0, 8))  # which order, when (0 to 4 s)
orders = st.tuples(st.integers(1, 3), order, order, order).map(lambda t: list(t[1:1 + t[0]]))


def _faults(slots: tuple, *, after: float = 0.0) -> list[dict[str, Any]]:
    return [SERVICE_FAULTS[kind](after + at / 2, length + 1.0) for kind, at, length in slots
            if SERVICE_FAULTS[kind] is not None]


def _orders(specs: list[tuple[int, int]]) -> list[tuple[dict[str, Any], str, float]]:
    placed = []
    for n, (kind, start) in enumerate(specs, 1):
        sku, qty, amount = ORDERS[kind]
        placed.append(({"user_id": f"user-{n}", "items": [{"sku": sku, "qty": qty}], "amount": amount},
                       f"saga-{n}", start / 2))
    return placed


def _describe_orders(placed: list[tuple[dict[str, Any], str, float]], *, when: bool = True) -> str:
    return ", ".join(f"{saga_id}: {o['items'][0]['qty']} x {o['items'][0]['sku']} for {o['amount']:g}"
                     + (f" at t={start:g}" if when else "") for o, saga_id, start in placed)


# -- orchestration under chaos ---------------------------------------------------------------------
orchestrated_case = st.tuples(orders, fault, fault, fault, st.integers(0, 14), st.integers(0, 1))


def decode_orchestrated(case: tuple) -> dict[str, Any]:
    kinds, f1, f2, f3, crash_number, crash_when = case
    when = "after" if crash_when else "before"
    if crash_number == 1 and when == "after" and not orders_replay_keys():
        when = "before"  # orders cannot replay a create yet: a lost create answer is not recoverable
    return {"orders": _orders(kinds), "faults": _faults((f1, f2, f3)),
            "crash": (crash_number, when) if crash_number else None}


def describe_orchestrated(case: tuple) -> str:
    spec = decode_orchestrated(case)
    faults = "; ".join(describe_fault(f) for f in spec["faults"]) or "no fault"
    crash = (f"the orchestrator crashes at its call {spec['crash'][0]} ({spec['crash'][1]}), then a new one "
             "recovers" if spec["crash"] else "no orchestrator crash")
    return (f"sagas {_describe_orders(spec['orders'])}, every call taking {LATENCY:g} s. Faults: {faults}. "
            f"{crash}")


def run_orchestrated(ctx: Context, case: tuple) -> None:
    spec = decode_orchestrated(case)
    scene = Scene(ctx, latency=LATENCY)
    try:
        if spec["faults"]:
            scene.inject(*spec["faults"])
        number, when = spec["crash"] or (None, "before")
        results, _, started = crash_and_recover(scene, spec["orders"], number, when)
        found = scene.violations(results=results)
        ended = {getattr(r, "saga_id", None) for r in results}
        LAST_RUN["bitten"] += scene.bitten()
        if not found and set(started) - ended:
            scene.fail(got=f"no result for {sorted(set(started) - ended)}",
                       expected="a SagaResult for every saga, from run() or from recover()")
        if found:
            why = found[0].why
            if len(spec["orders"]) > 1:
                why = (f"{why}; with several sagas at once, keep each saga's state in the coroutine (or the log), "
                       "never on the OrderSaga object they share") if why else None
            scene.fail(got=found[0].message(), expected="every saga invariant holds", why=why)
    finally:
        scene.close()


@level(5)
def orchestrated_sagas_under_random_faults_keep_the_invariants(ctx: Context) -> None:
    """200 generated schedules: up to three sagas at once, three faults anywhere, maybe an orchestrator crash."""
    explore(ctx, orchestrated_case, lambda case: run_orchestrated(ctx, case), describe=describe_orchestrated,
            first=([(0, 0)], (0, 0, 0), (0, 0, 0), (0, 0, 0), 0, 0))


# -- choreography under chaos ----------------------------------------------------------------------
BUS_FAULTS = [
    None,
    lambda at, d, p: {"at": at, "until": at + d, "fault": "duplicate", "topic": "*", "probability": p},
    lambda at, d, p: {"at": at, "until": at + d, "fault": "drop-ack", "topic": "*", "probability": p},
    lambda at, d, p: {"at": at, "until": at + d, "fault": "reorder", "topic": "*", "window": 8 * p},
    lambda at, d, p: {"at": at, "until": at + d, "fault": "delay", "topic": "*", "dist": "uniform",
                      "low": 0.0, "high": 12 * p},
]
bus_fault = st.tuples(st.integers(0, len(BUS_FAULTS) - 1), st.integers(0, 8), st.integers(0, 9), st.integers(1, 4))
choreographed_case = st.tuples(orders, bus_fault, bus_fault, fault, fault)


def decode_choreographed(case: tuple) -> dict[str, Any]:
    kinds, b1, b2, f1, f2 = case
    schedule = [BUS_FAULTS[kind](at / 8, length + 1.0, strength / 8) for kind, at, length, strength in (b1, b2)
                if BUS_FAULTS[kind] is not None]
    # Service faults from t=0.25 (to 2.75): place() runs at t=0, a customer's request the saga does not retry.
    faults = [SERVICE_FAULTS[kind](0.25 + at / 8, length + 1.0) for kind, at, length in (f1, f2)
              if SERVICE_FAULTS[kind] is not None]
    return {"orders": [(o, saga_id, 0.0) for o, saga_id, _ in _orders(kinds)], "faults": schedule + faults}


def describe_choreographed(case: tuple) -> str:
    spec = decode_choreographed(case)
    faults = "; ".join(describe_fault(f) for f in spec["faults"]) or "no fault"
    return (f"orders placed at t=0: {_describe_orders(spec['orders'], when=False)}, every call taking "
            f"{LATENCY:g} s. Faults: {faults}")


def run_choreographed(ctx: Context, case: tuple) -> None:
    from .level4 import _expect_invariants, _expect_single_effects

    spec = decode_choreographed(case)
    run = Choreography(ctx, *spec["faults"], latency=LATENCY)
    try:
        run.place(*[(order, saga_id) for order, saga_id, _ in spec["orders"]])
        LAST_RUN["bitten"] += run.scene.bitten()
        _expect_single_effects(run)
        _expect_invariants(run)
    finally:
        run.close()


@level(5)
def choreographed_sagas_under_random_faults_keep_the_invariants(ctx: Context) -> None:
    """200 generated schedules of bus faults and service faults together, over one to three orders."""
    explore(ctx, choreographed_case, lambda case: run_choreographed(ctx, case), describe=describe_choreographed,
            first=([(0, 0)], (0, 0, 0, 1), (0, 0, 0, 1), (0, 0, 0), (0, 0, 0)))
