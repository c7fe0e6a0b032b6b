"""The event bus: topics, at-least-once delivery, redelivery with backoff, a dead-letter queue.

The stand-in for SQS/SNS/EventBridge. Each subscription gets every message
published on its topic, in order, one at a time. A handler that raises has
not acknowledged the message: it comes back after a backoff, and after
``max_attempts`` it goes to the subscription's dead-letter queue. Because
delivery is *at least once*, consumers must be idempotent: a ``duplicate``
fault (or a lost acknowledgement, ``drop-ack``) delivers the same message id
twice, and ``delay``/``reorder`` faults change the order.

>>> from harness import World
>>> world = World(seed=1)
>>> seen = []
>>> async def on_order(message):
...     seen.append((message.payload["order_id"], message.attempt))
>>> _ = world.bus.subscribe("orders", on_order, name="billing")
>>> _ = world.bus.publish("orders", {"order_id": "o-1"})
>>> world.run(world.bus.drain())
>>> seen, world.now()
([('o-1', 1)], 0.01)
>>> world.close()
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .faults import sample_latency

if TYPE_CHECKING:
    from .world import World

__all__ = ["EventBus", "Message", "Subscription"]


@dataclass(frozen=True)
class Message:
    """One delivery of an event; ``id`` is the same for every copy of it."""

    id: str
    topic: str
    payload: dict[str, Any]
    source: str | None = None
    published_at: float = 0.0
    attempt: int = 1
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Message], Awaitable[None]]


class Subscription:
    """A named consumer of a topic, with its queue and dead letters."""

    def __init__(self, bus: EventBus, topic: str, handler: Handler, name: str,
                 max_attempts: int, backoff: float, backoff_factor: float):
        self.bus = bus
        self.topic = topic
        self.handler = handler
        self.name = name
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.backoff_factor = backoff_factor
        self.queue: deque[Message] = deque()
        self.dead_letters: list[Message] = []
        self.acked: list[Message] = []
        self._wakeup: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self.active = True

    def enqueue(self, message: Message) -> None:
        self.queue.append(message)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def unsubscribe(self) -> None:
        if not self.active:
            return
        self.active = False
        if self._task is not None:
            self._task.cancel()
        self.bus._subs[self.topic].remove(self)
        # Messages waiting here will never be delivered: drain() must not wait for them.
        for _ in range(len(self.queue)):
            self.bus._settle()
        self.queue.clear()

    async def _consume(self) -> None:
        loop = self.bus.world.loop
        while True:
            if not self.queue:
                self._wakeup = loop.create_future()
                await self._wakeup
                continue
            message = self.queue.popleft()
            await self.bus._deliver(self, message)


class EventBus:
    """Topics and subscriptions in virtual time."""

    def __init__(self, world: World, *, latency: float = 0.01):
        self.world = world
        self.latency = latency  # publish-to-queue time of every message
        self._subs: dict[str, list[Subscription]] = {}
        self._ids = itertools.count(1)
        self._pending = 0
        self._idle: asyncio.Future | None = None
        self.published: list[Message] = []

    def subscribe(self, topic: str, handler: Handler, *, name: str | None = None,
                  max_attempts: int = 5, backoff: float = 1.0, backoff_factor: float = 2.0) -> Subscription:
        """Deliver every message on ``topic`` to ``handler`` (an async function)."""
        call_method = type(handler).__dict__.get("__call__")  # an object with `async def __call__`
        if not asyncio.iscoroutinefunction(handler) and not asyncio.iscoroutinefunction(call_method):
            raise TypeError(f"subscribe({topic!r}, ...): the handler must be an 'async def' function "
                            f"taking a Message, got {handler!r}")
        subs = self._subs.setdefault(topic, [])
        name = name or f"{topic}-sub-{len(subs) + 1}"
        sub = Subscription(self, topic, handler, name, max_attempts, backoff, backoff_factor)
        subs.append(sub)
        sub._task = self.world.spawn(sub._consume())
        return sub

    def publish(self, topic: str, payload: dict[str, Any], *, source: str | None = None,
                headers: dict[str, str] | None = None) -> Message:
        """Publish an event; returns the message (its id is what consumers dedupe on)."""
        loop = self.world.loop
        message = Message(f"msg-{next(self._ids)}", topic, dict(payload), source, loop.time(), 1, dict(headers or {}))
        self.published.append(message)
        self.world.recorder.event(loop.time(), "publish", topic, id=message.id, source=source)
        for sub in list(self._subs.get(topic, [])) + list(self._subs.get("*", [])):
            self._route(sub, message)
        return message

    # -- delivery --------------------------------------------------------------------
    def _faults(self, kind: str, topic: str):
        return [f for f in self.world.faults.bus_faults if f.kind == kind and f.topic in ("*", topic)]

    def _route(self, sub: Subscription, message: Message, *, delay: float | None = None) -> None:
        """Put a message on its way to a subscription, through the bus faults."""
        rng = self.world.rng("bus-faults")
        copies = 1
        for fault in self._faults("duplicate", message.topic):
            if fault.params["probability"] >= 1 or rng.random() < fault.params["probability"]:
                copies += int(fault.params.get("copies", 1))
        for copy in range(copies):
            wait = self.latency if delay is None else delay
            for fault in self._faults("delay", message.topic):
                if fault.params["probability"] >= 1 or rng.random() < fault.params["probability"]:
                    wait += sample_latency(fault.params, rng)
            for fault in self._faults("reorder", message.topic):
                wait += rng.uniform(0, fault.params["window"])
            if copy:
                self.world.recorder.event(self.world.loop.time(), "duplicate", message.topic, id=message.id, to=sub.name)
            self._pending += 1
            self.world.loop.call_later(wait, self._arrive, sub, message)

    def _arrive(self, sub: Subscription, message: Message) -> None:
        if sub.active:
            sub.enqueue(message)
        else:
            self._settle()

    async def _deliver(self, sub: Subscription, message: Message) -> None:
        loop = self.world.loop
        recorder = self.world.recorder
        recorder.event(loop.time(), "deliver", message.topic, id=message.id, to=sub.name, attempt=message.attempt)
        try:
            await sub.handler(message)
        except asyncio.CancelledError:
            self._settle()  # unsubscribed (or the world closed) mid-delivery: nobody will finish it
            raise
        except Exception as exc:  # a nack: the consumer did not finish
            recorder.event(loop.time(), "nack", message.topic, id=message.id, to=sub.name,
                           attempt=message.attempt, error=f"{type(exc).__name__}: {exc}")
            self._retry_or_dead_letter(sub, message)
            self._settle()
            return
        rng = self.world.rng("bus-faults")
        lost = any(f.params["probability"] >= 1 or rng.random() < f.params["probability"]
                   for f in self._faults("drop-ack", message.topic))
        if lost:  # the work was done but the bus never heard: it will deliver again
            recorder.event(loop.time(), "ack-lost", message.topic, id=message.id, to=sub.name, attempt=message.attempt)
            self._retry_or_dead_letter(sub, message)
        else:
            sub.acked.append(message)
            recorder.event(loop.time(), "ack", message.topic, id=message.id, to=sub.name, attempt=message.attempt)
        self._settle()

    def _retry_or_dead_letter(self, sub: Subscription, message: Message) -> None:
        if message.attempt >= sub.max_attempts:
            sub.dead_letters.append(message)
            self.world.recorder.event(self.world.loop.time(), "dead-letter", message.topic, id=message.id,
                                      to=sub.name, attempts=message.attempt)
            return
        wait = sub.backoff * sub.backoff_factor ** (message.attempt - 1)
        self._pending += 1
        self.world.loop.call_later(wait, self._arrive, sub, replace(message, attempt=message.attempt + 1))

    def _settle(self) -> None:
        self._pending -= 1
        if self._pending == 0 and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def drain(self) -> None:
        """Wait until every message is acknowledged or dead-lettered."""
        while self._pending > 0:
            if self._idle is None or self._idle.done():
                self._idle = self.world.loop.create_future()
            # Shared by every drainer; shielded so one drainer giving up does not wake the others.
            await asyncio.shield(self._idle)

    def dead_letters(self, topic: str | None = None) -> list[Message]:
        """All dead-lettered messages (of one topic, or all)."""
        return [m for t, subs in self._subs.items() if topic in (None, t) for s in subs for m in s.dead_letters]
