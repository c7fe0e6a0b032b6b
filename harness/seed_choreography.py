"""The seed's event-driven saga, as written: consumers on the bus, no keys, no deduplication.

The seed chapter's choreography: orders publishes ``OrderCreated``;
inventory reserves and publishes ``InventoryReserved`` (or
``InventoryReservationFailed``); payments charges and publishes
``PaymentCompleted`` or ``PaymentFailed``; notifications sends the email;
on ``PaymentFailed`` inventory releases and orders cancels. Its consumers
do the work every time an event arrives. On a bus that delivers *at least
once* that is the bug: a duplicate ``InventoryReserved`` charges the card
twice.

``complete=False`` runs it exactly as the seed describes it. Two gaps then
show: nobody listens to ``InventoryReservationFailed`` (an order out of
stock stays pending), and nothing ever confirms an order (the happy path
leaves it pending too). ``complete=True`` (the default) adds those two
consumers, so that the only thing missing is idempotency.

>>> from harness import World
>>> world = World(seed=3)
>>> for name in ("orders", "inventory", "payments", "notifications"):
...     _ = world.add_service(name)
>>> _ = world.faults.inject({"fault": "duplicate", "topic": "InventoryReserved"})  # every delivery twice
>>> flow = SeedChoreography(world)
>>> order_id = world.run(flow.place({"user_id": "user-1", "items": [{"sku": "sku-1", "qty": 1}], "amount": 25.0}))
>>> world.run(world.bus.drain())
>>> sorted(c["id"] for c in world.db("payments")["charges"].values() if c["order_id"] == order_id)
['ch-1', 'ch-2']
"""

from __future__ import annotations

from typing import Any

from .bus import Message
from .http import Response
from .world import World

__all__ = ["EVENTS", "SeedChoreography"]

EVENTS = ("OrderCreated", "InventoryReserved", "InventoryReservationFailed", "PaymentCompleted", "PaymentFailed",
          "OrderConfirmed")


class SeedChoreography:
    """The seed's consumers, each calling its own service for every event delivered."""

    def __init__(self, world: World, *, complete: bool = True, timeout: float = 1.0):
        self.world = world
        self.complete = complete
        self.timeout = timeout
        # Each service's consumer calls as that service: the swimlane plot puts the call on its lane.
        self.clients = {name: world.client(f"{name}-consumer") for name in ("orders", "inventory", "payments",
                                                                             "notifications")}
        subscriptions = [
            ("OrderCreated", "inventory", self._reserve),
            ("InventoryReserved", "payments", self._charge),
            ("PaymentCompleted", "notifications", self._email),
            ("PaymentFailed", "inventory", self._release),
            ("PaymentFailed", "orders", self._cancel),
        ]
        if complete:
            subscriptions += [("PaymentCompleted", "orders", self._confirm),
                              ("InventoryReservationFailed", "orders", self._cancel)]
        for topic, service, handler in subscriptions:
            world.bus.subscribe(topic, handler, name=f"{service}:{topic}", max_attempts=8, backoff=0.5)

    async def place(self, order: dict[str, Any]) -> str:
        """The customer's request: orders creates the order and publishes ``OrderCreated``."""
        r = await self.clients["orders"].post("orders", "/orders", timeout=self.timeout,
                                              json={"user_id": order["user_id"], "items": order["items"],
                                                    "amount": order["amount"]})
        order_id = r.json()["id"]
        self.world.bus.publish("OrderCreated", {"order_id": order_id, **order}, source="orders")
        return order_id

    async def _call(self, service: str, method: str, path: str, **kwargs: Any) -> Response:
        r = await self.clients[service].request(method, service, path, timeout=self.timeout, **kwargs)
        if r.status >= 500:
            raise RuntimeError(f"{service} answered {r.status}")  # the bus will deliver it again
        return r

    async def _reserve(self, message: Message) -> None:
        event = message.payload
        r = await self._call("inventory", "POST", "/reservations",
                             json={"order_id": event["order_id"], "items": event["items"]})
        if r.status == 201:
            self.world.bus.publish("InventoryReserved", {**event, "reservation_id": r.json()["id"]}, source="inventory")
        else:
            self.world.bus.publish("InventoryReservationFailed", {**event, "reason": "Insufficient inventory"},
                                   source="inventory")

    async def _charge(self, message: Message) -> None:
        event = message.payload
        r = await self._call("payments", "POST", "/charges",
                             json={"order_id": event["order_id"], "amount": event["amount"],
                                   "user_id": event["user_id"]})
        if r.status == 201:
            self.world.bus.publish("PaymentCompleted", {**event, "charge_id": r.json()["id"]}, source="payments")
        else:
            self.world.bus.publish("PaymentFailed", event, source="payments")

    async def _email(self, message: Message) -> None:
        event = message.payload
        await self._call("notifications", "POST", "/notifications",
                         json={"user_id": event["user_id"], "order_id": event["order_id"],
                               "message": f"Order {event['order_id']} confirmed."})

    async def _release(self, message: Message) -> None:
        await self._call("inventory", "DELETE", f"/reservations/{message.payload['reservation_id']}")

    async def _cancel(self, message: Message) -> None:
        await self._call("orders", "POST", f"/orders/{message.payload['order_id']}/cancel")

    async def _confirm(self, message: Message) -> None:
        await self._call("orders", "POST", f"/orders/{message.payload['order_id']}/confirm")
        self.world.bus.publish("OrderConfirmed", {"order_id": message.payload["order_id"]}, source="orders")
