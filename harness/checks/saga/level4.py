"""Level 4: the same saga by choreography over the event bus, with consumers that survive at-least-once delivery."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from hypothesis import strategies as st

from .. import Context, level
from .explore import LAST_RUN, explore
from .scene import BOUND, DECLINED, ORDER, OUT_OF_STOCK, Scene, describe_fault

HAPPY_TOPICS = ["order-created", "inventory-reserved", "payment-completed", "order-confirmed"]
DECLINED_TOPICS = ["order-created", "inventory-reserved", "payment-failed", "order-cancelled"]
REJECTED_TOPICS = ["order-created", "inventory-rejected", "order-cancelled"]
CONSUMER_OF = {"order-created": "inventory", "inventory-reserved": "payments", "payment-completed": "orders",
               "payment-failed": "inventory and orders", "inventory-rejected": "orders",
               "order-confirmed": "notifications"}


class Choreography:
    """The learner's choreography installed on a fresh shop; orders placed; the bus drained."""

    def __init__(self, ctx: Context, *faults: dict[str, Any], latency: float = 0.0) -> None:
        self.scene = Scene(ctx, latency=latency)
        if faults:
            self.scene.inject(*faults)
        self.world = self.scene.world
        self.scene.client.by = "consumers"
        self.scene.story.append("flow = OrderChoreography(world.bus, client); flow.install()")
        self.flow = ctx.module.OrderChoreography(self.world.bus, self.scene.client)
        self.flow.install()
        self.order_ids: dict[str, str] = {}

    def place(self, *orders: tuple[dict[str, Any], str]) -> None:
        """``await flow.place(order, saga_id)`` for each, all at t=0, then wait until the bus is idle."""
        from .scene import _show_order

        async def one(order: dict[str, Any], saga_id: str) -> None:
            self.scene.story.append(f"t={self.world.now():g}  await flow.place({_show_order(order)}, {saga_id!r})")
            self.order_ids[saga_id] = await self.flow.place(order, saga_id)

        async def place_all() -> None:
            # At once: every order exists before the first fault starts (t=0.25 at the earliest).
            await asyncio.gather(*(one(order, saga_id) for order, saga_id in orders))
            await self.world.bus.drain()

        finished, _ = self.scene.drive(place_all(), horizon=BOUND)
        self._surface_unimplemented()
        if not finished:
            self.scene.fail(got=f"the bus still had messages in flight at t={BOUND:g} s",
                            expected="every event handled (acknowledged or dead-lettered)",
                            why="a consumer that keeps failing, redelivered again and again")

    def _surface_unimplemented(self) -> None:
        """A consumer that raises NotImplementedError is a nack to the bus: say so as the runner would."""
        for event in self.world.recorder.events_of("nack"):
            if str(event.data.get("error", "")).startswith("NotImplementedError"):
                raise NotImplementedError(f"the consumer of {event.subject!r} ({event.data.get('to')})")

    # -- reading ---------------------------------------------------------------------------
    def topics(self) -> list[str]:
        """Topics published, each once, in the order first published."""
        seen: list[str] = []
        for message in self.world.bus.published:
            if message.topic not in seen:
                seen.append(message.topic)
        return seen

    def ledger(self, service: str, table: str) -> list[dict[str, Any]]:
        return list(self.world.db(service).get(table, {}).values())

    def deliveries(self, topic: str) -> Counter:
        """How many times each message id of ``topic`` was handed to a consumer."""
        return Counter(e.data["id"] for e in self.world.recorder.events_of("deliver", topic))

    def fail(self, *, got: str, expected: str, why: str | None = None) -> None:
        bus = []
        for e in self.world.recorder.events:
            if e.kind in ("publish", "duplicate", "ack-lost", "nack", "dead-letter"):
                extra = f" to {e.data['to']}" if "to" in e.data else ""
                bus.append(f"t={e.t:g}  bus: {e.kind} {e.data.get('id', '')} on {e.subject}{extra}")
        self.scene.story.extend(bus[-8:])
        self.scene.fail(got=got, expected=expected, why=why)

    def twice_why(self, topic: str, what: str, *,
                  advice: str = "Send an Idempotency-Key derived from the saga id") -> str:
        counts = self.deliveries(topic)
        repeated = [(mid, n) for mid, n in counts.items() if n > 1]
        published = sum(1 for m in self.world.bus.published if m.topic == topic)
        if repeated:
            mid, n = repeated[0]
            how = f"the {topic!r} event {mid} was delivered {n} times"
        elif published > 1:
            how = f"{published} {topic!r} events were published for one order"
        else:
            how = f"the {topic!r} consumer ran again"
        return (f"{how} (the bus delivers at least once) and the {CONSUMER_OF.get(topic, topic)} consumer "
                f"{what} again: it is not idempotent. {advice}")

    def close(self) -> None:
        self.scene.close()


