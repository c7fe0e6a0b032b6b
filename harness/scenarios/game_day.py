"""``game-day``: the whole shop under a chaos schedule, without and with the patterns.

Customers use the shop for ten virtual minutes (open loop, seeded): profile
pages through the gateway, product pages on the catalog, checkouts on
orders, stock lookups on inventory, and orders placed through an order saga
(``POST sagas /orders``, see :mod:`.game_day_sagas`). Meanwhile :data:`CHAOS` (plain data, the kind an instructor writes)
breaks things: payments hangs, a catalog instance crashes and then flaps,
inventory turns slow, and a buggy catalog release ``v2`` is deployed.

Two variants, each in its own world with the same seed and the same chaos:

- ``unprotected``: what the seed starts from. Static round-robin over every
  instance (up or down), no breaker, the seed's long timeouts (30 s on
  orders -> payments, 5 s per part at the gateway), and the new catalog
  release added to the round-robin for everyone at once; the saga
  orchestrator runs the seed's Step Functions flow.
- ``protected``: every pattern given in ``patterns`` (modules with the katas'
  public APIs; the chapter passes the learner's, tests pass the reference
  solutions): a health-checked ``registry`` behind the network's balancer,
  a ``breaker`` per orders instance on its payments call (1 s timeout), a
  ``composer`` at the gateway (one 1 s deadline for the whole profile), and a
  ``canary`` split and rollout for catalog v2, the ``saga`` kata's
  ``OrderSaga`` as the orchestrator, and the ``tracing`` kata's tracer on
  every service (see :mod:`.game_day_tracing`). A pattern left out (None)
  falls back to the unprotected behaviour for that part, and the variant's
  summary says which ones ran.

The verdict is the SLOs of :mod:`harness.slo` on what customers saw. After
the customers stop, the shop gets :data:`DRAIN` more virtual seconds to
finish the sagas it started; then the saga invariants of
:mod:`harness.invariants` are checked (``summary["sagas"]``), and with
tracing the report of the learner's tracing functions is added
(``summary["tracing"]``, and ``variant.traces`` for plots).

>>> result = run(seed=3, variants=["unprotected"], duration=30)
>>> result.variant("unprotected").summary["customer_requests"] > 500
True
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ..load import open_loop
from ..network import Instance, InstanceContext
from ..recorder import Recorder
from ..services.base import new_app
from ..slo import SLO, Alert, SLOReport, burn_rate_rules, evaluate, fire_alerts, seed_rules
from ..world import World
from .base import ScenarioResult, Variant
from .game_day_sagas import SAGA_SERVICE, orchestrator, saga_order, saga_verdict, smoke_saga
from .game_day_tracing import smoke_tracing, trace_report, traced_customer

__all__ = ["CHAOS", "chaos_view", "DRAIN", "DURATION", "NEEDS", "PATTERNS", "RATES", "SHOP", "VARIANTS",
           "customer_slos", "judge", "learner_patterns", "run", "run_variant"]

DURATION = 600.0  # ten virtual minutes
SHOP = {"gateway": 2, "users": 2, "catalog": 3, "orders": 2, "inventory": 2, "payments": 2, "notifications": 1,
        SAGA_SERVICE: 2}
RATES = {"profile": 4.0, "product": 12.0, "checkout": 4.0, "saga": 2.0}  # customer arrivals per second
DRAIN = 120.0  # after the customers stop: at most this long for the sagas they started to end (the invariants' bound)
CLIENT_TIMEOUT = 10.0  # a customer gives up after 10 s
CANARY_AT = 420.0  # catalog v2 is deployed then
CANARY_BUG_RATE = 0.2  # share of v2's product lookups that fail
PATTERNS = ("registry", "breaker", "composer", "canary", "saga", "tracing")
# The levels each kata must pass to play its part (the chapter's "Your patterns" table).
NEEDS = {"registry": "1-5", "breaker": "1-3", "composer": "1-3", "canary": "1-2", "saga": "1-3 and 5",
         "tracing": "1-5"}
VARIANTS = ("unprotected", "protected")
# Burn-rate windows: a 30-day period squeezed into ten minutes would make the
# one-hour window 0.8 s, shorter than an alert evaluation step, so the game
# uses the workbook's rules scaled 1/60 instead: an hour becomes a minute.
# The workbook's ticket rule (burn rate 1 over 3 days and 6 h) becomes 72 min
# and 6 min: its long window is never full in a ten-minute game, so it cannot
# be judged here and `judge` leaves it out (only the two page rules play).
BURN_SCALE = 1 / 60

# The chaos schedule: harness fault specs (see harness.faults), plus the release.
CHAOS: list[dict[str, Any]] = [
    {"at": 60, "until": 150, "fault": "hang", "target": "payments"},
    {"at": 200, "until": 260, "fault": "crash", "target": "catalog-2"},
    {"at": 260, "until": 330, "fault": "flap", "target": "catalog-2", "down": 4.0, "up": 6.0},
    {"at": 240, "until": 560, "fault": "latency", "target": "inventory", "dist": "constant", "value": 1.5},
]
BANDS = [  # for the timeline: (label, start, end)
    ("payments hangs", 60, 150), ("catalog-2 down", 200, 260), ("catalog-2 flaps", 260, 330),
    ("inventory slow", 240, 560), ("catalog v2 released", CANARY_AT, DURATION),
]


# -- the judge -------------------------------------------------------------------------
def customer_slos() -> list[SLO]:
    """The shop's objectives, on what customers see: the seed's 99.9 % and 1 s."""
    return [
        SLO("gateway", 0.999, 1.0, path="/profile", caller="customer"),
        SLO("catalog", 0.999, 1.0, path="/products", caller="customer"),
        SLO("orders", 0.999, 1.0, path="/checkout", caller="customer"),
        SLO("inventory", 0.999, 1.0, path="/stock", caller="customer"),
        SLO(SAGA_SERVICE, 0.999, 1.0, path="/orders", caller="customer"),
    ]


class _Served:
    """The recording without the registry's health checks (they are not customers' work)."""

    def __init__(self, recorder):
        self.recorder = recorder

    def select(self, **kwargs: Any):
        return [x for x in self.recorder.select(**kwargs) if x.caller != "registry"]


def judge(world: World, *, until: float, scale: float) -> dict[str, Any]:
    """SLO reports, per-service reports and alerts for one finished run."""
    served = _Served(world.recorder)
    customers = [evaluate(served, slo, since=0.0, until=until) for slo in customer_slos()]
    services = [evaluate(served, SLO(name, 0.999, 1.0), since=0.0, until=until) for name in SHOP]
    # A burn-rate rule whose long window is longer than the run is left out: it would judge
    # "the run so far" against a 3-day threshold (the ticket rule, 72 min at scale 1/60).
    rules = seed_rules() + [rule for rule in burn_rate_rules(0.999, scale=scale) if rule.over <= until]
    alerts: dict[str, list[Alert]] = {}
    for slo in customer_slos():
        alerts[slo.service] = fire_alerts(served, slo.service, rules, until=until, step=10.0,
                                          caller="customer", path=slo.path)
    return {"customers": customers, "services": services, "alerts": alerts}


def _overall(reports: list[SLOReport]) -> dict[str, Any]:
    requests = sum(r.requests for r in reports)
    bad = sum(r.bad for r in reports)
    budget = 0.001 * requests
    return {"customer_requests": requests, "customer_failures": bad,
            "customer_availability": round(1 - bad / requests, 5) if requests else None,
            "budget_consumed": round(bad / budget, 2) if budget else None,
            "slos_met": sum(1 for r in reports if r.met)}


def chaos_view(variant: Variant, *, caller: str | None = "customer") -> Recorder:
    """A copy of a run's recording for plots: ``caller``'s requests, and the chaos without the service times.

    >>> bare = run_variant("unprotected", 1, duration=5)
    >>> [e.subject for e in chaos_view(bare).events_of("fault-on")]
    []
    """
    recorder = variant.world.recorder
    weather = set(variant.summary.get("service_time_faults", ()))
    view = Recorder(keep_headers=False)
    view.exchanges = [x for x in recorder.exchanges if caller is None or x.caller == caller]
    view.events = [e for e in recorder.events
                   if not (e.kind in ("fault-on", "fault-off") and e.data.get("key") in weather)]
    return view


# -- the protected shop's pieces -------------------------------------------------------
def _composed_gateway(composer_module: ModuleType, deadline: float) -> Callable[[InstanceContext], Any]:
    """A gateway whose /profile is the composer kata's Composer over profile_parts."""
    from fastapi.responses import JSONResponse

    def create_app(ctx: InstanceContext):
        app = new_app(ctx, "gateway", "The profile page, composed by the composer kata.")
        composer = composer_module.Composer(ctx.client, deadline=deadline)

        @app.get("/profile/{user_id}")
        async def profile(user_id: str):
            try:
                composition = await composer.compose(composer_module.profile_parts(user_id))
            except composer_module.CompositionFailed as error:
                return JSONResponse({"errors": error.errors}, status_code=502)
            return {**composition.data, "errors": composition.errors}

        return app

    return create_app


