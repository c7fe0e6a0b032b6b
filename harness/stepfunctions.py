"""A tiny Step Functions: run an order saga written as a state machine, on the shop, in virtual time.

The seed chapter implements its orchestrated saga as an AWS Step Functions
state machine. Its states and transitions are facts we can run:
:data:`SEED_FLOW` has them, in our own notation (a dict per state: the
``task`` it runs, ``next`` or ``end``, and ``catch``, the state to go to on
any error, like ``"Catch": [{"ErrorEquals": ["States.ALL"], ...}]``, or a
list of catchers ``{"errors": [...], "next": state}`` tried in order).
:data:`HARDENED_FLOW` is the same saga with what the seed's flow leaves
out: a confirmation step, ``retry`` on every task (like ``"Retry"`` with
``IntervalSeconds``, ``BackoffRate``, ``MaxAttempts``), a refund,
compensations that retry until they succeed, and idempotency keys.

What the interpreter follows from Step Functions: a task that fails is
retried by its ``retry`` rule (when the error matches), then handed to its
``catch`` state; a task error with no matching ``catch`` fails the whole
execution on the spot, with nothing undone. ``States.Timeout`` is a call
that got no answer in time, ``States.TaskFailed`` a 5xx or no connection;
the shop's refusals have names of their own (``Inventory.OutOfStock``,
``Payment.Declined``).

>>> from harness import World
>>> world = World(seed=5)
>>> for name in ("orders", "inventory", "payments", "notifications"):
...     _ = world.add_service(name)
>>> order = {"user_id": "user-1", "items": [{"sku": "sku-1", "qty": 1}], "amount": 6000.0}
>>> run = world.run(run_flow(SEED_FLOW, world.client("step-functions"), order, "exec-1"))
>>> run.status, [state for state, _ in run.path]
('FAILED', ['CreateOrder', 'ReserveInventory', 'ChargePayment', 'ReleaseInventory', 'CancelOrder', 'OrderFailed'])
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .http import NetworkError, RequestTimeout, Response
from .network import Client

__all__ = ["HARDENED_FLOW", "SEED_FLOW", "Execution", "TaskError", "run_flow"]

ALL = "States.ALL"
TIMEOUT = "States.Timeout"
TASK_FAILED = "States.TaskFailed"

# The seed's flow: six states and a Fail state; every task but SendConfirmation catches States.ALL.
SEED_FLOW: dict[str, Any] = {
    "start": "CreateOrder",
    "states": {
        "CreateOrder": {"task": "create", "next": "ReserveInventory", "catch": "OrderFailed"},
        "ReserveInventory": {"task": "reserve", "next": "ChargePayment", "catch": "CancelOrder"},
        "ChargePayment": {"task": "charge", "next": "SendConfirmation", "catch": "ReleaseInventory"},
        "SendConfirmation": {"task": "notify", "end": True},
        "ReleaseInventory": {"task": "release", "next": "CancelOrder"},
        "CancelOrder": {"task": "cancel", "next": "OrderFailed"},
        "OrderFailed": {"fail": True},
    },
}

_TRANSIENT = {"errors": [TIMEOUT, TASK_FAILED], "interval": 0.5, "backoff": 2.0, "attempts": 3}
_UNTIL_DONE = {"errors": [ALL], "interval": 0.5, "backoff": 2.0, "attempts": 1000, "max_delay": 8.0}

# The same saga with what the seed's flow leaves out (each line says what was added).
HARDENED_FLOW: dict[str, Any] = {
    "start": "CreateOrder",
    "keys": True,  # every task that creates something sends an Idempotency-Key from the execution name
    "states": {
        "CreateOrder": {"task": "create", "retry": _TRANSIENT, "next": "ReserveInventory", "catch": "OrderFailed"},
        # out of stock: nothing was reserved; any other error may hide a reservation: release what exists
        "ReserveInventory": {"task": "reserve", "retry": _TRANSIENT, "next": "ChargePayment",
                             "catch": [{"errors": ["Inventory.OutOfStock"], "next": "CancelOrder"},
                                       {"errors": [ALL], "next": "ReleaseInventory"}]},
        # declined: nothing was charged; a charge that timed out may have happened: refund what was
        # captured (the seed has no refund at all)
        "ChargePayment": {"task": "charge", "retry": _TRANSIENT, "next": "ConfirmOrder",
                          "catch": [{"errors": ["Payment.Declined"], "next": "ReleaseInventory"},
                                    {"errors": [ALL], "next": "RefundPayment"}]},
        # the seed never confirms the order: it would stay pending for ever
        "ConfirmOrder": {"task": "confirm", "retry": {**_TRANSIENT, "attempts": 5}, "next": "SendConfirmation",
                         "catch": "RefundPayment"},
        # after the pivot nothing is undone: a notice that cannot be sent does not cancel a paid order
        "SendConfirmation": {"task": "notify", "retry": _TRANSIENT, "next": "OrderConfirmed",
                             "catch": "OrderConfirmed"},
        # compensations retry until they succeed: a failed compensation must not end the execution
        "RefundPayment": {"task": "refund", "retry": _UNTIL_DONE, "next": "ReleaseInventory"},
        "ReleaseInventory": {"task": "release", "retry": _UNTIL_DONE, "next": "CancelOrder"},
        "CancelOrder": {"task": "cancel", "retry": _UNTIL_DONE, "next": "OrderFailed"},
        "OrderConfirmed": {"succeed": True},
        "OrderFailed": {"fail": True},
    },
}


class TaskError(Exception):
    """A task failed, with a Step Functions style error name (``States.Timeout``, ``Payment.Declined``...)."""

    def __init__(self, error: str, cause: str):
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


@dataclass
class Execution:
    """One run of a flow: its status, the states it went through, and what it knows about the order."""

    name: str
    status: str = "RUNNING"  # SUCCEEDED | FAILED (a Fail state, or an error nobody caught)
    path: list[tuple[str, float]] = field(default_factory=list)  # (state, virtual time entered)
    context: dict[str, Any] = field(default_factory=dict)  # order, order_id, reservation_id, charge_id
    error: str | None = None  # the last task error, "States.Timeout: ..."
    uncaught: bool = False  # it failed on an error no Catch handled: nothing was undone

    @property
    def states(self) -> list[str]:
        return [state for state, _ in self.path]


def _matches(errors: list[str], error: str) -> bool:
    return ALL in errors or error in errors


def _catcher(catch: str | list[dict[str, Any]] | None, error: str) -> str | None:
    """The state a task error goes to: ``catch`` is a state (any error) or catchers tried in order."""
    if catch is None or isinstance(catch, str):
        return catch
    return next((c["next"] for c in catch if _matches(c["errors"], error)), None)


async def run_flow(flow: dict[str, Any], client: Client, order: dict[str, Any], name: str, *,
                   timeout: float = 1.0) -> Execution:
    """Run ``flow`` for ``order`` as execution ``name``; returns the :class:`Execution` when it ends."""
    run = Execution(name, context={"order": order})
    tasks = _ShopTasks(client, timeout=timeout, keys=bool(flow.get("keys")), name=name)
    state_name = flow["start"]
    while True:
        state = flow["states"][state_name]
        run.path.append((state_name, asyncio.get_running_loop().time()))
        if state.get("fail"):
            run.status = "FAILED"
            return run
        if state.get("succeed"):
            run.status = "SUCCEEDED"
            return run
        try:
            await _run_task(tasks, state, run)
        except TaskError as error:
            run.error = str(error)
            handler = _catcher(state.get("catch"), error.error)
            if handler is None:
                run.status, run.uncaught = "FAILED", True  # Step Functions: the execution fails right here
                return run
            state_name = handler
            continue
        if state.get("end"):
            run.status = "SUCCEEDED"
            return run
        state_name = state["next"]


async def _run_task(tasks: _ShopTasks, state: dict[str, Any], run: Execution) -> None:
    retry = state.get("retry")
    attempt = 0
    while True:
        try:
            await getattr(tasks, state["task"])(run.context)
            return
        except TaskError as error:
            if retry is None or not _matches(retry["errors"], error.error) or attempt + 1 >= retry["attempts"]:
                raise
            delay = retry["interval"] * retry.get("backoff", 1.0) ** attempt
            await asyncio.sleep(min(delay, retry.get("max_delay", delay)))
            attempt += 1


class _ShopTasks:
    """The Lambda functions of the flows: one shop call each (``Resource`` in Step Functions)."""

    def __init__(self, client: Client, *, timeout: float, keys: bool, name: str):
        self.client = client
        self.timeout = timeout
        self.keys = keys
        self.name = name

    async def _call(self, method: str, target: str, path: str, *, key: str | None = None,
                    **kwargs: Any) -> Response:
        headers = {"Idempotency-Key": f"{self.name}:{key}"} if self.keys and key else None
        try:
            r = await self.client.request(method, target, path, headers=headers, timeout=self.timeout, **kwargs)
        except RequestTimeout as error:
            raise TaskError(TIMEOUT, str(error)) from None
        except NetworkError as error:
            raise TaskError(TASK_FAILED, str(error)) from None
        if r.status >= 500:
            raise TaskError(TASK_FAILED, f"{method} {target}{path} answered {r.status}")
        return r

    async def create(self, ctx: dict[str, Any]) -> None:
        order = ctx["order"]
        r = await self._call("POST", "orders", "/orders", key="create",
                             json={"user_id": order["user_id"], "items": order["items"], "amount": order["amount"]})
        if r.status >= 400:
            raise TaskError("Order.Rejected", f"orders answered {r.status}")
        ctx["order_id"] = r.json()["id"]

    async def reserve(self, ctx: dict[str, Any]) -> None:
        r = await self._call("POST", "inventory", "/reservations", key="reserve",
                             json={"order_id": ctx["order_id"], "items": ctx["order"]["items"]})
        if r.status == 409:
            raise TaskError("Inventory.OutOfStock", "not enough stock")
        if r.status >= 400:
            raise TaskError("Inventory.Rejected", f"inventory answered {r.status}")
        ctx["reservation_id"] = r.json()["id"]

    async def charge(self, ctx: dict[str, Any]) -> None:
        order = ctx["order"]
        r = await self._call("POST", "payments", "/charges", key="charge",
                             json={"order_id": ctx["order_id"], "amount": order["amount"], "user_id": order["user_id"]})
        if r.status == 402:
            raise TaskError("Payment.Declined", "card declined")
        if r.status >= 400:
            raise TaskError("Payment.Rejected", f"payments answered {r.status}")
        ctx["charge_id"] = r.json()["id"]

    async def confirm(self, ctx: dict[str, Any]) -> None:
        try:
            r = await self._call("POST", "orders", f"/orders/{ctx['order_id']}/confirm")
        except TaskError:
            # The answer was lost, but the confirmation may have happened: look before anyone compensates.
            seen = await self._call("GET", "orders", f"/orders/{ctx['order_id']}")
            if seen.status == 200 and seen.json().get("status") == "confirmed":
                return
            raise
        if r.status >= 400:
            raise TaskError("Order.Rejected", f"orders answered {r.status}")

    async def notify(self, ctx: dict[str, Any]) -> None:
        order = ctx["order"]
        await self._call("POST", "notifications", "/notifications",
                         json={"user_id": order["user_id"], "order_id": ctx.get("order_id"),
                               "message": f"Order {ctx.get('order_id')} confirmed."})

    async def refund(self, ctx: dict[str, Any]) -> None:
        charge_ids = [ctx["charge_id"]] if ctx.get("charge_id") else []
        if not charge_ids and ctx.get("order_id"):  # no answer from the charge: look for what it did
            r = await self._call("GET", "payments", "/charges", params={"order_id": ctx["order_id"]})
            charge_ids = [c["id"] for c in r.json() if c["status"] == "captured"]
        for charge_id in charge_ids:
            await self._call("POST", "payments", "/refunds", key=f"refund:{charge_id}", json={"charge_id": charge_id})

    async def release(self, ctx: dict[str, Any]) -> None:
        reservation_ids = [ctx["reservation_id"]] if ctx.get("reservation_id") else []
        if not reservation_ids and ctx.get("order_id") and self.keys:
            r = await self._call("GET", "inventory", "/reservations", params={"order_id": ctx["order_id"]})
            reservation_ids = [res["id"] for res in r.json() if res["status"] == "reserved"]
        for reservation_id in reservation_ids:
            await self._call("DELETE", "inventory", f"/reservations/{reservation_id}")

    async def cancel(self, ctx: dict[str, Any]) -> None:
        if ctx.get("order_id"):
            await self._call("POST", "orders", f"/orders/{ctx['order_id']}/cancel")