def _expect_outcome(run: Choreography, saga_id: str, status: str) -> None:
    order_id = run.order_ids.get(saga_id)
    order = run.world.db("orders").get("orders", {}).get(order_id or "", {})
    if order.get("status") != status:
        stuck = [m for m in run.world.bus.dead_letters()]
        why = None
        if stuck:
            why = (f"the event {stuck[0].id} on {stuck[0].topic!r} was dead-lettered after {stuck[0].attempt} "
                   "tries: its consumer kept failing. Subscribe with enough max_attempts to outlast an outage")
        elif order.get("status") == "pending":
            why = ("nothing moved the saga on: a consumer acknowledged an event it could not handle? When a call "
                   "answers 5xx or not at all, raise, so that the bus delivers the event again")
        run.fail(got=f"order {order_id} of {saga_id} is {order.get('status')!r}", expected=repr(status), why=why)


def _expect_single_effects(run: Choreography) -> None:
    """One charge, one reservation and one notice per order, whatever the bus did."""
    for order_id in run.order_ids.values():
        charges = [c for c in run.ledger("payments", "charges") if c["order_id"] == order_id]
        if len(charges) > 1:
            run.fail(got=f"order {order_id} was charged {len(charges)} times ({', '.join(c['id'] for c in charges)})",
                     expected="once", why=run.twice_why("inventory-reserved", "charged"))
        held = [r for r in run.ledger("inventory", "reservations") if r["order_id"] == order_id]
        if len(held) > 1:
            run.fail(got=f"order {order_id} has {len(held)} reservations ({', '.join(r['id'] for r in held)})",
                     expected="one", why=run.twice_why("order-created", "reserved"))
        notices = [n for n in run.ledger("notifications", "sent") if n.get("order_id") == order_id]
        confirmed = run.world.db("orders")["orders"].get(order_id, {}).get("status") == "confirmed"
        if len(notices) != (1 if confirmed else 0):
            why = (run.twice_why("order-confirmed", "sent the notice",
                                 advice="Notifications takes no Idempotency-Key: ask notifications first "
                                        "(GET /notifications?order_id=...), and send only if nothing was sent")
                   if len(notices) > 1 else "a confirmed order gets one notice; a cancelled one none")
            run.fail(got=f"order {order_id} got {len(notices)} notice(s)",
                     expected="1" if confirmed else "0", why=why)


def _expect_invariants(run: Choreography) -> None:
    found = run.scene.violations()
    if found:
        why = found[0].why
        dead = run.world.bus.dead_letters()
        if dead:
            why = (f"the event {dead[0].id} on {dead[0].topic!r} was dead-lettered after {dead[0].attempt} tries: "
                   "its consumer kept failing while a service was down, and the bus gave up. Subscribe with "
                   "enough max_attempts (and backoff) to outlast an outage of a minute")
        run.fail(got=found[0].message(), expected="every saga invariant holds", why=why)


