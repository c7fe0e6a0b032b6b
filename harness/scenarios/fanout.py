"""``fanout``: the profile page, composed one call after another or all at once.

The seed's example: a profile needs the user (100 ms), their orders (150 ms)
and their payment methods (120 ms). Called one after another that is
100 + 150 + 120 = 370 ms; called in parallel by a gateway it is the slowest
call plus the gateway's own 20 ms: 150 + 20 = 170 ms. The simulator gives
exactly those figures with constant service times, and the seed's "54 %
faster" is (370 - 170) / 370 = 54.05 %: that arithmetic holds.

Variants: ``client-sequential`` (the browser calls the three services itself,
in turn), ``gateway-sequential`` (a gateway that awaits each call in turn:
390 ms, worse than no gateway) and ``gateway-parallel``.

The browser behaves like a real client under faults (``faults=``): every
call has a timeout (``BROWSER_TIMEOUT``), and a call that fails (refused,
reset, timed out, an HTTP error) is recorded and counted, not raised. A page
view whose user part failed is an error (the gateway answers 502 then); one
with another part missing is partial (the gateway lists it in ``errors``).
``p50_ms``/``p99_ms`` cover every page view, failed ones included (the time
the visitor waited), as the recorder's metrics do.

>>> result = run(seed=1, requests=3)
>>> {v.name: v.summary["p50_ms"] for v in result.variants}
{'client-sequential': 370.0, 'gateway-sequential': 390.0, 'gateway-parallel': 170.0}
"""

from __future__ import annotations

from ..http import MalformedResponse, NetworkError, Response
from ..world import World
from .base import ScenarioResult, Variant

__all__ = ["BROWSER_TIMEOUT", "SERVICE_TIMES", "build", "run"]

# Constant service times from the seed's example, seconds.
SERVICE_TIMES = {
    ("users", "GET /users"): 0.100,
    ("orders", "GET /orders"): 0.150,
    ("payments", "GET /payment-methods"): 0.120,
    ("gateway", "GET /profile"): 0.020,
}
VARIANTS = ("client-sequential", "gateway-sequential", "gateway-parallel")
# The browser's timeout per call, virtual seconds: longer than the gateway's
# 5 s per part, so a slow part shows as the gateway's error, not the browser's.
BROWSER_TIMEOUT = 10.0


def build(seed: int, *, jitter: float = 0.0) -> World:
    """The four services with the seed's service times (``jitter``: lognormal sigma)."""
    world = World(seed=seed)
    for service in ("users", "orders", "payments", "gateway"):
        world.add_service(service, instances=2)
    for (service, route), seconds in SERVICE_TIMES.items():
        if jitter:
            fault = {"dist": "lognormal", "median": seconds, "sigma": jitter}
        else:
            fault = {"dist": "constant", "value": seconds}
        world.faults.inject({"fault": "latency", "target": service, "route": route, **fault})
    return world


async def _call(world: World, target: str, path: str, **params: str) -> Response | None:
    """One browser call with a timeout: the response, or None when no answer came (recorded)."""
    try:
        return await world.client("browser").get(target, path, params=params or None, timeout=BROWSER_TIMEOUT)
    except NetworkError:  # refused, reset or timed out: the recorder has it
        return None


async def _client_sequential(world: World, user_id: str) -> str:
    """The browser calls the three services in turn; returns the page's outcome."""
    user = await _call(world, "users", f"/users/{user_id}")
    orders = await _call(world, "orders", "/orders", user_id=user_id)
    methods = await _call(world, "payments", "/payment-methods", user_id=user_id)
    if user is None or user.status >= 400:
        return "error"  # the required part: no page
    if any(r is None or r.status >= 400 for r in (orders, methods)):
        return "partial"
    return "ok"


async def _through_gateway(world: World, user_id: str, mode: str) -> str:
    """The browser asks the gateway for the whole page; returns the page's outcome."""
    page = await _call(world, "gateway", f"/profile/{user_id}", mode=mode)
    if page is None or page.status >= 400:
        return "error"
    try:
        body = page.json()
    except MalformedResponse:
        return "error"
    return "partial" if isinstance(body, dict) and body.get("errors") else "ok"


def run_variant(name: str, seed: int, *, requests: int = 50, jitter: float = 0.0,
                faults: list[dict] | None = None) -> Variant:
    world = build(seed, jitter=jitter)
    if faults:
        world.faults.schedule(faults)
    latencies: list[float] = []
    outcomes = {"ok": 0, "partial": 0, "error": 0}
    visitors = world.rng("visitors")

    async def one(i: int) -> None:
        user_id = f"user-{visitors.randint(1, 50)}"  # whose profile: drawn from the seed
        start = world.now()
        if name == "client-sequential":
            outcome = await _client_sequential(world, user_id)
        else:
            mode = "sequential" if name == "gateway-sequential" else "parallel"
            outcome = await _through_gateway(world, user_id, mode)
        outcomes[outcome] += 1
        latencies.append(world.now() - start)  # failed views too: the time the visitor waited

    async def page_views() -> None:
        for i in range(requests):  # one page view at a time: latency, not load
            await one(i)

    world.run(page_views())
    world.close()
    from ..recorder import quantile

    summary = {
        "page_views": len(latencies),
        "p50_ms": round(quantile(latencies, 0.5) * 1000, 3),
        "p99_ms": round(quantile(latencies, 0.99) * 1000, 3),
        "partial": outcomes["partial"],
        "errors": outcomes["error"],
    }
    return Variant(name, world, summary)


def run(seed: int = 0, *, variants: list[str] | None = None, requests: int = 50, jitter: float = 0.0,
        faults: list[dict] | None = None) -> ScenarioResult:
    chosen = variants or list(VARIANTS)
    result = ScenarioResult("fanout", seed, [run_variant(v, seed, requests=requests, jitter=jitter, faults=faults)
                                             for v in chosen])
    p50 = {v.name: v.summary["p50_ms"] for v in result.variants}
    if "client-sequential" in p50 and "gateway-parallel" in p50:
        before, after = p50["client-sequential"], p50["gateway-parallel"]
        result.summary["parallel_saving_percent"] = round(100 * (before - after) / before, 2)
    return result
