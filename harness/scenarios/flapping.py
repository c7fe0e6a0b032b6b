"""``flapping``: instances crash and flap under steady load; discovery with health checks stops the bleeding.

The story (seed chapter, "Service Discovery Pattern"): customers browse the
catalog at 20 requests per second from t = 2 s (the instances have started
and passed their first checks by then); the catalog runs three instances. From
t = 10 s catalog-2 flaps (down 3 s, up 4 s) until t = 40 s, and at t = 20 s
catalog-3 crashes for good, until it is restarted at t = 45 s.

Variants, each in its own world with the same seed:

- ``static-round-robin``: the network's default balancer, plain round-robin
  over every instance, up or down, like a static list of addresses (or DNS
  without health checks). Every third request goes to catalog-3 while it is
  down, and is refused.
- ``registry``: a registry probes each instance's ``/health`` every second
  (timeout 0.5 s; 2 failures in a row drop an instance, 2 passes bring it
  back) and the network's balancer follows its answer, cached for 1 s
  (server-side discovery). Requests still fail in the second or two between
  a crash and its detection, and in-flight requests are reset.
- ``registry+retry``: the same, with the customers' client retrying a
  refused or reset GET on another instance (client-side discovery): almost
  nothing fails.

A chapter plugs the learner's registry in with ``discovery_factory(world)``:
it registers the catalog instances, starts the health checks, and returns an
object with ``balancer(service, instances)`` and ``async request(method,
service, path, **kwargs)`` (the kata's ``DiscoveryClient``).

>>> result = run(seed=7, duration=30)
>>> [round(v.summary["availability_during_faults"], 2) for v in result.variants]
[0.69, 0.87, 1.0]
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

from ..http import ConnectError, ConnectionReset, NetworkError, RequestTimeout, Response
from ..load import open_loop
from ..network import Instance
from ..world import World
from .base import ScenarioResult, Variant

__all__ = ["FAULTS", "VARIANTS", "TextbookDiscovery", "TextbookRegistry", "figure", "run", "run_variant"]

RATE = 20.0  # customer requests per second
OPENS = 2.0  # customers arrive from t=2 s: the instances have started and passed their first checks
DURATION = 60.0
CLIENT_TIMEOUT = 2.0
FAULTS: list[dict[str, Any]] = [
    {"at": 10, "until": 40, "fault": "flap", "target": "catalog-2", "down": 3, "up": 4},
    {"at": 20, "until": 45, "fault": "crash", "target": "catalog-3"},
]
VARIANTS: dict[str, dict[str, bool]] = {
    "static-round-robin": {"registry": False, "retry": False},
    "registry": {"registry": True, "retry": False},
    "registry+retry": {"registry": True, "retry": True},
}


class TextbookRegistry:
    """Health-checked instances, for the scenario's own use (the registry kata builds the real one).

    Every ``interval`` it sends ``GET /health`` to each instance at once;
    ``unhealthy_threshold`` failures in a row drop an instance,
    ``healthy_threshold`` passes in a row bring it back. New instances start
    unhealthy. Each change is recorded as an event (kind ``registry``).
    """

    def __init__(self, world: World, *, interval: float = 1.0, timeout: float = 0.5,
                 healthy_threshold: int = 2, unhealthy_threshold: int = 2):
        self.world = world
        self.client = world.client("registry")
        self.interval, self.timeout = interval, timeout
        self.healthy_threshold, self.unhealthy_threshold = healthy_threshold, unhealthy_threshold
        self.instances: dict[str, dict[str, list]] = {}  # service -> address -> [healthy, passes, failures]

    def register(self, service: str, address: str) -> None:
        self.instances.setdefault(service, {})[address] = [False, 0, 0]

    def resolve(self, service: str) -> list[str]:
        return [address for address, (healthy, _, _) in self.instances.get(service, {}).items() if healthy]

    async def _probe(self, address: str, state: list) -> None:
        try:
            passed = (await self.client.get(address, "/health", timeout=self.timeout)).ok
        except NetworkError:
            passed = False
        if passed:
            state[1], state[2] = state[1] + 1, 0
            flip = not state[0] and state[1] >= self.healthy_threshold
        else:
            state[1], state[2] = 0, state[2] + 1
            flip = state[0] and state[2] >= self.unhealthy_threshold
        if flip:
            state[0] = not state[0]
            self.world.recorder.event(self.world.now(), "registry", address, served=state[0])

    async def run(self) -> None:
        next_round = self.world.now()
        while True:
            await asyncio.gather(*(self._probe(address, state) for instances in self.instances.values()
                                   for address, state in instances.items()))
            next_round += self.interval
            await asyncio.sleep(max(0.0, next_round - self.world.now()))


class TextbookDiscovery:
    """A TTL cache of a registry's answer, round-robin, and a retry on another instance."""

    def __init__(self, registry: Any, client: Any, *, ttl: float = 1.0, attempts: int = 2):
        self.registry, self.client, self.ttl, self.attempts = registry, client, ttl, attempts
        self._cache: dict[str, tuple[list[str], float]] = {}
        self._turns: dict[str, int] = {}

    def pick(self, service: str) -> str:
        now = self.client.net.world.now()
        answer, fetched_at = self._cache.get(service, ([], -float("inf")))
        if now >= fetched_at + self.ttl:
            answer = list(self.registry.resolve(service))
            self._cache[service] = (answer, now)
        if not answer:
            raise ConnectError(f"no instance of {service!r} is served by the registry", target=service)
        turn = self._turns.get(service, 0)
        self._turns[service] = turn + 1
        return answer[turn % len(answer)]

    def balancer(self, service: str, instances: list[Instance]) -> Instance:
        address = self.pick(service)
        for instance in instances:
            if instance.address == address:
                return instance
        raise ConnectError(f"the registry names {address!r}, not an instance of {service}", target=address)

    async def request(self, method: str, service: str, path: str, **kwargs: Any) -> Response:
        tried: list[str] = []
        error: NetworkError | None = None
        while len(tried) < self.attempts:
            address = self.pick(service)
            if address in tried:
                break
            tried.append(address)
            try:
                return await self.client.request(method, address, path, **kwargs)
            except ConnectError as exc:
                error = exc
            except (RequestTimeout, ConnectionReset) as exc:
                if method.upper() not in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"):
                    raise
                error = exc
        assert error is not None
        raise error


