"""The event bus: at-least-once delivery, backoff, dead letters and bus faults (harness/bus.py)."""

from __future__ import annotations

import asyncio

import pytest

from harness import Message, World

LATENCY = 0.5  # a bus latency that adds up exactly in binary floating point


@pytest.fixture
def bus_world(world):
    world.bus.latency = LATENCY
    return world


class Consumer:
    """Records what it handled; fails the first ``failures`` deliveries of each message."""

    def __init__(self, world: World, failures: int = 0, work: float = 0.0):
        self.world = world
        self.failures = failures
        self.work = work
        self.seen: list[tuple[float, str, int, dict]] = []

    async def __call__(self, message: Message) -> None:
        self.seen.append((self.world.now(), message.id, message.attempt, message.payload))
        if self.work:
            await asyncio.sleep(self.work)
        if message.attempt <= self.failures:
            raise RuntimeError("database unavailable")

    @property
    def times(self) -> list[float]:
        return [t for t, *_ in self.seen]

    @property
    def ids(self) -> list[str]:
        return [i for _, i, *_ in self.seen]

    @property
    def numbers(self) -> list[int]:
        return [payload["n"] for *_, payload in self.seen]


def _publish(world: World, count: int, topic: str = "orders") -> list[Message]:
    return [world.bus.publish(topic, {"n": n}) for n in range(count)]


def _kinds(world: World, *kinds: str) -> list[tuple[float, str]]:
    return [(e.t, e.kind) for e in world.recorder.events if e.kind in kinds]


# -- delivery without faults -------------------------------------------------------------------------


def test_messages_arrive_in_publish_order_after_the_bus_latency(world):
    consumer = Consumer(world)
    world.bus.subscribe("orders", consumer)
    _publish(world, 5)
    world.run(world.bus.drain())
    assert consumer.numbers == [0, 1, 2, 3, 4]
    assert consumer.ids == ["msg-1", "msg-2", "msg-3", "msg-4", "msg-5"]
    assert consumer.times == [0.01] * 5  # the default bus latency
    assert {attempt for _, _, attempt, _ in consumer.seen} == {1}


def test_a_subscription_handles_one_message_at_a_time(bus_world):
    consumer = Consumer(bus_world, work=2.0)
    bus_world.bus.subscribe("orders", consumer)
    _publish(bus_world, 3)
    bus_world.run(bus_world.bus.drain())
    assert consumer.times == [0.5, 2.5, 4.5]
    assert bus_world.now() == 6.5


def test_every_subscription_gets_every_message_and_only_of_its_topic(world):
    billing, shipping, audit = Consumer(world), Consumer(world), Consumer(world)
    world.bus.subscribe("orders", billing, name="billing")
    world.bus.subscribe("orders", shipping, name="shipping")
    world.bus.subscribe("*", audit, name="audit")
    _publish(world, 2)
    world.bus.publish("refunds", {"n": 9})
    world.run(world.bus.drain())
    assert billing.numbers == shipping.numbers == [0, 1]
    assert audit.numbers == [0, 1, 9]


def test_publishing_records_the_message_and_returns_it(world):
    world.run(until=3.0)
    message = world.bus.publish("orders", {"order_id": "ord-1"}, source="orders-1", headers={"traceparent": "t"})
    assert (message.id, message.topic, message.source, message.published_at, message.attempt) == (
        "msg-1", "orders", "orders-1", 3.0, 1)
    assert world.bus.published == [message]
    (event,) = world.recorder.events_of("publish")
    assert (event.t, event.subject, event.data) == (3.0, "orders", {"id": "msg-1", "source": "orders-1"})


def test_a_message_nobody_subscribed_to_is_not_pending(world):
    world.bus.publish("nobody-listens", {"n": 1})
    world.run(world.bus.drain())
    assert world.now() == 0.0


def test_successful_deliveries_are_acked_and_recorded(bus_world):
    consumer = Consumer(bus_world)
    sub = bus_world.bus.subscribe("orders", consumer, name="billing")
    _publish(bus_world, 2)
    bus_world.run(bus_world.bus.drain())
    assert [m.id for m in sub.acked] == ["msg-1", "msg-2"]
    assert _kinds(bus_world, "deliver", "ack") == [(0.5, "deliver"), (0.5, "ack")] * 2


# -- redelivery and the dead-letter queue ------------------------------------------------------------


def test_a_failing_handler_is_redelivered_with_exponential_backoff_then_dead_lettered(bus_world):
    consumer = Consumer(bus_world, failures=99)
    sub = bus_world.bus.subscribe("orders", consumer, name="billing")  # 5 attempts, backoff 1 s doubling
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    # Published at 0, on the queue at 0.5, then 1, 2, 4, 8 s between attempts.
    assert consumer.times == [0.5, 1.5, 3.5, 7.5, 15.5]
    assert [attempt for _, _, attempt, _ in consumer.seen] == [1, 2, 3, 4, 5]
    assert set(consumer.ids) == {"msg-1"}
    assert [(m.id, m.attempt) for m in sub.dead_letters] == [("msg-1", 5)]
    assert bus_world.bus.dead_letters("orders") == sub.dead_letters
    assert bus_world.bus.dead_letters("refunds") == []
    (dead,) = bus_world.recorder.events_of("dead-letter")
    assert (dead.t, dead.data["attempts"], dead.data["to"]) == (15.5, 5, "billing")
    assert bus_world.now() == 15.5