@level(4)
def happy_order_flows_through_the_events(ctx: Context) -> None:
    """place() creates the order; the events order-created, inventory-reserved, payment-completed, order-confirmed follow."""
    run = Choreography(ctx)
    run.place((ORDER, "saga-1"))
    if run.order_ids.get("saga-1") != "ord-1":
        run.fail(got=f"flow.place(...) returned {run.order_ids.get('saga-1')!r}", expected="'ord-1', the order's id")
    if run.topics() != HAPPY_TOPICS:
        run.fail(got=f"the events published were {run.topics()}", expected=f"{HAPPY_TOPICS}")
    _expect_outcome(run, "saga-1", "confirmed")
    _expect_single_effects(run)
    _expect_invariants(run)
    run.close()


@level(4)
def declined_card_releases_and_cancels(ctx: Context) -> None:
    """A declined card: payment-failed; inventory releases the stock, orders cancels; no refund."""
    run = Choreography(ctx)
    run.place((DECLINED, "saga-1"))
    if run.topics() != DECLINED_TOPICS:
        run.fail(got=f"the events published were {run.topics()}", expected=f"{DECLINED_TOPICS}")
    if run.scene.calls("refund"):
        run.fail(got="a refund was attempted", expected="none: the card was declined, nothing was charged")
    _expect_outcome(run, "saga-1", "cancelled")
    _expect_invariants(run)
    run.close()


@level(4)
def out_of_stock_cancels(ctx: Context) -> None:
    """Out of stock: inventory-rejected, then orders cancels; the card is never charged."""
    run = Choreography(ctx)
    run.place((OUT_OF_STOCK, "saga-1"))
    if run.topics() != REJECTED_TOPICS:
        run.fail(got=f"the events published were {run.topics()}", expected=f"{REJECTED_TOPICS}")
    _expect_outcome(run, "saga-1", "cancelled")
    _expect_invariants(run)
    run.close()


@level(4)
def every_event_delivered_twice_changes_nothing(ctx: Context) -> None:
    """Every event is delivered twice: still one reservation, one charge, one notice."""
    run = Choreography(ctx, {"fault": "duplicate", "topic": "*", "probability": 1.0})
    run.place((ORDER, "saga-1"), (DECLINED, "saga-2"))
    _expect_single_effects(run)
    _expect_outcome(run, "saga-1", "confirmed")
    _expect_outcome(run, "saga-2", "cancelled")
    _expect_invariants(run)
    run.close()


@level(4)
def lost_acknowledgements_change_nothing(ctx: Context) -> None:
    """The bus loses every acknowledgement for 2 s, so it delivers those events again later."""
    run = Choreography(ctx, {"at": 0.0, "until": 2.0, "fault": "drop-ack", "topic": "*", "probability": 1.0})
    run.place((ORDER, "saga-1"), (DECLINED, "saga-2"))
    _expect_single_effects(run)
    _expect_outcome(run, "saga-1", "confirmed")
    _expect_outcome(run, "saga-2", "cancelled")
    _expect_invariants(run)
    run.close()


@level(4)
def delayed_and_reordered_events_still_end_every_saga(ctx: Context) -> None:
    """Five orders; events reordered within 3 s and payment events delayed: every saga still ends right."""
    run = Choreography(ctx, {"fault": "reorder", "topic": "*", "window": 3.0},
                       {"fault": "delay", "topic": "payment-completed", "dist": "uniform", "low": 0.0, "high": 5.0},
                       {"fault": "duplicate", "topic": "order-created", "probability": 0.5})
    orders = [(ORDER, "saga-1"), (DECLINED, "saga-2"), (OUT_OF_STOCK, "saga-3"), (ORDER, "saga-4"),
              (DECLINED, "saga-5")]
    run.place(*orders)
    for order, saga_id in orders:
        _expect_outcome(run, saga_id, "confirmed" if order is ORDER else "cancelled")
    _expect_single_effects(run)
    _expect_invariants(run)
    run.close()