def textbook_discovery(world: World, *, ttl: float = 1.0, check_interval: float = 1.0,
                       unhealthy_threshold: int = 2) -> TextbookDiscovery:
    """Register the catalog instances with a health-checked registry; start its checks."""
    registry = TextbookRegistry(world, interval=check_interval, unhealthy_threshold=unhealthy_threshold)
    for instance in world.instances("catalog"):
        registry.register("catalog", instance.address)
    world.spawn(registry.run())
    return TextbookDiscovery(registry, world.client("customer"), ttl=ttl)


def build(seed: int) -> World:
    """Three catalog instances with a realistic service time."""
    world = World(seed=seed, record_headers=False)
    world.add_service("catalog", instances=3)
    world.faults.inject({"fault": "latency", "target": "catalog", "dist": "lognormal", "median": 0.02, "sigma": 0.4})
    return world


def run_variant(name: str, seed: int, *, duration: float = DURATION, faults: list[dict] | None = None,
                ttl: float = 1.0, check_interval: float = 1.0, unhealthy_threshold: int = 2,
                discovery_factory: Callable[[World], Any] | None = None) -> Variant:
    """Run one variant. ``discovery_factory(world)`` replaces the textbook registry and client."""
    config = VARIANTS[name]
    world = build(seed)
    with world:  # closed at the end, and on the way out if a learner's discovery raises
        schedule = faults if faults is not None else FAULTS
        world.faults.schedule(schedule)
        discovery = None
        if config["registry"]:
            discovery = (discovery_factory(world) if discovery_factory is not None
                         else textbook_discovery(world, ttl=ttl, check_interval=check_interval,
                                                 unhealthy_threshold=unhealthy_threshold))
            world.net.balancer = discovery.balancer
        customer = world.client("customer")
        retry = config["retry"]

        async def browse(i: int) -> None:
            start = world.now()
            try:
                if retry:
                    response = await discovery.request("GET", "catalog", "/products", timeout=CLIENT_TIMEOUT)
                else:
                    response = await customer.get("catalog", "/products", timeout=CLIENT_TIMEOUT)
                ok = response.status < 500
            except NetworkError:
                ok = False
            # One event per customer request: with retries, a request makes several exchanges.
            world.recorder.event(start, "page", "customer", ok=ok)

        open_loop(world, RATE, start=OPENS, until=duration, fire=browse, arrivals="poisson", stream="customers")
        world.run(until=duration + CLIENT_TIMEOUT * 2)  # let the last requests finish
        summary = summarize(world, fault_window(schedule, duration))
    return Variant(name, world, summary)


def fault_window(schedule: list[dict], duration: float) -> tuple[float, float]:
    """From the first fault on to the last one off: what "during faults" means (default: 10 s to 45 s)."""
    if not schedule:
        return (0.0, duration)
    return (min(float(e["at"]) for e in schedule),
            max(float(e["until"]) if e.get("until") is not None else duration for e in schedule))


def summarize(world: World, window: tuple[float, float]) -> dict[str, Any]:
    """Headline figures: what customers got, and how many attempts hit a dead instance."""
    pages = world.recorder.events_of("page")
    lo, hi = window

    def availability(since: float, until: float) -> float | None:
        chosen = [e for e in pages if since <= e.t < until]
        return round(sum(e.data["ok"] for e in chosen) / len(chosen), 4) if chosen else None

    attempts = world.recorder.select(caller="customer")
    return {
        "requests": len(pages),
        "failed_requests": sum(not e.data["ok"] for e in pages),
        "availability": availability(0.0, float("inf")),
        "availability_during_faults": availability(lo, hi),
        "refused_attempts": sum(1 for x in attempts if x.outcome == "refused"),
        "reset_attempts": sum(1 for x in attempts if x.outcome == "reset"),
        "registry_changes": len(world.recorder.events_of("registry")),
    }