class _Routing:
    """The network's balancer in the protected shop: the registry's answer, then the canary split."""

    def __init__(self, discovery: Any | None, registry: Any | None, split: Any | None):
        self.discovery, self.registry, self.split = discovery, registry, split
        self._rr: dict[str, int] = {}

    def __call__(self, service: str, instances: list[Instance]) -> Instance:
        if self.split is not None and service == self.split.service:
            pool = instances
            if self.registry is not None:
                served = set(self.registry.resolve(service))
                pool = [i for i in instances if i.address in served] or instances
            return self.split(service, pool)
        if self.discovery is not None:
            return self.discovery.balancer(service, instances)
        turn = self._rr.get(service, 0)
        self._rr[service] = turn + 1
        return instances[turn % len(instances)]


def _start_registry(world: World, module: ModuleType) -> tuple[Any, Any]:
    """Register every instance, renew leases while the process is up, check health every second."""
    registry = module.Registry(lease=15.0, client=world.client("registry"), health_timeout=0.5,
                               unhealthy_threshold=2, healthy_threshold=1)
    for service in SHOP:
        for instance in world.instances(service):
            registry.register(service, instance.address)

    async def heartbeats() -> None:
        while True:
            await asyncio.sleep(5.0)
            for service in list(world.net.services):
                for instance in world.instances(service):
                    if instance.up and not registry.renew(service, instance.address):
                        registry.register(service, instance.address)  # a lapsed lease: register again

    world.spawn(heartbeats())
    world.spawn(registry.run_health_checks(1.0))
    # Panic (level 5): when a whole service fails its checks at once, keep sending to it.
    discovery = module.DiscoveryClient(registry, world.client("gateway"), ttl=1.0, panic_threshold=0.5)
    return registry, discovery