@level(4)
def failing_calls_are_retried_by_redelivery(ctx: Context) -> None:
    """payments answers 503 for 3 s: the consumer raises, the bus delivers the event again, the saga ends confirmed."""
    run = Choreography(ctx, {"at": 0.0, "until": 3.0, "fault": "error", "target": "payments",
                             "route": "POST /charges", "status": 503})
    run.place((ORDER, "saga-1"))
    _expect_outcome(run, "saga-1", "confirmed")
    _expect_single_effects(run)
    _expect_invariants(run)
    run.close()


# -- many cases ------------------------------------------------------------------------------------
# Every topic at once, most often; or one topic.
TOPIC_CHOICES = ["*", "*", "*", "order-created", "inventory-reserved", "payment-completed", "payment-failed",
                 "order-confirmed", "inventory-rejected"]
BUS_FAULTS = [
    None,
    lambda topic, at, d, p: {"at": at, "until": at + d, "fault": "duplicate", "topic": topic, "probability": p},
    lambda topic, at, d, p: {"at": at, "until": at + d, "fault": "drop-ack", "topic": topic, "probability": p},
    lambda topic, at, d, p: {"at": at, "until": at + d, "fault": "reorder", "topic": topic, "window": 8 * p},
    lambda topic, at, d, p: {"at": at, "until": at + d, "fault": "delay", "topic": topic, "dist": "uniform",
                             "low": 0.0, "high": 12 * p},
]
KINDS = [ORDER, DECLINED, OUT_OF_STOCK]
LATENCY = 0.1  # every call takes 0.1 s: the events of a saga spread over time, into the faults' windows

bus_fault = st.tuples(st.integers(0, len(BUS_FAULTS) - 1), st.integers(0, len(TOPIC_CHOICES) - 1),
                      st.integers(0, 8), st.integers(0, 9), st.integers(1, 4))
case_strategy = st.tuples(st.integers(1, 3), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2),
                          bus_fault, bus_fault, bus_fault)


def decode(case: tuple) -> dict[str, Any]:
    count, *kinds = case[:4]
    faults = case[4:]
    kinds = kinds[:count]
    schedule = []
    for kind, topic, at, length, strength in faults:
        if BUS_FAULTS[kind] is not None:
            # Probabilities up to 1/2: each duplicate is handled and published again, so at 1 the events double at each hop.
            schedule.append(BUS_FAULTS[kind](TOPIC_CHOICES[topic], at / 16, length + 1.0, strength / 8))
    return {"orders": [(KINDS[k], f"saga-{n}") for n, k in enumerate(kinds, 1)], "faults": schedule}


def describe_case(case: tuple) -> str:
    spec = decode(case)
    names = {id(ORDER): "fine", id(DECLINED): "declined", id(OUT_OF_STOCK): "out of stock"}
    orders = ", ".join(f"{saga_id} ({names[id(order)]})" for order, saga_id in spec["orders"])
    faults = "; ".join(describe_fault(f) for f in spec["faults"]) or "no fault"
    return f"orders {orders}, every call taking {LATENCY:g} s. Bus faults: {faults}"


def run_case(ctx: Context, case: tuple) -> None:
    spec = decode(case)
    run = Choreography(ctx, *spec["faults"], latency=LATENCY)
    try:
        run.place(*spec["orders"])
        LAST_RUN["bitten"] += run.scene.bitten()
        for order, saga_id in spec["orders"]:
            _expect_outcome(run, saga_id, "confirmed" if order is ORDER else "cancelled")
        _expect_single_effects(run)
        _expect_invariants(run)
    finally:
        run.close()


@level(4)
def duplicated_delayed_reordered_events_keep_the_invariants(ctx: Context) -> None:
    """200 generated schedules of bus faults (duplicate, delay, reorder, lost acks) over one to three orders."""
    explore(ctx, case_strategy, lambda case: run_case(ctx, case), describe=describe_case,
            first=(1, 0, 0, 0, (0, 0, 0, 0, 1), (0, 0, 0, 0, 1), (0, 0, 0, 0, 1)))

