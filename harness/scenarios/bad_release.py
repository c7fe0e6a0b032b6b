"""``bad-release``: a canary rolled out in stages, judged at each one; a good release and a bad one.

The seed's rollout (App Mesh, "Step 4"): route 10, 25, 50, 75, then 100 % of
a service's traffic to the new release, wait five minutes at each stage, and
roll back (weight 0) when the error rate is above 1 %. Here the service is
catalog: two instances of release v1, one canary instance of release v2;
customers browse products at ``rate`` requests per second the whole time.

Variants, each in its own world with the same seed:

- ``good-release``: v2 works; every stage passes and it is promoted at
  t = 1500 s (25 minutes).
- ``bad-release``: 5 % of v2's answers are 500s. Each stage is judged on the
  canary's own requests (errors over the canary's requests, no data is a
  failed check): rolled back at the first stage, after 5 minutes; the
  customers keep browsing, on v1 only, until t = 1500 s.
- ``seed-check``: the same bad release judged the seed's way:
  ``HTTPCode_Target_5XX_Count`` of the whole target group over five minutes,
  divided by 100 and read as a percentage. That is a rate only when the
  target group served exactly 10,000 requests; at 4 requests per second it
  served 1,200, so the bad release sails through every stage and is
  promoted. (And with no datapoint at all it returns 0.0: healthy.)

The controller here is the textbook one, for the scenario's own use; the
canary kata builds it, with baselines, failed-check budgets and a rollback
that drains.

>>> result = run(seed=1, variants=["bad-release"])
>>> summary = result.variant("bad-release").summary
>>> summary["status"], summary["finished_at"], summary["check at 10 %"]
('rolled-back', 300.0, '5 of 117 canary answers failed (4.3%) -> failed')
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..load import open_loop
from ..network import Instance
from ..world import World
from .base import ScenarioResult, Variant

__all__ = ["MAX_ERROR_RATE", "STAGES", "VARIANTS", "WeightedRoute", "build", "run", "run_variant"]

STAGES = (10, 25, 50, 75, 100)  # percent of the traffic on the canary (the seed's stages)
STAGE_SECONDS = 300.0  # the seed's five minutes per stage: free in virtual time
MAX_ERROR_RATE = 0.01  # the seed's "more than 1 % errors"
RATE = 4.0  # customer requests per second
BUG_RATE = 0.05  # share of the bad release's answers that are 500s

VARIANTS: dict[str, dict[str, Any]] = {
    "good-release": {"bug_rate": 0.0, "judge": "canary"},
    "bad-release": {"bug_rate": BUG_RATE, "judge": "canary"},
    "seed-check": {"bug_rate": BUG_RATE, "judge": "seed"},
}


class WeightedRoute:
    """App Mesh's weighted targets for catalog: one draw per request from the world's seed."""

    def __init__(self, world: World, service: str = "catalog"):
        self.service = service
        self.canary_weight = 0
        self.rng = world.rng("mesh")
        self._turn: dict[str, int] = {}

    def __call__(self, service: str, pool: list[Instance]) -> Instance:
        release = "v2" if service == self.service and self.rng.random() * 100 < self.canary_weight else "v1"
        candidates = [i for i in pool if i.release == release] or pool
        turn = self._turn.get(release, 0)
        self._turn[release] = turn + 1
        return candidates[turn % len(candidates)]


def build(seed: int, *, bug_rate: float = 0.0) -> tuple[World, WeightedRoute]:
    """catalog v1 on two instances, v2 (the canary) on one, behind a weighted route."""
    world = World(seed=seed)
    world.add_service("catalog", instances=2)
    world.add_instance("catalog", release="v2", options={"bug_rate": bug_rate})
    route = WeightedRoute(world)
    world.net.balancer = route
    return world, route


def _canary_figures(world: World, start: float, end: float) -> dict[str, Any]:
    """What the stage's window [start, end) saw: the canary's requests, and the whole service's 5xx."""
    canary_addresses = {i.address for i in world.instances("catalog") if i.release == "v2"}
    window = world.recorder.select(service="catalog", since=start, until=end)
    canary = [x for x in window if x.instance in canary_addresses]
    errors = sum(1 for x in canary if x.failed)
    return {
        "canary_requests": len(canary),
        "canary_errors": errors,
        "canary_error_rate": errors / len(canary) if canary else None,
        "service_requests": len(window),
        "service_5xx": sum(1 for x in window if x.status is not None and x.status >= 500),
    }


