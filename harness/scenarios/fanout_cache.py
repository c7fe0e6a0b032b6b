"""``fanout-cache``: the profile page behind a cache of whole answers, with the seed's 60 s TTL.

The seed caches the composed profile at the gateway for 60 s and claims:
first request 170 ms, cached requests 10 ms, "94 % latency reduction", and
"reduces backend calls 95 %+". Here a backend for frontend (see
:mod:`.composition`) serves page views that arrive at random (Poisson) at
``rate`` per second, spread over ``profiles`` customers, for ``duration``
virtual seconds. A miss composes users, orders and payments (3 backend calls,
170 ms); a hit costs the bff's own 10 ms. By default users fails (503) for a
minute, from t=300 s to t=360 s.

Variants: ``no-cache`` (every view composes), ``ttl-cache`` (a plain TTL
cache: concurrent misses each compose), ``coalescing`` (concurrent misses
share one composition) and ``stale-if-error`` (and, when a refresh fails, a
stale page for up to ``stale_if_error`` seconds).

>>> result = run(seed=1, variants=["coalescing"], faults=[], duration=120)
>>> s = result.variant("coalescing").summary
>>> s["first_page_ms"], s["hit_ms"], s["hit_latency_reduction_percent"]
(170.0, 10.0, 94.12)

Where the seed's "95 %+" holds: with Poisson views, each cached page is
composed once per TTL and then once more at the first view after it expires,
so the share of backend calls saved is lambda*T / (1 + lambda*T), where
lambda is the views per second *of one page* and T the TTL (see
:func:`expected_saving`). 95 % needs lambda*T >= 19: about 19 views of the
same page per TTL, one every 3.2 s with T = 60 s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..load import open_loop
from ..recorder import quantile
from ..world import World
from .base import ScenarioResult, Variant
from .composition import OWN_WORK, TextbookCache, create_app
from .fanout import SERVICE_TIMES

__all__ = ["OUTAGE", "VARIANTS", "build", "expected_saving", "run", "run_variant"]

VARIANTS = ("no-cache", "ttl-cache", "coalescing", "stale-if-error")
OUTAGE = (300.0, 360.0)  # users answers 503 (the default schedule)
RATE = 1.0  # page views per second
TTL = 60.0  # the seed's
STALE_IF_ERROR = 300.0
DURATION = 600.0
CLIENT_TIMEOUT = 5.0
BACKENDS = ("users", "orders", "payments")

CacheFactory = Callable[..., Any]  # factory(ttl, stale_if_error=..., clock=...) -> object with async get(key, load)


def expected_saving(views_per_second: float, ttl: float) -> float:
    """The share of backend calls a TTL cache saves for one page viewed at random (Poisson).

    Each cycle is one composition, then ``ttl`` seconds of hits, then the wait
    for the next view: 1 + lambda*T views per composition on average.

    >>> round(100 * expected_saving(1.0, 60), 2), round(100 * expected_saving(19 / 60, 60), 2)
    (98.36, 95.0)
    """
    served = views_per_second * ttl
    return served / (1 + served)


def _textbook(ttl: float, *, stale_if_error: float = 0.0, clock: Any) -> TextbookCache:
    return TextbookCache(clock, ttl, stale_if_error=stale_if_error)


def build(seed: int, variant: str, *, ttl: float = TTL, stale_if_error: float = STALE_IF_ERROR,
          cache_factory: CacheFactory | None = None) -> World:
    """The three backends with the seed's times, and a bff with the variant's cache."""
    world = World(seed=seed)
    for service in BACKENDS:
        world.add_service(service, instances=2)
    for (service, route), seconds in SERVICE_TIMES.items():
        if service in BACKENDS:
            world.faults.inject({"fault": "latency", "target": service, "route": route,
                                 "dist": "constant", "value": seconds})
    factory = cache_factory or _textbook
    if variant == "no-cache":
        cache = None
    elif variant == "ttl-cache":
        cache = TextbookCache(world.clock, ttl, coalesce=False)
    elif variant == "coalescing":
        cache = factory(ttl, stale_if_error=0.0, clock=world.clock)
    else:
        cache = factory(ttl, stale_if_error=stale_if_error, clock=world.clock)
    world.add_service("bff", create_app, options={"cache": cache})
    world.faults.inject({"fault": "latency", "target": "bff", "route": "GET /profile",
                         "dist": "constant", "value": OWN_WORK})
    return world


def run_variant(name: str, seed: int, *, rate: float = RATE, profiles: int = 1, ttl: float = TTL,
                stale_if_error: float = STALE_IF_ERROR, duration: float = DURATION,
                faults: list[dict] | None = None, cache_factory: CacheFactory | None = None) -> Variant:
    """One variant: Poisson page views for ``duration`` s; ``profiles`` = 1 views the seed's user-123."""
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r} (fanout-cache has: {', '.join(VARIANTS)})")
    if not 1 <= profiles <= 50:
        raise ValueError("profiles must be between 1 and 50")
    world = build(seed, name, ttl=ttl, stale_if_error=stale_if_error, cache_factory=cache_factory)
    schedule = faults if faults is not None else [
        {"at": OUTAGE[0], "until": OUTAGE[1], "fault": "error", "target": "users", "status": 503},
    ]
    world.faults.schedule(schedule)
    visitors = world.rng("visitors")
    net = world.net

    def view(i: int) -> None:
        user_id = "user-123" if profiles == 1 else f"user-{visitors.randint(1, profiles)}"
        net.fire("GET", "bff", f"/profile/{user_id}", caller="customer", timeout=CLIENT_TIMEOUT)

    open_loop(world, rate, until=duration, fire=view, arrivals="poisson", stream="views")
    world.run(until=duration + CLIENT_TIMEOUT)  # let the last views finish
    summary = summarize(world, schedule)
    world.close()
    return Variant(name, world, summary)


