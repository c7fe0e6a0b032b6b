"""Faults switched on and off in a running world, and what a caller sees (injector + network)."""

from __future__ import annotations

import asyncio

import pytest

from harness import (
    ConnectError,
    ConnectionReset,
    Deadlock,
    FaultError,
    MalformedResponse,
    RequestTimeout,
    World,
)
from harness.faults import INSTANCE_FAULTS

CHARGE = {"order_id": "ord-1", "amount": 20.0}


def _payments(world: World, instances: int = 1) -> None:
    world.add_service("payments", instances=instances)


def _charges(world: World) -> list[dict]:
    return list(world.db("payments").get("charges", {}).values())


def _events(world: World, *kinds: str) -> list[tuple[float, str, str]]:
    return [(e.t, e.kind, e.subject) for e in world.recorder.events if not kinds or e.kind in kinds]


async def _ended_at(world: World, call) -> float:
    await call
    return world.now()


# -- latency ------------------------------------------------------------------------------------


def test_constant_latency_makes_a_call_end_at_exactly_its_value(world):
    _payments(world)
    world.faults.inject({"fault": "latency", "target": "payments", "dist": "constant", "value": 0.2})
    assert world.run(_ended_at(world, world.client().get("payments", "/health"))) == 0.2
    assert world.recorder.exchanges[-1].latency == 0.2


def test_latency_on_a_route_slows_only_that_route(world):
    _payments(world)
    world.faults.inject({"fault": "latency", "target": "payments", "route": "POST /charges", "value": 0.5})
    client = world.client()
    assert world.run(_ended_at(world, client.get("payments", "/health"))) == 0.0
    assert world.run(_ended_at(world, client.post("payments", "/charges", json=CHARGE))) == 0.5


def test_latency_on_one_instance_leaves_the_others_fast(world):
    _payments(world, instances=2)
    world.faults.inject({"fault": "latency", "target": "payments-2", "value": 1.0})
    client = world.client()
    assert world.run(_ended_at(world, client.get("payments", "/health"))) == 0.0  # payments-1
    assert world.run(_ended_at(world, client.get("payments", "/health"))) == 1.0  # payments-2


@pytest.mark.parametrize("dist", [
    {"dist": "uniform", "low": 0.1, "high": 0.5},
    {"dist": "exponential", "mean": 0.2},
    {"dist": "lognormal", "median": 0.1, "sigma": 0.5},
])
def test_latency_draws_are_the_same_for_the_same_seed_and_differ_for_another(make_world, dist):
    def latencies(seed: int) -> list[float]:
        w = make_world(seed, payments=2)
        w.faults.inject({"fault": "latency", "target": "payments", **dist})

        async def calls():
            for _ in range(5):
                await w.client().get("payments", "/health")

        w.run(calls())
        return [x.latency for x in w.recorder.exchanges]

    assert latencies(3) == latencies(3)
    assert latencies(3) != latencies(4)


# -- errors -------------------------------------------------------------------------------------


def test_an_error_fault_answers_its_status_without_running_the_app(world):
    _payments(world)
    world.faults.inject({"fault": "error", "target": "payments", "status": 503})
    response = world.run(world.client().post("payments", "/charges", json=CHARGE))
    assert response.status == 503
    assert _charges(world) == []
    recorded = world.recorder.exchanges[-1]
    assert (recorded.status, recorded.outcome, recorded.error) == (503, "error", "injected 503")


def test_error_probability_is_a_coin_drawn_from_the_seed(make_world):
    def statuses(seed: int) -> list[int]:
        w = make_world(seed, payments=1)
        w.faults.inject({"fault": "error", "target": "payments", "status": 500, "probability": 0.3})

        async def calls():
            return [(await w.client().get("payments", "/health")).status for _ in range(100)]

        return w.run(calls())

    first = statuses(5)
    assert first == statuses(5)
    assert first != statuses(6)
    assert set(first) == {200, 500}
    assert 10 <= first.count(500) <= 50


def test_faults_compose_in_the_order_they_were_switched_on(world):
    _payments(world)
    world.faults.inject({"fault": "latency", "target": "payments", "value": 0.25})
    world.faults.inject({"fault": "error", "target": "payments", "status": 429})
    response = world.run(world.client().get("payments", "/health"))
    assert (response.status, world.now()) == (429, 0.25)


# -- hangs --------------------------------------------------------------------------------------


