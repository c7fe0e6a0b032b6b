"""``slow-backend``: orders slows down; the profile page with per-call timeouts or one deadline.

orders normally answers in 150 ms; from t=30 s to t=90 s it takes 3 s (slow,
not dead: no error, no hang). Page views arrive at random, 5 per second,
for 120 s. Variants:

- ``sequential``: the shop's gateway awaiting its three calls in turn, each
  with the seed's 5 s timeout: 100 + 150 + 120 + 20 = 390 ms, and at least
  3.24 s while orders is slow;
- ``parallel``: the same gateway calling all three at once (the seed's
  design): 170 ms, and at least 3.02 s while orders is slow. A 5 s timeout
  per call never fires for a 3 s answer, so every page waits for the
  slowest part; and each waiting page holds one of the gateway's 16
  workers, so bursts of views queue behind them (the tail grows past 4 s);
- ``deadline``: a backend for frontend with one overall deadline of 300 ms
  (see :mod:`.composition`): 170 ms, and 320 ms while orders is slow, with
  the orders part missing and named in the page's ``errors``.

>>> result = run(seed=1, duration=60, variants=["parallel", "deadline"])
>>> [(v.name, v.summary["slow_p50_ms"], v.summary["slow_partial_percent"]) for v in result.variants]
[('parallel', 3020.0, 0.0), ('deadline', 320.0, 100.0)]
"""

from __future__ import annotations

from typing import Any

from ..load import open_loop
from ..recorder import quantile
from ..world import World
from .base import ScenarioResult, Variant, faults_per_variant
from .composition import OWN_WORK, create_app
from .fanout import SERVICE_TIMES

__all__ = ["SLOWDOWN", "VARIANTS", "build", "run", "run_variant", "targets"]

VARIANTS = ("sequential", "parallel", "deadline")
SLOWDOWN = (30.0, 90.0)  # orders takes 3 s instead of 150 ms
SLOW_ORDERS = 3.0
RATE = 5.0
DURATION = 120.0
DEADLINE = 0.3
CLIENT_TIMEOUT = 10.0


def build(seed: int, variant: str, *, deadline: float = DEADLINE) -> World:
    """The backends with the seed's times; the shop's gateway, or a bff with a deadline."""
    world = World(seed=seed)
    for service in ("users", "orders", "payments"):
        world.add_service(service, instances=2)
    if variant == "deadline":
        world.add_service("bff", create_app, options={"deadline": deadline})
        world.faults.inject({"fault": "latency", "target": "bff", "route": "GET /profile",
                             "dist": "constant", "value": OWN_WORK})
    else:
        world.add_service("gateway")
    for (service, route), seconds in SERVICE_TIMES.items():
        world.faults.inject({"fault": "latency", "target": service, "route": route,
                             "dist": "constant", "value": seconds})
    return world


def targets(variant: str) -> set[str]:
    """The services and instances a fault can name in ``variant`` (the gateway or the bff differ)."""
    world = build(0, variant)
    try:
        return set(world.net.services) | set(world.net.instances)
    finally:
        world.close()


def run_variant(name: str, seed: int, *, rate: float = RATE, duration: float = DURATION,
                deadline: float = DEADLINE, faults: list[dict] | None = None) -> Variant:
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r} (slow-backend has: {', '.join(VARIANTS)})")
    world = build(seed, name, deadline=deadline)
    base = SERVICE_TIMES[("orders", "GET /orders")]
    schedule = faults if faults is not None else [
        {"at": SLOWDOWN[0], "until": SLOWDOWN[1], "fault": "latency", "target": "orders", "route": "GET /orders",
         "dist": "constant", "value": round(SLOW_ORDERS - base, 6)},  # on top of the usual 150 ms
    ]
    world.faults.schedule(schedule)
    net = world.net
    visitors = world.rng("visitors")

    def view(i: int) -> None:
        user_id = f"user-{visitors.randint(1, 50)}"
        if name == "deadline":
            net.fire("GET", "bff", f"/profile/{user_id}", caller="customer", timeout=CLIENT_TIMEOUT)
        else:
            net.fire("GET", "gateway", f"/profile/{user_id}", caller="customer", timeout=CLIENT_TIMEOUT,
                     params={"mode": name})

    open_loop(world, rate, until=duration, fire=view, arrivals="poisson", stream="views")
    world.run(until=duration + CLIENT_TIMEOUT)
    summary = summarize(world, schedule)
    world.close()
    return Variant(name, world, summary)


def summarize(world: World, schedule: list[dict]) -> dict[str, Any]:
    views = world.recorder.select(caller="customer")
    slow = [(e["at"], e["until"] if e.get("until") is not None else float("inf"))  # "until": null = never
            for e in schedule if e.get("target") == "orders"]

    def during(x) -> bool:
        return any(lo <= x.start < hi for lo, hi in slow)

    def p(xs: list, q: float) -> float | None:
        return round(quantile([x.latency for x in xs], q) * 1000, 3) if xs else None

    def partial(xs: list) -> float | None:
        marked = [x for x in xs if (x.response_headers or {}).get("x-cache") == "partial"]
        return round(100 * len(marked) / len(xs), 2) if xs else None

    calm, slowed = [x for x in views if not during(x)], [x for x in views if during(x)]
    return {
        "page_views": len(views),
        "answered_percent": round(100 * sum(1 for x in views if x.status == 200) / len(views), 2) if views else None,
        "calm_p50_ms": p(calm, 0.5),
        "slow_p50_ms": p(slowed, 0.5),
        "slow_p99_ms": p(slowed, 0.99),
        "slow_partial_percent": partial(slowed),
    }


def run(seed: int = 0, *, variants: list[str] | None = None, faults: list[dict] | None = None,
        **settings: Any) -> ScenarioResult:
    """Run the chosen variants (all by default); ``settings``: rate, duration, deadline."""
    chosen = variants or list(VARIANTS)
    for name in chosen:
        if name not in VARIANTS:
            raise KeyError(f"unknown variant {name!r} (slow-backend has: {', '.join(VARIANTS)})")
    notes: list[str] = []
    per_variant: dict[str, list[dict] | None] = dict.fromkeys(chosen)
    if faults is not None:  # checked against every chosen variant before any runs
        every = {v: targets(v) for v in VARIANTS}
        per_variant, notes = faults_per_variant(faults, {v: every[v] for v in chosen}, callers=("customer",),
                                                others=every)
    result = ScenarioResult("slow-backend", seed, [run_variant(v, seed, faults=per_variant[v], **settings)
                                                   for v in chosen])
    result.notes = notes
    result.plot = _plot
    return result


def _plot(result: ScenarioResult) -> Any:
    # matplotlib only when a figure is asked for
    from .composition_figures import slow_backend_figure

    return slow_backend_figure(result)
