"""Saga kata, reference solution: an order placed across four services, kept consistent without a transaction.

The orchestrated saga (:class:`OrderSaga`) and the choreographed one
(:class:`OrderChoreography`) do the same work with the same rules:

- every step that creates something carries an ``Idempotency-Key`` derived
  from the saga id, so a retry (after a timeout, after a crash, after a
  duplicate event) replays the first answer instead of doing the work twice;
- a failure with a definite answer (409 out of stock, 402 declined) ends the
  forward path; a failure *without* one (5xx, timeout, no connection) is
  retried, and when the retries run out the step counts as "may have
  happened": its compensation looks up what exists before undoing it;
- compensations run in reverse order, only for the steps that started, and
  each is retried with exponential backoff until it succeeds: a compensation
  that gives up leaves stock held or money taken for an order that does not
  exist;
- the orchestrator writes its intent to the log before each call and the
  outcome after it, so another orchestrator can finish the saga from the
  log alone.

>>> from harness import World
>>> world = World(seed=1)
>>> for name in ("orders", "inventory", "payments", "notifications"):
...     _ = world.add_service(name)
>>> saga = OrderSaga(world.client("orchestrator"))
>>> order = {"user_id": "user-1", "items": [{"sku": "sku-1", "qty": 2}], "amount": 30.0}
>>> result = world.run(saga.run(order, "saga-1"))
>>> result.status, result.order_id
('confirmed', 'ord-1')

One limit this solution lives with: a request that does its work *after*
its caller gave up (delayed beyond the timeout) can land after the saga
looked it up and decided; a retry with the same key is safe (whichever runs
first stores the answer, the other replays it), a look-up is not. The checks
never delay a request beyond its timeout. (A lost answer to the create is
safe: orders replays a create sent with the same key.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from harness.bus import EventBus, Message
from harness.http import NetworkError, Response
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

FORWARD = ("create", "reserve", "charge", "confirm")


@dataclass
class SagaResult:
    """How one saga ended: ``status`` is ``"confirmed"`` or ``"cancelled"``."""

    saga_id: str
    status: str
    order_id: str | None = None
    reason: str | None = None


class SagaLog:
    """An append-only record of what each saga did: the orchestrator's durable memory.

    >>> log = SagaLog()
    >>> log.append("saga-1", "started", order={"amount": 30.0})
    >>> log.append("saga-2", "started", order={"amount": 20.0})
    >>> log.append("saga-1", "ended", status="confirmed")
    >>> log.unfinished(), [r["event"] for r in log.records("saga-1")]
    (['saga-2'], ['started', 'ended'])
    """

    def __init__(self) -> None:
        # Copies go in and come out: nobody can change history behind the log's back.
        self._records: list[dict[str, Any]] = []

    def append(self, saga_id: str, event: str, **data: Any) -> None:
        """Record that ``event`` happened to saga ``saga_id`` (with any details as keywords)."""
        self._records.append({"saga_id": saga_id, "event": event, **_copy(data)})

    def records(self, saga_id: str | None = None) -> list[dict[str, Any]]:
        """Every record (of one saga, or all), oldest first, as dicts with ``saga_id`` and ``event``."""
        return [_copy(r) for r in self._records if saga_id is None or r["saga_id"] == saga_id]

    def unfinished(self) -> list[str]:
        """Ids of the sagas that started and have no ``"ended"`` record, in the order they started."""
        started: list[str] = []
        ended: set[str] = set()
        for record in self._records:
            if record["event"] == "started" and record["saga_id"] not in started:
                started.append(record["saga_id"])
            elif record["event"] == "ended":
                ended.add(record["saga_id"])
        return [saga_id for saga_id in started if saga_id not in ended]


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class _Progress:
    """What the log says about one saga: folded from its records, so a new orchestrator knows it too."""

    def __init__(self, records: list[dict[str, Any]]):
        self.order: dict[str, Any] = {}
        self.steps: dict[str, str] = {}  # step -> started | done | failed | unknown
        self.order_id: str | None = None
        self.reservation_id: str | None = None
        self.charge_id: str | None = None
        self.compensating: str | None = None  # the reason, once compensation began
        self.compensated: set[str] = set()
        self.notified = False
        for record in records:
            event = record["event"]
            if event == "started":
                self.order = record["order"]
            elif event == "step":
                self.steps[record["step"]] = record["phase"]
                self.order_id = record.get("order_id", self.order_id)
                self.reservation_id = record.get("reservation_id", self.reservation_id)
                self.charge_id = record.get("charge_id", self.charge_id)
            elif event == "compensating":
                self.compensating = record["reason"]
            elif event == "compensated":
                self.compensated.add(record["step"])
            elif event == "notified":
                self.notified = True


class _Answer:
    """The outcome of a call that may have been retried: a response, or none at all (``unknown``)."""

    def __init__(self, response: Response | None, error: str | None = None):
        self.response = response
        self.error = error

    @property
    def unknown(self) -> bool:
        """No definite answer: a 5xx or no response. The work may or may not have happened."""
        return self.response is None or self.response.status >= 500

    @property
    def ok(self) -> bool:
        return self.response is not None and self.response.status < 400

    def describe(self) -> str:
        if self.response is None:
            return self.error or "no answer"
        return f"{self.response.status} {_detail(self.response)}".strip()


def _detail(response: Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("detail", "")) if isinstance(body, dict) else ""


class OrderSaga:
    """The orchestrator: create the order, reserve stock, charge, confirm, notify; undo on failure."""

    def __init__(self, client: Client, *, log: SagaLog | None = None, timeout: float = 1.0, attempts: int = 3,
                 retry_delay: float = 0.5, max_retry_delay: float = 8.0) -> None:
        self.client = client
        self.log = log if log is not None else SagaLog()
        self.timeout = timeout
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay

    async def run(self, order: dict[str, Any], saga_id: str) -> SagaResult:
        """Run one saga to its end: every step, or the compensations of the ones that started."""
        self.log.append(saga_id, "started", order=order)
        return await self._drive(saga_id)

    async def recover(self) -> list[SagaResult]:
        """Finish every saga the log says was started and never ended (another orchestrator crashed)."""
        return [await self._drive(saga_id) for saga_id in self.log.unfinished()]

    # -- the saga ------------------------------------------------------------------------
    async def _drive(self, saga_id: str) -> SagaResult:
        state = _Progress(self.log.records(saga_id))
        if state.compensating is None:
            for step in FORWARD:
                if state.steps.get(step) == "done":
                    continue  # a previous orchestrator did it, and logged that it did
                reason = await self._forward(saga_id, state, step)
                if reason is not None:
                    self.log.append(saga_id, "compensating", reason=reason)
                    state.compensating = reason
                    break
        if state.compensating is not None:
            await self._compensate(saga_id, state)
            self.log.append(saga_id, "ended", status=CANCELLED)
            return SagaResult(saga_id, CANCELLED, state.order_id, state.compensating)
        if not state.notified:
            await self._notify(saga_id, state)
        self.log.append(saga_id, "ended", status=CONFIRMED)
        return SagaResult(saga_id, CONFIRMED, state.order_id)

    async def _forward(self, saga_id: str, state: _Progress, step: str) -> str | None:
        """Do one forward step; None when done, else why the saga must compensate."""
        # Intent first: if we crash during the call, the next orchestrator knows it may have happened.
        self.log.append(saga_id, "step", step=step, phase="started")
        state.steps[step] = "started"
        order = state.order
        if step == "create":
            # The key lets a retry replay the first answer, once orders honours it (see the module notes).
            answer = await self._call("POST", "orders", "/orders", key=f"{saga_id}:create",
                                      json={"user_id": order["user_id"], "items": order["items"],
                                            "amount": order["amount"]})
            if not answer.ok:
                return self._failed(saga_id, state, step, answer, "no order")
            state.order_id = answer.response.json()["id"]
            self.log.append(saga_id, "step", step=step, phase="done", order_id=state.order_id)
            return None
        if step == "reserve":
            answer = await self._call("POST", "inventory", "/reservations", key=f"{saga_id}:reserve",
                                      json={"order_id": state.order_id, "items": order["items"]})
            if answer.ok:
                state.reservation_id = answer.response.json()["id"]
                self.log.append(saga_id, "step", step=step, phase="done", reservation_id=state.reservation_id)
                return None
            return self._failed(saga_id, state, step, answer, "no stock reserved")
        if step == "charge":
            answer = await self._call("POST", "payments", "/charges", key=f"{saga_id}:charge",
                                      json={"order_id": state.order_id, "amount": order["amount"],
                                            "user_id": order["user_id"]})
            if answer.ok:
                state.charge_id = answer.response.json()["id"]
                self.log.append(saga_id, "step", step=step, phase="done", charge_id=state.charge_id)
                return None
            return self._failed(saga_id, state, step, answer, "not charged")
        # confirm: the pivot. Confirming twice is harmless, so a retry needs no key.
        answer = await self._call("POST", "orders", f"/orders/{state.order_id}/confirm")
        if answer.unknown:
            # A confirm whose answer was lost may have happened: compensating a confirmed order
            # would refund a customer who gets the goods. Find out before deciding.
            seen = await self._until_answered("GET", "orders", f"/orders/{state.order_id}")
            if seen.ok and seen.response.json().get("status") == CONFIRMED:
                answer = seen
        if answer.ok:
            self.log.append(saga_id, "step", step=step, phase="done")
            return None
        return self._failed(saga_id, state, step, answer, "not confirmed")

    def _failed(self, saga_id: str, state: _Progress, step: str, answer: _Answer, what: str) -> str:
        # A definite refusal did nothing to undo; an unknown outcome may have done something.
        phase = "unknown" if answer.unknown else "failed"
        state.steps[step] = phase
        self.log.append(saga_id, "step", step=step, phase=phase)
        return f"{step}: {answer.describe()} ({what})"

    async def _compensate(self, saga_id: str, state: _Progress) -> None:
        """Undo, newest first, every step that started and may have done something."""
        started = {step for step, phase in state.steps.items() if phase != "failed"}
        if "charge" in started and "refund" not in state.compensated:
            await self._refund(saga_id, state)
            self.log.append(saga_id, "compensated", step="refund")
        if "reserve" in started and "release" not in state.compensated:
            await self._release(saga_id, state)
            self.log.append(saga_id, "compensated", step="release")
        if "create" in started and state.order_id is not None and "cancel" not in state.compensated:
            await self._until_answered("POST", "orders", f"/orders/{state.order_id}/cancel")
            self.log.append(saga_id, "compensated", step="cancel")

    async def _refund(self, saga_id: str, state: _Progress) -> None:
        charge_ids = [state.charge_id] if state.charge_id else []
        if not charge_ids:  # the charge may have happened without us hearing: look it up
            found = await self._until_answered("GET", "payments", "/charges", params={"order_id": state.order_id})
            charge_ids = [c["id"] for c in found.response.json() if c["status"] == "captured"]
        for charge_id in charge_ids:
            # The key makes a retried refund replay its first answer; a 409 (refunded already) is done too.
            await self._until_answered("POST", "payments", "/refunds", key=f"{saga_id}:refund:{charge_id}",
                                       json={"charge_id": charge_id})

    async def _release(self, saga_id: str, state: _Progress) -> None:
        reservation_ids = [state.reservation_id] if state.reservation_id else []
        if not reservation_ids:
            found = await self._until_answered("GET", "inventory", "/reservations",
                                               params={"order_id": state.order_id})
            reservation_ids = [r["id"] for r in found.response.json() if r["status"] == "reserved"]
        for reservation_id in reservation_ids:
            await self._until_answered("DELETE", "inventory", f"/reservations/{reservation_id}")

    async def _notify(self, saga_id: str, state: _Progress) -> None:
        # After the pivot nothing is undone: the notice is best effort, a few tries.
        answer = await self._call("POST", "notifications", "/notifications",
                                  json={"user_id": state.order["user_id"], "order_id": state.order_id,
                                        "message": f"Your order {state.order_id} is confirmed."})
        if answer.ok:
            self.log.append(saga_id, "notified")

    # -- calls -----------------------------------------------------------------------------
    def _delay(self, attempt: int) -> float:
        return min(self.max_retry_delay, self.retry_delay * 2 ** attempt)

    async def _once(self, method: str, target: str, path: str, key: str | None, **kwargs: Any) -> _Answer:
        headers = {"Idempotency-Key": key} if key else None
        try:
            return _Answer(await self.client.request(method, target, path, headers=headers,
                                                     timeout=self.timeout, **kwargs))
        except NetworkError as error:
            return _Answer(None, f"{type(error).__name__}: {error}")

    async def _call(self, method: str, target: str, path: str, *, key: str | None = None, **kwargs: Any) -> _Answer:
        """A forward call: retried (same key) while the outcome is unknown, at most ``attempts`` times."""
        answer = _Answer(None)
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self._delay(attempt - 1))
            answer = await self._once(method, target, path, key, **kwargs)
            if not answer.unknown:
                return answer
        return answer

    async def _until_answered(self, method: str, target: str, path: str, *, key: str | None = None,
                              **kwargs: Any) -> _Answer:
        """A call that must get a definite answer (compensations, look-ups): retried with backoff, forever."""
        attempt = 0
        while True:
            answer = await self._once(method, target, path, key, **kwargs)
            if not answer.unknown:
                return answer
            await asyncio.sleep(self._delay(attempt))
            attempt += 1


class OrderChoreography:
    """The same saga with no orchestrator: each service's consumer reacts to the previous event.

    Every consumer is idempotent, because the bus delivers at least once:
    duplicates, lost acknowledgements and redeliveries all run a handler
    again. Calls that create something carry a key derived from the saga id,
    so doing it again replays the first answer (and publishes the same next
    event again, which the next consumer handles the same way). A consumer
    that cannot finish (a 5xx, a timeout) raises, so the bus delivers the
    message again later.
    """

    def __init__(self, bus: EventBus, client: Client, *, timeout: float = 1.0) -> None:
        self.bus = bus
        self.client = client
        self.timeout = timeout

    def install(self) -> None:
        """Subscribe every consumer to its topic."""
        consumers = {
            ("inventory", "order-created"): self._reserve,
            ("payments", "inventory-reserved"): self._charge,
            ("inventory", "payment-failed"): self._release,
            ("orders", "payment-completed"): self._confirm,
            ("orders", "payment-failed"): self._cancel,
            ("orders", "inventory-rejected"): self._cancel,
            ("notifications", "order-confirmed"): self._notify,
        }
        for (service, topic), handler in consumers.items():
            # Redeliveries 0.5, 1, 2, ... 32 s apart: enough to ride out an outage of a minute.
            self.bus.subscribe(topic, handler, name=f"{service}:{topic}", max_attempts=8, backoff=0.5)

    async def place(self, order: dict[str, Any], saga_id: str) -> str:
        """Create the order (pending) and announce it; returns the order id. The rest happens on the bus."""
        r = await self._call("POST", "orders", "/orders", key=f"{saga_id}:create",
                             json={"user_id": order["user_id"], "items": order["items"], "amount": order["amount"]})
        order_id = r.json()["id"]
        self.bus.publish("order-created", {"saga_id": saga_id, "order_id": order_id, **order}, source="orders")
        return order_id

    async def _call(self, method: str, target: str, path: str, *, key: str | None = None, **kwargs: Any) -> Response:
        """One call; a 5xx or no answer raises, which makes the consumer nack and the bus retry."""
        headers = {"Idempotency-Key": key} if key else None
        r = await self.client.request(method, target, path, headers=headers, timeout=self.timeout, **kwargs)
        if r.status >= 500:
            raise RuntimeError(f"{method} {target}{path} answered {r.status}: try again later")
        return r

    async def _reserve(self, message: Message) -> None:
        event = message.payload
        r = await self._call("POST", "inventory", "/reservations", key=f"{event['saga_id']}:reserve",
                             json={"order_id": event["order_id"], "items": event["items"]})
        if r.status < 400:
            self.bus.publish("inventory-reserved", {**event, "reservation_id": r.json()["id"]}, source="inventory")
        else:
            self.bus.publish("inventory-rejected", {**event, "reason": _detail(r)}, source="inventory")

    async def _charge(self, message: Message) -> None:
        event = message.payload
        r = await self._call("POST", "payments", "/charges", key=f"{event['saga_id']}:charge",
                             json={"order_id": event["order_id"], "amount": event["amount"],
                                   "user_id": event["user_id"]})
        if r.status < 400:
            self.bus.publish("payment-completed", {**event, "charge_id": r.json()["id"]}, source="payments")
        else:
            self.bus.publish("payment-failed", {**event, "reason": _detail(r)}, source="payments")

    async def _release(self, message: Message) -> None:
        # Releasing twice is a 200 with "already": naturally idempotent.
        await self._call("DELETE", "inventory", f"/reservations/{message.payload['reservation_id']}")

    async def _confirm(self, message: Message) -> None:
        event = message.payload
        await self._call("POST", "orders", f"/orders/{event['order_id']}/confirm")
        self.bus.publish("order-confirmed", {"saga_id": event["saga_id"], "order_id": event["order_id"],
                                             "user_id": event["user_id"]}, source="orders")

    async def _cancel(self, message: Message) -> None:
        event = message.payload
        await self._call("POST", "orders", f"/orders/{event['order_id']}/cancel")
        self.bus.publish("order-cancelled", {"saga_id": event["saga_id"], "order_id": event["order_id"],
                                             "reason": event.get("reason", "")}, source="orders")

    async def _notify(self, message: Message) -> None:
        event = message.payload
        # No key on notifications: ask first. The bus hands this consumer one message at a time,
        # so nothing else can send the notice between the question and the answer.
        sent = await self._call("GET", "notifications", "/notifications", params={"order_id": event["order_id"]})
        if sent.json():
            return
        await self._call("POST", "notifications", "/notifications",
                         json={"user_id": event["user_id"], "order_id": event["order_id"],
                               "message": f"Your order {event['order_id']} is confirmed."})