def test_a_hang_makes_the_caller_time_out_at_exactly_its_timeout_and_the_server_does_nothing(world):
    _payments(world)
    world.faults.inject({"fault": "hang", "target": "payments"})

    async def call():
        with pytest.raises(RequestTimeout) as caught:
            await world.client().post("payments", "/charges", json=CHARGE, timeout=30)
        return caught.value.at, world.now()

    assert world.run(call()) == (30.0, 30.0)
    assert _charges(world) == []
    assert world.instances("payments")[0].capacity.busy == 0
    recorded = world.recorder.exchanges[-1]
    assert (recorded.start, recorded.end, recorded.status, recorded.outcome) == (0.0, 30.0, None, "timeout")


def test_a_hang_on_a_route_leaves_other_routes_alone(world):
    _payments(world)
    world.faults.inject({"fault": "hang", "target": "payments", "route": "POST /charges"})
    assert world.run(world.client().get("payments", "/health", timeout=1)).status == 200


def test_waiting_on_a_hang_without_a_timeout_is_a_deadlock(world):
    _payments(world)
    world.faults.inject({"fault": "hang", "target": "payments"})
    with pytest.raises(Deadlock):
        world.run(world.client().get("payments", "/health"))


# -- crash and restart --------------------------------------------------------------------------


def test_a_crashed_instance_refuses_connections_at_once(world):
    _payments(world)
    world.run(until=3.0)
    world.faults.inject({"fault": "crash", "target": "payments-1"})

    async def call():
        with pytest.raises(ConnectError, match="connection refused by payments-1"):
            await world.client().get("payments", "/health", timeout=30)
        return world.now()

    assert world.run(call()) == 3.0
    assert world.recorder.exchanges[-1].outcome == "refused"


def test_a_crash_resets_the_request_in_flight_at_the_instant_of_the_crash(world):
    _payments(world)
    world.faults.inject({"fault": "latency", "target": "payments", "value": 1.0})
    world.loop.call_at(0.5, lambda: world.faults.inject({"fault": "crash", "target": "payments-1"}))

    async def call():
        with pytest.raises(ConnectionReset):
            await world.client().post("payments", "/charges", json=CHARGE, timeout=30)
        return world.now()

    assert world.run(call()) == 0.5
    assert _charges(world) == []
    recorded = world.recorder.exchanges[-1]
    assert (recorded.end, recorded.outcome) == (0.5, "reset")


def test_a_crash_resets_requests_waiting_in_the_queue_too(world):
    world.add_service("payments", workers=1, queue=4)
    world.faults.inject({"fault": "latency", "target": "payments", "value": 1.0})
    world.loop.call_at(0.5, lambda: world.faults.inject({"fault": "crash", "target": "payments-1"}))

    async def two():
        calls = (world.client().get("payments", "/health", timeout=30) for _ in range(2))
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = world.run(two())
    assert [type(o) for o in outcomes] == [ConnectionReset, ConnectionReset]
    assert [(x.end, x.outcome) for x in world.recorder.exchanges] == [(0.5, "reset"), (0.5, "reset")]


def test_a_restart_without_keeping_state_loses_local_memory_but_keeps_the_database(world):
    _payments(world)
    instance = world.instances("payments")[0]
    world.run(world.client().post("payments", "/charges", json=CHARGE))
    instance.ctx.local["cache"] = "warm"
    old_app = instance.app
    world.faults.inject({"fault": "crash", "target": "payments-1", "keep_state": False}).clear()
    assert instance.up
    assert instance.ctx.local == {}
    assert instance.app is not old_app
    assert [c["order_id"] for c in _charges(world)] == ["ord-1"]
    found = world.run(world.client().get("payments", "/charges", params={"order_id": "ord-1"}))
    assert len(found.json()) == 1


def test_a_restart_keeping_state_keeps_local_memory(world):
    _payments(world)
    instance = world.instances("payments")[0]
    instance.ctx.local["cache"] = "warm"
    world.faults.inject({"fault": "crash", "target": "payments-1"}).clear()
    assert instance.ctx.local == {"cache": "warm"}


def test_crashing_a_service_crashes_every_instance(world):
    _payments(world, instances=3)
    world.faults.inject({"fault": "crash", "target": "payments"})
    assert [i.up for i in world.instances("payments")] == [False, False, False]


