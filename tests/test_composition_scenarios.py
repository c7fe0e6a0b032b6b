"""The composition scenarios (``fanout-cache``, ``slow-backend``) and their bff tell the story chapter 03 claims."""

from __future__ import annotations

import asyncio

import pytest

from harness import World
from harness.scenarios import run_scenario
from harness.scenarios.composition import TextbookCache, create_app
from harness.scenarios.fanout_cache import expected_saving

SMALL = {"fanout-cache": {"duration": 120.0}, "slow-backend": {"duration": 40.0}}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_history_other_seed_other_history(name: str) -> None:
    first = run_scenario(name, seed=7, **SMALL[name]).digest
    assert first == run_scenario(name, seed=7, **SMALL[name]).digest
    assert first != run_scenario(name, seed=8, **SMALL[name]).digest


def test_cache_reproduces_the_seeds_latency_figures_exactly() -> None:
    result = run_scenario("fanout-cache", seed=3, variants=["coalescing"], faults=[], duration=300)
    s = result.variant("coalescing").summary
    assert (s["first_page_ms"], s["hit_ms"], s["hit_latency_reduction_percent"]) == (170.0, 10.0, 94.12)
    assert s["backend_calls"] == 3 * s["compositions"]
    # Poisson views of one page at 1/s with a 60 s TTL: about lambda*T / (1 + lambda*T) saved.
    assert abs(s["backend_calls_saved_percent"] - 100 * expected_saving(1.0, 60)) < 1.5


def test_a_per_user_page_saves_far_less_than_95_percent() -> None:
    result = run_scenario("fanout-cache", seed=3, variants=["coalescing"], faults=[], profiles=50, duration=600)
    assert result.variants[0].summary["backend_calls_saved_percent"] < 70
    assert result.summary["expected_saving_percent"] == pytest.approx(54.55)


def test_coalescing_stops_the_stampede_at_each_expiry() -> None:
    result = run_scenario("fanout-cache", seed=3, variants=["ttl-cache", "coalescing"], faults=[], rate=50,
                          duration=130)
    plain, coalesced = (v.summary for v in result.variants)
    assert coalesced["compositions"] == 3  # the first view, then one per expiry (t = 60, 120)
    assert plain["compositions"] > 3 * coalesced["compositions"]
    assert coalesced["x_cache"].get("joined", 0) > 0


def test_stale_if_error_answers_through_the_outage() -> None:
    result = run_scenario("fanout-cache", seed=3, variants=["coalescing", "stale-if-error"], duration=400)
    plain, stale = (v.summary for v in result.variants)
    assert stale["answered_during_outage_percent"] == 100.0 and stale["x_cache"]["stale"] > 0
    assert plain["answered_during_outage_percent"] < 20


def test_one_deadline_bounds_the_page_while_a_backend_is_slow() -> None:
    result = run_scenario("slow-backend", seed=3, variants=["parallel", "deadline"], duration=60)
    parallel, deadline = (v.summary for v in result.variants)
    assert parallel["calm_p50_ms"] == deadline["calm_p50_ms"] == 170.0
    assert parallel["slow_p50_ms"] >= 3020.0 and parallel["slow_partial_percent"] == 0.0
    assert deadline["slow_p50_ms"] == deadline["slow_p99_ms"] == 320.0
    assert deadline["slow_partial_percent"] == 100.0


def test_the_bff_says_what_its_cache_did() -> None:
    """miss, hit, then (users down, entry stale) a stale page; a 502 once even that is too old."""
    with World(seed=1) as world:
        for service in ("users", "orders", "payments"):
            world.add_service(service)
        cache = TextbookCache(world.clock, ttl=10, stale_if_error=20)
        world.add_service("bff", create_app, options={"cache": cache})
        client = world.client()

        async def views() -> list[tuple[float, int, str]]:
            seen = []
            for when in (0, 5, 12, 29, 31):
                await asyncio.sleep(when - world.now())
                if when == 12:
                    world.faults.inject({"fault": "error", "target": "users", "status": 503})
                r = await client.get("bff", "/profile/user-123")
                seen.append((when, r.status, r.headers["x-cache"]))
            return seen

        assert world.run(views()) == [(0, 200, "miss"), (5, 200, "hit"), (12, 200, "stale"), (29, 200, "stale"),
                                      (31, 502, "error")]
