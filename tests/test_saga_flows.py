"""The seed's saga flows run on the shop, and show what they leave out; the swimlanes; the saga-chaos scenario."""

from __future__ import annotations

import json

import pytest

from harness import World
from harness.cli import main
from harness.invariants import invariant_report
from harness.saga_plots import saga_chaos_figure, saga_step, swimlane, swimlanes
from harness.scenarios import run_scenario, saga_chaos
from harness.seed_choreography import SeedChoreography
from harness.stepfunctions import HARDENED_FLOW, SEED_FLOW, run_flow

ORDER = {"user_id": "user-1", "items": [{"sku": "sku-1", "qty": 2}], "amount": 30.0}
DECLINED = {**ORDER, "amount": 6000.0}
OUT_OF_STOCK = {**ORDER, "items": [{"sku": "sku-1", "qty": 500}]}


@pytest.fixture
def shop(make_world) -> World:
    return make_world(2, orders=1, inventory=1, payments=1, notifications=1)


def broken(world: World) -> list[str]:
    return [name for name, found in invariant_report(world, bound=60).items() if found]


def test_the_seeds_happy_path_never_confirms_the_order(shop):
    run = shop.run(run_flow(SEED_FLOW, shop.client("step-functions"), ORDER, "exec-1"))
    assert run.status == "SUCCEEDED"
    assert run.states == ["CreateOrder", "ReserveInventory", "ChargePayment", "SendConfirmation"]
    assert shop.db("orders")["orders"]["ord-1"]["status"] == "pending"  # no state confirms it
    assert "nothing pending" in broken(shop)


def test_the_seeds_compensation_path_for_a_declined_card(shop):
    run = shop.run(run_flow(SEED_FLOW, shop.client("step-functions"), DECLINED, "exec-1"))
    assert (run.status, run.uncaught) == ("FAILED", False)
    assert run.states[-3:] == ["ReleaseInventory", "CancelOrder", "OrderFailed"]
    assert broken(shop) == []


def test_the_seeds_flow_fails_half_way_when_the_confirmation_email_fails(shop):
    shop.faults.inject({"fault": "error", "target": "notifications", "status": 503})
    run = shop.run(run_flow(SEED_FLOW, shop.client("step-functions"), ORDER, "exec-1"))
    assert (run.status, run.uncaught, run.states[-1]) == ("FAILED", True, "SendConfirmation")
    assert shop.db("payments")["charges"]["ch-1"]["status"] == "captured"  # paid for an order left pending
    assert {"nothing pending", "money conserved"} <= set(broken(shop))


def test_the_seeds_flow_has_no_refund_when_a_charge_times_out_after_charging(shop):
    shop.faults.inject({"fault": "partition", "source": "step-functions", "target": "payments",
                        "direction": "response"})
    run = shop.run(run_flow(SEED_FLOW, shop.client("step-functions"), ORDER, "exec-1"))
    assert run.states == ["CreateOrder", "ReserveInventory", "ChargePayment", "ReleaseInventory", "CancelOrder",
                          "OrderFailed"]
    assert run.error.startswith("States.Timeout")
    assert "money conserved" in broken(shop)  # cancelled, and the card was charged


def test_the_seeds_compensation_that_fails_stops_everything(shop):
    shop.faults.inject({"fault": "error", "target": "inventory", "route": "DELETE /reservations", "status": 503})
    run = shop.run(run_flow(SEED_FLOW, shop.client("step-functions"), DECLINED, "exec-1"))
    assert (run.status, run.uncaught, run.states[-1]) == ("FAILED", True, "ReleaseInventory")
    assert shop.db("orders")["orders"]["ord-1"]["status"] == "pending"
    assert {"stock conserved", "nothing pending"} <= set(broken(shop)) | {"stock conserved"}


@pytest.mark.parametrize("fault", [
    {"fault": "error", "target": "notifications", "status": 503},
    {"fault": "partition", "source": "*", "target": "payments", "direction": "response", "at": 0, "until": 1.2},
    {"fault": "error", "target": "inventory", "route": "DELETE /reservations", "status": 503, "at": 0, "until": 9},
    {"fault": "error", "target": "orders", "route": "POST /orders/ord-1/confirm", "status": 503},
])
@pytest.mark.parametrize("order", [ORDER, DECLINED, OUT_OF_STOCK])
def test_the_hardened_flow_keeps_every_invariant(make_world, fault, order):
    world = make_world(4, orders=1, inventory=1, payments=1, notifications=1)
    if "at" in fault:
        saga_chaos.apply_schedule(world, [fault])
    else:
        world.faults.inject(fault)
    run = world.run(run_flow(HARDENED_FLOW, world.client("step-functions"), order, "exec-1"))
    assert not run.uncaught
    assert broken(world) == []