def _breaker_factory(module: ModuleType) -> Callable[[InstanceContext], Any]:
    def factory(ctx: InstanceContext):
        name = f"{ctx.address}->payments"

        def record(old: str, new: str, at: float) -> None:
            ctx.world.recorder.event(at, "breaker", name, state=new)

        breaker = module.CircuitBreaker(fail_max=5, reset_timeout=10.0, clock=ctx.world.clock, name=name,
                                        listeners=[record])
        return breaker.guard

    return factory


# -- one run ---------------------------------------------------------------------------
def run_variant(name: str, seed: int, *, duration: float = DURATION, chaos: list[dict] | None = None,
                patterns: dict[str, ModuleType | None] | None = None, scale: float | None = None) -> Variant:
    """Run one variant; ``patterns`` maps the names in :data:`PATTERNS` to kata modules (or None)."""
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r} (game-day has: {', '.join(VARIANTS)})")
    use = dict.fromkeys(PATTERNS) if name == "unprotected" else {p: (patterns or {}).get(p) for p in PATTERNS}
    world = World(seed=seed, record_headers=False)
    tracer = use["tracing"].Tracer(world.clock, world.rng("tracing")) if use["tracing"] else None

    def traced(factory: Callable[[InstanceContext], Any] | None, service: str) -> Any:
        if tracer is None:
            return factory
        from ..services import SHOP as SHOP_SERVICES

        return tracer.instrument(factory or SHOP_SERVICES[service])

    for service, count in SHOP.items():
        options: dict[str, Any] = {}
        factory = None
        workers, queue = 16, 32
        if service == "orders":
            options["payments_timeout"] = 1.0 if use["breaker"] else 30.0
            if use["breaker"]:
                options["payments_guard_factory"] = _breaker_factory(use["breaker"])
        if service == "gateway" and use["composer"]:
            factory = _composed_gateway(use["composer"], deadline=0.5)  # under the 1 s SLO
        if service == SAGA_SERVICE:
            # An orchestrator holds a worker for a whole saga (seconds, in bad times): room for ~2 minutes of them.
            factory, workers, queue = orchestrator(use["saga"]), 128, 64
        world.add_service(service, traced(factory, service), instances=count, workers=workers, queue=queue,
                          options=options)
    # Service times: every service does a few milliseconds of work; payments talks to a card network.
    # They are latency faults in the harness, but weather, not chaos: chaos_view() leaves them out.
    service_times = []
    for service in SHOP:
        median = 0.04 if service == "payments" else 0.008
        service_times.append(world.faults.inject({"fault": "latency", "target": service, "dist": "lognormal",
                                                  "median": median, "sigma": 0.3}).key)
    world.faults.schedule(chaos if chaos is not None else CHAOS)

    registry = discovery = split = None
    if use["registry"]:
        registry, discovery = _start_registry(world, use["registry"])
    if use["canary"]:
        split = use["canary"].TrafficSplit("catalog", {"v1": 100, "v2": 0}, rng=world.rng("mesh"))
    world.net.balancer = _Routing(discovery, registry, split)
    rollout: dict[str, Any] = {}

    def release() -> None:
        canary = world.add_instance("catalog", traced(None, "catalog"), release="v2",
                                    options={"bug_rate": CANARY_BUG_RATE})
        # Not a fault, but part of the schedule: a band on the timeline, like the chaos.
        world.recorder.event(world.now(), "fault-on", f"release catalog v2 on {canary.address}", key="release")
        service_times.append(world.faults.inject({"fault": "latency", "target": canary.address,
                                                  "dist": "lognormal", "median": 0.008, "sigma": 0.3}).key)
        if registry is not None:
            registry.register("catalog", canary.address)
        if split is not None:
            module = use["canary"]
            plan = module.Rollout(world, split, stages=(10, 25, 50, 75, 100), interval=30.0,
                                  analysis=module.ErrorRateAnalysis(0.01))

            async def roll() -> None:
                report = await plan.run()
                rollout.update(status=report.status, finished_at=report.finished_at)
                if report.status == "rolled-back":
                    world.recorder.event(world.now(), "fault-off", "release catalog v2", key="release")

            world.spawn(roll())

    world.loop.call_at(CANARY_AT, release)
    attempts = _customers(world, duration, traced_customer(world, tracer) if tracer is not None else None)
    world.run(until=duration)
    summary = _summarize(world, duration, scale if scale is not None else BURN_SCALE,
                         use, rollout)
    summary["service_time_faults"] = service_times
    world.run(_drain(world, duration + DRAIN, attempts))  # no new customers: the sagas they started get time to end
    flow = "your OrderSaga" if use["saga"] is not None else "the seed's Step Functions flow"
    summary["sagas"] = saga_verdict(world, attempts["saga"], flow)
    variant = Variant(name, world, summary)
    if tracer is not None:
        summary["tracing"], variant.traces = trace_report(use["tracing"], list(tracer.spans), world.rng("sampler"))
    world.close()
    return variant


