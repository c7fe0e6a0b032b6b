"""Saga kata: place an order across four services and keep the shop consistent, without a transaction.

An order touches four services, each with its own database: **orders**
(``POST /orders`` creates it *pending*), **inventory** (reserves the stock),
**payments** (charges the card) and **notifications** (tells the customer).
No transaction can span their databases, so a saga runs the steps one by one
and, when one fails, *compensates* the steps that completed.

Implement it level by level; check your work with::

    kata check saga          # every level
    kata check saga --level 1
    kata hint saga           # the hint of the first level that fails

Look for ``# TODO (level N):`` below. Replace each ``raise
NotImplementedError`` with your code; keep the names and signatures (the
checks and the chapter use them).

The calls (``client`` is a harness client: ``await client.post(service,
path, json=..., headers=..., timeout=...)`` returns a response with
``.status`` and ``.json()``, or raises :class:`harness.NetworkError` when no
answer came: refused, reset, or timed out)::

    step     call                                              compensation
    create   POST orders /orders {user_id, items, amount}     POST orders /orders/{id}/cancel
    reserve  POST inventory /reservations {order_id, items}   DELETE inventory /reservations/{id}
               201 {"id": "res-1", ...}; 409 not enough stock
    charge   POST payments /charges {order_id, amount, user_id}  POST payments /refunds {charge_id}
               201 {"id": "ch-1", ...}; 402 card declined (amounts above 5000)
    confirm  POST orders /orders/{id}/confirm                  (the pivot: after it, nothing is undone)
    notify   POST notifications /notifications {user_id, order_id, message}

``Idempotency-Key`` (a header): orders (on create), inventory and payments store
the first answer to a key and replay it for the same key and payload (even an
error), and answer 422 for the same key with another payload. Releasing, cancelling and
confirming twice are harmless; a refund of a refunded charge answers 409.

>>> from harness import World
>>> world = World(seed=1)
>>> for name in ("orders", "inventory", "payments", "notifications"):
...     _ = world.add_service(name)
>>> saga = OrderSaga(world.client("orchestrator"))
>>> order = {"user_id": "user-1", "items": [{"sku": "sku-1", "qty": 2}], "amount": 30.0}
>>> result = world.run(saga.run(order, "saga-1"))
>>> result.status, result.order_id
('confirmed', 'ord-1')

The rules, level by level:

1. Call the steps in order. When a step fails, compensate the steps that
   completed, newest first (refund, release, cancel), and only those: the
   step that failed did nothing. Confirm only once the charge succeeded.
2. A 5xx or no answer (a timeout) says nothing about whether the work was
   done. Retry such a step up to ``attempts`` times, waiting ``retry_delay``
   before the first retry and twice as long before each next one (at most
   ``max_retry_delay``), with the *same* ``Idempotency-Key`` on every try,
   derived from the saga id (``f"{saga_id}:charge"``): never twice. A 4xx
   is a definite no. A lost confirmation is retried, never compensated.
3. A compensation is retried, with the same backoff, until it succeeds.
   Write to the :class:`SagaLog` before each call and after it, so that a
   new orchestrator can :meth:`OrderSaga.recover` every saga a crashed one
   left unfinished. If a step's outcome stays unknown, look it up before
   undoing it (``GET /charges?order_id=``, ``GET /reservations?order_id=``).
4. The same saga by choreography (:class:`OrderChoreography`): consumers on
   the event bus, each idempotent, because the bus delivers at least once
   (duplicates, lost acknowledgements, redeliveries, reordering).
5. All of it under random fault schedules, several sagas at once: one
   ``OrderSaga`` runs many sagas concurrently, so keep each saga's state in
   its coroutine and the log, never on ``self``.

What the checks do to calls: a request may be lost (a hang, a partition) or
its *answer* may be lost after the service did the work (a one-way
partition); services crash and restart, answer 5xx, or are slow (but answer
within the timeout). Orders cannot replay a create yet, so the answer of
``POST /orders`` is never lost in the checks; send a key anyway.

Read time only from the event loop (``asyncio.sleep`` waits in virtual
time): never ``time.time()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.bus import EventBus
from harness.network import Client

__all__ = ["CANCELLED", "CONFIRMED", "TOPICS", "OrderChoreography", "OrderSaga", "SagaLog", "SagaResult"]

CONFIRMED = "confirmed"
CANCELLED = "cancelled"

# The events of the choreographed saga, one bus topic each, in the order a happy order sees them.
TOPICS = (
    "order-created",       # orders:        {saga_id, order_id, user_id, items, amount}
    "inventory-reserved",  # inventory:     ... + reservation_id
    "inventory-rejected",  # inventory:     ... + reason (out of stock)
    "payment-completed",   # payments:      ... + reservation_id, charge_id
    "payment-failed",      # payments:      ... + reservation_id, reason (declined)
    "order-confirmed",     # orders:        {saga_id, order_id, user_id}
    "order-cancelled",     # orders:        {saga_id, order_id, reason}
)


@dataclass
class SagaResult:
    """How one saga ended: ``status`` is ``"confirmed"`` or ``"cancelled"``.

    >>> SagaResult("saga-1", CANCELLED, "ord-1", reason="charge: 402 card declined")
    SagaResult(saga_id='saga-1', status='cancelled', order_id='ord-1', reason='charge: 402 card declined')
    """

    saga_id: str
    status: str
    order_id: str | None = None
    reason: str | None = None


class SagaLog:
    """An append-only record of what each saga did: the orchestrator's durable memory.

    The checks hand the same log to a second orchestrator after the first
    one crashed; what you record (and its names) is up to you, besides a
    ``"started"`` record when a saga starts and an ``"ended"`` one when it ends.

    >>> log = SagaLog()
    >>> log.append("saga-1", "started", order={"amount": 30.0})
    >>> log.append("saga-2", "started", order={"amount": 20.0})
    >>> log.append("saga-1", "ended", status="confirmed")
    >>> log.unfinished(), [r["event"] for r in log.records("saga-1")]
    (['saga-2'], ['started', 'ended'])
    """

    def __init__(self) -> None:
        # TODO (level 3): where the records live (a list is fine).
        pass

    def append(self, saga_id: str, event: str, **data: Any) -> None:
        """Record that ``event`` happened to saga ``saga_id`` (with any details as keywords).

        >>> log = SagaLog()
        >>> log.append("saga-1", "step", step="charge", phase="started")
        >>> log.records()
        [{'saga_id': 'saga-1', 'event': 'step', 'step': 'charge', 'phase': 'started'}]
        """
        # TODO (level 3): keep a copy: nobody may change history behind the log's back.
        raise NotImplementedError

    def records(self, saga_id: str | None = None) -> list[dict[str, Any]]:
        """Every record (of one saga, or all), oldest first, as dicts with ``saga_id``, ``event`` and the details.

        >>> log = SagaLog()
        >>> log.append("saga-1", "started", order={"amount": 30.0})
        >>> log.records("saga-1")
        [{'saga_id': 'saga-1', 'event': 'started', 'order': {'amount': 30.0}}]
        """
        # TODO (level 3): the records of saga_id (all of them when it is None), oldest first, as copies.
        raise NotImplementedError

    def unfinished(self) -> list[str]:
        """Ids of the sagas that started and have no ``"ended"`` record, in the order they started.

        >>> log = SagaLog()
        >>> log.append("saga-1", "started", order={})
        >>> log.unfinished()
        ['saga-1']
        """
        # TODO (level 3): a "started" record and no "ended" one; keep the order in which they started.
        raise NotImplementedError


class OrderSaga:
    """The orchestrator: create the order, reserve stock, charge, confirm, notify; undo on failure.

    ``order`` is ``{"user_id", "items": [{"sku", "qty"}], "amount"}``.
    ``timeout`` is every call's timeout (virtual seconds); ``attempts``,
    ``retry_delay`` and ``max_retry_delay`` shape the retries (level 2 and 3).
    Without a ``log``, the saga keeps its own (a new :class:`SagaLog`).

    >>> from harness import World
    >>> world = World(seed=2)
    >>> for name in ("orders", "inventory", "payments", "notifications"):
    ...     _ = world.add_service(name)
    >>> saga = OrderSaga(world.client("orchestrator"), timeout=1.0)
    >>> declined = {"user_id": "user-2", "items": [{"sku": "sku-2", "qty": 1}], "amount": 6000.0}
    >>> world.run(saga.run(declined, "saga-7")).status
    'cancelled'
    """

    def __init__(self, client: Client, *, log: SagaLog | None = None, timeout: float = 1.0, attempts: int = 3,
                 retry_delay: float = 0.5, max_retry_delay: float = 8.0) -> None:
        self.client = client
        self.log = log if log is not None else SagaLog()
        self.timeout = timeout
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay

    async def run(self, order: dict[str, Any], saga_id: str) -> SagaResult:
        """Run one saga to its end: every step, or the compensations of the ones that completed.

        Returns ``SagaResult(saga_id, "confirmed", order_id)``, or ``"cancelled"``
        with the ``reason`` (the step that failed and its answer).
        """
        # TODO (level 1): create, reserve, charge, confirm, notify, in that order, each with
        #   timeout=self.timeout; remember the ids each step returns. On a failure, undo the
        #   steps that completed, newest first: refund, release, cancel. Nothing else.
        # TODO (level 2): a 5xx or a NetworkError is not a "no": retry up to self.attempts
        #   times, pausing retry_delay, 2 * retry_delay, ... (at most max_retry_delay), with
        #   the same Idempotency-Key each time: f"{saga_id}:reserve", f"{saga_id}:charge", ...
        # TODO (level 3): log before each call and after it (self.log); retry compensations
        #   until they succeed; look up a step whose outcome stayed unknown before undoing it.
        # TODO (level 5): several sagas run at once on one OrderSaga: no per-saga state on self.
        raise NotImplementedError

    async def recover(self) -> list[SagaResult]:
        """Finish every saga the log says was started and never ended (another orchestrator crashed).

        Returns one :class:`SagaResult` per saga it finished; ``[]`` if there was none.
        """
        # TODO (level 3): for each of self.log.unfinished(): rebuild what the saga had done from
        #   its records, redo a step whose outcome was never logged (same key: it replays), or
        #   compensate; then log that it ended.
        raise NotImplementedError


class OrderChoreography:
    """The same saga with no orchestrator: each service's consumer reacts to the previous event.

    ``install()`` subscribes the consumers (``bus.subscribe(topic, handler,
    name=..., max_attempts=..., backoff=...)``); ``place(order, saga_id)``
    creates the order and publishes ``order-created``; the rest happens on
    the bus, in this order (see :data:`TOPICS` for the payloads)::

        order-created       -> inventory reserves -> inventory-reserved | inventory-rejected
        inventory-reserved  -> payments charges   -> payment-completed  | payment-failed
        payment-completed   -> orders confirms    -> order-confirmed
        payment-failed      -> inventory releases; orders cancels -> order-cancelled
        inventory-rejected  -> orders cancels     -> order-cancelled
        order-confirmed     -> notifications sends one notice

    A handler is ``async def handler(message)`` (``message.payload`` is the
    event). If it returns, the bus counts the event as handled; if it raises,
    the bus delivers the event again after a backoff, up to ``max_attempts``
    times, then gives up (the dead-letter queue). Delivery is *at least once*.

    >>> from harness import World
    >>> world = World(seed=3)
    >>> for name in ("orders", "inventory", "payments", "notifications"):
    ...     _ = world.add_service(name)
    >>> flow = OrderChoreography(world.bus, world.client("consumers"))
    >>> flow.install()
    >>> order = {"user_id": "user-1", "items": [{"sku": "sku-1", "qty": 2}], "amount": 30.0}
    >>> world.run(flow.place(order, "saga-1"))
    'ord-1'
    >>> world.run(world.bus.drain())
    >>> world.db("orders")["orders"]["ord-1"]["status"]
    'confirmed'
    """

    def __init__(self, bus: EventBus, client: Client, *, timeout: float = 1.0) -> None:
        self.bus = bus
        self.client = client
        self.timeout = timeout

    def install(self) -> None:
        """Subscribe every consumer to its topic."""
        # TODO (level 4): one subscription per (service, topic) above. Give each enough
        #   max_attempts to ride out an outage of a minute (the default gives up after ~15 s).
        raise NotImplementedError

    async def place(self, order: dict[str, Any], saga_id: str) -> str:
        """Create the order (pending) and publish ``order-created``; returns the order id."""
        # TODO (level 4): POST /orders, then self.bus.publish("order-created", {...}).
        # TODO (level 4): every consumer idempotent: keys derived from the saga id on every call
        #   that creates something; for the notice, ask notifications whether it was sent.
        #   A call that answers 5xx or not at all: raise, and the bus delivers the event again.
        raise NotImplementedError
