"""users: who the customers are.

Routes: ``GET /users/{user_id}``, ``POST /users``, ``GET /users``.
Seeded with ``user-1`` … ``user-50`` and the seed chapter's ``user-123``.
"""

from __future__ import annotations

from fastapi import HTTPException
from pydantic import BaseModel

from ..network import InstanceContext
from .base import new_app

TIERS = ("standard", "gold", "platinum")


class NewUser(BaseModel):
    name: str
    email: str
    tier: str = "standard"


def seed_users(db: dict) -> dict:
    if "users" not in db:
        users = {}
        for n in list(range(1, 51)) + [123]:
            uid = f"user-{n}"
            users[uid] = {"id": uid, "name": f"Customer {n}", "email": f"customer{n}@example.com",
                          "tier": TIERS[n % 3]}
        db["users"] = users
    return db["users"]


def create_app(ctx: InstanceContext):
    app = new_app(ctx, "users", "Customer accounts.")
    users = seed_users(ctx.db)

    @app.get("/users/{user_id}")
    async def get_user(user_id: str):
        user = users.get(user_id)
        if user is None:
            raise HTTPException(404, f"no user {user_id}")
        return user

    @app.get("/users")
    async def list_users(limit: int = 20):
        return list(users.values())[:limit]

    @app.post("/users", status_code=201)
    async def create_user(new: NewUser):
        uid = f"user-{len(users) + 1000}"
        users[uid] = {"id": uid, **new.model_dump()}
        return users[uid]

    return app
