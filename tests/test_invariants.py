"""The saga invariants: each holds on a clean history, and each breach is found and explained."""

from __future__ import annotations

import asyncio

import pytest

from harness import CheckFailed, World
from harness.invariants import (
    INVARIANTS,
    check_invariants,
    compensation_violations,
    ending_violations,
    invariant_report,
    money_conserved,
    money_violations,
    no_compensation_twice,
    nothing_pending,
    pending_violations,
    sagas_end_within,
    stock_conserved,
    stock_violations,
)

ITEMS = [{"sku": "sku-1", "qty": 2}]


@pytest.fixture
def shop(make_world) -> World:
    return make_world(11, orders=1, inventory=1, payments=1, notifications=1)


def act(world: World, *calls: tuple) -> list:
    """Make calls in order (method, service, path, json); returns the answers' bodies."""
    client = world.client()

    async def go() -> list:
        bodies = []
        for method, *rest in calls:
            if method == "sleep":
                await asyncio.sleep(rest[0])
                continue
            service, path, *body = rest
            r = await client.request(method, service, path, json=body[0] if body else None)
            bodies.append(r.json())
        return bodies

    return world.run(go())


def order(world: World, amount: float = 30.0) -> str:
    return act(world, ("POST", "orders", "/orders", {"user_id": "user-1", "items": ITEMS, "amount": amount}))[0]["id"]


def complete_saga(world: World) -> str:
    oid = order(world)
    act(world, ("POST", "inventory", "/reservations", {"order_id": oid, "items": ITEMS}),
        ("POST", "payments", "/charges", {"order_id": oid, "amount": 30.0}),
        ("POST", "orders", f"/orders/{oid}/confirm"))
    return oid


def test_a_clean_confirmed_and_a_clean_cancelled_saga_break_nothing(shop):
    complete_saga(shop)
    oid = order(shop, amount=6000.0)
    res = act(shop, ("POST", "inventory", "/reservations", {"order_id": oid, "items": ITEMS}))[0]
    act(shop, ("POST", "payments", "/charges", {"order_id": oid, "amount": 6000.0}),  # 402, declined
        ("DELETE", "inventory", f"/reservations/{res['id']}"), ("POST", "orders", f"/orders/{oid}/cancel"))
    report = invariant_report(shop, bound=60)
    assert list(report) == list(INVARIANTS)
    assert all(found == [] for found in report.values()), report
    check_invariants(shop, bound=60)  # does not raise


def test_a_cancelled_order_that_kept_the_money(shop):
    oid = order(shop)
    act(shop, ("POST", "payments", "/charges", {"order_id": oid, "amount": 30.0}),
        ("POST", "orders", f"/orders/{oid}/cancel"))
    [violation] = money_violations(shop)
    assert str(violation) == ("money: order ord-1 (cancelled) has 30 captured (ch-1), expected 0: a cancelled order "
                              "keeps no money (at t=0 s): the compensation never refunded the charge (POST /refunds)")
    act(shop, ("POST", "payments", "/refunds", {"charge_id": "ch-1"}))
    assert money_violations(shop) == []


def test_a_confirmed_order_charged_twice_or_not_at_all(shop):
    oid = complete_saga(shop)
    act(shop, ("POST", "payments", "/charges", {"order_id": oid, "amount": 30.0}))  # a retry without a key
    [twice] = money_violations(shop)
    assert "order ord-1 (confirmed, 30) was charged 2 times (ch-1, ch-2: 60 in all), expected once" in str(twice)
    assert "without its Idempotency-Key" in twice.why
    act(shop, ("POST", "payments", "/refunds", {"charge_id": "ch-1"}), ("POST", "payments", "/refunds",
                                                                         {"charge_id": "ch-2"}))
    [unpaid] = money_violations(shop)
    assert "order ord-1 (confirmed) has 0 captured, expected 30, its amount" in str(unpaid)


def test_money_taken_for_an_order_that_does_not_exist(shop):
    act(shop, ("POST", "payments", "/charges", {"order_id": "ord-404", "amount": 12.0}))
    [violation] = money_violations(shop)
    assert "ch-1 captured money for order ord-404, which does not exist" in str(violation)


def test_stock_held_for_a_cancelled_order_or_reserved_twice(shop):
    oid = order(shop)
    act(shop, ("POST", "inventory", "/reservations", {"order_id": oid, "items": ITEMS}),
        ("POST", "inventory", "/reservations", {"order_id": oid, "items": ITEMS}))
    [twice] = stock_violations(shop)
    assert "order ord-1 (pending) holds 2 reservations: res-1, res-2, expected exactly one" in str(twice)
    act(shop, ("POST", "orders", f"/orders/{oid}/cancel"))
    [held] = stock_violations(shop)
    assert "order ord-1 (cancelled) still holds res-1, res-2, expected no reservation" in str(held)
    assert "DELETE /reservations" in held.why


