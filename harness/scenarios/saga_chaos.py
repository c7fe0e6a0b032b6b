"""``saga-chaos``: forty orders through a saga under a chaos schedule, and the invariants at the end.

One order arrives per virtual second. Meanwhile payments' answers are lost
for a while (the work is done, the caller never hears), an inventory
instance crashes, orders answers 503 half the time, inventory's answers are
lost, notifications hangs, and the bus delivers some events twice. After
the last saga ends, the saga invariants of :mod:`harness.invariants` are
checked: stock and money conserved, every order confirmed or cancelled in
time, nothing pending, no refund twice.

Variants, each in its own world with the same seed and the same orders:

- ``seed-step-functions``: the seed's state machine as written
  (:data:`harness.stepfunctions.SEED_FLOW`): no retries, no refund, no
  confirmation step, compensations that can fail;
- ``hardened-step-functions``: the same machine with retries, a refund,
  a confirmation, compensations retried until they succeed, and
  idempotency keys (:data:`harness.stepfunctions.HARDENED_FLOW`);
- ``seed-choreography``: the seed's event-driven saga (with a confirmation
  added), whose consumers are not idempotent.

``saga_factory`` adds a ``your-saga`` variant: ``saga_factory(client)``
returns an object with ``async run(order, saga_id)``, such as the saga
kata's ``OrderSaga``.

Each variant's summary accounts for every order attempted, read from
orders' own database: ``confirmed + cancelled + pending +
orders_not_placed == orders``. An order is *not placed* when the shop
never created it (the create call itself failed: orders answered 503, say),
so there was nothing to confirm, cancel or undo. The invariants count
*violations*, not orders: "nothing pending" counts each pending order and
each reservation still held for an order that is not confirmed.

>>> result = run(seed=3, variants=["hardened-step-functions"], orders=8)
>>> summary = result.variant("hardened-step-functions").summary
>>> summary["orders"], summary["pending"], sum(summary["violations"].values())
(8, 0, 0)
>>> sum(summary[key] for key in ("confirmed", "cancelled", "pending", "orders_not_placed"))
8
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from ..faults import FaultError, parse_schedule
from ..invariants import invariant_report
from ..seed_choreography import SeedChoreography
from ..stepfunctions import HARDENED_FLOW, SEED_FLOW, run_flow
from ..world import World
from .base import ScenarioResult, Variant

__all__ = ["CALLERS", "DEFAULT_FAULTS", "VARIANTS", "apply_schedule", "make_orders", "run",
           "run_variant"]

VARIANTS = ("seed-step-functions", "hardened-step-functions", "seed-choreography")
SERVICES = ("orders", "inventory", "payments", "notifications")
LATENCY = 0.05  # every service takes 50 ms: sagas overlap each other and the faults
HORIZON = 400.0  # virtual seconds: every saga has long ended by then, or never will
BOUND = 120.0  # the invariant's bound: an order ends confirmed or cancelled within this
# The callers the variants make (besides the shop's services): a fault's source may name them too.
CALLERS = ("step-functions", "orchestrator", *(f"{service}-consumer" for service in SERVICES))

# Plain harness fault dicts (``kata simulate saga-chaos --faults FILE`` replaces them). A partition
# with source "*" loses the answers to every caller: orchestrator and consumers alike.
DEFAULT_FAULTS: list[dict[str, Any]] = [
    {"at": 5, "until": 9, "fault": "partition", "source": "*", "target": "payments", "direction": "response"},
    {"at": 12, "until": 20, "fault": "crash", "target": "inventory-1"},
    {"at": 22, "until": 26, "fault": "error", "target": "orders", "status": 503, "probability": 0.5},
    {"at": 28, "until": 31, "fault": "partition", "source": "*", "target": "inventory", "direction": "response"},
    {"at": 33, "until": 38, "fault": "hang", "target": "notifications"},
    {"at": 0, "until": 40, "fault": "duplicate", "topic": "*", "probability": 0.2},
]


def make_orders(world: World, count: int) -> list[dict[str, Any]]:
    """``count`` orders drawn from the seed: a few SKUs (some run out), some amounts the card declines."""
    rng = world.rng("saga-chaos-orders")
    orders = []
    for _ in range(count):
        amount = 6000.0 if rng.random() < 0.1 else float(rng.randint(10, 200))
        orders.append({"user_id": f"user-{rng.randint(1, 50)}", "amount": amount,
                       "items": [{"sku": f"sku-{rng.randint(1, 4)}", "qty": rng.randint(1, 30)}]})
    return orders


def apply_schedule(world: World, faults: list[dict[str, Any]]) -> None:
    """Switch the faults on and off at their times with ``world.faults.schedule``, any of the
    variants' callers (``"step-functions"``, ``"orchestrator"``...) being a possible partition
    source. A malformed schedule, or a fault aimed at nobody, raises
    :class:`~harness.faults.FaultError` before anything is switched on."""
    world.faults.schedule(parse_schedule(faults), callers=CALLERS)


def run_variant(name: str, seed: int, *, orders: int = 40, faults: list[dict[str, Any]] | None = None,
                saga_factory: Callable[[Any], Any] | None = None) -> Variant:
    world = World(seed=seed)
    for service in SERVICES:
        world.add_service(service)
        world.faults.inject({"fault": "latency", "target": service, "dist": "constant", "value": LATENCY})
    try:
        apply_schedule(world, DEFAULT_FAULTS if faults is None else faults)
    except FaultError:
        world.close()  # refused before anything ran
        raise
    wanted = make_orders(world, orders)
    outcome: dict[str, Any] = {"uncaught": 0}

    async def one(n: int, order: dict[str, Any], flow: Any) -> None:
        await asyncio.sleep(n * 1.0)
        if name == "seed-choreography":
            # The customer's request may fail (no order, nothing to undo): counted from orders' database.
            with contextlib.suppress(Exception):
                await flow.place(order)
        elif name == "your-saga":
            await flow.run(order, f"saga-{n + 1}")
        else:
            execution = await run_flow(SEED_FLOW if name == "seed-step-functions" else HARDENED_FLOW,
                                       world.client("step-functions"), order, f"exec-{n + 1}")
            outcome["uncaught"] += execution.uncaught

    async def everything() -> None:
        if name == "seed-choreography":
            flow: Any = SeedChoreography(world)
        elif name == "your-saga":
            flow = saga_factory(world.client("orchestrator"))  # type: ignore[misc]
        else:
            flow = None
        tasks = [asyncio.ensure_future(one(n, order, flow)) for n, order in enumerate(wanted)]
        await asyncio.wait(tasks, timeout=HORIZON)
        await asyncio.wait([asyncio.ensure_future(world.bus.drain())], timeout=max(0.0, HORIZON - world.now()))

    world.run(everything())
    report = invariant_report(world, bound=BOUND)
    statuses = [o["status"] for o in world.db("orders").get("orders", {}).values()]
    charges = world.db("payments").get("charges", {}).values()
    per_order: dict[str, int] = {}
    for charge in charges:
        if charge["status"] == "captured":
            per_order[charge["order_id"]] = per_order.get(charge["order_id"], 0) + 1
    # Every order attempted is confirmed, cancelled, pending, or was never created (its create call failed).
    summary: dict[str, Any] = {
        "orders": len(wanted),
        "confirmed": statuses.count("confirmed"),
        "cancelled": statuses.count("cancelled"),
        "pending": statuses.count("pending"),
        "orders_not_placed": max(0, len(wanted) - len(statuses)),
    }
    if len(statuses) > len(wanted):  # a saga that created its order twice: the extra ones are counted too
        summary["orders_created_extra"] = len(statuses) - len(wanted)
    summary |= {
        "charged_twice": sum(1 for n in per_order.values() if n > 1),
        "violations": {name: len(found) for name, found in report.items()},
        "first_violation": next((str(v) for found in report.values() for v in found), None),
    }
    if name.endswith("step-functions"):
        summary["executions_failed_uncaught"] = outcome["uncaught"]
    if name == "seed-choreography":
        summary["dead_letters"] = len(world.bus.dead_letters())
    world.close()
    return Variant(name, world, summary)


def run(seed: int = 0, *, variants: list[str] | None = None, orders: int = 40,
        faults: list[dict[str, Any]] | None = None, saga_factory: Callable[[Any], Any] | None = None) -> ScenarioResult:
    chosen = list(variants or VARIANTS)
    if saga_factory is not None and "your-saga" not in chosen:
        chosen.append("your-saga")
    result = ScenarioResult("saga-chaos", seed, [run_variant(v, seed, orders=orders, faults=faults,
                                                             saga_factory=saga_factory) for v in chosen])
    result.summary["invariants_hold"] = {v.name: not any(v.summary["violations"].values()) for v in result.variants}

    def plot(res: ScenarioResult) -> Any:
        from ..saga_plots import saga_chaos_figure

        return saga_chaos_figure(res)

    result.plot = plot
    return result
