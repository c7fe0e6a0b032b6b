"""The fault catalogue and fault schedules as plain data (harness/faults.py)."""

from __future__ import annotations

import random

import pytest

from harness.faults import (
    ALL_FAULTS,
    Fault,
    FaultError,
    parse_fault,
    parse_schedule,
    sample_latency,
)

# One minimal, valid entry per fault kind.
VALID = {
    "latency": {"fault": "latency", "target": "payments", "dist": "constant", "value": 0.2},
    "error": {"fault": "error", "target": "payments", "status": 503, "probability": 0.5},
    "hang": {"fault": "hang", "target": "payments", "route": "POST /charges"},
    "malformed": {"fault": "malformed", "target": "users-1"},
    "crash": {"fault": "crash", "target": "payments-2", "keep_state": False},
    "flap": {"fault": "flap", "target": "payments-1", "down": 1, "up": 4},
    "capacity": {"fault": "capacity", "target": "orders", "workers": 2, "queue": 0},
    "unhealthy": {"fault": "unhealthy", "target": "payments"},
    "partition": {"fault": "partition", "source": "orders", "target": "payments", "direction": "response"},
    "link-latency": {"fault": "link-latency", "source": "orders", "target": "payments", "value": 0.3},
    "duplicate": {"fault": "duplicate", "topic": "orders", "copies": 2},
    "delay": {"fault": "delay", "topic": "*", "dist": "uniform", "low": 1, "high": 2},
    "reorder": {"fault": "reorder", "topic": "orders", "window": 0.5},
    "drop-ack": {"fault": "drop-ack", "topic": "orders", "probability": 0.1},
}


def test_the_catalogue_covers_every_kind():
    assert sorted(VALID) == sorted(ALL_FAULTS)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_fault_kind_parses(kind):
    entry = VALID[kind]
    fault = parse_fault(entry)
    assert fault.kind == kind
    for key, value in entry.items():
        if key in ("target", "source", "topic", "route"):
            assert getattr(fault, key) == value
        elif key != "fault":
            assert fault.params[key] == value


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_fault_kind_parses_inside_a_schedule(kind):
    (entry,) = parse_schedule([{"at": 3, "until": 9, **VALID[kind]}])
    assert (entry.at, entry.until, entry.fault.kind) == (3.0, 9.0, kind)


def test_defaults_are_filled_in():
    fault = parse_fault({"fault": "error", "target": "payments"})
    assert fault.params == {"status": 500, "probability": 1.0}
    assert parse_fault({"fault": "crash", "target": "payments"}).params == {"keep_state": True}
    assert parse_fault({"fault": "partition", "source": "a", "target": "b"}).params == {"direction": "both"}


@pytest.mark.parametrize("dist, params", [
    ("constant", {"value": 0.5}),
    ("uniform", {"low": 0.1, "high": 0.3}),
    ("exponential", {"mean": 0.2}),
    ("lognormal", {"median": 0.05, "sigma": 0.4}),
])
def test_every_distribution_parses(dist, params):
    fault = parse_fault({"fault": "latency", "target": "payments", "dist": dist, **params})
    assert fault.params["dist"] == dist


def test_a_schedule_is_sorted_by_start_keeping_ties_in_written_order():
    schedule = parse_schedule([
        {"at": 10, "fault": "crash", "target": "payments-2", "id": "late"},
        {"at": 5, "fault": "hang", "target": "payments", "id": "first"},
        {"at": 5, "fault": "hang", "target": "orders", "id": "second"},
    ])
    assert [entry.fault.id for entry in schedule] == ["first", "second", "late"]


def test_a_schedule_may_be_wrapped_in_an_object():
    schedule = parse_schedule({"faults": [{"at": 1, "fault": "hang", "target": "payments"}]})
    assert [entry.fault.kind for entry in schedule] == ["hang"]


def test_an_empty_schedule_is_fine():
    assert parse_schedule([]) == []


# -- malformed input: one line naming the entry and the field --------------------------------

OK = {"at": 0, "fault": "hang", "target": "payments"}

