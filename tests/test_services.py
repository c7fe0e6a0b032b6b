"""The shop's services, called through the in-process network (harness/services/)."""

from __future__ import annotations

import asyncio

import pytest

from harness import SHOP, RequestTimeout, World

KEY = {"Idempotency-Key": "k-1"}


def call(world: World, method: str, target: str, path: str, **kwargs):
    return world.run(world.client().request(method, target, path, **kwargs))


def _charges(world: World) -> list[dict]:
    return list(world.db("payments").get("charges", {}).values())


# -- every service -------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(SHOP))
def test_health_is_deep_and_turns_503_when_the_database_is_broken(world, service):
    world.add_service(service)
    healthy = call(world, "GET", service, "/health")
    assert (healthy.status, healthy.json()["checks"]) == (200, {"database": "ok"})
    world.db(service)["_broken"] = True
    sick = call(world, "GET", service, "/health")
    assert sick.status == 503
    assert sick.json() == {"status": "unhealthy", "instance": f"{service}-1", "release": "v1",
                           "checks": {"database": "unreachable"}}


@pytest.mark.parametrize("service", sorted(SHOP))
def test_version_names_the_service_release_and_instance(world, service):
    world.add_service(service, release="v2")
    assert call(world, "GET", service, "/version").json() == {
        "service": service, "release": "v2", "instance": f"{service}-1"}


def test_instances_of_a_service_share_its_database(world):
    world.add_service("payments", instances=2)
    call(world, "POST", "payments-1", "/charges", json={"order_id": "ord-1", "amount": 5})
    assert len(call(world, "GET", "payments-2", "/charges").json()) == 1


# -- payments ----------------------------------------------------------------------------------------------


@pytest.fixture
def payments(world):
    world.add_service("payments", instances=2)
    return world


def test_a_charge_is_captured(payments):
    r = call(payments, "POST", "payments", "/charges", json={"order_id": "ord-1", "amount": 20, "user_id": "u"})
    assert r.status == 201
    assert r.json() == {"id": "ch-1", "order_id": "ord-1", "user_id": "u", "amount": 20.0,
                        "status": "captured", "at": 0.0}
    assert "idempotent-replayed" not in r.headers