def run(seed: int = 0, *, variants: list[str] | None = None, duration: float = DURATION,
        faults: list[dict] | None = None, **settings: Any) -> ScenarioResult:
    """Run the chosen variants (all by default) side by side with one seed.

    ``settings`` go to :func:`run_variant` (ttl, check_interval, unhealthy_threshold,
    discovery_factory).
    """
    chosen = variants or list(VARIANTS)
    for name in chosen:
        if name not in VARIANTS:
            raise KeyError(f"unknown variant {name!r} (flapping has: {', '.join(VARIANTS)})")
    result = ScenarioResult("flapping", seed, [run_variant(v, seed, duration=duration, faults=faults, **settings)
                                               for v in chosen])
    result.plot = figure
    return result


# -- the figure -------------------------------------------------------------------------------


def figure(result: ScenarioResult, *, bucket: float = 1.0) -> Figure:
    """When each instance was down (and out of the registry), then what customers got, per variant."""
    from ..plots import OUTCOME_COLOURS, state_bands

    rows = len(result.variants)
    fig = Figure(figsize=(9.5, 1.6 + 1.9 * rows), layout="constrained")
    axes = fig.subplots(rows + 1, 1, sharex=True, height_ratios=[1.1] + [2] * rows)
    horizon = max([e.t for v in result.variants for e in v.world.recorder.events_of("page")], default=0.0) + bucket

    # Top: the instances. Grey = down; red = left out by the registry (first registry variant).
    lanes = axes[0]
    addresses = sorted({i.address for v in result.variants for i in v.world.instances("catalog")})
    first = result.variants[0].world.recorder
    for row, address in enumerate(addresses):
        for band in state_bands(first):
            if band.kind == "crash" and band.subject == address:
                end = band.end if band.end is not None else horizon
                lanes.broken_barh([(band.start, end - band.start)], (row - 0.4, 0.35), facecolors="#455a64")
    with_registry = next((v for v in result.variants if v.world.recorder.events_of("registry")), None)
    if with_registry is not None:
        for row, address in enumerate(addresses):
            out_since = None
            for event in with_registry.world.recorder.events_of("registry", address):
                if not event.data["served"]:
                    out_since = event.t
                elif out_since is not None:
                    lanes.broken_barh([(out_since, event.t - out_since)], (row + 0.05, 0.35), facecolors="#c62828")
                    out_since = None
            if out_since is not None:
                lanes.broken_barh([(out_since, horizon - out_since)], (row + 0.05, 0.35), facecolors="#c62828")
    for band in state_bands(first):  # other faults (a broken database, an error on /health): a light band
        if band.kind == "fault" and not band.subject.startswith(("crash", "flap", "latency")):
            end = band.end if band.end is not None else horizon
            lanes.axvspan(band.start, end, color="#90a4ae", alpha=0.3, linewidth=0)
            lanes.text(band.start, -0.45, f" {band.lane}", fontsize=7, va="top", color="#37474f")
    lanes.set_yticks(range(len(addresses)), addresses, fontsize=8)
    lanes.set_ylim(len(addresses) - 0.5, -0.5)
    lanes.set_title(f"flapping, seed {result.seed}: dark grey = instance down, red = left out by the registry "
                    f"({with_registry.name if with_registry else 'no registry variant'})", loc="left", fontsize=10)

    # Then one panel per variant: customer requests per second, answered or failed.
    n = int(horizon // bucket) + 1
    t = [i * bucket for i in range(n)]
    for ax, variant in zip(axes[1:], result.variants, strict=True):
        ok, failed = [0] * n, [0] * n
        for event in variant.world.recorder.events_of("page"):
            (ok if event.data["ok"] else failed)[int(event.t // bucket)] += 1
        ax.stackplot(t, ok, failed, step="post", colors=[OUTCOME_COLOURS["ok"], OUTCOME_COLOURS["error"]],
                     labels=["answered", "failed (refused, reset, timeout, 5xx)"], alpha=0.85)
        a = variant.summary["availability_during_faults"]
        ax.set_title(f"{variant.name}: {variant.summary['failed_requests']} failed of "
                     f"{variant.summary['requests']}; availability during faults "
                     f"{'-' if a is None else f'{a:.1%}'}", loc="left", fontsize=9)
        ax.set_ylabel(f"requests / {bucket:g} s", fontsize=8)
        ax.set_xlim(0, horizon)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    axes[-1].set_xlabel("virtual seconds")
    return fig
