"""The recorder: exchanges, events, metrics with nearest-rank quantiles, and the digest."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from harness import NetworkError, Recorder, World, quantile
from harness.recorder import QUANTILE_METHOD


def _rec(*rows) -> Recorder:
    """A recorder from ``(start, end, caller, instance, status[, outcome])`` rows on GET /x."""
    rec = Recorder()
    for start, end, caller, instance, status, *outcome in rows:
        service = instance.rsplit("-", 1)[0]
        rec.exchange(start, end, caller, service, instance, "GET", "/x", status, *outcome)
    return rec


# -- quantiles --------------------------------------------------------------------------------


@pytest.mark.parametrize("q, expected", [(0.5, 3), (0.9, 5), (0.99, 5), (0.2, 1), (0.21, 2), (1.0, 5)])
def test_nearest_rank_quantile_of_five_values(q, expected):
    assert quantile([5, 1, 4, 2, 3], q) == expected


def test_quantile_of_nothing_is_none():
    assert quantile([], 0.5) is None


def test_quantile_of_one_value_is_that_value_for_every_q():
    assert [quantile([0.7], q) for q in (0.01, 0.5, 0.99, 1.0)] == [0.7] * 4


def test_quantile_always_returns_an_observed_value():
    values = [0.1, 0.2, 0.9, 1.3]
    assert quantile(values, 0.5) == 0.2  # rank ceil(2.0) = 2; no interpolation to 0.55
    assert quantile(values, 0.75) == 0.9


def test_quantile_ranks_on_a_hundred_values():
    values = list(range(100, 0, -1))  # 1..100, shuffled order does not matter
    assert (quantile(values, 0.5), quantile(values, 0.9), quantile(values, 0.99)) == (50, 90, 99)


def test_p99_of_fewer_than_a_hundred_samples_is_the_maximum():
    assert quantile(list(range(1, 51)), 0.99) == 50


def test_quantile_does_not_reorder_its_input():
    values = [5, 1, 4]
    quantile(values, 0.5)
    assert values == [5, 1, 4]


@pytest.mark.parametrize("q", [0, -0.5, 1.5])
@pytest.mark.parametrize("values", [[1, 2, 3], []])
def test_quantile_refuses_q_outside_zero_to_one(values, q):
    with pytest.raises(ValueError, match=r"q must be in \(0, 1\]"):
        quantile(values, q)


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_per_service():
    rec = _rec(
        (0.0, 0.25, "client", "users-1", 200),
        (1.0, 1.5, "client", "users-2", 200),
        (2.0, 2.125, "client", "users-1", 503),
        (3.0, 3.5, "client", "orders-1", 201),
    )
    m = rec.metrics()
    assert sorted(m) == ["orders", "users"]
    users = m["users"]
    assert (users["requests"], users["errors"], users["error_rate"]) == (3, 1, 1 / 3)
    assert (users["p50"], users["p90"], users["p99"]) == (0.25, 0.5, 0.5)
    assert users["rate"] == 3 / 2.0  # three requests started between t=0 and t=2
    assert users["quantile_method"] == QUANTILE_METHOD == "nearest-rank"
    assert m["orders"]["rate"] is None  # one request: no window to divide by


def test_metrics_per_instance():
    rec = _rec(
        (0.0, 0.5, "client", "users-1", 200),
        (0.0, 0.25, "client", "users-2", 500),
        (1.0, 1.5, "client", "users-1", 200),
    )
    m = rec.metrics(by="instance")
    assert sorted(m) == ["users-1", "users-2"]
    assert (m["users-1"]["requests"], m["users-1"]["errors"], m["users-1"]["p50"]) == (2, 0, 0.5)
    assert (m["users-2"]["requests"], m["users-2"]["error_rate"], m["users-2"]["p50"]) == (1, 1.0, 0.25)


def test_a_call_that_never_reached_an_instance_is_grouped_as_unknown():
    rec = Recorder()
    rec.exchange(0.0, 0.0, "client", "nowhere", None, "GET", "/", None, "refused")
    assert list(rec.metrics(by="instance")) == ["?"]


@pytest.mark.parametrize("status, outcome, counts", [
    (200, None, False), (201, None, False), (302, None, False),
    (400, None, False), (404, None, False), (409, None, False), (429, None, False),
    (500, None, True), (502, None, True), (503, None, True),
    (None, "timeout", True), (None, "refused", True), (None, "reset", True),
])
def test_errors_are_5xx_and_calls_without_a_response_but_not_4xx(status, outcome, counts):
    rec = _rec((0.0, 1.0, "client", "payments-1", status, outcome))
    assert rec.metrics()["payments"]["errors"] == int(counts)
    assert rec.exchanges[0].failed is counts


def test_outcomes_are_derived_from_the_status():
    rec = _rec(
        (0, 0, "c", "a-1", 200), (0, 0, "c", "a-1", 404), (0, 0, "c", "a-1", 503), (0, 0, "c", "a-1", None),
    )
    assert [x.outcome for x in rec.exchanges] == ["ok", "client-error", "error", "timeout"]


def test_metrics_in_a_window_count_requests_by_their_start_and_divide_by_the_window():
    rec = _rec(*[(float(t), t + 0.1, "client", "users-1", 200) for t in range(10)])
    m = rec.metrics(since=2.0, until=6.0)["users"]
    assert m["requests"] == 4  # started at 2, 3, 4, 5: the window is half-open
    assert m["rate"] == 1.0


def test_metrics_of_one_caller():
    rec = _rec((0, 1, "browser", "users-1", 200), (0, 2, "orders-1", "users-1", 200))
    assert rec.metrics(caller="orders")["users"]["requests"] == 1


def test_by_status_counts_codes_and_outcomes():
    rec = _rec(
        (0, 1, "c", "a-1", 200), (0, 1, "c", "a-1", 200), (0, 1, "c", "a-1", 503),
        (0, 1, "c", "a-1", None, "refused"),
    )
    assert rec.by_status() == {"200": 2, "503": 1, "refused": 1}


# -- select, events, listeners ----------------------------------------------------------------------


@pytest.fixture
def history() -> Recorder:
    rec = Recorder()
    rec.exchange(0.0, 0.1, "client", "users", "users-1", "GET", "/users/user-1", 200)
    rec.exchange(1.0, 1.1, "orders-1", "payments", "payments-2", "POST", "/charges", 201)
    rec.exchange(2.0, 2.1, "orders-2", "payments", "payments-1", "GET", "/charges/ch-1", 200)
    rec.exchange(3.0, 3.1, "ordersync", "payments", "payments-1", "POST", "/refunds", 201)
    return rec


@pytest.mark.parametrize("filters, starts", [
    ({}, [0.0, 1.0, 2.0, 3.0]),
    ({"service": "payments"}, [1.0, 2.0, 3.0]),
    ({"caller": "orders"}, [1.0, 2.0]),  # a service name matches its instances, not "ordersync"
    ({"caller": "orders-2"}, [2.0]),
    ({"instance": "payments-1"}, [2.0, 3.0]),
    ({"path": "/charges"}, [1.0, 2.0]),
    ({"method": "POST"}, [1.0, 3.0]),
    ({"since": 1.0, "until": 3.0}, [1.0, 2.0]),
    ({"service": "payments", "method": "POST", "since": 2.0}, [3.0]),
])
def test_select_keeps_exchanges_matching_every_filter(history, filters, starts):
    assert [x.start for x in history.select(**filters)] == starts


def test_events_are_kept_in_order_and_found_by_kind_and_subject():
    rec = Recorder()
    rec.event(1.0, "crash", "payments-2")
    rec.event(2.0, "breaker", "orders-1->payments", state="open")
    rec.event(3.0, "restart", "payments-2", keep_state=True)
    assert [e.kind for e in rec.events_of(subject="payments-2")] == ["crash", "restart"]
    (opened,) = rec.events_of("breaker")
    assert (opened.t, opened.data) == (2.0, {"state": "open"})


def test_listeners_see_every_record_as_it_happens():
    rec = Recorder()
    seen = []
    rec.listeners.append(seen.append)
    x = rec.exchange(0.0, 0.1, "client", "users", "users-1", "GET", "/", 200)
    e = rec.event(0.1, "crash", "users-1")
    assert seen == [x, e]


def test_headers_are_dropped_when_not_kept():
    rec = Recorder(keep_headers=False)
    x = rec.exchange(0, 1, "c", "a", "a-1", "GET", "/", 200, request_headers={"traceparent": "00-ab"},
                     response_headers={"x": "y"})
    assert (x.request_headers, x.response_headers) == (None, None)


def test_clear_forgets_the_history():
    rec = _rec((0, 1, "c", "a-1", 200))
    rec.event(0, "crash", "a-1")
    rec.clear()
    assert (rec.exchanges, rec.events, rec.metrics()) == ([], [], {})


# -- the digest ---------------------------------------------------------------------------------------


def _shop_run(seed: int) -> World:
    world = World(seed=seed)
    world.add_service("payments", instances=2)
    world.faults.inject({"fault": "latency", "target": "payments", "dist": "exponential", "mean": 0.1})
    world.faults.inject({"fault": "error", "target": "payments-2", "status": 503, "probability": 0.5})
    world.faults.schedule([{"at": 1.0, "until": 1.5, "fault": "crash", "target": "payments-1"}])

    async def traffic():
        for i in range(20):
            with contextlib.suppress(NetworkError):
                await world.client().post("payments", "/charges", json={"order_id": f"o{i}", "amount": 5},
                                          timeout=0.3)
            await asyncio.sleep(0.1)

    world.run(traffic())
    world.close()
    return world


def test_the_digest_is_the_same_for_the_same_seed_and_differs_for_another():
    first, again, other = _shop_run(7), _shop_run(7), _shop_run(8)
    assert first.digest() == again.digest()
    assert first.digest() != other.digest()
    assert len(first.digest()) == 64


def test_the_digest_covers_every_exchange_and_event():
    rec = _rec((0.0, 0.1, "c", "a-1", 200))
    before = rec.digest()
    rec.event(0.1, "crash", "a-1")
    after_event = rec.digest()
    rec.exchange(0.2, 0.3, "c", "a", "a-1", "GET", "/x", 200)
    assert len({before, after_event, rec.digest()}) == 3


def test_the_digest_sees_a_change_in_time_or_status():
    assert _rec((0.0, 0.1, "c", "a-1", 200)).digest() != _rec((0.0, 0.1000001, "c", "a-1", 200)).digest()
    assert _rec((0.0, 0.1, "c", "a-1", 200)).digest() != _rec((0.0, 0.1, "c", "a-1", 201)).digest()


def test_an_empty_history_has_the_digest_of_nothing():
    assert Recorder().digest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_the_network_records_what_the_caller_saw(world):
    world.add_service("users")
    world.run(world.client("browser").get("users", "/users/user-1", headers={"X-Trace": "t1"}))
    (x,) = world.recorder.exchanges
    assert (x.caller, x.service, x.instance, x.method, x.path, x.status) == (
        "browser", "users", "users-1", "GET", "/users/user-1", 200)
    assert x.request_headers == {"X-Trace": "t1"}
    assert x.response_headers["content-type"] == "application/json"


def test_nearest_rank_is_not_fooled_by_float_noise():
    # 0.07 * 100 is 7.000000000000001 in floats: the rank is still 7.
    assert quantile(list(range(1, 101)), 0.07) == 7
