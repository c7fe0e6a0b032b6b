"""notifications: messages to customers (email, push), kept so checks can count them.

``POST /notifications`` ``{"user_id", "message", "order_id"?}`` → 201;
``GET /notifications?user_id=&order_id=``.
"""

from __future__ import annotations

from pydantic import BaseModel

from ..network import InstanceContext
from .base import new_app, next_id


class Notice(BaseModel):
    user_id: str
    message: str
    order_id: str | None = None


def create_app(ctx: InstanceContext):
    app = new_app(ctx, "notifications", "Emails and pushes to customers.")
    db = ctx.db
    sent = db.setdefault("sent", {})

    @app.post("/notifications", status_code=201)
    async def send(notice: Notice):
        nid = next_id(db, "msg")
        sent[nid] = {"id": nid, **notice.model_dump(), "at": ctx.now()}
        return sent[nid]

    @app.get("/notifications")
    async def find(user_id: str | None = None, order_id: str | None = None):
        return [n for n in sent.values()
                if (user_id is None or n["user_id"] == user_id) and (order_id is None or n["order_id"] == order_id)]

    return app
