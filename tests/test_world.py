"""The world as notebooks use it: inside a running event loop, and its ops faults."""

from __future__ import annotations

import asyncio

import pytest

from harness import World


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