def test_the_same_key_and_payload_replays_the_first_answer_without_charging_again(payments):
    body = {"order_id": "ord-1", "amount": 20}
    first = call(payments, "POST", "payments", "/charges", json=body, headers=KEY)
    again = call(payments, "POST", "payments", "/charges", json=body, headers=KEY)  # the other instance
    assert (first.instance, again.instance) == ("payments-1", "payments-2")
    assert (again.status, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert len(_charges(payments)) == 1


def test_even_a_decline_is_replayed_for_the_same_key(payments):
    body = {"order_id": "ord-1", "amount": 6000}  # above the default decline limit of 5000
    first = call(payments, "POST", "payments", "/charges", json=body, headers=KEY)
    again = call(payments, "POST", "payments", "/charges", json=body, headers=KEY)
    assert (first.status, again.status) == (402, 402)
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() == {"detail": "card declined", "order_id": "ord-1"}
    assert _charges(payments) == []


def test_the_same_key_with_another_payload_is_a_422_and_charges_nothing_more(payments):
    call(payments, "POST", "payments", "/charges", json={"order_id": "ord-1", "amount": 20}, headers=KEY)
    clash = call(payments, "POST", "payments", "/charges", json={"order_id": "ord-1", "amount": 21}, headers=KEY)
    assert clash.status == 422
    assert "k-1" in clash.json()["detail"]
    assert [c["amount"] for c in _charges(payments)] == [20.0]


def test_without_a_key_a_retry_charges_twice(payments):
    body = {"order_id": "ord-1", "amount": 20}
    call(payments, "POST", "payments", "/charges", json=body)
    call(payments, "POST", "payments", "/charges", json=body)
    assert [c["order_id"] for c in _charges(payments)] == ["ord-1", "ord-1"]


def test_different_keys_are_different_charges(payments):
    body = {"order_id": "ord-1", "amount": 20}
    call(payments, "POST", "payments", "/charges", json=body, headers={"Idempotency-Key": "a"})
    call(payments, "POST", "payments", "/charges", json=body, headers={"Idempotency-Key": "b"})
    assert len(_charges(payments)) == 2


def test_a_non_positive_amount_is_a_400(payments):
    assert call(payments, "POST", "payments", "/charges", json={"order_id": "o", "amount": 0}).status == 400


def test_decline_limit_is_an_option(world):
    world.add_service("payments", options={"decline_above": 10})
    assert call(world, "POST", "payments", "/charges", json={"order_id": "o", "amount": 11}).status == 402


def test_refunding_an_unknown_charge_is_a_404(payments):
    assert call(payments, "POST", "payments", "/refunds", json={"charge_id": "ch-404"}).status == 404


def test_refunding_twice_is_a_409(payments):
    call(payments, "POST", "payments", "/charges", json={"order_id": "ord-1", "amount": 20})
    first = call(payments, "POST", "payments", "/refunds", json={"charge_id": "ch-1"})
    second = call(payments, "POST", "payments", "/refunds", json={"charge_id": "ch-1"})
    assert (first.status, second.status) == (201, 409)
    assert first.json()["amount"] == 20.0
    assert call(payments, "GET", "payments", "/charges/ch-1").json()["status"] == "refunded"


def test_a_refund_retried_with_its_key_is_replayed_not_refused(payments):
    call(payments, "POST", "payments", "/charges", json={"order_id": "ord-1", "amount": 20})
    first = call(payments, "POST", "payments", "/refunds", json={"charge_id": "ch-1"}, headers=KEY)
    again = call(payments, "POST", "payments", "/refunds", json={"charge_id": "ch-1"}, headers=KEY)
    assert (first.status, again.status) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert len(payments.db("payments")["refunds"]) == 1


def test_a_key_used_for_a_charge_and_a_refund_does_not_clash(payments):
    call(payments, "POST", "payments", "/charges", json={"order_id": "ord-1", "amount": 20}, headers=KEY)
    refund = call(payments, "POST", "payments", "/refunds", json={"charge_id": "ch-1"}, headers=KEY)
    assert refund.status == 201


def test_charges_are_found_by_id_and_by_order(payments):
    call(payments, "POST", "payments", "/charges", json={"order_id": "ord-1", "amount": 5})
    call(payments, "POST", "payments", "/charges", json={"order_id": "ord-2", "amount": 6})
    assert call(payments, "GET", "payments", "/charges/ch-404").status == 404
    assert [c["id"] for c in call(payments, "GET", "payments", "/charges", params={"order_id": "ord-2"}).json()] == [
        "ch-2"]


# -- inventory ----------------------------------------------------------------------------------------------


@pytest.fixture
def inventory(world):
    world.add_service("inventory")
    return world


def _stock(world: World, sku: str) -> dict:
    return call(world, "GET", "inventory", f"/stock/{sku}").json()


def _reserve(world: World, *items: tuple[str, int], **kwargs):
    return call(world, "POST", "inventory", "/reservations",
                json={"order_id": "ord-1", "items": [{"sku": s, "qty": q} for s, q in items]}, **kwargs)


def test_a_reservation_moves_stock_from_available_to_reserved(inventory):
    r = _reserve(inventory, ("sku-1", 3))
    assert (r.status, r.json()["id"], r.json()["status"]) == (201, "res-1", "reserved")
    assert _stock(inventory, "sku-1") == {"sku": "sku-1", "available": 97, "reserved": 3, "shipped": 0}


def test_short_stock_is_a_409_and_reserves_nothing(inventory):
    r = _reserve(inventory, ("sku-1", 5), ("sku-2", 101))
    assert (r.status, r.json()["available"]) == (409, 100)
    assert _stock(inventory, "sku-1")["available"] == 100
    assert call(inventory, "GET", "inventory", "/reservations").json() == []


def test_a_sku_listed_twice_cannot_reserve_more_than_is_available(inventory):
    # Regression: each line was checked on its own, so 60 + 60 of 100 was reserved.
    r = _reserve(inventory, ("sku-1", 60), ("sku-1", 60))
    assert r.status == 409
    assert _stock(inventory, "sku-1") == {"sku": "sku-1", "available": 100, "reserved": 0, "shipped": 0}


@pytest.mark.parametrize("items, status", [((("sku-404", 1),), 404), ((("sku-1", 0),), 400)])
def test_unknown_skus_and_non_positive_quantities_are_refused(inventory, items, status):
    assert _reserve(inventory, *items).status == status
    assert _stock(inventory, "sku-1")["available"] == 100


def test_releasing_twice_is_idempotent(inventory):
    _reserve(inventory, ("sku-1", 3))
    first = call(inventory, "DELETE", "inventory", "/reservations/res-1")
    second = call(inventory, "DELETE", "inventory", "/reservations/res-1")
    assert (first.status, first.json()["already"]) == (200, False)
    assert (second.status, second.json()["already"]) == (200, True)
    assert _stock(inventory, "sku-1") == {"sku": "sku-1", "available": 100, "reserved": 0, "shipped": 0}


def test_releasing_an_unknown_reservation_is_a_404(inventory):
    assert call(inventory, "DELETE", "inventory", "/reservations/res-404").status == 404


def test_committing_ships_the_goods_and_a_released_reservation_cannot_be_committed(inventory):
    _reserve(inventory, ("sku-1", 3))
    _reserve(inventory, ("sku-1", 2))
    assert call(inventory, "POST", "inventory", "/reservations/res-1/commit").json()["status"] == "committed"
    assert call(inventory, "POST", "inventory", "/reservations/res-1/commit").status == 200  # twice: fine
    call(inventory, "DELETE", "inventory", "/reservations/res-2")
    assert call(inventory, "POST", "inventory", "/reservations/res-2/commit").status == 409
    assert _stock(inventory, "sku-1") == {"sku": "sku-1", "available": 97, "reserved": 0, "shipped": 3}


def test_stock_is_conserved_whatever_happens(inventory):
    _reserve(inventory, ("sku-1", 10), ("sku-2", 5))
    _reserve(inventory, ("sku-1", 95))  # 409: only 90 left
    _reserve(inventory, ("sku-1", 20), ("sku-3", 1))
    call(inventory, "POST", "inventory", "/reservations/res-1/commit")
    call(inventory, "DELETE", "inventory", "/reservations/res-2")
    call(inventory, "DELETE", "inventory", "/reservations/res-2")
    _reserve(inventory, ("sku-1", 4), headers=KEY)
    _reserve(inventory, ("sku-1", 4), headers=KEY)  # replayed, not reserved again
    for sku in ("sku-1", "sku-2", "sku-3"):
        s = _stock(inventory, sku)
        assert s["available"] + s["reserved"] + s["shipped"] == 100, s
    assert _stock(inventory, "sku-1") == {"sku": "sku-1", "available": 86, "reserved": 4, "shipped": 10}


def test_a_reservation_retried_with_its_key_is_replayed(inventory):
    first = _reserve(inventory, ("sku-1", 3), headers=KEY)
    again = _reserve(inventory, ("sku-1", 3), headers=KEY)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert _stock(inventory, "sku-1")["reserved"] == 3


# -- orders --------------------------------------------------------------------------------------------------


@pytest.fixture
def orders(world):
    world.add_service("orders")
    return world


def _new_order(world: World, user_id: str = "user-1") -> str:
    r = call(world, "POST", "orders", "/orders", json={"user_id": user_id, "items": [{"sku": "sku-1"}], "amount": 7})
    assert (r.status, r.json()["status"]) == (201, "pending")
    return r.json()["id"]


@pytest.mark.parametrize("first, then, status, final", [
    ("confirm", "confirm", 200, "confirmed"),
    ("cancel", "cancel", 200, "cancelled"),
    ("confirm", "cancel", 409, "confirmed"),
    ("cancel", "confirm", 409, "cancelled"),
])
def test_an_order_moves_only_from_pending(orders, first, then, status, final):
    oid = _new_order(orders)
    assert call(orders, "POST", "orders", f"/orders/{oid}/{first}").status == 200
    r = call(orders, "POST", "orders", f"/orders/{oid}/{then}")
    assert r.status == status
    assert call(orders, "GET", "orders", f"/orders/{oid}").json()["status"] == final


def test_a_409_says_why(orders):
    oid = _new_order(orders)
    call(orders, "POST", "orders", f"/orders/{oid}/cancel")
    assert call(orders, "POST", "orders", f"/orders/{oid}/confirm").json()["detail"] == (
        f"order {oid} is cancelled, cannot confirm")


@pytest.mark.parametrize("method, path", [("GET", "/orders/ord-404"), ("POST", "/orders/ord-404/confirm")])
def test_an_unknown_order_is_a_404(orders, method, path):
    assert call(orders, method, "orders", path).status == 404


def test_orders_are_found_by_user(orders):
    a, _, c = _new_order(orders, "user-1"), _new_order(orders, "user-2"), _new_order(orders, "user-1")
    found = call(orders, "GET", "orders", "/orders", params={"user_id": "user-1"}).json()
    assert [o["id"] for o in found] == [a, c]


ORDER = {"user_id": "user-1", "items": [{"sku": "sku-1"}], "amount": 7}


def test_a_create_retried_with_its_key_replays_the_order_as_it_was_created(orders):
    first = call(orders, "POST", "orders", "/orders", json=ORDER, headers={"Idempotency-Key": "saga-1:create"})
    oid = first.json()["id"]
    call(orders, "POST", "orders", f"/orders/{oid}/confirm")
    again = call(orders, "POST", "orders", "/orders", json=ORDER, headers={"Idempotency-Key": "saga-1:create"})
    assert (again.status, again.json()) == (201, first.json())  # pending, as first answered
    assert again.headers["idempotent-replayed"] == "true"
    assert [o["id"] for o in call(orders, "GET", "orders", "/orders", params={"user_id": "user-1"}).json()] == [oid]


def test_a_create_key_reused_with_another_order_is_a_422_naming_the_key(orders):
    call(orders, "POST", "orders", "/orders", json=ORDER, headers={"Idempotency-Key": "k-1"})
    r = call(orders, "POST", "orders", "/orders", json={**ORDER, "amount": 8}, headers={"Idempotency-Key": "k-1"})
    assert r.status == 422 and r.json()["detail"] == "Idempotency-Key 'k-1' was used with another payload"
    assert len(call(orders, "GET", "orders", "/orders").json()) == 1


def test_without_a_key_a_retried_create_makes_two_orders(orders):
    assert _new_order(orders) != _new_order(orders)


def _checkout_world(world: World, **options) -> World:
    world.add_service("payments")
    world.add_service("orders", options=options)
    return world


def _checkout(world: World, amount: float = 25.0):
    return call(world, "POST", "orders", "/checkout", json={"user_id": "user-1", "amount": amount})


def test_checkout_charges_the_order(world):
    r = _checkout(_checkout_world(world))
    assert r.status == 201
    assert (r.json()["order"]["status"], r.json()["charge"]["order_id"]) == ("paid", "ord-1")
    assert [c["order_id"] for c in _charges(world)] == ["ord-1"]


def test_checkout_through_a_guard_that_lets_calls_pass(world):
    passed = []

    async def guard(charge):
        passed.append(True)
        return await charge()

    assert _checkout(_checkout_world(world, payments_guard=guard)).status == 201
    assert passed == [True]


def test_checkout_with_a_guard_that_refuses_queues_the_payment_at_once(world):
    class BreakerOpen(Exception):
        pass

    async def open_breaker(charge):
        raise BreakerOpen("open")

    _checkout_world(world, payments_guard=open_breaker)
    world.faults.inject({"fault": "hang", "target": "payments"})  # never reached
    r = _checkout(world)
    assert (r.status, world.now()) == (202, 0.0)
    body = r.json()
    assert (body["status"], body["message"], body["reason"]) == ("pending", "payment queued", "BreakerOpen")
    assert body["order"]["status"] == "payment-queued"
    assert _charges(world) == []


def test_a_guard_factory_builds_one_guard_per_instance(world):
    built = []

    def factory(ctx):
        built.append(ctx.address)

        async def guard(charge):
            return await charge()

        return guard

    world.add_service("payments")
    world.add_service("orders", instances=2, options={"payments_guard_factory": factory})
    assert built == ["orders-1", "orders-2"]


def test_checkout_times_out_on_payments_at_exactly_the_configured_timeout(world):
    _checkout_world(world, payments_timeout=2.0)
    world.faults.inject({"fault": "hang", "target": "payments"})
    r = _checkout(world)
    assert (r.status, world.now(), r.json()["order"]["status"]) == (504, 2.0, "failed")


def test_checkout_waits_thirty_seconds_by_default(world):
    _checkout_world(world)
    world.faults.inject({"fault": "hang", "target": "payments"})
    assert (_checkout(world).status, world.now()) == (504, 30.0)


def test_checkout_answers_502_when_payments_fails(world):
    _checkout_world(world)
    world.faults.inject({"fault": "error", "target": "payments", "status": 503})
    r = _checkout(world)
    assert (r.status, r.json()["detail"]) == (502, "payments answered 503")


def test_checkout_of_a_declined_card_is_a_402(world):
    r = _checkout(_checkout_world(world), amount=6000)
    assert (r.status, r.json()["order"]["status"]) == (402, "declined")


def test_checkout_refused_by_payments_is_not_paid(world):
    # Regression: any 4xx but 402 from payments marked the order "paid" with no charge.
    r = _checkout(_checkout_world(world), amount=-5)
    assert r.status == 400
    assert r.json()["order"]["status"] == "failed"
    assert _charges(world) == []


def test_a_caller_that_gives_up_on_checkout_does_not_stop_the_charge(world):
    _checkout_world(world)
    world.faults.inject({"fault": "latency", "target": "payments", "value": 3.0})

    async def impatient():
        with pytest.raises(RequestTimeout):
            await world.client().post("orders", "/checkout", json={"user_id": "user-1"}, timeout=1)
        await asyncio.sleep(5)  # the world keeps running: orders is still waiting on payments

    world.run(impatient())
    assert [(c["order_id"], c["at"]) for c in _charges(world)] == [("ord-1", 3.0)]
    assert world.db("orders")["orders"]["ord-1"]["status"] == "paid"


# -- the gateway ------------------------------------------------------------------------------------------------

# The seed's service times (see harness/scenarios/fanout.py).
SERVICE_TIMES = {("users", "GET /users"): 0.1, ("orders", "GET /orders"): 0.15,
                 ("payments", "GET /payment-methods"): 0.12, ("gateway", "GET /profile"): 0.02}


@pytest.fixture
def shop(world):
    for service in ("users", "orders", "payments", "gateway"):
        world.add_service(service)
    for (service, route), seconds in SERVICE_TIMES.items():
        world.faults.inject({"fault": "latency", "target": service, "route": route, "value": seconds})
    return world


def _profile(world: World, mode: str = "parallel", user: str = "user-1"):
    start = world.now()
    r = call(world, "GET", "gateway", f"/profile/{user}", params={"mode": mode})
    return r, world.now() - start


def test_a_parallel_profile_takes_the_gateway_time_plus_the_slowest_part(shop):
    r, latency = _profile(shop, "parallel")
    assert r.status == 200
    assert latency == 0.02 + 0.15  # 0.17, as the virtual clock adds it up
    body = r.json()
    assert (body["user"]["id"], body["orders"], body["errors"]) == ("user-1", [], {})
    assert body["payment_methods"][0]["type"] == "card"


def test_a_sequential_profile_takes_the_sum_of_every_part(shop):
    r, latency = _profile(shop, "sequential")
    assert r.status == 200
    assert latency == 0.39  # 0.02 + 0.1 + 0.15 + 0.12


def test_a_failed_part_becomes_an_error_entry_and_an_empty_default(shop):
    shop.faults.inject({"fault": "error", "target": "payments", "status": 503})
    r, _ = _profile(shop)
    assert r.status == 200
    assert (r.json()["payment_methods"], r.json()["errors"]) == ([], {"payment_methods": "payments: HTTP 503"})


def test_a_hung_part_costs_the_gateway_its_five_second_timeout(shop):
    shop.faults.inject({"fault": "hang", "target": "orders"})
    r, latency = _profile(shop)
    assert (r.status, r.json()["errors"]) == (200, {"orders": "orders: timeout"})
    assert latency == 0.02 + 5.0


def test_a_garbled_part_is_an_error_entry_not_a_gateway_crash(shop):
    # Regression: the gateway parsed the part's body unguarded and answered 500.
    shop.faults.inject({"fault": "malformed", "target": "orders"})
    r, _ = _profile(shop)
    assert (r.status, r.json()["errors"]) == (200, {"orders": "orders: malformed response"})


def test_without_the_user_the_profile_is_a_502(shop):
    shop.faults.inject({"fault": "crash", "target": "users"})
    r, _ = _profile(shop)
    assert r.status == 502
    assert r.json()["errors"] == {"user": "users: refused"}


def test_an_unknown_user_is_a_502_naming_the_404(shop):
    r, _ = _profile(shop, user="user-404")
    assert (r.status, r.json()["errors"]) == (502, {"user": "users: HTTP 404"})


# -- users, catalog, notifications -------------------------------------------------------------------------------


def test_users_are_seeded_and_can_be_added(world):
    world.add_service("users")
    assert call(world, "GET", "users", "/users/user-123").json()["name"] == "Customer 123"
    assert call(world, "GET", "users", "/users/user-999").status == 404
    created = call(world, "POST", "users", "/users", json={"name": "Ada", "email": "ada@example.com"})
    assert created.status == 201
    assert call(world, "GET", "users", f"/users/{created.json()['id']}").json()["name"] == "Ada"


def test_the_catalog_answers_units_on_v1_and_cents_on_v2(world):
    world.add_service("catalog")
    assert call(world, "GET", "catalog", "/v1/products/sku-1").json()["price"] == 7.49
    assert call(world, "GET", "catalog", "/products/sku-1").json()["price"] == 7.49
    v2 = call(world, "GET", "catalog", "/v2/products/sku-1").json()
    assert (v2["price_cents"], v2["currency"]) == (749, "EUR")
    assert call(world, "GET", "catalog", "/v2/products/sku-404").status == 404


def test_a_buggy_catalog_release_fails_a_seeded_share_of_lookups(make_world):
    def statuses(seed: int) -> list[int]:
        w = make_world(seed)
        w.add_service("catalog", release="v2", options={"bug_rate": 0.5})
        return [call(w, "GET", "catalog", "/v2/products/sku-1").status for _ in range(20)]

    assert statuses(1) == statuses(1)
    assert set(statuses(1)) == {200, 500}


def test_notifications_are_kept_and_found(world):
    world.add_service("notifications")
    for user, order in (("user-1", "ord-1"), ("user-2", "ord-2"), ("user-1", "ord-3")):
        call(world, "POST", "notifications", "/notifications",
             json={"user_id": user, "message": "shipped", "order_id": order})
    found = call(world, "GET", "notifications", "/notifications", params={"user_id": "user-1"}).json()
    assert [n["order_id"] for n in found] == ["ord-1", "ord-3"]