def _judge(judge: str, figures: dict[str, Any]) -> tuple[bool, float | None]:
    """(passed, the number the check compared with its threshold)."""
    if judge == "seed":
        # The seed's check_error_rate: the 5xx count over five minutes / 100, "as a
        # percentage", compared with 1.0; 0.0 when there is no datapoint.
        value = figures["service_5xx"] / 100
        return value <= 1.0, value / 100  # as a fraction, to plot beside the real rates
    rate = figures["canary_error_rate"]
    return (rate is not None and rate <= MAX_ERROR_RATE), rate


def run_variant(name: str, seed: int, *, rate: float = RATE, bug_rate: float | None = None,
                stage_seconds: float = STAGE_SECONDS, faults: list[dict] | None = None) -> Variant:
    config = VARIANTS[name]
    world, route = build(seed, bug_rate=config["bug_rate"] if bug_rate is None else bug_rate)
    if faults:
        world.faults.schedule(faults)
    net = world.net

    def customer(i: int) -> None:
        sku = f"sku-{i % 20 + 1}"
        net.fire("GET", "catalog", f"/products/{sku}", caller="customer", timeout=10.0)

    horizon = stage_seconds * len(STAGES)
    open_loop(world, rate, until=horizon, start=0.05, fire=customer)
    stages: list[dict[str, Any]] = []
    outcome = {"status": "promoted", "finished_at": horizon}

    async def rollout() -> None:
        for weight in STAGES:
            route.canary_weight = weight
            start = world.now()
            world.recorder.event(start, "canary", "catalog", weight=weight)
            await asyncio.sleep(stage_seconds)
            figures = _canary_figures(world, start, world.now())
            passed, judged = _judge(config["judge"], figures)
            stages.append({"weight": weight, "start": start, "end": world.now(), "passed": passed,
                           "judged_value": judged, **figures})
            world.recorder.event(world.now(), "canary-check", "catalog", weight=weight, passed=passed)
            if not passed:
                route.canary_weight = 0
                world.recorder.event(world.now(), "canary", "catalog", weight=0)
                outcome.update(status="rolled-back", finished_at=world.now())
                return
        outcome["finished_at"] = world.now()

    world.run(rollout())
    world.run(until=horizon)  # customers keep coming after the decision: the same 25 minutes in every variant
    world.close()
    customers = world.recorder.select(caller="customer")
    summary: dict[str, Any] = {
        **outcome,
        "judge": "the seed's 5xx count / 100" if config["judge"] == "seed" else "errors / canary requests",
    }
    for stage in stages:
        summary[f"check at {stage['weight']} %"] = _check_line(stage, config["judge"])
    summary["customer_requests"] = len(customers)
    summary["customer_errors"] = sum(1 for x in customers if x.failed)
    variant = Variant(name, world, summary)
    variant.stages = stages  # type: ignore[attr-defined]  (the rows of the rollout chart)
    return variant


def _check_line(stage: dict[str, Any], judge: str) -> str:
    """``6 of 111 canary answers failed (5.4 %) -> failed``: one line per check for ``kata simulate``."""
    line = f"{stage['canary_errors']} of {stage['canary_requests']} canary answers failed"
    if stage["canary_error_rate"] is not None:
        line += f" ({stage['canary_error_rate']:.1%})"
    if judge == "seed":
        line += f"; the seed's number: {stage['service_5xx']} / 100 = {stage['service_5xx'] / 100:g} \"%\""
    return line + (" -> passed" if stage["passed"] else " -> failed")


def run(seed: int = 0, *, variants: list[str] | None = None, rate: float = RATE, bug_rate: float | None = None,
        stage_seconds: float = STAGE_SECONDS, faults: list[dict] | None = None) -> ScenarioResult:
    chosen = variants or list(VARIANTS)
    result = ScenarioResult("bad-release", seed, [
        run_variant(v, seed, rate=rate, bug_rate=bug_rate, stage_seconds=stage_seconds, faults=faults)
        for v in chosen])
    from ..canary_plots import rollout_chart

    result.plot = rollout_chart
    return result