async def _drain(world: World, until: float, attempts: dict[str, int]) -> None:
    """Wait (checking every virtual second) until every saga a customer started has ended, or until ``until``."""
    ends = world.db(SAGA_SERVICE).setdefault("ends", {})
    while len(ends) < attempts["saga"] and world.now() < until:
        await asyncio.sleep(min(1.0, until - world.now()))


def _customers(world: World, duration: float, traced: Callable[..., None] | None = None) -> dict[str, int]:
    """Open-loop customer traffic: each arrival fired, nobody waits on it (with tracing: through the
    learner's tracing client, in a task of its own). Returns the arrivals per stream, counted as they come."""
    net = world.net
    arrivals = {"saga": 0}

    def send(method: str, target: str, path: str, **kwargs: Any) -> None:
        if traced is not None:
            traced(method, target, path, timeout=CLIENT_TIMEOUT, **kwargs)
        else:
            net.fire(method, target, path, caller="customer", timeout=CLIENT_TIMEOUT, **kwargs)

    def profile(i: int) -> None:
        send("GET", "gateway", f"/profile/user-{i % 50 + 1}")

    def product(i: int) -> None:
        send("GET", "catalog", f"/products/sku-{i % 20 + 1}")

    def checkout(i: int) -> None:
        send("POST", "orders", "/checkout", json={"user_id": f"user-{i % 50 + 1}", "amount": 25.0})

    def stock(i: int) -> None:
        send("GET", "inventory", f"/stock/sku-{i % 20 + 1}")

    def saga(i: int) -> None:
        arrivals["saga"] += 1
        send("POST", SAGA_SERVICE, "/orders", json=saga_order(i))

    for stream, fire in (("profile", profile), ("product", product), ("checkout", checkout)):
        open_loop(world, RATES[stream], until=duration, fire=fire, arrivals="poisson", stream=stream)
    open_loop(world, RATES["checkout"], until=duration, fire=stock, arrivals="poisson", stream="stock")
    open_loop(world, RATES["saga"], until=duration, fire=saga, arrivals="poisson", stream="saga")
    return arrivals


