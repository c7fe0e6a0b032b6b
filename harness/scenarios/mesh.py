"""``mesh``: one catalog instance fails for two minutes; what the mesh's retries and ejection do about it.

Customers browse products at 5 requests per second through the service
mesh's sidecar. catalog has three instances; from t = 20 s to t = 140 s
``catalog-2`` answers every request with a 503. Variants, each in its own
world with the same seed:

- ``no-mesh``: plain round-robin, no retry: a third of the customers get the
  503 for two minutes.
- ``retries``: the seed's route retry policy (retry server errors; here 2
  retries, 1 s per try, 3 s in all): customers see no error, but catalog-2
  still gets a third of the first attempts, and every one of them costs a
  retry.
- ``retries+ejection``: the same retries, and App Mesh's outlier detection
  (the seed's numbers: 5 server errors in a row eject a host for 30 s, at
  most 50 % of the hosts). catalog-2 gets 5 requests, is ejected for 30 s,
  gets 5 more when it comes back, is ejected for 60 s, then 90 s: the
  ejection time grows with each ejection (base times the number of times).

The retry policy and the detector here are textbook ones, for the scenario's
own use; the canary kata builds them (level 4).

>>> result = run(seed=1, variants=["retries+ejection"])
>>> summary = result.variant("retries+ejection").summary
>>> summary["customer_failures"], summary["attempts_on_catalog-2_during_outage"]
(0, 15)
>>> summary["ejections"]
'catalog-2 at t=22.1 for 30 s; catalog-2 at t=54.1 for 60 s; catalog-2 at t=116.1 for 90 s'
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from ..http import NetworkError, Response
from ..load import open_loop
from ..network import Instance
from ..recorder import Exchange, quantile
from ..world import World
from .base import ScenarioResult, Variant

__all__ = ["DURATION", "EJECTION", "OUTAGE", "RETRIES", "VARIANTS", "Ejection", "run", "run_variant"]

VARIANTS = ("no-mesh", "retries", "retries+ejection")
RATE = 5.0  # customer requests per second
DURATION = 180.0
OUTAGE = (20.0, 140.0)  # catalog-2 answers 503 in between
RETRIES = {"max_retries": 2, "per_try_timeout": 1.0, "timeout": 3.0}
EJECTION = {"max_server_errors": 5, "base_ejection_time": 30.0, "max_ejection_percent": 50.0}


class Ejection(NamedTuple):
    host: str
    at: float
    until: float
    number: int


class _Retrying:
    """Retry 5xx answers and network errors, each try within what is left of one overall timeout."""

    def __init__(self, world: World, max_retries: int, per_try_timeout: float, timeout: float):
        self.world = world
        self.max_retries, self.per_try_timeout, self.timeout = max_retries, per_try_timeout, timeout

    async def call(self, attempt: Callable[[float], Awaitable[Response]]) -> Response:
        deadline = self.world.now() + self.timeout
        for retry in range(self.max_retries + 1):
            try:
                response = await attempt(min(self.per_try_timeout, deadline - self.world.now()))
            except NetworkError:
                if retry == self.max_retries or self.world.now() >= deadline:
                    raise
                continue
            if response.status < 500 or retry == self.max_retries or self.world.now() >= deadline:
                return response
        raise AssertionError("unreachable")


class _Ejector:
    """Consecutive server errors eject a host for base * (times ejected), within a max share of hosts."""

    def __init__(self, world: World, hosts: list[str], max_server_errors: int, base_ejection_time: float,
                 max_ejection_percent: float):
        self.world, self.hosts = world, hosts
        self.max_server_errors, self.base = max_server_errors, base_ejection_time
        self.max_percent = max_ejection_percent
        self.in_a_row = dict.fromkeys(hosts, 0)
        self.times = dict.fromkeys(hosts, 0)
        self.until: dict[str, float] = {}
        self.log: list[Ejection] = []

    def ejected(self, host: str) -> bool:
        return self.world.now() < self.until.get(host, float("-inf"))

    def observe(self, record: Any) -> None:
        if not isinstance(record, Exchange) or record.instance not in self.in_a_row:
            return
        host = record.instance
        self.in_a_row[host] = self.in_a_row[host] + 1 if record.failed else 0
        if self.in_a_row[host] >= self.max_server_errors and not self.ejected(host):
            out = sum(1 for h in self.hosts if self.ejected(h))
            if 100 * (out + 1) / len(self.hosts) <= self.max_percent:
                self.times[host] += 1
                now = self.world.now()
                self.until[host] = now + self.base * self.times[host]
                self.in_a_row[host] = 0
                self.log.append(Ejection(host, now, self.until[host], self.times[host]))


def run_variant(name: str, seed: int, *, rate: float = RATE, duration: float = DURATION,
                faults: list[dict] | None = None) -> Variant:
    world = World(seed=seed)
    world.add_service("catalog", instances=3)
    world.faults.inject({"fault": "latency", "target": "catalog", "dist": "lognormal", "median": 0.02,
                         "sigma": 0.5})
    world.faults.schedule(faults if faults is not None else [
        {"at": OUTAGE[0], "until": OUTAGE[1], "fault": "error", "target": "catalog-2", "status": 503}])
    ejector = None
    if name == "retries+ejection":
        ejector = _Ejector(world, [i.address for i in world.instances("catalog")], **EJECTION)
        world.recorder.listeners.append(ejector.observe)
        turn = [0]

        def balancer(service: str, pool: list[Instance]) -> Instance:
            healthy = [i for i in pool if not ejector.ejected(i.address)] or pool
            turn[0] += 1
            return healthy[turn[0] % len(healthy)]

        world.net.balancer = balancer
    client = world.client("customer")
    retrying = _Retrying(world, **RETRIES) if name != "no-mesh" else None
    answers: list[tuple[float, float, int | None]] = []  # what each customer got: start, end, status

    async def customer(i: int) -> None:
        start = world.now()
        sku = f"/products/sku-{i % 20 + 1}"
        try:
            if retrying is None:
                response = await client.get("catalog", sku, timeout=RETRIES["timeout"])
            else:
                response = await retrying.call(lambda t: client.get("catalog", sku, timeout=t))
            answers.append((start, world.now(), response.status))
        except NetworkError:
            answers.append((start, world.now(), None))

    open_loop(world, rate, until=duration, start=0.1, fire=customer)
    world.run(until=duration + RETRIES["timeout"])
    world.close()
    attempts = world.recorder.select(service="catalog")
    failed = [a for a in answers if a[2] is None or a[2] >= 500]
    summary = {
        "customer_requests": len(answers),
        "customer_failures": len(failed),
        "customer_p99_ms": round(1000 * (quantile([end - start for start, end, _ in answers], 0.99) or 0), 1),
        "attempts": len(attempts),
        "attempts_on_catalog-2_during_outage": sum(1 for x in attempts if x.instance == "catalog-2"
                                                   and OUTAGE[0] <= x.start < OUTAGE[1]),
        "ejections": "; ".join(f"{e.host} at t={e.at:.1f} for {e.until - e.at:g} s" for e in ejector.log)
        if ejector else "-",
    }
    variant = Variant(name, world, summary)
    variant.answers = answers  # type: ignore[attr-defined]  (for the figure)
    variant.ejections = list(ejector.log) if ejector else []  # type: ignore[attr-defined]
    return variant


def run(seed: int = 0, *, variants: list[str] | None = None, rate: float = RATE, duration: float = DURATION,
        faults: list[dict] | None = None) -> ScenarioResult:
    chosen = variants or list(VARIANTS)
    result = ScenarioResult("mesh", seed, [run_variant(v, seed, rate=rate, duration=duration, faults=faults)
                                           for v in chosen])
    from ..canary_plots import mesh_chart

    result.plot = mesh_chart
    return result