def test_overlapping_crashes_keep_an_instance_down_until_the_last_is_cleared(world):
    _payments(world, instances=2)
    world.faults.schedule([
        {"at": 10, "until": 40, "fault": "crash", "target": "payments-2"},
        {"at": 20, "until": 30, "fault": "crash", "target": "payments"},
    ])
    world.run(until=50)
    assert _events(world, "crash", "restart") == [
        (10.0, "crash", "payments-2"),
        (20.0, "crash", "payments-1"),
        (30.0, "restart", "payments-1"),  # payments-2 is still held down by the first crash
        (40.0, "restart", "payments-2"),
    ]


def test_memory_lost_by_any_overlapping_crash_stays_lost(world):
    _payments(world)
    instance = world.instances("payments")[0]
    instance.ctx.local["cache"] = "warm"
    forgetful = world.faults.inject({"fault": "crash", "target": "payments-1", "keep_state": False})
    patient = world.faults.inject({"fault": "crash", "target": "payments"})
    forgetful.clear()
    assert not instance.up and instance.ctx.local == {"cache": "warm"}
    patient.clear()
    assert instance.up and instance.ctx.local == {}


def test_flapping_does_not_bring_back_an_instance_a_crash_holds_down(world):
    _payments(world)
    world.faults.inject({"fault": "crash", "target": "payments-1"})
    world.faults.inject({"fault": "flap", "target": "payments-1", "down": 1, "up": 1})
    world.run(until=5)
    assert not world.instances("payments")[0].up
    assert _events(world, "restart") == []


def test_flapping_goes_down_and_up_for_exact_periods(world):
    _payments(world)
    world.run(until=1.0)
    handle = world.faults.inject({"fault": "flap", "target": "payments-1", "down": 2, "up": 3})
    world.run(until=11.5)
    assert _events(world, "crash", "restart") == [
        (1.0, "crash", "payments-1"), (3.0, "restart", "payments-1"),
        (6.0, "crash", "payments-1"), (8.0, "restart", "payments-1"),
        (11.0, "crash", "payments-1"),
    ]
    handle.clear()
    assert world.instances("payments")[0].up
    assert _events(world)[-2:] == [
        (11.5, "restart", "payments-1"), (11.5, "fault-off", "flap on payments-1 (down=2, up=3)"),
    ]


def test_a_flapping_instance_refuses_only_while_down(world):
    _payments(world)
    world.faults.inject({"fault": "flap", "target": "payments-1", "down": 2, "up": 3})

    async def probe_at(t: float) -> str:
        await asyncio.sleep(t - world.now())
        try:
            return str((await world.client().get("payments", "/health", timeout=1)).status)
        except ConnectError:
            return "refused"

    async def probes():
        return [await probe_at(t) for t in (1.0, 2.5, 4.0, 5.5)]

    assert world.run(probes()) == ["refused", "200", "200", "refused"]


# -- the network: partitions and link latency ---------------------------------------------------


@pytest.fixture
def orders_and_payments(world):
    world.add_service("orders")
    world.add_service("payments")
    return world.instances("orders")[0].ctx, world.instances("payments")[0].ctx


def _outcome(world: World, call) -> tuple[str, float]:
    async def go():
        try:
            response = await call
        except RequestTimeout:
            return "timeout", world.now()
        return str(response.status), world.now()

    return world.run(go())


def test_a_partition_both_ways_cuts_both_directions_and_nothing_else(world, orders_and_payments):
    orders, payments = orders_and_payments
    world.faults.inject({"fault": "partition", "source": "orders", "target": "payments"})
    assert _outcome(world, orders.call("payments", "POST", "/charges", json=CHARGE, timeout=5)) == ("timeout", 5.0)
    assert _outcome(world, payments.call("orders", "GET", "/orders", timeout=5)) == ("timeout", 10.0)
    assert _outcome(world, world.client().get("payments", "/health", timeout=5)) == ("200", 10.0)
    assert _charges(world) == []


def test_a_request_partition_drops_requests_one_way(world, orders_and_payments):
    orders, payments = orders_and_payments
    world.faults.inject({"fault": "partition", "source": "orders", "target": "payments", "direction": "request"})
    assert _outcome(world, orders.call("payments", "POST", "/charges", json=CHARGE, timeout=5)) == ("timeout", 5.0)
    assert _charges(world) == []
    assert _outcome(world, payments.call("orders", "GET", "/orders", timeout=5)) == ("200", 5.0)


def test_a_response_partition_lets_the_server_work_but_the_caller_never_hears(world, orders_and_payments):
    orders, _ = orders_and_payments
    world.faults.inject({"fault": "partition", "source": "orders", "target": "payments", "direction": "response"})
    assert _outcome(world, orders.call("payments", "POST", "/charges", json=CHARGE, timeout=5)) == ("timeout", 5.0)
    assert [(c["order_id"], c["at"]) for c in _charges(world)] == [("ord-1", 0.0)]
    assert world.instances("payments")[0].capacity.busy == 0


