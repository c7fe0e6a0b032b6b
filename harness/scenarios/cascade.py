"""``cascade``: the seed's payment outage, with and without a circuit breaker.

The story (seed chapter, "Without Circuit Breaker"): customers check out at
100 requests per second; each checkout makes the orders service charge the
card through payments, waiting up to 30 s. At t = 10 s payments hangs (no
answers at all) until t = 70 s. Meanwhile customers also browse their
orders (20 requests per second), which never touch payments.

Nothing is scripted beyond the hang. The orders instances have a bounded
number of workers and a bounded queue (see :mod:`harness.capacity`); every
checkout holds a worker while it waits on payments, so within a second the
workers are all stuck, the queues fill, and orders answers 503 to everyone,
browsers included: the failure has cascaded from payments to orders.

Variants, each in its own world with the same seed:

- ``no-breaker``: the seed's setup, a 30 s timeout and no breaker;
- ``breaker``: the seed's breaker (5 consecutive failures, open 30 s) with the
  same 30 s timeout. It opens only when the first failures *complete*, 30 s
  after the outage starts: until then it has seen nothing but slow calls, so
  the cascade happens anyway. (The seed's "5 × 30 s = 150 s" adds up waits
  that run at the same time.)
- ``breaker+timeout``: the same breaker with a 1 s timeout: it opens about a
  second into the outage and orders stays available, answering checkouts
  ``202 payment queued`` (the seed's fallback) in microseconds.

>>> result = run(seed=7, variants=["no-breaker"], duration=20)
>>> result.variant("no-breaker").summary["browse_availability_during_outage"] < 0.2
True
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..http import Response
from ..load import open_loop
from ..world import World
from .base import ScenarioResult, Variant

__all__ = ["OUTAGE", "VARIANTS", "TextbookBreaker", "build", "run"]

CHECKOUT_RATE = 100.0  # requests per second (the seed's figure)
BROWSE_RATE = 20.0
DURATION = 120.0
OUTAGE = (10.0, 70.0)  # payments hangs from t=10 s to t=70 s
ORDERS = {"instances": 2, "workers": 32, "queue": 64}
PAYMENTS = {"instances": 2, "workers": 32, "queue": 64}
CLIENT_TIMEOUT = 10.0  # a customer gives up after 10 s; the server keeps working

VARIANTS: dict[str, dict[str, Any]] = {
    "no-breaker": {"payments_timeout": 30.0, "breaker": False},
    "breaker": {"payments_timeout": 30.0, "breaker": True},
    "breaker+timeout": {"payments_timeout": 1.0, "breaker": True},
}


class BreakerOpen(Exception):
    """Raised by :class:`TextbookBreaker` instead of calling while open."""


class TextbookBreaker:
    """The breaker the seed describes, done right, for the scenario's own use.

    Consecutive failures open it; after ``reset_timeout`` one trial call is
    let through (half-open); a success closes it, a failure re-opens it. The
    breaker kata builds this and much more; a chapter plugs the learner's
    breaker in instead through ``guard_factory``.
    """

    def __init__(self, world: World, name: str, fail_max: int = 5, reset_timeout: float = 30.0):
        self.world = world
        self.name = name
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False
        world.recorder.event(world.now(), "breaker", name, state="closed")

    def _move(self, state: str) -> None:
        self.state = state
        self.world.recorder.event(self.world.now(), "breaker", self.name, state=state)

    async def __call__(self, call: Callable[[], Awaitable[Response]]) -> Response:
        if self.state == "open":
            if self.world.now() - self.opened_at < self.reset_timeout:
                raise BreakerOpen(self.name)
            self._move("half-open")
        if self.state == "half-open":
            if self.probing:
                raise BreakerOpen(self.name)
            self.probing = True
        try:
            result = await call()
        except Exception:
            if self.state == "open":
                # A call that started before the breaker opened and failed late:
                # it must not restart the open period.
                raise
            self.probing = False
            self.failures += 1
            if self.state == "half-open" or self.failures >= self.fail_max:
                self.opened_at = self.world.now()
                self._move("open")
            raise
        self.probing = False
        self.failures = 0
        if self.state == "half-open":
            self._move("closed")
        return result


def build(seed: int, *, payments_timeout: float, guard_factory=None) -> World:
    """The shop for the cascade: orders in front of payments, nothing else."""
    world = World(seed=seed, record_headers=False)
    options: dict[str, Any] = {"payments_timeout": payments_timeout}
    if guard_factory is not None:
        options["payments_guard_factory"] = guard_factory
    world.add_service("payments", **PAYMENTS)
    world.add_service("orders", **ORDERS, options=options)
    # Service times: payments talks to a card network; orders is quick.
    world.faults.inject({"fault": "latency", "target": "payments", "dist": "lognormal", "median": 0.04, "sigma": 0.3})
    world.faults.inject({"fault": "latency", "target": "orders", "dist": "lognormal", "median": 0.005, "sigma": 0.3})
    return world


def run_variant(name: str, seed: int, *, duration: float = DURATION, guard_factory=None,
                faults: list[dict] | None = None, payments_timeout: float | None = None,
                fail_max: int = 5, reset_timeout: float = 30.0) -> Variant:
    """Run one variant.

    ``guard_factory(ctx)`` replaces the textbook breaker with another one (a
    learner's), built once per orders instance; ``payments_timeout``,
    ``fail_max`` and ``reset_timeout`` override the variant's settings (the
    chapter's sliders).
    """
    config = dict(VARIANTS[name])
    if payments_timeout is not None:
        config["payments_timeout"] = payments_timeout
    if not config["breaker"]:
        guard_factory = None
    elif guard_factory is None:
        def guard_factory(ctx):
            return TextbookBreaker(ctx.world, f"{ctx.address}->payments", fail_max=fail_max,
                                   reset_timeout=reset_timeout)
    world = build(seed, payments_timeout=config["payments_timeout"], guard_factory=guard_factory)
    schedule = faults if faults is not None else [
        {"at": OUTAGE[0], "until": OUTAGE[1], "fault": "hang", "target": "payments"},
    ]
    world.faults.schedule(schedule)
    net = world.net

    # Customers do nothing with the answer (the recorder keeps it), so each
    # arrival is fired without a task waiting on it.
    def checkout(i: int) -> None:
        net.fire("POST", "orders", "/checkout", caller="customer", timeout=CLIENT_TIMEOUT,
                 json={"user_id": f"user-{i % 50 + 1}", "amount": 25.0})

    def browse(i: int) -> None:
        net.fire("GET", "orders", "/orders", caller="customer", timeout=CLIENT_TIMEOUT,
                 params={"user_id": f"user-{i % 50 + 1}", "limit": 5})

    open_loop(world, CHECKOUT_RATE, until=duration, fire=checkout, arrivals="poisson", stream="checkout")
    open_loop(world, BROWSE_RATE, until=duration, fire=browse, arrivals="poisson", stream="browse")
    world.run(until=duration)
    summary = summarize(world)
    world.close()  # stop what is still in flight; the history stays readable
    return Variant(name, world, summary)


def summarize(world: World) -> dict[str, Any]:
    """Headline figures: availability of orders to customers, before/during/after."""
    rec = world.recorder
    lo, hi = OUTAGE

    def availability(path: str, since: float, until: float) -> float | None:
        xs = rec.select(caller="customer", path=path, since=since, until=until)
        if not xs:
            return None
        return round(sum(1 for x in xs if not x.failed) / len(xs), 4)

    opened = [e.t for e in rec.events_of("breaker") if e.data.get("state") == "open"]
    first_503 = next((round(x.start, 3) for x in rec.exchanges if x.caller == "customer" and x.status == 503), None)
    return {
        "checkout_availability_during_outage": availability("/checkout", lo, hi),
        "browse_availability_before_outage": availability("/orders", 0, lo),
        "browse_availability_during_outage": availability("/orders", lo, hi),
        "browse_availability_after_outage": availability("/orders", hi, world.now()),
        "first_503_at": first_503,
        "breaker_first_open_at": round(min(opened), 3) if opened else None,
        "queued_checkouts": sum(1 for x in rec.select(caller="customer", path="/checkout") if x.status == 202),
    }


def run(seed: int = 0, *, variants: list[str] | None = None, duration: float = DURATION,
        faults: list[dict] | None = None, **settings: Any) -> ScenarioResult:
    """Run the chosen variants (all by default) side by side with one seed.

    ``settings`` go to :func:`run_variant` (guard_factory, payments_timeout,
    fail_max, reset_timeout).
    """
    chosen = variants or list(VARIANTS)
    for name in chosen:
        if name not in VARIANTS:
            raise KeyError(f"unknown variant {name!r} (cascade has: {', '.join(VARIANTS)})")
    return ScenarioResult("cascade", seed, [run_variant(v, seed, duration=duration, faults=faults, **settings)
                                            for v in chosen])
