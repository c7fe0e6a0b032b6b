"""The world as notebooks use it: inside a running event loop, and its ops faults."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from harness import NetworkError, World


def test_world_runs_inside_an_already_running_loop_like_jupyter():
    # A Jupyter kernel keeps its own asyncio loop running while a cell executes.
    world = World(seed=1)
    world.add_service("users")

    async def cell():
        outer = asyncio.get_running_loop()
        status = world.run(world.client().get("users", "/users/user-1")).status
        assert asyncio.get_running_loop() is outer, "the kernel's loop must be put back"
        return status

    assert asyncio.run(cell()) == 200
    world.close()


def test_a_world_cannot_run_inside_itself():
    world = World(seed=1)

    async def nested():
        inner = asyncio.sleep(1)
        try:
            world.run(inner)
        finally:
            inner.close()

    with pytest.raises(RuntimeError):
        world.run(nested())
    world.close()


def test_unhealthy_fault_fails_the_deep_health_check_of_every_instance_until_cleared(world):
    world.add_service("payments", instances=2)
    client = world.client()
    handle = world.faults.inject({"fault": "unhealthy", "target": "payments"})
    answers = [world.run(client.get(f"payments-{n}", "/health")) for n in (1, 2)]
    assert [a.status for a in answers] == [503, 503]
    assert answers[0].json()["checks"] == {"database": "unreachable"}
    handle.clear()
    assert world.run(client.get("payments-1", "/health")).status == 200
    kinds = [(e.kind, e.data["fault"]) for e in world.recorder.events]
    assert kinds == [("fault-on", "unhealthy"), ("fault-off", "unhealthy")]


def test_latency_description_shows_only_its_distribution_parameters(world):
    handle = world.faults.inject({"fault": "latency", "target": "*", "dist": "lognormal", "median": 0.05, "sigma": 0.8})
    assert handle.fault.describe() == "latency on * (dist=lognormal, median=0.05, sigma=0.8, probability=1.0)"


def _open_loop_history(use_fire: bool) -> list[str]:
    from harness.load import open_loop

    world = World(seed=4)
    world.add_service("payments", instances=2)
    # Constant latency: with random draws the two ways interleave draws differently
    # (both deterministic, but not draw-for-draw the same).
    world.faults.inject({"fault": "latency", "target": "payments", "dist": "constant", "value": 0.3})
    world.faults.schedule([
        {"at": 1, "until": 3, "fault": "hang", "target": "payments-1"},
        {"at": 2, "until": 2.5, "fault": "crash", "target": "payments-2"},
    ])
    client = world.client("shopper")

    def fired(i):
        world.net.fire("POST", "payments", "/charges", caller="shopper", timeout=0.5,
                       json={"order_id": f"o-{i}", "amount": 5})

    async def awaited(i):
        with contextlib.suppress(NetworkError):
            await client.post("payments", "/charges", json={"order_id": f"o-{i}", "amount": 5}, timeout=0.5)

    # Arrivals never coincide with a fault switching (t = 1, 2, 2.5, 3): at a
    # tie, which goes first is deterministic but differs between the two ways.
    open_loop(world, 40, start=0.0125, until=5.0, fire=fired if use_fire else awaited)
    world.run(until=8.0)
    world.close()
    return sorted(x.line() for x in world.recorder.exchanges)


def test_fire_records_the_same_history_as_awaited_requests():
    fired = _open_loop_history(use_fire=True)
    awaited = _open_loop_history(use_fire=False)
    assert fired == awaited
    outcomes = {line.split("|")[-1] for line in fired}
    assert {"ok", "timeout", "refused"} <= outcomes


def test_a_closed_world_is_freed_even_when_an_endpoint_holds_a_breaker():
    # FastAPI memoizes endpoint functions; the cascade's orders endpoints close over a
    # breaker that holds the world. Repeated runs in a notebook must not pile worlds up.
    import gc
    import weakref

    from harness.scenarios import cascade

    result = cascade.run(seed=1, variants=["breaker+timeout"], duration=2)
    world = weakref.ref(result.variants[0].world)
    del result
    gc.collect()
    assert world() is None


def test_a_world_dropped_unclosed_is_freed_without_messages(caplog):
    # A notebook cell that raised half-way leaves its world unclosed, with background
    # tasks never started: freeing it later must not print warnings into another cell.
    import gc
    import warnings

    from harness.world import _forget_endpoints

    world = World(seed=1)
    world.add_service("catalog")
    world.faults.schedule([{"at": 5, "until": 6, "fault": "crash", "target": "catalog-1"}])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del world
        _forget_endpoints()  # as when another world closes: nothing holds this one any more
        gc.collect()
    # (Whether a never-started task's coroutine warns depends on the order in which the
    # collector finalizes the world and it: the world closes such coroutines when it goes
    # first; scenario runners close their worlds on errors, so they never get here.)
    assert [str(w.message) for w in caught if "never awaited" not in str(w.message)] == []
    assert "destroyed but it is pending" not in caplog.text


def test_a_scenario_whose_learner_code_raises_closes_its_world():
    import gc
    import warnings
    import weakref

    from harness.scenarios import flapping

    worlds = []

    def broken_discovery(world):
        worlds.append(weakref.ref(world))
        raise NotImplementedError("level 1")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(NotImplementedError):
            flapping.run_variant("registry", seed=1, duration=5, discovery_factory=broken_discovery)
        gc.collect()
    assert worlds and (worlds[0]() is None or worlds[0]().closed)
    assert [str(w.message) for w in caught] == []