def summarize(world: World, schedule: list[dict]) -> dict[str, Any]:
    """Headline figures of one variant: latencies, backend calls, availability."""
    rec = world.recorder
    views = rec.select(caller="customer")
    hits = [x for x in views if (x.response_headers or {}).get("x-cache") == "hit"]
    backend = rec.select(caller="bff")
    by_cache: dict[str, int] = {}
    for x in views:
        how = (x.response_headers or {}).get("x-cache", x.outcome)
        by_cache[how] = by_cache.get(how, 0) + 1
    first_ms = round(views[0].latency * 1000, 3) if views else None
    hit_ms = round(quantile([x.latency for x in hits], 0.5) * 1000, 3) if hits else None
    outages = [(e["at"], float("inf") if e.get("until") is None else e["until"]) for e in schedule
               if e.get("fault") in ("error", "hang", "crash") and e.get("target") in BACKENDS]

    def answered(xs: list) -> float | None:
        return round(100 * sum(1 for x in xs if x.status == 200) / len(xs), 2) if xs else None

    during = [x for x in views if any(lo <= x.start < hi for lo, hi in outages)]
    return {
        "page_views": len(views),
        "answered_percent": answered(views),
        "answered_during_outage_percent": answered(during),
        "x_cache": dict(sorted(by_cache.items())),
        "first_page_ms": first_ms,
        "hit_ms": hit_ms,
        "hit_latency_reduction_percent": (round(100 * (first_ms - hit_ms) / first_ms, 2)
                                          if first_ms and hit_ms is not None else None),
        "p50_ms": round(quantile([x.latency for x in views], 0.5) * 1000, 3) if views else None,
        "compositions": sum(i.ctx.local.get("stats", {}).get("compositions", 0) for i in world.instances("bff")),
        "backend_calls": len(backend),
        "backend_calls_saved_percent": (round(100 * (1 - len(backend) / (len(BACKENDS) * len(views))), 2)
                                        if views else None),
    }


def run(seed: int = 0, *, variants: list[str] | None = None, faults: list[dict] | None = None,
        **settings: Any) -> ScenarioResult:
    """Run the chosen variants (all by default) side by side with one seed.

    ``settings`` go to :func:`run_variant`: rate, profiles, ttl,
    stale_if_error, duration, cache_factory.
    """
    chosen = variants or list(VARIANTS)
    result = ScenarioResult("fanout-cache", seed,
                            [run_variant(v, seed, faults=faults, **settings) for v in chosen])
    rate, profiles, ttl = settings.get("rate", RATE), settings.get("profiles", 1), settings.get("ttl", TTL)
    result.summary["expected_saving_percent"] = round(100 * expected_saving(rate / profiles, ttl), 2)
    result.plot = _plot
    return result


def _plot(result: ScenarioResult) -> Any:
    # matplotlib only when a figure is asked for
    from .composition_figures import cache_figure

    return cache_figure(result)
