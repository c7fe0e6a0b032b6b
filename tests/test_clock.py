"""The virtual-time loop and the injected clock (harness/clock.py)."""

from __future__ import annotations

import ast
import asyncio
import threading
from pathlib import Path

import pytest
from fastapi import FastAPI

import harness
from harness import Clock, Deadlock, VirtualTimeLoop, World, now, run, sleep


def test_sleep_jumps_straight_to_the_timer():
    async def nap():
        await asyncio.sleep(30)
        return now()

    assert run(nap()) == 30.0


def test_timers_fire_at_exactly_their_virtual_time_in_time_order():
    loop = VirtualTimeLoop()
    fired: list[tuple[str, float]] = []
    try:
        loop.call_at(5.0, lambda: fired.append(("five", loop.time())))
        loop.call_later(2.0, lambda: fired.append(("two", loop.time())))
        loop.call_at(0.25, lambda: fired.append(("quarter", loop.time())))
        loop.run_until_complete(asyncio.sleep(6))
    finally:
        loop.close()
    assert fired == [("quarter", 0.25), ("two", 2.0), ("five", 5.0)]


def test_the_clock_does_not_move_while_work_is_ready():
    async def busy():
        for _ in range(1000):
            await asyncio.sleep(0)
        return now()

    assert run(busy()) == 0.0


def test_run_starts_at_the_given_time():
    async def nap():
        await sleep(30)
        return now()

    assert run(nap(), start=100.0) == 130.0


def test_a_long_chain_of_sleeps_lands_on_the_exact_sum():
    async def ticks():
        for _ in range(4):
            await asyncio.sleep(0.25)
        return now()

    assert run(ticks()) == 1.0


def test_timers_due_at_the_same_instant_run_first_in_first_out():
    loop = VirtualTimeLoop()
    order: list[int] = []
    try:
        for i in range(20):
            loop.call_at(1.0, order.append, i)
        loop.run_until_complete(asyncio.sleep(2))
    finally:
        loop.close()
    assert order == list(range(20))


def test_a_series_keeps_the_places_its_timers_would_have_had_if_all_were_set_at_once():
    loop = VirtualTimeLoop()
    seen: list[tuple[float, str]] = []
    try:
        loop.call_at(2.0, lambda: seen.append((loop.time(), "set before")))
        loop.call_series([1.0, 2.0, 2.5, 3.0], lambda i, tag: seen.append((loop.time(), f"{tag}{i}")), "s")
        loop.call_at(2.0, lambda: seen.append((loop.time(), "set after")))
        loop.call_at(3.0, lambda: seen.append((loop.time(), "set after, later")))
        assert len(loop._timers) == 4  # one timer of the series at a time
        loop.run_until_complete(asyncio.sleep(5))
    finally:
        loop.close()
    assert seen == [(1.0, "s0"), (2.0, "set before"), (2.0, "s1"), (2.0, "set after"), (2.5, "s2"),
                    (3.0, "s3"), (3.0, "set after, later")]


def test_tasks_sleeping_until_the_same_instant_wake_in_the_order_they_slept():
    woke: list[int] = []

    async def sleeper(i: int):
        await asyncio.sleep(5 - i)  # each one set its timer for t = 5
        woke.append(i)

    async def main():
        for i in range(5):
            asyncio.ensure_future(sleeper(i))
            await asyncio.sleep(1)
        await asyncio.sleep(1)

    run(main())
    assert woke == [0, 1, 2, 3, 4]


def test_a_cancelled_timer_never_runs():
    loop = VirtualTimeLoop()
    fired: list[str] = []
    try:
        doomed = loop.call_at(1.0, fired.append, "doomed")
        loop.call_at(2.0, fired.append, "kept")
        doomed.cancel()
        loop.run_until_complete(asyncio.sleep(3))
    finally:
        loop.close()
    assert fired == ["kept"]


