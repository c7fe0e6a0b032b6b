"""Level 1: orchestrate the steps in order; compensate in reverse, only what completed."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .. import Context, level
from .explore import LAST_RUN, explore
from .scene import COMPENSATIONS, DECLINED, ORDER, OUT_OF_STOCK, Scene

HAPPY = ["create", "reserve", "charge", "confirm", "notify"]


def _forward_order(scene: Scene) -> None:
    """The forward steps come in the saga's order: the confirmation only once the money is in."""
    steps = [s for s in scene.steps() if s in HAPPY]
    expected = [s for s in HAPPY if s in steps]
    if steps != expected:
        why = None
        if "confirm" in steps and "charge" in steps and steps.index("confirm") < steps.index("charge"):
            why = ("the order was confirmed before it was paid: confirm comes after the charge, "
                   "so that a declined card never leaves a confirmed order behind")
        scene.fail(got=f"the steps were called in the order {steps}", expected=f"{expected}", why=why)


def _expect_compensations(scene: Scene, expected: list[str], failed_step: str, answer: str) -> None:
    got = scene.compensations()
    if got == expected:
        return
    undone = {undo: step for step, undo in COMPENSATIONS.items()}
    why = None
    failed_undo = COMPENSATIONS.get(failed_step)
    if failed_undo in got and failed_undo not in expected:
        why = (f"the saga undid the step that failed ({failed_step} answered {answer}): compensate only the "
               f"steps that completed; the failed {failed_step} did nothing to undo")
    elif sorted(got) == sorted(expected) and got == list(reversed(expected)):
        why = ("the compensations ran in forward order: undo in reverse order, newest step first "
               "(the way a stack unwinds)")
    elif sorted(got) == sorted(expected):
        why = "undo in reverse order, newest step first"
    elif set(expected) - set(got):
        missing = sorted(set(expected) - set(got))
        why = (f"{', '.join(missing)} never happened: every step that completed must be undone "
               f"({', '.join(undone[m] for m in missing)} completed)")
    scene.fail(got=f"the compensations called were {got}",
               expected=f"{expected} (after {failed_step} answered {answer})", why=why)


@level(1)
def happy_path_runs_every_step_in_order(ctx: Context) -> None:
    """With no failure: create, reserve, charge, confirm, notify, in that order; the saga ends confirmed."""
    scene = Scene(ctx)
    result = scene.run(scene.saga(), ORDER, "saga-1")
    _forward_order(scene)
    if scene.steps() != HAPPY:
        scene.fail(got=f"the steps called were {scene.steps()}", expected=f"{HAPPY}")
    if getattr(result, "status", None) != "confirmed" or getattr(result, "order_id", None) != "ord-1":
        scene.fail(got=f"saga.run returned {result!r}",
                   expected="SagaResult(saga_id='saga-1', status='confirmed', order_id='ord-1', ...)")
    order = scene.db("orders")["orders"]["ord-1"]
    if order["status"] != "confirmed":
        scene.fail(got=f"order ord-1 is {order['status']!r}", expected="'confirmed'")
    notices = list(scene.db("notifications").get("sent", {}).values())
    if len(notices) != 1 or notices[0].get("order_id") != "ord-1":
        scene.fail(got=f"{len(notices)} notification(s) {[n.get('order_id') for n in notices]}",
                   expected="one notification, for order ord-1 (send its order_id)")
    scene.expect_invariants(results=[result])
    scene.close()


@level(1)
def out_of_stock_cancels_the_order_only(ctx: Context) -> None:
    """Reservation refused (409): cancel the order; nothing was reserved or charged, so nothing else to undo."""
    scene = Scene(ctx)
    result = scene.run(scene.saga(), OUT_OF_STOCK, "saga-1")
    if scene.calls("charge"):
        scene.fail(got="the saga charged the card although no stock was reserved",
                   expected="stop at the first failed step, then compensate",
                   why="go on only when a step succeeded")
    _expect_compensations(scene, ["cancel"], "reserve", "409")
    if getattr(result, "status", None) != "cancelled":
        scene.fail(got=f"saga.run returned {result!r}", expected="status 'cancelled'")
    scene.expect_invariants(results=[result])
    scene.close()