def test_backoff_and_attempts_are_per_subscription(bus_world):
    consumer = Consumer(bus_world, failures=99)
    bus_world.bus.subscribe("orders", consumer, max_attempts=3, backoff=0.25, backoff_factor=3)
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    assert consumer.times == [0.5, 0.75, 1.5]


def test_a_nack_records_the_error(bus_world):
    bus_world.bus.subscribe("orders", Consumer(bus_world, failures=1))
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    (nack,) = bus_world.recorder.events_of("nack")
    assert (nack.t, nack.data["attempt"], nack.data["error"]) == (0.5, 1, "RuntimeError: database unavailable")


def test_a_handler_that_recovers_is_acked_on_the_attempt_that_succeeds(bus_world):
    consumer = Consumer(bus_world, failures=2)
    sub = bus_world.bus.subscribe("orders", consumer)
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    assert consumer.times == [0.5, 1.5, 3.5]
    assert [(m.id, m.attempt) for m in sub.acked] == [("msg-1", 3)]
    assert sub.dead_letters == []


def test_a_failing_subscription_does_not_hold_back_another(bus_world):
    broken, healthy = Consumer(bus_world, failures=99), Consumer(bus_world)
    bus_world.bus.subscribe("orders", broken)
    bus_world.bus.subscribe("orders", healthy)
    _publish(bus_world, 1)
    bus_world.run(until=1.0)
    assert healthy.times == [0.5]


# -- bus faults ---------------------------------------------------------------------------------------


def test_a_duplicate_fault_delivers_the_same_message_id_twice(bus_world):
    consumer = Consumer(bus_world)
    bus_world.bus.subscribe("orders", consumer, name="billing")
    bus_world.faults.inject({"fault": "duplicate", "topic": "orders"})
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    assert consumer.ids == ["msg-1", "msg-1"]
    assert consumer.times == [0.5, 0.5]
    (dup,) = bus_world.recorder.events_of("duplicate")
    assert (dup.t, dup.data) == (0.0, {"id": "msg-1", "to": "billing"})


def test_duplicate_copies_add_up(bus_world):
    consumer = Consumer(bus_world)
    bus_world.bus.subscribe("orders", consumer)
    bus_world.faults.inject({"fault": "duplicate", "topic": "*", "copies": 2})
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    assert consumer.ids == ["msg-1"] * 3


def test_a_bus_fault_on_another_topic_changes_nothing(bus_world):
    consumer = Consumer(bus_world)
    bus_world.bus.subscribe("orders", consumer)
    bus_world.faults.inject({"fault": "duplicate", "topic": "refunds"})
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    assert consumer.ids == ["msg-1"]


def test_a_constant_delay_fault_delays_every_message_exactly(bus_world):
    consumer = Consumer(bus_world)
    bus_world.bus.subscribe("orders", consumer)
    bus_world.faults.inject({"fault": "delay", "topic": "orders", "value": 2.0})
    _publish(bus_world, 2)
    bus_world.run(bus_world.bus.drain())
    assert consumer.times == [2.5, 2.5]
    assert consumer.numbers == [0, 1]


def _arrival_order(seed: int, fault: dict, count: int = 6) -> list[int]:
    with World(seed=seed) as world:
        consumer = Consumer(world)
        world.bus.subscribe("orders", consumer)
        world.faults.inject(fault)
        _publish(world, count)
        world.run(world.bus.drain())
        return consumer.numbers


@pytest.mark.parametrize("fault", [
    {"fault": "reorder", "topic": "orders", "window": 1.0},
    {"fault": "delay", "topic": "orders", "dist": "uniform", "low": 0, "high": 2},
    {"fault": "delay", "topic": "orders", "value": 2.0, "probability": 0.5},
])
def test_reorder_and_delay_change_the_order_the_same_way_for_the_same_seed(fault):
    order = _arrival_order(1, fault)
    assert order == _arrival_order(1, fault)
    assert sorted(order) == [0, 1, 2, 3, 4, 5]
    assert order != [0, 1, 2, 3, 4, 5]
    assert order != _arrival_order(2, fault)


def test_a_lost_ack_redelivers_a_message_the_handler_already_processed(bus_world):
    consumer = Consumer(bus_world)
    sub = bus_world.bus.subscribe("orders", consumer)
    handle = bus_world.faults.inject({"fault": "drop-ack", "topic": "orders"})
    bus_world.loop.call_at(1.0, handle.clear)
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    assert consumer.ids == ["msg-1", "msg-1"]
    assert consumer.times == [0.5, 1.5]
    assert _kinds(bus_world, "ack-lost", "ack") == [(0.5, "ack-lost"), (1.5, "ack")]
    assert [(m.id, m.attempt) for m in sub.acked] == [("msg-1", 2)]


