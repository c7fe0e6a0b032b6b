"""Named scenarios, like Maelstrom's workloads: a world, a load, faults and a verdict.

>>> {"cascade", "fanout"} <= set(SCENARIOS)
True
>>> result = run_scenario("cascade", seed=7, variants=["breaker+timeout"], duration=15)
>>> result.variant("breaker+timeout").summary["browse_availability_during_outage"]
1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import ScenarioResult, Variant

__all__ = ["SCENARIOS", "ScenarioResult", "Variant", "describe", "run_scenario"]


def _cascade(**kwargs: Any) -> ScenarioResult:
    from . import cascade

    return cascade.run(**kwargs)


def _fanout(**kwargs: Any) -> ScenarioResult:
    from . import fanout

    return fanout.run(**kwargs)


def _flapping(**kwargs: Any) -> ScenarioResult:
    from . import flapping

    return flapping.run(**kwargs)


def _fanout_cache(**kwargs: Any) -> ScenarioResult:
    from . import fanout_cache

    return fanout_cache.run(**kwargs)


def _slow_backend(**kwargs: Any) -> ScenarioResult:
    from . import slow_backend

    return slow_backend.run(**kwargs)


def _bad_release(**kwargs: Any) -> ScenarioResult:
    from . import bad_release

    return bad_release.run(**kwargs)


def _mesh(**kwargs: Any) -> ScenarioResult:
    from . import mesh

    return mesh.run(**kwargs)

def _saga_chaos(**kwargs: Any) -> ScenarioResult:
    from . import saga_chaos

    return saga_chaos.run(**kwargs)


def _game_day(**kwargs: Any) -> ScenarioResult:
    from . import game_day

    return game_day.run(**kwargs)


# name -> (runner, one-line description, variants)
SCENARIOS: dict[str, tuple[Callable[..., ScenarioResult], str, tuple[str, ...]]] = {
    "cascade": (_cascade, "payments hangs for 60 s under 100 checkouts/s: with and without a circuit breaker",
                ("no-breaker", "breaker", "breaker+timeout")),
    "fanout": (_fanout, "the profile page: three calls made one after another vs in parallel",
               ("client-sequential", "gateway-sequential", "gateway-parallel")),
    "flapping": (_flapping, "catalog instances crash and flap under 20 requests/s: static round-robin vs "
                 "a health-checked registry, without and with retries",
                 ("static-round-robin", "registry", "registry+retry")),
    "fanout-cache": (_fanout_cache, "the profile page behind a 60 s cache: latency, backend calls saved, "
                     "a users outage", ("no-cache", "ttl-cache", "coalescing", "stale-if-error")),
    "slow-backend": (_slow_backend, "orders takes 3 s for a minute: per-call timeouts vs one overall deadline",
                     ("sequential", "parallel", "deadline")),
    "bad-release": (_bad_release, "a canary rolled out 10/25/50/75/100 %: a good release, a bad one, and the "
                    "bad one judged the seed's way", ("good-release", "bad-release", "seed-check")),
    "mesh": (_mesh, "catalog-2 answers 503 for two minutes: no mesh, the mesh's retries, retries + outlier ejection",
             ("no-mesh", "retries", "retries+ejection")),
    "game-day": (_game_day, "the whole shop for 10 minutes under a chaos schedule (payments hang, catalog "
                 "crash and flap, slow inventory, a bad catalog v2): without and with the learner's "
                 "patterns, judged by SLOs", ("unprotected", "protected")),
    "saga-chaos": (_saga_chaos, "40 orders through a saga while payments and inventory lose answers, "
                   "crash and hang: the seed's flows vs a hardened one, and the saga invariants",
                   ("seed-step-functions", "hardened-step-functions", "seed-choreography")),
    # registry scenarios:
    # composer scenarios:
    # saga scenarios:
    # tracing scenarios:
    # canary scenarios:
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