@level(1)
def declined_charge_releases_then_cancels(ctx: Context) -> None:
    """Card declined (402): release the reservation, then cancel the order: reverse order, no refund."""
    scene = Scene(ctx)
    result = scene.run(scene.saga(), DECLINED, "saga-1")
    _forward_order(scene)
    _expect_compensations(scene, ["release", "cancel"], "charge", "402")
    if getattr(result, "status", None) != "cancelled":
        scene.fail(got=f"saga.run returned {result!r}", expected="status 'cancelled'")
    scene.expect_invariants(results=[result])
    scene.close()


@level(1)
def failed_confirmation_refunds_releases_cancels(ctx: Context) -> None:
    """Confirmation fails (503) after the charge: refund, release, cancel, in that order."""
    scene = Scene(ctx)
    scene.inject({"fault": "error", "target": "orders", "route": "POST /orders/ord-1/confirm", "status": 503})
    result = scene.run(scene.saga(), ORDER, "saga-1")
    _forward_order(scene)
    _expect_compensations(scene, ["refund", "release", "cancel"], "confirm", "503")
    if getattr(result, "status", None) != "cancelled":
        scene.fail(got=f"saga.run returned {result!r}", expected="status 'cancelled'")
    scene.expect_invariants(results=[result])
    scene.close()


# -- many cases ------------------------------------------------------------------------------------
BROKEN_ROUTES = {"reserve": ("inventory", "POST /reservations"), "charge": ("payments", "POST /charges"),
                 "confirm": ("orders", "POST /orders/ord-1/confirm")}

SKUS = ["sku-1", "sku-2", "sku-3", "sku-4"]
BROKEN = [None, "reserve", "charge", "confirm"]
# A case is a tuple of small numbers; hypothesis shrinks each toward its smallest value: one item of
# sku-1, a quantity of 1, an amount of 1, no broken step. decode() makes an order of it.
item = st.tuples(st.integers(0, len(SKUS) - 1), st.integers(1, 130))  # 100 of each SKU in stock
case_strategy = st.tuples(st.integers(1, 3), item, item, item, st.integers(1, 9000),  # above 5000: declined
                          st.integers(0, len(BROKEN) - 1), st.sampled_from([503, 500]))


def decode(case: tuple) -> dict[str, Any]:
    count, *items, amount, broken, status = case
    return {"items": [{"sku": SKUS[sku], "qty": qty} for sku, qty in items[:count]], "amount": amount,
            "broken": BROKEN[broken], "status": status}


def describe_case(case: tuple) -> str:
    spec = decode(case)
    items = ", ".join(f"{i['qty']} x {i['sku']}" for i in spec["items"])
    broken = f"; {spec['broken']} always answers {spec['status']}" if spec["broken"] else "; no fault"
    return f"an order of {items} for {spec['amount']}{broken}"


def _expected_compensations(scene: Scene) -> tuple[list[str], str, str]:
    """From the answers the shop gave: which steps completed, so which compensations are due, newest first."""
    completed: list[str] = []
    failed, answer = "", ""
    for step in ("create", "reserve", "charge", "confirm"):
        calls = scene.calls(step)
        if any(c.ok for c in calls):
            completed.append(step)
            continue
        failed = step
        answer = str(calls[-1].status) if calls else "nothing"
        break
    if failed == "":
        return [], "", ""
    return [COMPENSATIONS[s] for s in reversed(completed) if s in COMPENSATIONS], failed, answer


def run_case(ctx: Context, case: tuple) -> None:
    case = decode(case)
    scene = Scene(ctx)
    try:
        if case["broken"]:
            service, route = BROKEN_ROUTES[case["broken"]]
            scene.inject({"fault": "error", "target": service, "route": route, "status": case["status"]})
        order = {"user_id": "user-7", "items": case["items"], "amount": float(case["amount"])}
        result = scene.run(scene.saga(), order, "saga-1")
        LAST_RUN["bitten"] += scene.bitten()
        _forward_order(scene)
        expected, failed, answer = _expected_compensations(scene)
        if failed:
            _expect_compensations(scene, expected, failed, answer)
        scene.expect_invariants(results=[result])
    finally:
        scene.close()


@level(1)
def any_order_any_failed_step_compensates_exactly_what_completed(ctx: Context) -> None:
    """200 generated orders (stock short or not, card declined or not, a step that always fails or none)."""
    explore(ctx, case_strategy, lambda case: run_case(ctx, case), describe=describe_case,
            first=(1, (0, 1), (0, 1), (0, 1), 1, 0, 503))