def _summarize(world: World, duration: float, scale: float, use: dict[str, Any], rollout: dict) -> dict[str, Any]:
    verdict = judge(world, until=duration, scale=scale)
    summary = _overall(verdict["customers"])
    summary["patterns"] = [p for p in PATTERNS if use[p] is not None]
    summary["slo"] = {r.slo.service: r.summary() for r in verdict["customers"]}
    summary["alerts"] = {service: [(a.rule, a.fired_at, a.resolved_at) for a in alerts]
                         for service, alerts in verdict["alerts"].items()}
    summary["canary"] = rollout.get("status", "big bang (no canary)" if use["canary"] is None else "running")
    summary["canary_finished_at"] = rollout.get("finished_at")
    return summary


# -- the learner's patterns ------------------------------------------------------------
def learner_patterns(folder: str = "katas") -> tuple[dict[str, ModuleType | None], dict[str, str]]:
    """Load each kata from ``folder``; keep the ones that can play their part, say why not for the rest."""
    from ..toolchain.loader import KataLoadError, kata_dir, load_kata

    patterns: dict[str, ModuleType | None] = {}
    notes: dict[str, str] = {}
    for kata in PATTERNS:
        try:
            module = load_kata(kata, kata_dir(folder))
            _smoke(kata, module)
        except NotImplementedError as error:
            patterns[kata] = None
            name, level = _stub_name(error, kata)
            finish = f"finish level {level}, `kata check {kata} --level {level}`" if level else f"`kata check {kata}`"
            notes[kata] = (f"not implemented yet: {name} ({finish}; the game needs levels {NEEDS[kata]}); "
                           f"the protected shop runs without it")
            continue
        except (KataLoadError, Exception) as error:  # a learner's bug must not stop the game
            patterns[kata], notes[kata] = None, f"{type(error).__name__}: {error}: left out"
            continue
        patterns[kata], notes[kata] = module, "plugged in"
    return patterns, notes


