"""saga-chaos accounts for every order it attempts, labels violations as violations, and refuses faults aimed at nobody."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.faults import FaultError
from harness.saga_plots import saga_chaos_figure, tile_label, violations_text
from harness.scenarios import run_scenario, saga_chaos

ENDINGS = ("confirmed", "cancelled", "pending", "orders_not_placed")


@pytest.fixture(scope="module")
def seed0():
    result = run_scenario("saga-chaos", seed=0)
    yield result
    result.close()


def endings(summary):
    return tuple(summary[key] for key in ENDINGS)


def test_every_variant_accounts_for_all_forty_orders(seed0):
    got = {v.name: endings(v.summary) for v in seed0.variants}
    # confirmed, cancelled, pending, not placed (the create call failed: orders answered 503)
    assert got == {
        "seed-step-functions": (0, 21, 18, 1),
        "hardened-step-functions": (24, 15, 0, 1),
        "seed-choreography": (16, 21, 0, 3),
    }
    for variant in seed0.variants:
        assert variant.summary["orders"] == 40 == sum(endings(variant.summary))
        assert "orders_created_extra" not in variant.summary


def test_seed_7_adds_up_too():
    result = run_scenario("saga-chaos", seed=7)
    got = {v.name: endings(v.summary) for v in result.variants}
    assert got == {
        "seed-step-functions": (0, 18, 20, 2),
        "hardened-step-functions": (27, 13, 0, 0),
        "seed-choreography": (24, 14, 0, 2),
    }
    assert all(sum(counts) == 40 for counts in got.values())


def test_the_hardened_flow_ends_every_order_it_placed(seed0):
    summary = seed0.variant("hardened-step-functions").summary
    assert summary["pending"] == 0 and summary["confirmed"] + summary["cancelled"] == 39
    assert summary["orders_not_placed"] == 1  # all three tries of one create met orders' 503s
    assert summary["executions_failed_uncaught"] == 0 and sum(summary["violations"].values()) == 0


def test_nothing_pending_counts_violations_not_orders(seed0):
    summary = seed0.variant("seed-step-functions").summary
    assert summary["pending"] == 18 and summary["violations"]["nothing pending"] == 39  # 18 orders + 21 held


def test_the_figure_bars_add_up_and_tiles_say_violations(seed0):
    fig = saga_chaos_figure(seed0)
    ax_end, ax_inv = fig.axes
    assert [t.get_text() for t in ax_end.get_yticklabels()] == [v.name for v in seed0.variants]
    assert [t.get_text() for t in ax_end.get_legend().get_texts()] == [
        "confirmed", "cancelled", "still pending", "not placed"]
    ends = {}
    for bar in ax_end.patches:
        row = round(bar.get_y() + bar.get_height() / 2)
        ends[row] = max(ends.get(row, 0), bar.get_x() + bar.get_width())
    assert ends == {0: 40, 1: 40, 2: 40}
    assert ax_end.get_xlim()[1] > 40  # nothing clipped, room for the totals
    assert [t.get_text() for t in ax_end.texts] == [" 40", " 40", " 40"]
    tiles = [t.get_text() for t in ax_inv.texts]
    assert tiles[:5] == ["3\nviolations", "22\nviolations", "18\nviolations", "39\nviolations", "holds"]
    assert not any("broken" in text for text in tiles)
    labels = [t.get_text() for t in ax_inv.get_xticklabels()]
    assert labels == ["stock\nconserved", "money\nconserved", "sagas end\nin time", "nothing\npending",
                      "no compensation\ntwice"]


def test_tile_words():
    assert tile_label("sagas end in time") == "sagas end\nin time"
    assert tile_label("holds") == "holds"
    assert [violations_text(n) for n in (0, 1, 2)] == ["holds", "1 violation", "2 violations"]


@pytest.mark.parametrize("fault, reason", [
    ({"at": 1, "until": 3, "fault": "error", "target": "zzz", "status": 503},
     "fault target 'zzz' is neither a service nor an instance (services: inventory, notifications, orders, "
     "payments)"),
    ({"at": 1, "until": 3, "fault": "crash", "target": "inventory-9"}, "fault target 'inventory-9'"),
    ({"at": 1, "fault": "partition", "source": "nobody", "target": "payments"},
     "fault source 'nobody' is neither a service, an instance nor a caller"),
])
def test_a_fault_aimed_at_nobody_is_refused_before_running(fault, reason):
    with pytest.raises(FaultError) as raised:
        saga_chaos.run(seed=0, faults=[fault])
    assert reason in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("fault", [
    {"at": 1, "until": 2, "fault": "partition", "source": "step-functions", "target": "payments",
     "direction": "response"},
    {"at": 1, "until": 2, "fault": "partition", "source": "*", "target": "inventory"},
    {"at": 1, "until": 2, "fault": "crash", "target": "inventory-1"},
    {"at": 0, "until": 5, "fault": "duplicate", "topic": "*", "probability": 0.5},
    {"at": 1, "until": 2, "fault": "hang", "target": "*"},
])
def test_the_scenarios_own_callers_and_real_targets_are_accepted(fault):
    result = saga_chaos.run(seed=1, orders=3, variants=["hardened-step-functions"], faults=[fault])
    summary = result.variant("hardened-step-functions").summary
    assert summary["orders"] == 3 == sum(endings(summary))


def test_kata_simulate_saga_chaos_refuses_an_unknown_target(capsys, tmp_path):
    path = tmp_path / "z.json"
    path.write_text(json.dumps([{"at": 1, "until": 3, "fault": "error", "target": "zzz", "status": 503}]))
    code = main(["simulate", "saga-chaos", "--faults", str(path)])
    captured = capsys.readouterr()
    assert code == 2, captured.out
    assert captured.err.strip() == ("kata: fault target 'zzz' is neither a service nor an instance "
                                    "(services: inventory, notifications, orders, payments)")
    assert "Traceback" not in captured.err + captured.out and captured.out == ""


def test_kata_simulate_saga_chaos_json_reports_not_placed_for_every_variant(capsys):
    assert main(["simulate", "saga-chaos", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for name in out["variants"]:
        summary = out["summary"][name]
        assert sum(summary[key] for key in ENDINGS) == summary["orders"] == 40
