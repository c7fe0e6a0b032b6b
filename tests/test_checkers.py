"""Checkers that explain: the leftover-task check blames leaks, not servers at work."""

from __future__ import annotations

import asyncio

import pytest

from harness import CheckFailed, RequestTimeout, World
from harness.checkers import expect_no_leftover_tasks, leftover_tasks


def test_a_leaked_task_is_named():
    world = World(seed=1)

    async def forgotten():
        await asyncio.sleep(100)

    async def caller():
        asyncio.get_running_loop().create_task(forgotten())
        await asyncio.sleep(0)
        with pytest.raises(CheckFailed, match=r"tasks still running after the call: 1 \(.*forgotten\)"):
            expect_no_leftover_tasks(world)

    world.run(caller())
    world.close()


def test_a_server_still_serving_a_timed_out_call_is_not_a_leak():
    world = World(seed=1)
    world.add_service("payments")
    world.faults.inject({"fault": "latency", "target": "payments", "dist": "constant", "value": 5.0})

    async def impatient():
        with pytest.raises(RequestTimeout):
            await world.client().post("payments", "/charges", json={"order_id": "o-1", "amount": 5}, timeout=1)
        # The charge is still being served: real servers keep working.
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert leftover_tasks(world) == []
        expect_no_leftover_tasks(world)

    world.run(impatient())
    world.close()