def _stub_name(error: BaseException, kata: str) -> tuple[str, int | None]:
    """The learner's function that raised, e.g. ``Registry.register`` (co_qualname, Python 3.11+), and the
    level to finish: the lowest ``# TODO (level N)`` between the function's first line and the raise."""
    import linecache
    import re
    import traceback

    frames = [(frame, line) for frame, line in traceback.walk_tb(error.__traceback__)
              if frame.f_code.co_filename.endswith(f"{kata}.py")]
    if not frames:
        return f"the {kata} kata", None
    frame, line = frames[-1]
    code = frame.f_code
    source = "".join(linecache.getline(code.co_filename, n) for n in range(code.co_firstlineno, line + 1))
    levels = [int(n) for n in re.findall(r"TODO \(level (\d)\)", source)]
    return code.co_qualname, min(levels) if levels else None


def _smoke(kata: str, module: ModuleType) -> None:
    """Use the part of the kata the game day needs once, in a tiny world; raise if it cannot."""
    world = World(seed=0, record_headers=False)
    try:
        if kata == "registry":
            world.add_service("users", instances=2)
            registry, discovery = None, None
            registry = module.Registry(lease=15.0, client=world.client("registry"), health_timeout=0.5)
            for address in ("users-1", "users-2"):
                registry.register("users", address)
            world.run(registry.check_health())
            registry.renew("users", "users-1")
            discovery = module.DiscoveryClient(registry, world.client(), ttl=1.0)
            discovery.balancer("users", world.instances("users"))
        elif kata == "breaker":
            breaker = module.CircuitBreaker(fail_max=5, reset_timeout=10.0, clock=world.clock, listeners=[])

            async def paid() -> str:
                return "paid"

            world.run(breaker.guard(paid))
        elif kata == "composer":
            for service in ("users", "orders", "payments"):
                world.add_service(service)
            composer = module.Composer(world.client(), deadline=1.0)
            world.run(composer.compose(module.profile_parts("user-1")))
        elif kata == "canary":
            world.add_service("catalog")
            split = module.TrafficSplit("catalog", {"v1": 100, "v2": 0}, rng=world.rng("mesh"))
            split("catalog", world.instances("catalog"))
            module.ErrorRateAnalysis(0.01)([], [])
            module.Rollout(world, split, interval=30.0)
        elif kata == "saga":
            smoke_saga(module)
        elif kata == "tracing":
            smoke_tracing(module)
    finally:
        world.close()


def run(seed: int = 0, *, variants: list[str] | None = None, duration: float = DURATION,
        faults: list[dict] | None = None, patterns: dict[str, ModuleType | None] | None = None,
        **settings: Any) -> ScenarioResult:
    """Run the chosen variants side by side; without ``patterns``, the learner's katas (from katas/)."""
    chosen = variants or list(VARIANTS)
    for name in chosen:
        if name not in VARIANTS:
            raise KeyError(f"unknown variant {name!r} (game-day has: {', '.join(VARIANTS)})")
    notes: dict[str, str] = {}
    if patterns is None and "protected" in chosen:
        patterns, notes = learner_patterns()
    result = ScenarioResult("game-day", seed, [run_variant(v, seed, duration=duration, chaos=faults,
                                                           patterns=patterns, **settings) for v in chosen])
    if notes:
        result.summary["patterns"] = notes
    return result

