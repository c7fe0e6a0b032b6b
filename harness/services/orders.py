"""orders: the order lifecycle, and a synchronous checkout that calls payments.

- ``POST /orders`` ``{"user_id", "items", "amount"}``: 201, status ``pending``
  (the first step of a saga). With an ``Idempotency-Key`` it follows the same
  rules as payments: the same key replays the first answer (the order as it
  was created, with ``Idempotent-Replayed: true``) without creating another,
  the same key with another payload is a 422.
  ``POST /orders/{id}/confirm`` and ``/cancel``
  move it on (409 for an illegal move); ``GET /orders/{id}``, ``GET /orders?user_id=``.
- ``POST /checkout`` ``{"user_id", "amount"}``: creates the order and charges
  it *synchronously* through payments, with ``options["payments_timeout"]``
  (default 30 s, the seed's) — the call at the heart of the cascade story.
  If ``options["payments_guard"]`` is set (a circuit breaker: an async
  callable taking a zero-argument async function), the charge goes through
  it; when the guard refuses (raises anything that is not a network error),
  the order is accepted as ``202 pending, payment queued``, the seed's
  fallback, in microseconds. ``options["payments_guard_factory"]`` builds one
  guard per instance instead (``factory(ctx) -> guard``): each copy of a
  service has its own breaker in real life.
"""

from __future__ import annotations

from fastapi import Header, HTTPException
from pydantic import BaseModel

from ..http import NetworkError, RequestTimeout
from ..network import InstanceContext
from ..wirejson import JSONResponse  # FastAPI's, with its JSON encoder built once
from .base import new_app, next_id
from .idempotency import answer, replay


class Item(BaseModel):
    sku: str
    qty: int = 1


class OrderRequest(BaseModel):
    user_id: str
    items: list[Item] = []
    amount: float = 0.0


class CheckoutRequest(BaseModel):
    user_id: str
    amount: float = 25.0


class PaymentFailed(Exception):
    """payments answered 5xx: a failure for the breaker to count."""

    def __init__(self, status: int):
        super().__init__(f"payments answered {status}")
        self.status = status


MOVES = {"confirm": ("pending",), "cancel": ("pending",)}
AFTER = {"confirm": "confirmed", "cancel": "cancelled"}


def create_app(ctx: InstanceContext):
    app = new_app(ctx, "orders", "Orders, and the synchronous checkout of the cascade story.")
    db = ctx.db
    orders = db.setdefault("orders", {})
    by_user = db.setdefault("orders_by_user", {})  # an index: browsing must not scan every order
    timeout = float(ctx.options.get("payments_timeout", 30.0))
    guard = ctx.options.get("payments_guard")
    if ctx.options.get("payments_guard_factory") is not None:
        guard = ctx.options["payments_guard_factory"](ctx)

    def new_order(user_id: str, items: list, amount: float) -> dict:
        oid = next_id(db, "ord")
        orders[oid] = {"id": oid, "user_id": user_id, "items": items, "amount": amount,
                       "status": "pending", "created_at": ctx.now()}
        by_user.setdefault(user_id, []).append(oid)
        return orders[oid]

    keys = db.setdefault("idempotency", {})

    @app.post("/orders", status_code=201)
    async def create(req: OrderRequest, idempotency_key: str | None = Header(default=None)):
        def run():
            # A copy: a replay answers what the first request got, not the order's state today.
            return 201, dict(new_order(req.user_id, [i.model_dump() for i in req.items], req.amount))

        return answer(*replay(keys, idempotency_key, req.model_dump(), run))

    @app.get("/orders/{oid}")
    async def get(oid: str):
        if oid not in orders:
            raise HTTPException(404, f"no order {oid}")
        return orders[oid]

    @app.get("/orders")
    async def find(user_id: str | None = None, limit: int = 20):
        ids = by_user.get(user_id, []) if user_id is not None else list(orders)
        # JSONResponse directly: these are plain dicts, no need for FastAPI's encoder.
        return JSONResponse([orders[oid] for oid in ids[-limit:]])

    async def move(oid: str, action: str):
        order = orders.get(oid)
        if order is None:
            raise HTTPException(404, f"no order {oid}")
        if order["status"] == AFTER[action]:
            return order  # idempotent: confirming twice is fine
        if order["status"] not in MOVES[action]:
            raise HTTPException(409, f"order {oid} is {order['status']}, cannot {action}")
        order["status"] = AFTER[action]
        order[f"{AFTER[action]}_at"] = ctx.now()
        return order

    @app.post("/orders/{oid}/confirm")
    async def confirm(oid: str):
        return await move(oid, "confirm")

    @app.post("/orders/{oid}/cancel")
    async def cancel(oid: str):
        return await move(oid, "cancel")

    @app.post("/checkout", status_code=201)
    async def checkout(req: CheckoutRequest):
        order = new_order(req.user_id, [], req.amount)

        async def charge():
            r = await ctx.call("payments", "POST", "/charges", timeout=timeout,
                               json={"order_id": order["id"], "amount": req.amount, "user_id": req.user_id})
            if r.status >= 500:
                raise PaymentFailed(r.status)
            return r

        try:
            r = await guard(charge) if guard is not None else await charge()
        except RequestTimeout:
            order["status"] = "failed"
            return JSONResponse({"order": order, "detail": "payments timed out"}, status_code=504)
        except (NetworkError, PaymentFailed) as exc:
            order["status"] = "failed"
            return JSONResponse({"order": order, "detail": str(exc)}, status_code=502)
        except Exception as exc:  # the guard refused: fail fast, queue the payment
            order["status"] = "payment-queued"
            return JSONResponse({"order": order, "status": "pending", "message": "payment queued",
                                 "reason": type(exc).__name__}, status_code=202)
        if r.status == 402:
            order["status"] = "declined"
            return JSONResponse({"order": order, "detail": "card declined"}, status_code=402)
        if r.status >= 400:  # payments refused the charge (a bad amount, say): nothing was paid
            order["status"] = "failed"
            return JSONResponse({"order": order, "detail": r.json().get("detail")}, status_code=r.status)
        order["status"] = "paid"
        return JSONResponse({"order": order, "charge": r.json()}, status_code=201)

    return app
