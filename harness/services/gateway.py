"""gateway: the API gateway that composes a user's profile (the seed's example).

``GET /profile/{user_id}?mode=parallel|sequential`` calls users, orders and
payments (each with a 5 s timeout, as in the seed) and answers
``{"user", "orders", "payment_methods", "errors"}``. A failed part becomes an
entry in ``errors`` naming it, and an empty default; a failed ``user`` (the
required part) makes the whole answer a 502.
"""

from __future__ import annotations

import asyncio

from ..http import MalformedResponse, NetworkError
from ..network import InstanceContext
from ..wirejson import JSONResponse  # FastAPI's, with its JSON encoder built once
from .base import new_app

PART_TIMEOUT = 5.0


def create_app(ctx: InstanceContext):
    app = new_app(ctx, "gateway", "API composition: one call for the whole profile page.")

    async def part(name: str, service: str, path: str, params=None):
        try:
            r = await ctx.call(service, "GET", path, params=params, timeout=PART_TIMEOUT)
        except NetworkError as exc:
            return name, None, f"{service}: {exc.outcome}"
        if r.status >= 400:
            return name, None, f"{service}: HTTP {r.status}"
        try:
            return name, r.json(), None
        except MalformedResponse:  # a garbled part is a failed part, not a gateway crash
            return name, None, f"{service}: malformed response"

    def calls(user_id: str):
        """The three parts, each made only when asked for: a sequential page cut short (a
        world closed mid-page) leaves no coroutine that was never awaited."""
        yield part("user", "users", f"/users/{user_id}")
        yield part("orders", "orders", "/orders", {"user_id": user_id})
        yield part("payment_methods", "payments", "/payment-methods", {"user_id": user_id})

    @app.get("/profile/{user_id}")
    async def profile(user_id: str, mode: str = "parallel"):
        if mode == "sequential":
            results = [await c for c in calls(user_id)]
        else:
            results = await asyncio.gather(*calls(user_id))
        body = {"user": None, "orders": [], "payment_methods": [], "errors": {}}
        for name, value, error in results:
            if error:
                body["errors"][name] = error
            else:
                body[name] = value
        if body["user"] is None:
            return JSONResponse(body, status_code=502)
        return body

    return app
