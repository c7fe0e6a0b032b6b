"""inventory: stock per SKU and reservations, honouring ``Idempotency-Key``.

- ``GET /stock/{sku}``: ``{"sku", "available", "reserved"}``.
- ``POST /reservations`` ``{"order_id", "items": [{"sku", "qty"}]}``: 201, or
  409 when stock is short (nothing is reserved then). Each call without a key
  reserves again; with an ``Idempotency-Key`` the first answer is replayed.
- ``DELETE /reservations/{id}``: release (idempotent: releasing twice is a 200
  with ``"already": true``); ``POST /reservations/{id}/commit``: the goods leave.

Stock is conserved: available + reserved + shipped is constant per SKU.
"""

from __future__ import annotations

from fastapi import Header, HTTPException
from pydantic import BaseModel

from ..network import InstanceContext
from .base import new_app, next_id
from .idempotency import answer, replay

INITIAL_STOCK = 100


class Item(BaseModel):
    sku: str
    qty: int


class ReservationRequest(BaseModel):
    order_id: str
    items: list[Item]


def seed_stock(db: dict) -> dict:
    if "stock" not in db:
        db["stock"] = {f"sku-{n}": {"available": INITIAL_STOCK, "reserved": 0, "shipped": 0} for n in range(1, 21)}
    return db["stock"]


def create_app(ctx: InstanceContext):
    app = new_app(ctx, "inventory", "Stock and reservations.")
    db = ctx.db
    stock = seed_stock(db)
    reservations = db.setdefault("reservations", {})
    keys = db.setdefault("idempotency", {})

    @app.get("/stock/{sku}")
    async def get_stock(sku: str):
        if sku not in stock:
            raise HTTPException(404, f"no sku {sku}")
        return {"sku": sku, **stock[sku]}

    @app.post("/reservations", status_code=201)
    async def reserve(req: ReservationRequest, idempotency_key: str | None = Header(default=None)):
        def run():
            wanted: dict[str, int] = {}  # per SKU: a SKU listed twice must not be checked twice
            for item in req.items:
                if item.sku not in stock:
                    return 404, {"detail": f"no sku {item.sku}"}
                if item.qty <= 0:
                    return 400, {"detail": "qty must be positive"}
                wanted[item.sku] = wanted.get(item.sku, 0) + item.qty
            for sku, qty in wanted.items():
                if stock[sku]["available"] < qty:
                    return 409, {"detail": f"not enough {sku}", "available": stock[sku]["available"]}
            for item in req.items:
                stock[item.sku]["available"] -= item.qty
                stock[item.sku]["reserved"] += item.qty
            rid = next_id(db, "res")
            reservations[rid] = {"id": rid, "order_id": req.order_id, "status": "reserved",
                                 "items": [i.model_dump() for i in req.items], "at": ctx.now()}
            return 201, reservations[rid]

        return answer(*replay(keys, idempotency_key, req.model_dump(), run))

    @app.delete("/reservations/{rid}")
    async def release(rid: str):
        res = reservations.get(rid)
        if res is None:
            raise HTTPException(404, f"no reservation {rid}")
        if res["status"] != "reserved":
            return {**res, "already": True}
        for item in res["items"]:
            stock[item["sku"]]["available"] += item["qty"]
            stock[item["sku"]]["reserved"] -= item["qty"]
        res["status"] = "released"
        return {**res, "already": False}

    @app.post("/reservations/{rid}/commit")
    async def commit(rid: str):
        res = reservations.get(rid)
        if res is None:
            raise HTTPException(404, f"no reservation {rid}")
        if res["status"] == "released":
            raise HTTPException(409, f"reservation {rid} was released")
        if res["status"] == "reserved":
            for item in res["items"]:
                stock[item["sku"]]["reserved"] -= item["qty"]
                stock[item["sku"]]["shipped"] += item["qty"]
            res["status"] = "committed"
        return res

    @app.get("/reservations")
    async def find(order_id: str | None = None):
        return [r for r in reservations.values() if order_id is None or r["order_id"] == order_id]

    return app
