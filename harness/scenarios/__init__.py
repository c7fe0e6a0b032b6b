"""Named scenarios, like Maelstrom's workloads: a world, a load, faults and a verdict.

>>> {"cascade", "fanout"} <= set(SCENARIOS)
True
>>> result = run_scenario("cascade", seed=7, variants=["breaker+timeout"], duration=15)
>>> result.variant("breaker+timeout").summary["browse_availability_during_outage"]
1.0
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .base import ScenarioResult, Variant

__all__ = ["SCENARIOS", "ScenarioResult", "Variant", "describe", "run_scenario"]


# name -> (module, one-line description, variants), in the order of the chapters.
_TABLE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "fanout": ("fanout", "the profile page: three calls made one after another vs in parallel",
               ("client-sequential", "gateway-sequential", "gateway-parallel")),
    "flapping": ("flapping", "catalog instances crash and flap under 20 requests/s: static round-robin vs "
                 "a health-checked registry, without and with retries",
                 ("static-round-robin", "registry", "registry+retry")),
    "cascade": ("cascade", "payments hangs for 60 s under 100 checkouts/s: with and without a circuit breaker",
                ("no-breaker", "breaker", "breaker+timeout")),
    "fanout-cache": ("fanout_cache", "the profile page behind a 60 s cache: latency, backend calls saved, "
                     "a users outage", ("no-cache", "ttl-cache", "coalescing", "stale-if-error")),
    "slow-backend": ("slow_backend", "orders takes 3 s for a minute: per-call timeouts vs one overall deadline",
                     ("sequential", "parallel", "deadline")),
    "saga-chaos": ("saga_chaos", "40 orders through a saga while payments and inventory lose answers, "
                   "crash and hang: the seed's flows vs a hardened one, and the saga invariants",
                   ("seed-step-functions", "hardened-step-functions", "seed-choreography")),
    "bad-release": ("bad_release", "a canary rolled out 10/25/50/75/100 %: a good release, a bad one, and the "
                    "bad one judged the seed's way", ("good-release", "bad-release", "seed-check")),
    "mesh": ("mesh", "catalog-2 answers 503 for two minutes: no mesh, the mesh's retries, retries + outlier ejection",
             ("no-mesh", "retries", "retries+ejection")),
    "game-day": ("game_day", "the whole shop for 10 minutes under a chaos schedule (payments hang, catalog "
                 "crash and flap, slow inventory, a bad catalog v2): without and with the learner's "
                 "patterns, judged by SLOs", ("unprotected", "protected")),
}


def _runner(module: str) -> Callable[..., ScenarioResult]:
    """Import the scenario's module only when it runs (some import matplotlib or katas)."""

    def run(**kwargs: Any) -> ScenarioResult:
        return importlib.import_module(f"{__name__}.{module}").run(**kwargs)

    return run


# name -> (runner, one-line description, variants)
SCENARIOS: dict[str, tuple[Callable[..., ScenarioResult], str, tuple[str, ...]]] = {
    name: (_runner(module), text, variants) for name, (module, text, variants) in _TABLE.items()
}


def describe() -> list[tuple[str, str, tuple[str, ...]]]:
    return [(name, text, variants) for name, (_, text, variants) in SCENARIOS.items()]


def run_scenario(name: str, seed: int = 0, *, variants: list[str] | None = None,
                 faults: list[dict] | None = None, **options: Any) -> ScenarioResult:
    """Run a named scenario; ``faults`` replaces its default fault schedule."""
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    runner, _, known = SCENARIOS[name]
    for variant in variants or []:
        if variant not in known:
            raise KeyError(f"scenario {name!r} has no variant {variant!r} (variants: {', '.join(known)})")
    kwargs: dict[str, Any] = {"seed": seed, "variants": variants, **options}
    if faults is not None:
        kwargs["faults"] = faults
    return runner(**kwargs)
