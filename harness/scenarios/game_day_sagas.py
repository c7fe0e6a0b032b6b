"""The game day's order sagas: an orchestrator service, its customers, and the invariants' verdict.

Part of the customers place their orders through an **order saga** instead
of the synchronous ``POST orders /checkout``: they call ``POST sagas
/orders`` and wait for the answer (like Step Functions' synchronous
executions). The ``sagas`` service is the orchestrator:

- without the saga kata (the unprotected run, or a stub): it runs the seed's
  state machine, :data:`harness.stepfunctions.SEED_FLOW` (no retries, no
  refund, no confirmation step);
- with it: one ``OrderSaga`` of the kata per instance runs every saga that
  instance is asked for, concurrently (levels 1-3 and 5).

Either way every call has a :data:`SAGA_TIMEOUT` of 2 s, above the slow
inventory's 1.5 s. The customer's answer: 201 when the order went through
(confirmed, or the seed's flow "succeeded"), the shop's own refusal when a
step met one (402 declined, 409 out of stock: the customer's business, not
an outage), else 503 (cancelled because something broke; 500 if the
orchestrator itself failed).

After the run, :func:`saga_verdict` checks :mod:`harness.invariants` on the
saga orders alone (orders with items: the synchronous checkout sells none),
their charges and refunds, and the stock.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from ..http import NetworkError
from ..invariants import INVARIANTS, invariant_report
from ..network import Client, InstanceContext
from ..services.base import new_app
from ..stepfunctions import SEED_FLOW, run_flow
from ..wirejson import JSONResponse
from ..world import World

__all__ = ["SAGA_BOUND", "SAGA_SERVICE", "SAGA_TIMEOUT", "orchestrator", "saga_order", "saga_verdict",
           "smoke_saga"]

SAGA_SERVICE = "sagas"
SAGA_TIMEOUT = 2.0  # per call, for both flows: above the slow inventory's 1.5 s
SAGA_BOUND = 120.0  # every saga order ends confirmed or cancelled within this (the invariant)
DECLINED_EVERY = 23  # one saga order in 23 is above the card limit (payments declines it)
REFUSALS = {("payments", 402), ("inventory", 409)}  # the shop's definite "no"s

# The saga being served by this task: the orchestrator's client notes the refusals it meets there.
_SERVING: ContextVar[dict[str, Any] | None] = ContextVar("game_day_saga", default=None)


def saga_order(i: int) -> dict[str, Any]:
    """The i-th saga customer's order (0-based): one unit of a SKU; a few amounts the card declines."""
    return {"saga_id": f"saga-{i + 1}", "user_id": f"user-{i % 50 + 1}",
            "items": [{"sku": f"sku-{i % 20 + 1}", "qty": 1}],
            "amount": 6000.0 if i % DECLINED_EVERY == DECLINED_EVERY - 1 else 25.0}


class _Item(BaseModel):
    sku: str
    qty: int = 1


class _SagaOrder(BaseModel):
    saga_id: str
    user_id: str
    items: list[_Item]
    amount: float


class _Observed(Client):
    """The orchestrator's client: ``ctx.client`` (read at call time), noting the shop's refusals.

    A :class:`~harness.network.Client` for its verbs; every call goes through ``request``.
    """

    def __init__(self, ctx: InstanceContext):  # no Client.__init__: the caller is ctx.client's
        self.ctx = ctx

    async def request(self, method: str, target: str, path: str, **kwargs: Any) -> Any:
        response = await self.ctx.client.request(method, target, path, **kwargs)
        serving = _SERVING.get()
        if serving is not None and (target.rsplit("-", 1)[0], response.status) in REFUSALS:
            serving["refused"] = response.status
        return response


@dataclass
class SagaEnd:
    """How one saga ended, as its orchestrator reported it (what ``ending_violations`` compares)."""

    saga_id: str
    status: str  # confirmed | cancelled | error (the orchestrator failed)
    order_id: str | None = None


