"""The game-day scenario: deterministic per seed, and the patterns pay off.

The protected run gets the reference solutions explicitly as plug-ins (the
harness itself never imports ``solutions``). The full ten-minute game runs
once (seed 7, the figures chapter 07 quotes); the determinism check replays
a shorter game.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from harness.scenarios import game_day

ROOT = Path(__file__).resolve().parents[1]


def _solution(kata: str):
    spec = importlib.util.spec_from_file_location(f"_game_day_solution_{kata}", ROOT / "solutions" / f"{kata}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def patterns():
    return {kata: _solution(kata) for kata in game_day.PATTERNS}


@pytest.fixture(scope="module")
def result(patterns):
    return game_day.run(seed=7, patterns=patterns)


def test_same_seed_same_history(patterns):
    first = game_day.run(seed=5, duration=120.0, patterns=patterns)
    again = game_day.run(seed=5, duration=120.0, patterns=patterns)
    assert again.digest == first.digest
    assert again.variant("protected").summary == first.variant("protected").summary
    other = game_day.run(seed=6, duration=120.0, patterns=patterns)
    assert other.digest != first.digest


def test_protected_beats_unprotected_on_availability(result):
    bare = result.variant("unprotected").summary
    guarded = result.variant("protected").summary
    assert guarded["patterns"] == ["registry", "breaker", "composer", "canary"]
    assert bare["patterns"] == []
    assert guarded["customer_availability"] > bare["customer_availability"]
    assert guarded["budget_consumed"] < bare["budget_consumed"]
    for service in ("catalog", "orders"):
        assert guarded["slo"][service]["availability"] > bare["slo"][service]["availability"]


def test_the_figures_the_chapter_quotes(result):
    bare = result.variant("unprotected").summary
    guarded = result.variant("protected").summary
    assert (bare["customer_availability"], bare["budget_consumed"]) == (0.94275, 57.25)
    assert (guarded["customer_availability"], guarded["budget_consumed"]) == (0.99698, 3.02)
    assert bare["slo"]["orders"]["p99"] == 10.0  # customers give up: the hang cascades through orders
    assert [s for s, r in guarded["slo"].items() if r["met"]] == ["gateway"]
    assert guarded["canary"] == "rolled-back"
    assert guarded["canary_finished_at"] == game_day.CANARY_AT + 30.0  # the first (10 %) stage fails


def test_alerts_page_on_the_hang_only_without_patterns(result):
    bare = result.variant("unprotected").summary["alerts"]
    guarded = result.variant("protected").summary["alerts"]
    page = [a for a in bare["orders"] if a[0].startswith("burn rate 14.4")]
    assert page[0][1] == 70.0  # ten seconds after the hang starts at t = 60 s
    assert not any(a[0].startswith("burn rate 14.4") for a in guarded["orders"])
    # The seed's 5-minute rules never see the 90 s hang; its p99 rule catches the slow inventory late.
    assert not any(a[0].startswith("error rate") for alerts in bare.values() for a in alerts)
    for alerts in (bare, guarded):
        assert alerts["inventory"] == [("p99 latency > 1000 ms for 5 min", 550.0, None)]


def test_chaos_view_leaves_out_the_service_times(result):
    view = game_day.chaos_view(result.variant("protected"))
    shown = {e.subject.split(" (")[0] for e in view.events_of("fault-on")}
    assert shown == {"hang on payments", "crash on catalog-2", "flap on catalog-2", "latency on inventory",
                     "release catalog v2 on catalog-4"}
    assert {x.caller for x in view.exchanges} == {"customer"}


def test_missing_patterns_fall_back_to_the_unprotected_shop():
    variant = game_day.run_variant("protected", 1, duration=20.0, patterns={"breaker": None})
    assert variant.summary["patterns"] == []
    assert variant.summary["customer_requests"] > 0


def test_learner_stubs_are_left_out_with_a_reason(tmp_path):
    (tmp_path / "breaker.py").write_text((ROOT / "katas" / "breaker.py").read_text())
    (tmp_path / "canary.py").write_text((ROOT / "solutions" / "canary.py").read_text())
    patterns, notes = game_day.learner_patterns(str(tmp_path))
    assert patterns["breaker"] is None and notes["breaker"].startswith("not implemented yet: CircuitBreaker.")
    assert patterns["canary"] is not None and notes["canary"] == "plugged in"
    assert patterns["registry"] is None and "no file" in notes["registry"]


def test_unknown_variant_is_refused():
    with pytest.raises(KeyError, match="game-day has"):
        game_day.run(seed=1, variants=["heroic"], duration=1.0)