def test_link_latency_slows_only_that_link(world, orders_and_payments):
    orders, _ = orders_and_payments
    world.faults.inject({"fault": "link-latency", "source": "orders", "target": "payments", "value": 0.3})
    assert _outcome(world, orders.call("payments", "GET", "/health")) == ("200", 0.3)
    assert _outcome(world, world.client().get("payments", "/health")) == ("200", 0.3)  # no delay from outside


# -- malformed answers and capacity --------------------------------------------------------------


def test_a_malformed_answer_keeps_its_status_but_its_body_is_not_json(world):
    world.add_service("users")
    world.faults.inject({"fault": "malformed", "target": "users"})
    response = world.run(world.client().get("users", "/users/user-1"))
    assert response.status == 200
    with pytest.raises(MalformedResponse, match="users-1"):
        response.json()


def test_a_capacity_fault_shrinks_the_pool_and_clearing_it_restores_it(world):
    world.add_service("payments", instances=2, workers=8, queue=4)
    handle = world.faults.inject({"fault": "capacity", "target": "payments-1", "workers": 1, "queue": 0})
    first, second = world.instances("payments")
    assert (first.capacity.workers, first.capacity.queue) == (1, 0)
    assert (second.capacity.workers, second.capacity.queue) == (8, 4)
    handle.clear()
    assert (first.capacity.workers, first.capacity.queue) == (8, 4)


def test_a_shrunk_pool_turns_the_second_concurrent_call_away(world):
    _payments(world)
    world.faults.inject({"fault": "capacity", "target": "payments", "workers": 1, "queue": 0})
    world.faults.inject({"fault": "latency", "target": "payments", "value": 1.0})

    async def two():
        return await asyncio.gather(*(world.client().get("payments", "/health") for _ in range(2)))

    assert sorted(r.status for r in world.run(two())) == [200, 503]


def test_overlapping_capacity_faults_can_be_cleared_in_any_order(world):
    # Regression: each fault restored the limits it found, so clearing the first one
    # undid the second while it was still on, and clearing the second left the first's.
    world.add_service("payments", workers=8, queue=4)
    instance = world.instances("payments")[0]

    def pool():
        return instance.capacity.workers, instance.capacity.queue

    wide = world.faults.inject({"fault": "capacity", "target": "payments", "workers": 4, "queue": 2})
    narrow = world.faults.inject({"fault": "capacity", "target": "payments-1", "workers": 1, "queue": 0})
    assert pool() == (1, 0)
    wide.clear()
    assert pool() == (1, 0)
    narrow.clear()
    assert pool() == (8, 4)


# -- switching, events and schedules ----------------------------------------------------------------


def test_switching_faults_is_recorded_with_exact_times(world):
    _payments(world, instances=2)
    world.faults.schedule([{"at": 10, "until": 40, "fault": "crash", "target": "payments-2"}])
    world.run(until=50)
    assert _events(world) == [
        (10.0, "fault-on", "crash on payments-2 (keep_state=True)"),
        (10.0, "crash", "payments-2"),
        (40.0, "restart", "payments-2"),
        (40.0, "fault-off", "crash on payments-2 (keep_state=True)"),
    ]


def test_a_scheduled_fault_applies_and_clears_at_exact_times(world):
    _payments(world)
    world.faults.schedule([{"at": 5, "until": 8, "fault": "error", "target": "payments", "status": 503}])

    async def probes():
        statuses = []
        for t in (4.5, 5.0, 7.5, 8.5):
            await asyncio.sleep(t - world.now())
            statuses.append((t, (await world.client().get("payments", "/health")).status))
        return statuses

    assert world.run(probes()) == [(4.5, 200), (5.0, 503), (7.5, 503), (8.5, 200)]
    assert [(t, kind) for t, kind, _ in _events(world)] == [(5.0, "fault-on"), (8.0, "fault-off")]


def test_a_fault_without_until_stays_on(world):
    _payments(world)
    world.faults.schedule([{"at": 2, "fault": "hang", "target": "payments", "id": "outage"}])
    world.run(until=100)
    (handle,) = world.faults.handles
    assert (handle.fault.id, handle.active) == ("outage", True)
    world.faults.clear("outage")
    assert world.faults.handles == []