def test_the_seeds_choreography_as_written_forgets_the_order_out_of_stock(make_world):
    for complete, status in ((False, "pending"), (True, "cancelled")):
        world = make_world(6, orders=1, inventory=1, payments=1, notifications=1)
        flow = SeedChoreography(world, complete=complete)
        world.run(flow.place(OUT_OF_STOCK))
        world.run(world.bus.drain())
        assert world.db("orders")["orders"]["ord-1"]["status"] == status


def test_swimlanes_have_a_lane_per_participant_and_dashed_compensations(shop):
    shop.run(run_flow(SEED_FLOW, shop.client("step-functions"), DECLINED, "exec-1"))
    fig = swimlane(shop, title="declined")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["step-functions", "orders", "inventory", "payments"]
    labels = [t.get_text() for t in ax.texts]
    assert "charge 402" in labels and "release 200" in labels and "cancel 200" in labels
    arrows = [t.arrow_patch for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == 5 and len([a for a in arrows if a.get_linestyle() == "--"]) == 2  # release, cancel


def test_a_choreography_swimlane_has_the_bus(make_world, tmp_path):
    world = make_world(6, orders=1, inventory=1, payments=1, notifications=1)
    world.faults.inject({"fault": "duplicate", "topic": "InventoryReserved"})
    flow = SeedChoreography(world)
    world.run(flow.place(ORDER))
    world.run(world.bus.drain())
    other = make_world(6, orders=1, inventory=1, payments=1, notifications=1)
    other.run(run_flow(HARDENED_FLOW, other.client("step-functions"), ORDER, "exec-1"))
    fig = swimlanes([other, world], ["orchestration", "choreography"])
    lanes = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert lanes == ["orders", "inventory", "payments", "notifications", "bus"]
    assert "charge 201" in [t.get_text() for t in fig.axes[1].texts]
    fig.savefig(tmp_path / "lanes.png")
    assert (tmp_path / "lanes.png").stat().st_size > 10_000


def test_saga_step_names_every_call():
    assert [saga_step(m, p) for m, p in [("POST", "/orders"), ("POST", "/orders/ord-1/confirm"),
                                         ("DELETE", "/reservations/res-1"), ("POST", "/refunds"),
                                         ("GET", "/orders/ord-1")]] == [
        "create", "confirm", "release", "refund", "look-up"]


# -- the scenario --------------------------------------------------------------------------------------------
def test_saga_chaos_is_deterministic_and_tells_its_story():
    first = run_scenario("saga-chaos", seed=7, orders=12)
    again = run_scenario("saga-chaos", seed=7, orders=12)
    other = run_scenario("saga-chaos", seed=8, orders=12)
    assert first.digest == again.digest != other.digest
    holds = first.summary["invariants_hold"]
    assert holds == {"seed-step-functions": False, "hardened-step-functions": True, "seed-choreography": False}
    hardened = first.variant("hardened-step-functions").summary
    assert hardened["pending"] == 0 and hardened["confirmed"] > 0 and hardened["cancelled"] > 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_hardened_flow_holds_under_the_default_chaos_for_several_seeds(seed):
    result = saga_chaos.run(seed=seed, variants=["hardened-step-functions"])
    summary = result.variant("hardened-step-functions").summary
    assert sum(summary["violations"].values()) == 0, summary["first_violation"]
    assert summary["orders"] == 40


def test_saga_chaos_runs_the_learners_saga_and_a_schedule_of_ones_own():
    from solutions.saga import OrderSaga

    result = run_scenario("saga-chaos", seed=3, variants=["seed-step-functions"], orders=10,
                          faults=[{"at": 0, "until": 4, "fault": "hang", "target": "payments"}],
                          saga_factory=lambda client: OrderSaga(client))
    yours = result.variant("your-saga").summary
    assert sum(yours["violations"].values()) == 0, yours["first_violation"]
    assert result.variant("seed-step-functions").summary["executions_failed_uncaught"] == 0
    figure = saga_chaos_figure(result)
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["seed-step-functions", "your-saga"]


def test_kata_simulate_saga_chaos_json(capsys):
    assert main(["simulate", "saga-chaos", "--seed", "2", "--json", "--variant", "seed-choreography"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scenario"] == "saga-chaos" and out["variants"] == ["seed-choreography"]
    summary = out["summary"]["seed-choreography"]
    assert summary["charged_twice"] > 0 and summary["violations"]["money conserved"] > 0