def test_many_cancelled_timers_do_not_break_the_order_of_the_others():
    # More than 64 cancelled timers, and most of the heap: the heap is rebuilt.
    loop = VirtualTimeLoop()
    fired: list[tuple[int, float]] = []
    try:
        handles = [loop.call_at(float(i % 7), lambda i=i: fired.append((i, loop.time()))) for i in range(300)]
        kept = [i for i in range(300) if i % 10 == 0]
        for i, handle in enumerate(handles):
            if i % 10:
                handle.cancel()
        loop.run_until_complete(asyncio.sleep(10))
    finally:
        loop.close()
    expected = sorted(((i, float(i % 7)) for i in kept), key=lambda item: (item[1], item[0]))
    assert fired == expected


def test_a_timer_cancelled_by_an_earlier_callback_of_the_same_instant_does_not_run():
    loop = VirtualTimeLoop()
    fired: list[str] = []
    try:
        victim_box = []
        loop.call_at(1.0, lambda: victim_box[0].cancel())  # set first, so it runs first
        victim_box.append(loop.call_at(1.0, fired.append, "victim"))
        loop.call_at(1.0, fired.append, "bystander")
        loop.run_until_complete(asyncio.sleep(3))
    finally:
        loop.close()
    assert fired == ["bystander"]


def test_timeouts_that_never_fire_cost_nothing_and_leave_the_clock_exact():
    async def many_quick_calls():
        for _ in range(500):
            await asyncio.wait_for(asyncio.sleep(0.5), timeout=30)
        return now()

    assert run(many_quick_calls()) == 250.0


def test_deadlock_is_raised_when_everything_waits_and_no_timer_is_pending():
    async def wait_forever():
        await asyncio.get_running_loop().create_future()

    with pytest.raises(Deadlock) as caught:
        run(wait_forever())
    message = str(caught.value)
    assert "every task is waiting" in message
    assert "no timer is pending" in message
    assert "\n" not in message


def test_deadlock_is_raised_after_the_last_timer_fired():
    async def wait_after_a_nap():
        await asyncio.sleep(5)
        await asyncio.Event().wait()

    loop = VirtualTimeLoop()
    try:
        with pytest.raises(Deadlock):
            loop.run_until_complete(wait_after_a_nap())
        assert loop.time() == 5.0
    finally:
        loop.close()


def test_only_cancelled_timers_left_is_a_deadlock_too():
    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(10, print, "never").cancel()
        await loop.create_future()

    with pytest.raises(Deadlock):
        run(main())


def test_run_cancels_tasks_left_behind_by_the_main_coroutine():
    cancelled: list[bool] = []

    async def straggler():
        try:
            await asyncio.sleep(1000)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        asyncio.ensure_future(straggler())
        await asyncio.sleep(1)
        return now()

    assert run(main()) == 1.0
    assert cancelled == [True]


# -- the injected clock -----------------------------------------------------------------


def test_manual_clock_starts_where_told_and_advances_by_hand():
    clock = Clock.manual(start=5.0)
    clock.advance(2.5)
    assert clock.now() == 7.5
    clock.set(10.0)
    assert clock.now() == 10.0


