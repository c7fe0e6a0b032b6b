"""Bounded workers and a bounded queue per instance (harness/capacity.py, and its 503s)."""

from __future__ import annotations

import asyncio

import pytest

from harness import Capacity, Overloaded, run


async def _queue_up(pool: Capacity, count: int) -> list[asyncio.Task]:
    """Start ``count`` acquirers and let them reach the queue."""
    tasks = [asyncio.ensure_future(pool.acquire()) for _ in range(count)]
    await asyncio.sleep(0)
    return tasks


def test_free_workers_are_taken_at_once_then_the_queue_fills_then_overflow_is_refused():
    async def main():
        pool = Capacity(workers=2, queue=1)
        await pool.acquire()
        await pool.acquire()
        waiting = await _queue_up(pool, 1)
        with pytest.raises(Overloaded, match="2 workers busy and 1 queued"):
            await pool.acquire()
        assert (pool.busy, pool.queued, pool.rejected) == (2, 1, 1)
        assert not waiting[0].done()
        return pool

    run(main())


def test_try_acquire_only_takes_a_free_worker_nobody_is_queued_for():
    async def main():
        pool = Capacity(workers=1, queue=2)
        assert pool.try_acquire()
        assert not pool.try_acquire()
        await _queue_up(pool, 1)
        pool.workers = 2  # a free worker, but someone is queued: no jumping the line
        assert not pool.try_acquire()

    run(main())


def test_a_released_worker_goes_to_the_waiters_first_in_first_out():
    async def main():
        pool = Capacity(workers=1, queue=3)
        await pool.acquire()
        served: list[int] = []

        async def customer(i: int):
            await pool.acquire()
            served.append(i)

        tasks = [asyncio.ensure_future(customer(i)) for i in range(3)]
        await asyncio.sleep(0)
        for _ in range(3):
            pool.release()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        assert served == [0, 1, 2]
        assert (pool.busy, pool.queued) == (1, 0)  # the last customer holds the worker

    run(main())


def test_release_with_nobody_waiting_frees_the_worker():
    async def main():
        pool = Capacity(workers=1, queue=0)
        await pool.acquire()
        pool.release()
        assert pool.busy == 0
        await pool.acquire()
        assert pool.busy == 1

    run(main())


def test_a_waiter_cancelled_in_the_queue_frees_its_place():
    async def main():
        pool = Capacity(workers=1, queue=1)
        await pool.acquire()
        (waiter,) = await _queue_up(pool, 1)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert (pool.busy, pool.queued) == (1, 0)
        (next_waiter,) = await _queue_up(pool, 1)  # the place is free again: no Overloaded
        pool.release()
        await next_waiter
        assert (pool.busy, pool.queued) == (1, 0)

    run(main())


def test_a_waiter_cancelled_just_before_a_release_stays_cancelled_and_the_worker_is_freed():
    # Regression: release() skipped the cancelled waiter, then the waiter's own clean-up
    # tried to remove itself from the queue again and raised ValueError.
    async def main():
        pool = Capacity(workers=1, queue=2)
        await pool.acquire()
        (waiter,) = await _queue_up(pool, 1)
        waiter.cancel()
        pool.release()  # in the same step, before the waiter wakes up
        (outcome,) = await asyncio.gather(waiter, return_exceptions=True)
        assert isinstance(outcome, asyncio.CancelledError)
        assert (pool.busy, pool.queued) == (0, 0)

    run(main())


def test_a_waiter_handed_a_worker_but_cancelled_passes_it_on():
    async def main():
        pool = Capacity(workers=1, queue=2)
        await pool.acquire()
        first, second = await _queue_up(pool, 2)
        pool.release()  # hands the worker to `first`...
        first.cancel()  # ...which leaves before using it
        await asyncio.gather(first, return_exceptions=True)
        await second
        assert (pool.busy, pool.queued) == (1, 0)

    run(main())


def test_resize_up_lets_queued_waiters_in_at_once():
    async def main():
        pool = Capacity(workers=1, queue=5)
        await pool.acquire()
        waiters = await _queue_up(pool, 3)
        pool.resize(workers=3)
        await asyncio.sleep(0)
        assert [w.done() for w in waiters] == [True, True, False]
        assert (pool.busy, pool.queued) == (3, 1)

    run(main())


def test_resize_down_keeps_busy_workers_and_makes_newcomers_wait():
    async def main():
        pool = Capacity(workers=3, queue=1)
        for _ in range(3):
            await pool.acquire()
        pool.resize(workers=1, queue=0)
        assert (pool.workers, pool.queue, pool.busy) == (1, 0, 3)
        with pytest.raises(Overloaded):
            await pool.acquire()
        for _ in range(3):
            pool.release()
        assert pool.busy == 0

    run(main())


def test_resize_never_goes_below_one_worker_or_a_negative_queue():
    pool = Capacity(workers=4, queue=4)
    pool.resize(workers=0, queue=-3)
    assert (pool.workers, pool.queue) == (1, 0)


@pytest.mark.parametrize("workers, queue", [(0, 1), (1, -1)])
def test_impossible_limits_are_refused(workers, queue):
    with pytest.raises(ValueError, match="workers must be >= 1"):
        Capacity(workers=workers, queue=queue)


# -- through a world: the 503 a caller sees ----------------------------------------------------


def _slow_payments(world, *, workers: int, queue: int):
    world.add_service("payments", workers=workers, queue=queue)
    world.faults.inject({"fault": "latency", "target": "payments", "dist": "constant", "value": 1.0})


def test_overflow_is_a_503_at_once_recorded_as_overloaded(world):
    _slow_payments(world, workers=1, queue=1)
    client = world.client()
    ended: list[tuple[int, float]] = []

    async def call():
        response = await client.get("payments", "/health")
        ended.append((response.status, world.now()))

    async def burst():
        await asyncio.gather(call(), call(), call())

    world.run(burst())
    assert sorted(ended) == [(200, 1.0), (200, 2.0), (503, 0.0)]
    (refused,) = [x for x in world.recorder.exchanges if x.status == 503]
    assert refused.error.startswith("overloaded")
    assert (refused.start, refused.end, refused.outcome) == (0.0, 0.0, "error")


def test_queued_requests_wait_their_turn_in_virtual_time(world):
    _slow_payments(world, workers=2, queue=10)
    client = world.client()

    async def burst():
        return await asyncio.gather(*(client.get("payments", "/health") for _ in range(5)))

    world.run(burst())
    ends = sorted(x.end for x in world.recorder.exchanges)
    assert ends == [1.0, 1.0, 2.0, 2.0, 3.0]


def test_a_caller_that_gives_up_while_queued_still_leaves_the_pool_consistent(world):
    _slow_payments(world, workers=1, queue=2)
    client = world.client()

    async def impatient():
        return await client.get("payments", "/health", timeout=0.5)

    async def main():
        first = asyncio.ensure_future(client.get("payments", "/health"))
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            await impatient()
        await first
        await asyncio.sleep(5)

    world.run(main())
    pool = world.instances("payments")[0].capacity
    assert (pool.busy, pool.queued) == (0, 0)