def test_acks_lost_every_time_end_in_the_dead_letter_queue(bus_world):
    consumer = Consumer(bus_world)
    sub = bus_world.bus.subscribe("orders", consumer, max_attempts=2)
    bus_world.faults.inject({"fault": "drop-ack", "topic": "orders"})
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    assert consumer.times == [0.5, 1.5]
    assert [m.attempt for m in sub.dead_letters] == [2]


# -- drain and unsubscribe -------------------------------------------------------------------------------


def test_drain_with_nothing_pending_returns_at_once(world):
    world.bus.subscribe("orders", Consumer(world))
    world.run(world.bus.drain())
    assert world.now() == 0.0


def test_drain_waits_for_messages_still_on_their_way(bus_world):
    consumer = Consumer(bus_world)
    bus_world.bus.subscribe("orders", consumer)
    bus_world.faults.inject({"fault": "delay", "topic": "orders", "value": 10.0})
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    assert (bus_world.now(), consumer.times) == (10.5, [10.5])


def test_two_drains_at_once_both_return_when_the_bus_is_idle(bus_world):
    # Regression: the second drain replaced the first one's wake-up, which then waited forever.
    bus_world.bus.subscribe("orders", Consumer(bus_world, work=1.0))
    _publish(bus_world, 2)

    async def both():
        async def drained() -> float:
            await bus_world.bus.drain()
            return bus_world.now()

        return await asyncio.gather(drained(), drained())

    assert bus_world.run(both()) == [2.5, 2.5]


def test_a_drain_that_gives_up_does_not_disturb_another(bus_world):
    bus_world.bus.subscribe("orders", Consumer(bus_world, work=1.0))
    _publish(bus_world, 2)

    async def main():
        patient = asyncio.ensure_future(bus_world.bus.drain())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bus_world.bus.drain(), timeout=1.0)
        await patient
        return bus_world.now()

    assert bus_world.run(main()) == 2.5


def test_an_unsubscribed_consumer_gets_nothing_more(bus_world):
    consumer = Consumer(bus_world)
    sub = bus_world.bus.subscribe("orders", consumer)
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    sub.unsubscribe()
    _publish(bus_world, 1)
    bus_world.run(bus_world.bus.drain())
    assert consumer.numbers == [0]
    assert not sub.active


def test_messages_on_their_way_to_an_unsubscribed_consumer_are_dropped(bus_world):
    consumer = Consumer(bus_world)
    sub = bus_world.bus.subscribe("orders", consumer)
    _publish(bus_world, 2)
    sub.unsubscribe()
    bus_world.run(bus_world.bus.drain())
    assert consumer.seen == []
    assert bus_world.now() == 0.5


def test_unsubscribing_with_messages_queued_lets_drain_finish(bus_world):
    # Regression: the queued messages and the one being handled were never settled,
    # so drain() waited forever (a Deadlock in virtual time).
    consumer = Consumer(bus_world, work=1.0)
    sub = bus_world.bus.subscribe("orders", consumer)
    _publish(bus_world, 3)

    async def main():
        await asyncio.sleep(0.75)  # the first message is being handled, two are queued
        sub.unsubscribe()
        await bus_world.bus.drain()
        return bus_world.now()

    assert bus_world.run(main()) == 0.75
    assert consumer.numbers == [0]
    assert sub.acked == []


def test_a_retry_for_an_unsubscribed_consumer_is_dropped(bus_world):
    consumer = Consumer(bus_world, failures=99)
    sub = bus_world.bus.subscribe("orders", consumer)
    _publish(bus_world, 1)
    bus_world.loop.call_at(1.0, sub.unsubscribe)
    bus_world.run(bus_world.bus.drain())
    assert consumer.times == [0.5]
    assert bus_world.now() == 1.5  # when the retry would have arrived


def test_unsubscribing_twice_is_harmless(world):
    sub = world.bus.subscribe("orders", Consumer(world))
    sub.unsubscribe()
    sub.unsubscribe()
    assert not sub.active


def test_a_subscription_is_named_after_its_topic_unless_named(world):
    assert world.bus.subscribe("orders", Consumer(world)).name == "orders-sub-1"
    assert world.bus.subscribe("orders", Consumer(world)).name == "orders-sub-2"
    assert world.bus.subscribe("orders", Consumer(world), name="billing").name == "billing"


def test_a_handler_must_be_callable(world):
    with pytest.raises(TypeError, match="async def"):
        world.bus.subscribe("orders", "not a handler")


def test_a_sync_handler_is_refused_with_a_reason(world):
    def on_order(message):  # forgot `async`: it would fail every delivery
        pass

    with pytest.raises(TypeError, match="must be an 'async def' function"):
        world.bus.subscribe("orders", on_order)
