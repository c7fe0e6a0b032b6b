"""payments: charges, refunds and payment methods, honouring ``Idempotency-Key``.

- ``POST /charges`` ``{"order_id", "amount", "user_id"?}``: 201 with the charge,
  or 402 when the card is declined (amounts above ``options["decline_above"]``,
  default 5000). With an ``Idempotency-Key`` header the first answer is stored
  and replayed for the same key and payload (header ``Idempotent-Replayed:
  true``), even a 402; the same key with another payload is a 422.
- ``POST /refunds`` ``{"charge_id"}``: 201, 404 for an unknown charge, 409 if
  it was refunded already; idempotent with a key too.
- ``GET /charges/{id}``, ``GET /charges?order_id=``, ``GET /payment-methods?user_id=``.

The ledger (``db["charges"]``, ``db["refunds"]``) is what the saga invariants read.
"""

from __future__ import annotations

from fastapi import Header, HTTPException
from pydantic import BaseModel

from ..network import InstanceContext
from .base import new_app, next_id
from .idempotency import answer, replay


class ChargeRequest(BaseModel):
    order_id: str
    amount: float
    user_id: str | None = None


class RefundRequest(BaseModel):
    charge_id: str


def create_app(ctx: InstanceContext):
    app = new_app(ctx, "payments", "Charges and refunds. Send an Idempotency-Key on every retry.")
    db = ctx.db
    charges = db.setdefault("charges", {})
    refunds = db.setdefault("refunds", {})
    keys = db.setdefault("idempotency", {})
    decline_above = float(ctx.options.get("decline_above", 5000))

    @app.post("/charges", status_code=201)
    async def charge(req: ChargeRequest, idempotency_key: str | None = Header(default=None)):
        def run():
            if req.amount <= 0:
                return 400, {"detail": "amount must be positive"}
            if req.amount > decline_above:
                return 402, {"detail": "card declined", "order_id": req.order_id}
            cid = next_id(db, "ch")
            charges[cid] = {"id": cid, "order_id": req.order_id, "user_id": req.user_id,
                            "amount": req.amount, "status": "captured", "at": ctx.now()}
            return 201, charges[cid]

        return answer(*replay(keys, idempotency_key, req.model_dump(), run, scope="charge"))

    @app.post("/refunds", status_code=201)
    async def refund(req: RefundRequest, idempotency_key: str | None = Header(default=None)):
        def run():
            found = charges.get(req.charge_id)
            if found is None:
                return 404, {"detail": f"no charge {req.charge_id}"}
            if found["status"] == "refunded":
                return 409, {"detail": f"charge {req.charge_id} is refunded already"}
            found["status"] = "refunded"
            rid = next_id(db, "re")
            refunds[rid] = {"id": rid, "charge_id": req.charge_id, "amount": found["amount"], "at": ctx.now()}
            return 201, refunds[rid]

        return answer(*replay(keys, idempotency_key, req.model_dump(), run, scope="refund"))

    @app.get("/charges/{charge_id}")
    async def get_charge(charge_id: str):
        if charge_id not in charges:
            raise HTTPException(404, f"no charge {charge_id}")
        return charges[charge_id]

    @app.get("/charges")
    async def find_charges(order_id: str | None = None):
        return [c for c in charges.values() if order_id is None or c["order_id"] == order_id]

    @app.get("/payment-methods")
    async def payment_methods(user_id: str):
        digits = sum(map(ord, user_id)) % 9000 + 1000
        return [{"type": "card", "brand": "visa", "last4": str(digits)}]

    return app
