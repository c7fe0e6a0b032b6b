"""The three call paths (full ASGI, FastAPI's route handler, the binder) answer alike."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, Header

from harness import World
from harness.asgi import AppCaller

KEY = {"Idempotency-Key": "k-1"}
# (service, method, path, json body or raw bytes, headers, query params)
REQUESTS = [
    ("users", "GET", "/users/user-1", None, None, None),
    ("users", "GET", "/users/nobody", None, None, None),
    ("users", "GET", "/users", None, None, {"limit": "2"}),
    ("users", "GET", "/users", None, None, {"limit": "two"}),
    ("users", "POST", "/users", {"name": "Ada", "email": "ada@example.com"}, None, None),
    ("users", "POST", "/users", {"name": "Ada"}, None, None),
    ("users", "DELETE", "/users/user-1", None, None, None),
    ("users", "GET", "/no/such/route", None, None, None),
    ("catalog", "GET", "/v2/products/sku-2", None, None, None),
    ("catalog", "GET", "/products/sku-2", None, None, None),
    ("payments", "POST", "/charges", {"order_id": "o-1", "amount": 20}, KEY, None),
    ("payments", "POST", "/charges", {"order_id": "o-1", "amount": 20}, KEY, None),
    ("payments", "POST", "/charges", {"order_id": "o-1", "amount": 21}, KEY, None),
    ("payments", "POST", "/charges", {"order_id": "o-2"}, None, None),
    ("payments", "POST", "/charges", b"not json", None, None),
    ("payments", "POST", "/charges", {"order_id": "o-3", "amount": 9000}, None, None),
    ("payments", "POST", "/refunds", {"charge_id": "ch-1"}, None, None),
    ("payments", "POST", "/refunds", {"charge_id": "ch-1"}, None, None),
    ("payments", "GET", "/payment-methods", None, None, None),
    ("payments", "GET", "/charges", None, None, {"order_id": "o-1"}),
    ("inventory", "POST", "/reservations", {"order_id": "o-1", "items": [{"sku": "sku-1", "qty": 2}]}, None, None),
    ("inventory", "POST", "/reservations", {"order_id": "o-1", "items": [{"sku": "sku-1", "qty": "x"}]}, None, None),
    ("inventory", "DELETE", "/reservations/res-1", None, None, None),
    ("inventory", "DELETE", "/reservations/res-1", None, None, None),
    ("inventory", "GET", "/stock/sku-1", None, None, None),
    ("orders", "POST", "/orders", {"user_id": "user-1", "amount": 5}, None, None),
    ("orders", "POST", "/orders", {"user_id": "user-1", "amount": 5}, KEY, None),
    ("orders", "POST", "/orders", {"user_id": "user-1", "amount": 5}, KEY, None),
    ("orders", "POST", "/orders", {"user_id": "user-1", "amount": 6}, KEY, None),
    ("orders", "POST", "/orders/ord-1/confirm", None, None, None),
    ("orders", "POST", "/orders/ord-1/cancel", None, None, None),
    ("orders", "GET", "/orders", None, None, {"user_id": "user-1"}),
    ("orders", "POST", "/checkout", {"user_id": "user-2", "amount": 5}, None, None),
    ("gateway", "GET", "/profile/user-1", None, None, None),
    ("gateway", "GET", "/profile/nobody", None, None, {"mode": "sequential"}),
    ("notifications", "POST", "/notifications", {"user_id": "user-1", "message": "hi"}, None, None),
    ("notifications", "GET", "/health", None, None, None),
]


def replay_all(fast: bool, bind: bool):
    world = World(seed=11, fast_path=fast)
    for service in ("users", "catalog", "payments", "inventory", "orders", "gateway", "notifications"):
        world.add_service(service)
    for instance in world.net.instances.values():
        instance.caller.bind = bind
    client = world.client()
    answers = []

    async def go():
        for service, method, path, body, headers, params in REQUESTS:
            kwargs = {"headers": headers, "params": params}
            if isinstance(body, bytes):
                kwargs["body"] = body
                kwargs["headers"] = {"content-type": "application/json", **(headers or {})}
            else:
                kwargs["json"] = body
            r = await client.request(method, service, path, **kwargs)
            body_out = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.body
            answers.append((service, method, path, r.status, body_out, r.headers.get("idempotent-replayed")))

    world.run(go())
    world.close()
    return answers


def test_binder_route_handler_and_full_asgi_agree_on_the_shop():
    full = replay_all(fast=False, bind=False)
    handler = replay_all(fast=True, bind=False)
    binder = replay_all(fast=True, bind=True)
    for a, b, c in zip(full, handler, binder, strict=True):
        assert a == b, f"route handler differs from full ASGI: {a} vs {b}"
        assert a == c, f"binder differs from full ASGI: {a} vs {c}"
    statuses = {a[3] for a in full}
    assert {200, 201, 402, 404, 405, 409, 422} <= statuses, "the sample must cover errors too"


def test_binder_falls_back_before_the_endpoint_runs_on_bad_input():
    app = FastAPI()
    calls = []

    @app.get("/n/{n}")
    async def number(n: int, x_trace: str | None = Header(default=None)):
        calls.append(n)
        return {"n": n, "trace": x_trace}

    import asyncio

    caller = AppCaller(app)
    status, _, body, _ = asyncio.run(caller("GET", "/n/oops"))
    assert status == 422 and calls == []
    status, _, body, _ = asyncio.run(caller("GET", "/n/7", headers=[(b"x-trace", b"abc")]))
    assert (status, json.loads(body)) == (200, {"n": 7, "trace": "abc"})


def test_apps_with_middleware_take_the_full_path():
    app = FastAPI()
    seen = []

    @app.middleware("http")
    async def remember(request, call_next):
        seen.append(request.url.path)
        return await call_next(request)

    @app.get("/ping")
    async def ping():
        return {"pong": True}

    import asyncio

    caller = AppCaller(app)
    assert not caller.fast
    status, _, _, _ = asyncio.run(caller("GET", "/ping"))
    assert status == 200 and seen == ["/ping"]


@pytest.mark.parametrize("bind", [True, False])
def test_unhandled_exception_is_a_500_with_the_error_kept(bind):
    app = FastAPI()

    @app.get("/boom")
    async def boom():
        raise RuntimeError("kaboom")

    import asyncio

    caller = AppCaller(app, bind=bind)
    status, _, body, error = asyncio.run(caller("GET", "/boom"))
    assert status == 500 and body == b"Internal Server Error" and "kaboom" in error


@pytest.mark.parametrize("fast, bind", [(False, False), (True, False), (True, True)])
def test_the_first_declared_route_wins_as_in_starlette(fast, bind):
    # A path without parameters is looked up directly, but never past an earlier
    # route that matches it: Starlette tries routes in the order they were declared.
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: str):
        return {"route": "item", "item": item}

    @app.get("/items/new")
    async def new():
        return {"route": "new"}

    @app.post("/items/new")
    async def create():
        return {"route": "create"}

    @app.get("/about")
    async def about():
        return {"route": "about"}

    import asyncio

    caller = AppCaller(app, fast=fast, bind=bind)

    def answer(method, path):
        status, _, body, _ = asyncio.run(caller(method, path))
        return status, json.loads(body)

    assert answer("GET", "/items/new") == (200, {"route": "item", "item": "new"})
    assert answer("POST", "/items/new") == (200, {"route": "create"})
    assert answer("GET", "/about") == (200, {"route": "about"})
    assert answer("DELETE", "/about")[0] == 405
