"""The game-day scenario: deterministic per seed, and the patterns pay off.

The protected run gets the reference solutions explicitly as plug-ins (the
harness itself never imports ``solutions``). The full ten-minute game runs
once (seed 7, the figures chapter 07 quotes); the determinism check replays
a shorter game. With the reference saga and tracing plugged in, the protected
run's saga invariants hold and its traces are the learner-function report;
the unprotected run's seed Step Functions flow breaks the invariants.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from harness.invariants import INVARIANTS
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
    assert guarded["patterns"] == ["registry", "breaker", "composer", "canary", "saga", "tracing"]
    assert bare["patterns"] == []
    assert guarded["customer_availability"] > bare["customer_availability"]
    assert guarded["budget_consumed"] < bare["budget_consumed"]
    for service in ("catalog", "orders"):
        assert guarded["slo"][service]["availability"] > bare["slo"][service]["availability"]


def test_the_figures_the_chapter_quotes(result):
    bare = result.variant("unprotected").summary
    guarded = result.variant("protected").summary
    assert (bare["customer_availability"], bare["budget_consumed"]) == (0.93546, 64.54)
    assert (guarded["customer_availability"], guarded["budget_consumed"]) == (0.98597, 14.03)
    assert bare["slo"]["orders"]["p99"] == 10.0  # customers give up: the hang cascades through orders
    assert [s for s, r in guarded["slo"].items() if r["met"]] == ["gateway"]
    assert guarded["canary"] == "rolled-back"
    assert guarded["canary_finished_at"] == game_day.CANARY_AT + 30.0  # the first (10 %) stage fails


def test_alerts_page_on_the_hang_with_and_without_patterns(result):
    bare = result.variant("unprotected").summary["alerts"]
    guarded = result.variant("protected").summary["alerts"]
    assert bare["orders"] == [  # both pages, ten seconds after the hang starts at t = 60 s
        ("burn rate 14.4 over 60 s and 5 s (2% of budget in 1 hour)", 70.0, 160.0),
        ("burn rate 6 over 360 s and 30 s (5% of budget in 6 hours)", 70.0, 180.0),
    ]
    # With the breakers, the dozen checkouts that fail before they open have left the 14.4 rule's 5 s
    # window by t = 70 s, but not the 6 rule's 30 s one: still a page, resolved 80 s sooner.
    assert guarded["orders"] == [("burn rate 6 over 360 s and 30 s (5% of budget in 6 hours)", 70.0, 100.0)]
    # The workbook's ticket (1 over 3 days, 72 min scaled) cannot be judged in a ten-minute game: left out.
    assert not any("3 days" in a[0] for alerts in (bare, guarded) for service in alerts.values() for a in service)
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


# -- sagas ------------------------------------------------------------------------------
def _adds_up(sagas):
    return sagas["attempted"] == sagas["confirmed"] + sagas["cancelled"] + sagas["pending"] + sagas["not_placed"]


def test_the_protected_sagas_keep_every_invariant(result):
    sagas = result.variant("protected").summary["sagas"]
    assert sagas["flow"] == "your OrderSaga"
    assert (sagas["attempted"], sagas["confirmed"], sagas["cancelled"], sagas["pending"], sagas["not_placed"]) == (
        1226, 1008, 218, 0, 0)
    assert _adds_up(sagas) and sagas["answered"] == sagas["attempted"]
    assert sagas["invariants_hold"] and sagas["first_violations"] == {}
    assert sagas["violations"] == dict.fromkeys(INVARIANTS, 0)
    slo = result.variant("protected").summary["slo"]["sagas"]
    # The books balance, but the hang still costs customers: they give up after 10 s while the sagas compensate.
    assert (slo["requests"], slo["bad"], slo["p99"]) == (1226, 172, 10.0)


def test_the_seed_flow_breaks_them_in_the_unprotected_run(result):
    sagas = result.variant("unprotected").summary["sagas"]
    assert sagas["flow"] == "the seed's Step Functions flow"
    # The seed's flow never confirms: every order it "succeeds" stays pending, its money taken.
    assert (sagas["attempted"], sagas["confirmed"], sagas["cancelled"], sagas["pending"], sagas["not_placed"]) == (
        1226, 0, 59, 1047, 120)
    assert _adds_up(sagas) and not sagas["invariants_hold"]
    assert sagas["violations"] == {"stock conserved": 0, "money conserved": 998, "sagas end in time": 2048,
                                   "nothing pending": 2045, "no compensation twice": 0}
    assert sagas["first_violations"]["money conserved"].startswith("money: order ord-1 (pending) has 25 captured")
    assert result.variant("unprotected").summary["slo"]["sagas"]["bad"] == 183


# -- tracing ----------------------------------------------------------------------------
def _history(variant):
    # What every caller got, when. Not the recorder's ``error`` text of a 500: a service that raises answers
    # 500 on both paths, but behind the span middleware Starlette's error handler writes that 500, so the
    # exception's text never reaches the recorder.
    return [(x.start, x.end, x.caller, x.service, x.instance, x.method, x.path, x.status, x.outcome)
            for x in variant.world.recorder.exchanges]


def test_tracing_observes_without_changing_the_outcome(result, patterns):
    traced = result.variant("protected")
    untraced = game_day.run_variant("protected", 7, patterns={**patterns, "tracing": None})
    assert "tracing" not in untraced.summary and "tracing" in traced.summary
    # Every exchange of the run (the recorder keeps no headers here: no traceparent to strip), not just customers'.
    assert _history(traced) == _history(untraced)
    assert {k: v for k, v in traced.summary.items() if k not in ("tracing", "patterns")} == {
        k: v for k, v in untraced.summary.items() if k != "patterns"}


def test_the_trace_report_comes_from_the_learners_functions(result):
    tracing = result.variant("protected").summary["tracing"]
    # One trace per customer request: the customer's client span is its root.
    assert tracing["customer_traces"] == result.variant("protected").summary["customer_requests"] == 15463
    assert tracing["colours"] == {"customer": "grey", "gateway": "green", "users": "green", "orders": "green",
                                  "payments": "red", "inventory": "green", "sagas": "red",
                                  "notifications": "green", "catalog": "green"}
    assert round(tracing["percentiles"]["inventory"]["p99"], 3) == 1.515  # the slow inventory, as callers saw it
    assert tracing["sampled"] == {"rate": 0.1, "kept": 2085, "error_traces": 583, "error_traces_kept": 583,
                                  "every_error_kept": True}
    slowest = tracing["slowest"]
    assert slowest["name"] == "POST orders/checkout" and slowest["start"] > 60  # during the payments hang
    assert [service for service, _, _ in slowest["path"]] == ["customer", "orders"]
    assert slowest["path"][-1][1:] == ("POST payments/charges", 1.0)  # the breaker's 1 s timeout
    traces = result.variant("protected").traces
    assert traces["graph"].nodes["payments"]["colour"] == "red" and traces["critical"]


def test_stub_saga_and_tracing_are_left_out_naming_the_level(tmp_path):
    for kata in ("saga", "tracing"):
        (tmp_path / f"{kata}.py").write_text((ROOT / "katas" / f"{kata}.py").read_text())
    patterns, notes = game_day.learner_patterns(str(tmp_path))
    assert patterns["saga"] is None and patterns["tracing"] is None
    assert notes["saga"].startswith("not implemented yet: OrderSaga.run (finish level 1, "
                                    "`kata check saga --level 1`; the game needs levels 1-3 and 5)")
    assert notes["tracing"].startswith("not implemented yet: child_context (finish level 1, ")
    variant = game_day.run_variant("protected", 1, duration=20.0, patterns=patterns)
    assert variant.summary["sagas"]["flow"] == "the seed's Step Functions flow"
    assert "tracing" not in variant.summary and not hasattr(variant, "traces")


def test_a_tracing_kata_short_of_level_5_is_left_out(tmp_path):
    source = (ROOT / "solutions" / "tracing.py").read_text()
    cut = source.replace("        decision = self._decided.get(span.trace_id)\n",
                         "        # TODO (level 5): buffer it\n        raise NotImplementedError\n", 1)
    assert cut != source
    (tmp_path / "tracing.py").write_text(cut)
    patterns, notes = game_day.learner_patterns(str(tmp_path))
    assert patterns["tracing"] is None
    assert notes["tracing"].startswith("not implemented yet: TailSampler.add (finish level 5, ")