def test_manual_clock_refuses_to_go_backwards():
    clock = Clock.manual(start=5.0)
    with pytest.raises(ValueError, match="never goes backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="never goes backwards"):
        clock.set(4.0)
    assert clock.now() == 5.0


def test_a_loop_clock_cannot_be_advanced_by_hand():
    loop = VirtualTimeLoop(start=3.0)
    try:
        clock = Clock.of_loop(loop)
        assert clock.now() == 3.0
        with pytest.raises(TypeError, match="manual"):
            clock.advance(1)
    finally:
        loop.close()


def test_clock_of_running_loop_reads_virtual_time():
    async def main():
        clock = Clock.of_running_loop()
        await asyncio.sleep(42)
        return clock.now()

    assert run(main()) == 42.0


def test_world_clock_follows_the_world_loop(world):
    world.run(until=12.5)
    assert world.clock.now() == 12.5 == world.now()


# -- nothing in the harness reads the wall clock ------------------------------------------

HARNESS = Path(harness.__file__).parent
# Real servers, real stopwatches, and the grader's deadlines for learner processes.
WALL_CLOCK_ALLOWED = {"realmode.py", "bench.py", "grading/grader.py"}
WALL_CLOCK_CALLS = {
    ("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "monotonic_ns"),
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
}


def wall_clock_reads(source: str) -> list[str]:
    """Wall-clock reads in Python source: ``time.time()``, ``datetime.now()``, ``from time import time``…"""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if (name, node.attr) in WALL_CLOCK_CALLS:
                found.append(f"line {node.lineno}: {name}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            for alias in node.names:
                if ("time", alias.name) in WALL_CLOCK_CALLS:
                    found.append(f"line {node.lineno}: from time import {alias.name}")
    return found


def test_the_wall_clock_detector_finds_what_it_should():
    source = (
        "import time, datetime\n"
        "from time import monotonic\n"
        "a = time.time()\n"
        "b = datetime.datetime.now()\n"
        "c = loop.time()  # virtual: fine\n"
    )
    assert sorted(wall_clock_reads(source)) == [
        "line 2: from time import monotonic", "line 3: time.time", "line 4: datetime.now",
    ]


def test_nothing_in_the_harness_reads_the_wall_clock():
    offenders = {}
    for path in sorted(HARNESS.rglob("*.py")):
        if path.relative_to(HARNESS).as_posix() in WALL_CLOCK_ALLOWED:
            continue
        found = wall_clock_reads(path.read_text(encoding="utf-8"))
        if found:
            offenders[str(path.relative_to(HARNESS.parent))] = found
    assert offenders == {}, f"wall-clock reads outside {sorted(WALL_CLOCK_ALLOWED)}: {offenders}"


# -- known problem in clock.py (not ours to edit) ---------------------------------------------


def _sync_app(release: threading.Event):
    def factory(ctx):
        app = FastAPI()

        @app.get("/sync")
        def sync_endpoint():  # a plain def: FastAPI runs it in a worker thread
            release.wait(timeout=1.0)  # still working when the loop next looks: no race
            return {"ok": True}

        return app

    return factory


def test_a_sync_endpoint_answers_or_fails_with_a_reason_that_names_it():
    release = threading.Event()
    with World(seed=1) as w:
        try:
            w.add_service("legacy", _sync_app(release))
            response = w.run(w.client().get("legacy", "/sync"))
        except Exception as exc:
            assert "sync" in str(exc) or "def " in str(exc), f"{type(exc).__name__}: {exc}"
            return
        finally:
            release.set()
        assert response.status == 200


def test_a_callback_from_another_thread_runs_and_its_wake_up_is_drained():
    loop = VirtualTimeLoop()
    ran = []

    async def main():
        thread = threading.Thread(target=loop.call_soon_threadsafe, args=(ran.append, "from a thread"))
        thread.start()
        thread.join()  # the callback is queued and the self-pipe written before the loop goes on
        await asyncio.sleep(5)
        return loop.time()

    try:
        assert loop.run_until_complete(main()) == 5.0
        assert ran == ["from a thread"]
        assert loop._selector.select(0) == []  # the wake-up byte was read, not left to pile up
    finally:
        loop.close()


def test_young_garbage_is_collected_less_often_while_the_loop_runs_and_as_before_after():
    import gc

    before = gc.get_threshold()
    seen = []

    async def main():
        seen.append(gc.get_threshold()[0])
        await asyncio.sleep(1)

    run(main())
    assert seen == [harness.clock.YOUNG_GENERATION]
    assert gc.get_threshold() == before


def test_a_callback_that_raises_is_reported_as_asyncio_reports_it_and_the_loop_goes_on():
    loop = VirtualTimeLoop()
    reports: list[dict] = []
    ran: list[float] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(context))

    def boom(what):
        raise ValueError(what)

    try:
        loop.call_at(1.0, boom, "bad")
        loop.call_at(1.0, lambda: ran.append(loop.time()))
        loop.run_until_complete(asyncio.sleep(2))
    finally:
        loop.close()
    assert ran == [1.0]
    [report] = reports
    assert isinstance(report["exception"], ValueError)
    assert report["message"].startswith("Exception in callback ") and "boom('bad')" in report["message"]