MALFORMED = {
    "unknown kind": ({"at": 1, "fault": "explode", "target": "payments"}, "'explode'"),
    "missing kind": ({"at": 1, "target": "payments"}, "unknown fault None"),
    "unknown field": ({"at": 1, "fault": "hang", "target": "payments", "colour": "red"}, "'colour'"),
    "probability above 1": ({"at": 1, "fault": "error", "target": "x", "probability": 1.5}, "'probability'"),
    "negative probability": ({"at": 1, "fault": "hang", "target": "x", "probability": -0.1}, "'probability'"),
    "probability not a number": ({"at": 1, "fault": "hang", "target": "x", "probability": "often"}, "'probability'"),
    "probability a bool": ({"at": 1, "fault": "hang", "target": "x", "probability": True}, "'probability'"),
    "missing at": ({"fault": "hang", "target": "payments"}, "'at'"),
    "at not a number": ({"at": "soon", "fault": "hang", "target": "payments"}, "'at'"),
    "negative at": ({"at": -1, "fault": "hang", "target": "payments"}, "'at'"),
    "until equal to at": ({"at": 5, "until": 5, "fault": "hang", "target": "payments"}, "'until'"),
    "until before at": ({"at": 5, "until": 2, "fault": "hang", "target": "payments"}, "'until'"),
    "unknown dist": ({"at": 1, "fault": "latency", "target": "x", "dist": "gaussian"}, "dist 'gaussian'"),
    "uniform without high": ({"at": 1, "fault": "latency", "target": "x", "dist": "uniform", "low": 1}, "'high'"),
    "uniform low above high": (
        {"at": 1, "fault": "latency", "target": "x", "dist": "uniform", "low": 2, "high": 1}, "low <= high"),
    "exponential negative mean": (
        {"at": 1, "fault": "latency", "target": "x", "dist": "exponential", "mean": -1}, "'mean'"),
    "lognormal without sigma": (
        {"at": 1, "fault": "latency", "target": "x", "dist": "lognormal", "median": 0.1}, "'sigma'"),
    "constant value not a number": ({"at": 1, "fault": "latency", "target": "x", "value": "fast"}, "'value'"),
    "error status not an error": ({"at": 1, "fault": "error", "target": "x", "status": 200}, "'status'"),
    "flap down zero": ({"at": 1, "fault": "flap", "target": "x", "down": 0}, "'down'"),
    "capacity zero workers": ({"at": 1, "fault": "capacity", "target": "x", "workers": 0}, "'workers'"),
    "capacity fractional queue": ({"at": 1, "fault": "capacity", "target": "x", "queue": 1.5}, "'queue'"),
    "crash without target": ({"at": 1, "fault": "crash"}, "'target'"),
    "partition without source": ({"at": 1, "fault": "partition", "target": "payments"}, "'source'"),
    "partition sideways": (
        {"at": 1, "fault": "partition", "source": "a", "target": "b", "direction": "sideways"}, "'direction'"),
    "bus fault without topic": ({"at": 1, "fault": "duplicate"}, "'topic'"),
    "duplicate zero copies": ({"at": 1, "fault": "duplicate", "topic": "t", "copies": 0}, "'copies'"),
    "reorder negative window": ({"at": 1, "fault": "reorder", "topic": "t", "window": -1}, "'window'"),
    "route not a string": ({"at": 1, "fault": "hang", "target": "x", "route": 42}, "'route'"),
    "entry not an object": ("hang payments at 1", "expected an object"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_entry_is_one_line_naming_the_entry_and_the_field(case):
    bad, names = MALFORMED[case]
    with pytest.raises(FaultError) as caught:
        parse_schedule([OK, OK, bad])  # the bad one is entry 3
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("fault schedule entry 3: "), message
    assert names in message, message


@pytest.mark.parametrize("schedule", ["crash payments at 10", 42, None, {"fault": "hang"}])
def test_a_schedule_that_is_not_a_list_is_refused_in_one_line(schedule):
    with pytest.raises(FaultError, match=r"^fault schedule: expected a list") as caught:
        parse_schedule(schedule)
    assert "\n" not in str(caught.value)


def test_parse_fault_names_the_place_it_was_given():
    with pytest.raises(FaultError, match=r"^panel: unknown fault 'nope'"):
        parse_fault({"fault": "nope"}, where="panel")


def test_fault_error_is_a_value_error():
    assert issubclass(FaultError, ValueError)


# -- matching and describing ----------------------------------------------------------------


def test_a_target_matches_its_service_its_instance_or_everything():
    assert Fault("hang", target="payments").matches_target("payments", "payments-2")
    assert Fault("hang", target="payments-2").matches_target("payments", "payments-2")
    assert not Fault("hang", target="payments-1").matches_target("payments", "payments-2")
    assert Fault("hang").matches_target("users", "users-1")


@pytest.mark.parametrize("route, method, path, expected", [
    (None, "GET", "/anything", True),
    ("POST /charges", "POST", "/charges", True),
    ("POST /charges", "POST", "/charges/ch-1", True),
    ("POST /charges", "GET", "/charges", False),
    ("post /charges", "POST", "/charges", True),
    ("/charges", "GET", "/charges/ch-1", True),
    ("/charges", "GET", "/chargesheet", False),
    ("/", "GET", "/health", True),
])
def test_a_route_narrows_by_method_and_path_prefix(route, method, path, expected):
    assert Fault("error", route=route).matches_route(method, path) is expected


def test_describe_says_what_and_where():
    assert parse_fault(VALID["partition"]).describe() == "partition on orders->payments (direction=response)"
    assert parse_fault(VALID["duplicate"]).describe() == "duplicate on orders (probability=1.0, copies=2)"
    assert parse_fault(VALID["hang"]).describe() == "hang on payments POST /charges (probability=1.0)"


# -- latency draws ------------------------------------------------------------------------------


def test_a_constant_latency_is_exactly_its_value():
    assert sample_latency({"dist": "constant", "value": 0.2}, random.Random(1)) == 0.2


@pytest.mark.parametrize("params", [
    {"dist": "uniform", "low": 0.1, "high": 0.3},
    {"dist": "exponential", "mean": 0.2},
    {"dist": "lognormal", "median": 0.05, "sigma": 0.4},
])
def test_latency_draws_repeat_for_the_same_seed_and_differ_for_another(params):
    def draws(seed):
        rng = random.Random(seed)
        return [sample_latency(params, rng) for _ in range(5)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert all(d >= 0 for d in draws(7))


def test_uniform_draws_stay_in_their_bounds():
    rng = random.Random(3)
    draws = [sample_latency({"dist": "uniform", "low": 0.1, "high": 0.3}, rng) for _ in range(200)]
    assert min(draws) >= 0.1 and max(draws) <= 0.3


@pytest.mark.parametrize("params", [
    {"dist": "exponential", "mean": 0},
    {"dist": "lognormal", "median": 0, "sigma": 1},
])
def test_a_zero_centre_means_no_delay(params):
    assert sample_latency(params, random.Random(1)) == 0.0