def test_a_confirmed_order_without_stock(shop):
    oid = order(shop)
    act(shop, ("POST", "orders", f"/orders/{oid}/confirm"))
    found = stock_violations(shop)
    assert any("order ord-1 is confirmed and holds no reservation, expected exactly one" in str(v) for v in found)


def test_units_that_appear_from_nowhere(shop):
    complete_saga(shop)
    shop.db("inventory")["stock"]["sku-1"]["available"] += 1  # a release that added stock without a reservation
    found = stock_violations(shop)
    assert "stock: sku-1: available + reserved + shipped = 99 + 2 + 0 = 101, expected 100" in str(found[0])
    assert stock_violations(shop, initial={"sku-1": 101}) == []
    assert stock_violations(shop, initial=101) != []  # every other SKU has 100


def test_a_pending_order_never_ends_and_a_late_one_ends_too_late(shop):
    oid = order(shop)
    [pending] = pending_violations(shop)
    assert str(pending) == "pending: order ord-1 is still pending, expected confirmed or cancelled (at t=0 s): " \
                           "a saga stopped half-way"
    act(shop, ("sleep", 10.0), ("POST", "orders", f"/orders/{oid}/cancel"))
    assert pending_violations(shop) == []
    assert ending_violations(shop, bound=60) == []
    [late] = ending_violations(shop, bound=5)
    assert str(late) == "ending: order ord-1 was cancelled after 10 s, expected at most 5 s (at t=10 s)"


def test_a_saga_that_reports_what_the_shop_does_not_say(shop):
    class Result:
        saga_id, status, order_id = "saga-1", "confirmed", "ord-1"

    oid = order(shop)
    act(shop, ("POST", "orders", f"/orders/{oid}/cancel"))
    [disagree] = ending_violations(shop, bound=60, results=[Result()])
    assert "saga saga-1 reported 'confirmed' but order ord-1 is 'cancelled'" in str(disagree)
    Result.status = "done"
    [odd] = ending_violations(shop, bound=60, results=[Result()])
    assert "saga saga-1 ended 'done', expected 'confirmed' or 'cancelled'" in str(odd)


def test_a_dead_lettered_event_leaves_its_saga_pending(shop):
    async def broken(message):
        raise RuntimeError("inventory is down")

    shop.bus.subscribe("order-created", broken, name="inventory:order-created", max_attempts=2, backoff=0.5)
    shop.bus.publish("order-created", {"order_id": "ord-9"})
    shop.run(shop.bus.drain())
    [dead] = pending_violations(shop)
    assert "event msg-1 on 'order-created' was dead-lettered after 2 attempts, expected handled" in str(dead)


def test_a_charge_refunded_twice(shop):
    complete_saga(shop)
    payments = shop.db("payments")
    payments["refunds"]["re-1"] = {"id": "re-1", "charge_id": "ch-1", "amount": 30.0, "at": 1.0}
    payments["refunds"]["re-2"] = {"id": "re-2", "charge_id": "ch-1", "amount": 30.0, "at": 2.0}
    found = compensation_violations(shop)
    assert "compensation: charge ch-1 was refunded 2 times (re-1, re-2), expected at most once (at t=2 s)" in str(
        found[0])
    assert "refunds of ch-1 add up to 60, expected at most 30" in str(found[1])


def test_the_raising_forms_explain_in_the_checkers_style(shop):
    oid = order(shop)
    act(shop, ("POST", "payments", "/charges", {"order_id": oid, "amount": 30.0}),
        ("POST", "payments", "/charges", {"order_id": oid, "amount": 30.0}),
        ("POST", "orders", f"/orders/{oid}/cancel"))
    with pytest.raises(CheckFailed) as caught:
        money_conserved(shop, replay="kata simulate saga-chaos --seed 11")
    failure = caught.value
    assert failure.seed == 11 and failure.at == 0.0 and failure.replay == "kata simulate saga-chaos --seed 11"
    assert "(at t=0 s, seed=11)" in str(failure) and "replay: kata simulate saga-chaos --seed 11" in str(failure)
    for check in (stock_conserved, nothing_pending, no_compensation_twice):
        check(shop)  # these hold: nothing was reserved, nothing is pending, nothing refunded
    with pytest.raises(CheckFailed, match="ending: order ord-2 is pending"):
        order(shop)
        sagas_end_within(shop, 60)
    with pytest.raises(CheckFailed, match=r"\(and 2 more: ending: order ord-2 is pending"):
        check_invariants(shop, bound=60, seed=99)