def orchestrator(saga_module: ModuleType | None):
    """The ``sagas`` service: the kata's ``OrderSaga`` when given, else the seed's Step Functions flow."""

    def create_app(ctx: InstanceContext):
        app = new_app(ctx, SAGA_SERVICE, "Order sagas: POST /orders runs one and answers how it ended.")
        client = _Observed(ctx)
        ends: dict[str, SagaEnd] = ctx.db.setdefault("ends", {})
        saga = saga_module.OrderSaga(client, timeout=SAGA_TIMEOUT) if saga_module is not None else None

        async def run(order: dict[str, Any], saga_id: str) -> tuple[str, str | None, str]:
            if saga is not None:
                result = await saga.run(order, saga_id)
                return result.status, result.order_id, str(result.reason or "")
            execution = await run_flow(SEED_FLOW, client, order, saga_id, timeout=SAGA_TIMEOUT)
            status = "confirmed" if execution.status == "SUCCEEDED" else "cancelled"
            if execution.uncaught:
                status = "error"
            return status, execution.context.get("order_id"), execution.error or ""

        @app.post("/orders", status_code=201)
        async def place(req: _SagaOrder):
            order = {"user_id": req.user_id, "items": [i.model_dump() for i in req.items], "amount": req.amount}
            serving: dict[str, Any] = {}
            token = _SERVING.set(serving)
            try:
                status, order_id, reason = await run(order, req.saga_id)
            except Exception as error:  # noqa: BLE001  (a learner's bug: the customer gets a 500)
                ends[req.saga_id] = SagaEnd(req.saga_id, "error")
                return JSONResponse({"saga_id": req.saga_id, "detail": f"{type(error).__name__}: {error}"},
                                    status_code=500)
            finally:
                _SERVING.reset(token)
            ends[req.saga_id] = SagaEnd(req.saga_id, status, order_id)
            body = {"saga_id": req.saga_id, "status": status, "order_id": order_id, "detail": reason}
            if status == "confirmed":
                return JSONResponse(body, status_code=201)
            if status == "error":
                return JSONResponse(body, status_code=500)
            return JSONResponse(body, status_code=serving.get("refused", 503))

        return app

    return create_app


# -- the verdict ---------------------------------------------------------------------------
class _SagaShop:
    """The shop as the saga invariants see it: saga orders only, with their charges and refunds.

    The synchronous checkout's orders have no items and states of their own (paid, failed,
    payment-queued): they are the breaker chapter's, not a saga's, and are left out.
    """

    def __init__(self, world: World):
        orders = {oid: o for oid, o in world.db("orders").get("orders", {}).items() if o.get("items")}
        payments = world.db("payments")
        charges = {cid: c for cid, c in payments.get("charges", {}).items() if c["order_id"] in orders}
        refunds = {rid: r for rid, r in payments.get("refunds", {}).items() if r["charge_id"] in charges}
        self._dbs = {"orders": {"orders": orders}, "payments": {"charges": charges, "refunds": refunds},
                     "inventory": world.db("inventory")}
        self.bus = world.bus
        self.seed = world.seed
        self._now = world.now()

    def db(self, service: str) -> dict:
        return self._dbs.get(service, {})

    def now(self) -> float:
        return self._now


def saga_verdict(world: World, attempted: int, flow: str) -> dict[str, Any]:
    """Counts a learner can add up (attempted = confirmed + cancelled + pending + not placed) and the invariants."""
    shop = _SagaShop(world)
    statuses = [o["status"] for o in shop.db("orders")["orders"].values()]
    ends = list(world.db(SAGA_SERVICE).get("ends", {}).values())
    report = invariant_report(shop, bound=SAGA_BOUND, results=[e for e in ends if e.order_id is not None])
    placed = len(statuses)
    return {
        "flow": flow,
        "attempted": attempted,
        "confirmed": statuses.count("confirmed"),
        "cancelled": statuses.count("cancelled"),
        "pending": statuses.count("pending"),
        "not_placed": attempted - placed,
        "answered": len(ends),
        "violations": {name: len(report[name]) for name in INVARIANTS},
        "first_violations": {name: str(found[0]) for name, found in report.items() if found},
        "invariants_hold": not any(report.values()),
    }


def smoke_saga(module: ModuleType) -> None:
    """Run two sagas at once with the kata's OrderSaga in a tiny shop (raises what the kata raises)."""
    with World(seed=0, record_headers=False) as world:
        for service in ("orders", "inventory", "payments", "notifications"):
            world.add_service(service)
        saga = module.OrderSaga(world.client("orchestrator"), timeout=SAGA_TIMEOUT)

        async def both() -> list[Any]:
            orders = [saga_order(0), saga_order(DECLINED_EVERY - 1)]
            return await asyncio.gather(*(saga.run({k: v for k, v in o.items() if k != "saga_id"}, o["saga_id"])
                                          for o in orders))

        world.run(both())


async def place_quietly(call: Any) -> None:
    """A customer's awaited call whose failure nobody handles (the recorder has it)."""
    with contextlib.suppress(NetworkError):
        await call
