"""catalog: what the shop sells, with versioned routes.

``/v1/products/{sku}`` answers a price in units (``19.99``); ``/v2`` in cents
(``1999``) with a currency, a breaking change that is why both stay up.
``/products`` is ``/v1``; ``?sku=a&sku=b`` asks for several products in one call. The ``v2`` release of the service can be told to
misbehave for canary lessons through ``options["bug_rate"]``: that share of
its answers are 500s, drawn from the seed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query

from ..network import InstanceContext
from .base import new_app


def seed_products(db: dict) -> dict:
    if "products" not in db:
        products = {}
        for n in range(1, 21):
            sku = f"sku-{n}"
            products[sku] = {"sku": sku, "name": f"Item {n}", "price_cents": 499 + 250 * n}
        db["products"] = products
    return db["products"]


def create_app(ctx: InstanceContext):
    app = new_app(ctx, "catalog", "The product catalogue (v1: prices in units; v2: in cents).")
    products = seed_products(ctx.db)
    bug_rate = float(ctx.options.get("bug_rate", 0.0))
    coin = ctx.rng("bug")

    def find(sku: str) -> dict:
        if bug_rate and coin.random() < bug_rate:
            raise RuntimeError("release bug: price lookup failed")
        product = products.get(sku)
        if product is None:
            raise HTTPException(404, f"no product {sku}")
        return product

    def v1(p: dict) -> dict:
        return {"sku": p["sku"], "name": p["name"], "price": p["price_cents"] / 100}

    def v2(p: dict) -> dict:
        return {"sku": p["sku"], "name": p["name"], "price_cents": p["price_cents"], "currency": "EUR"}

    @app.get("/products")
    @app.get("/v1/products")
    async def list_v1(sku: Annotated[list[str] | None, Query()] = None):
        """Every product, or only the given ones (``?sku=sku-1&sku=sku-3``: one call, not N)."""
        if sku is None:
            return [v1(p) for p in products.values()]
        return [v1(products[s]) for s in dict.fromkeys(sku) if s in products]

    @app.get("/products/{sku}")
    @app.get("/v1/products/{sku}")
    async def get_v1(sku: str):
        return v1(find(sku))

    @app.get("/v2/products")
    async def list_v2():
        return [v2(p) for p in products.values()]

    @app.get("/v2/products/{sku}")
    async def get_v2(sku: str):
        return v2(find(sku))

    return app