def test_a_schedule_may_be_wrapped_in_an_object_like_parse_schedule_accepts(world):
    # Regression: schedule({"faults": [...]}) raised KeyError: 0.
    _payments(world)
    world.faults.schedule({"faults": [{"at": 1, "until": 2, "fault": "hang", "target": "payments"}]})
    world.run(until=3)
    assert [kind for _, kind, _ in _events(world)] == ["fault-on", "fault-off"]


@pytest.mark.parametrize("schedule", ["hang payments at 1", 7])
def test_a_schedule_that_is_not_a_list_is_a_fault_error(world, schedule):
    with pytest.raises(FaultError, match="expected a list"):
        world.faults.schedule(schedule)


@pytest.mark.parametrize("entry, name", [
    ({"at": 40, "fault": "crash", "target": "paymnets-2"}, "'paymnets-2'"),
    ({"at": 40, "fault": "partition", "source": "ordres", "target": "payments"}, "'ordres'"),
])
def test_a_schedule_naming_an_unknown_target_fails_when_scheduled_in_one_line(world, entry, name):
    _payments(world)
    world.add_service("orders")
    with pytest.raises(FaultError) as caught:
        world.faults.schedule([entry])
    message = str(caught.value)
    assert name in message and "orders, payments" in message and "\n" not in message
    assert world.recorder.events == [] and world.faults.handles == []


def test_a_schedule_may_name_bus_topics_and_the_outside_client(world):
    _payments(world)
    world.faults.schedule([
        {"at": 1, "fault": "duplicate", "topic": "orders"},
        {"at": 1, "fault": "partition", "source": "client", "target": "payments"},
    ])
    world.run(until=2)
    assert len(world.faults.handles) == 2


@pytest.mark.parametrize("kind", INSTANCE_FAULTS)
def test_injecting_an_instance_fault_on_an_unknown_target_switches_nothing_on(world, kind):
    # Regression: a KeyError came out after the handle was registered and 'fault-on' recorded,
    # leaving a fault that could never be cleared.
    _payments(world)
    with pytest.raises(FaultError, match="'paymnets'"):
        world.faults.inject({"fault": kind, "target": "paymnets"})
    assert world.faults.handles == [] and world.recorder.events == []
    world.faults.clear_all()


def test_clearing_is_idempotent_and_works_by_handle_key_or_id(world):
    _payments(world)
    a = world.faults.inject({"fault": "hang", "target": "payments"})
    b = world.faults.inject({"fault": "error", "target": "payments", "id": "errors"})
    c = world.faults.inject({"fault": "malformed", "target": "payments"})
    a.clear()
    a.clear()
    world.faults.clear("errors")
    world.faults.clear(c.key)
    assert (a.active, b.active, c.active) == (False, False, False)
    assert not world.faults.active
    assert [kind for _, kind, _ in _events(world)].count("fault-off") == 3


def test_clear_all_switches_every_fault_off(world):
    _payments(world, instances=2)
    world.faults.inject({"fault": "crash", "target": "payments-1"})
    world.faults.inject({"fault": "latency", "target": "payments", "value": 1})
    world.faults.clear_all()
    assert world.faults.handles == [] and all(i.up for i in world.instances("payments"))


# -- the saga lesson: giving up does not cancel the other side ----------------------------------------


def test_the_callers_timeout_does_not_cancel_the_server_side_work(world):
    _payments(world)
    world.faults.inject({"fault": "latency", "target": "payments", "route": "POST /charges", "value": 10})

    async def impatient_checkout():
        with pytest.raises(RequestTimeout):
            await world.client().post("payments", "/charges", json=CHARGE, timeout=1)
        gave_up_at, charges_then = world.now(), len(_charges(world))
        await asyncio.sleep(20)
        return gave_up_at, charges_then

    assert world.run(impatient_checkout()) == (1.0, 0)
    assert [(c["order_id"], c["at"]) for c in _charges(world)] == [("ord-1", 10.0)]
    assert world.recorder.exchanges[-1].outcome == "timeout"


def test_a_partition_may_cut_off_a_named_client_or_everyone(world):
    world.add_service("payments")
    customer = world.client("customer")
    world.faults.schedule([{"at": 0, "fault": "partition", "source": "customer", "target": "payments"},
                           {"at": 0, "fault": "partition", "source": "*", "target": "payments", "until": 1}])
    with pytest.raises(RequestTimeout):
        world.run(customer.get("payments", "/health", timeout=2))
