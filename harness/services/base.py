"""What every shop service has: a FastAPI app with a deep ``/health``.

>>> from harness import World
>>> world = World()
>>> _ = world.add_service("users")
>>> world.run(world.client().get("users-1", "/health")).json()["status"]
'healthy'
"""

from __future__ import annotations

from fastapi import FastAPI

from ..network import InstanceContext
from ..wirejson import JSONResponse  # FastAPI's, with its JSON encoder built once

__all__ = ["new_app", "next_id"]


def new_app(ctx: InstanceContext, title: str, description: str) -> FastAPI:
    """A service app with ``/health`` (deep: checks the database) and ``/version``."""
    app = FastAPI(title=f"{title} ({ctx.address})", description=description, version=ctx.release)
    app.state.ctx = ctx

    @app.get("/health", tags=["ops"])
    async def health():
        """Deep health: the instance answers *and* its database does."""
        db_ok = not ctx.db.get("_broken", False)
        body = {
            "status": "healthy" if db_ok else "unhealthy",
            "instance": ctx.address,
            "release": ctx.release,
            "checks": {"database": "ok" if db_ok else "unreachable"},
        }
        return JSONResponse(body, status_code=200 if db_ok else 503)

    @app.get("/version", tags=["ops"])
    async def version():
        return {"service": ctx.service, "release": ctx.release, "instance": ctx.address}

    return app


def next_id(db: dict, prefix: str) -> str:
    """Sequential ids per service database: ``ord-1``, ``ord-2``, …"""
    counter = db.get("_ids", {})
    db["_ids"] = counter
    counter[prefix] = counter.get(prefix, 0) + 1
    return f"{prefix}-{counter[prefix]}"
