"""Calling a FastAPI app in-process, without sockets.

Two call paths, same results:

- **full ASGI**: the app's complete ASGI stack (middleware, router, exception
  handlers), with an in-memory receive/send pair;
- **fast path**: match the route ourselves and call FastAPI's own route
  handler (dependency injection, validation, serialisation all included),
  skipping only the middleware layers. Used when the app has no user
  middleware, so the two are equivalent.

Why two: ``kata bench`` measures the fast path at ~1.6x the full stack on this
kind of machine, and the cascade scenario makes tens of thousands of calls.

>>> from fastapi import FastAPI
>>> app = FastAPI()
>>> @app.get("/hello/{name}")
... async def hello(name: str):
...     return {"hello": name}
>>> import asyncio
>>> status, headers, body, error = asyncio.run(AppCaller(app)("GET", "/hello/ada"))
>>> status, body
(200, b'{"hello":"ada"}')
"""

from __future__ import annotations

import inspect
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request

Headers = list[tuple[bytes, bytes]]

__all__ = ["AppCaller"]

_NO_HEADERS: Headers = []


class AppCaller:
    """Calls one app: ``await caller(method, path, query, headers, body)``.

    Returns ``(status, raw_headers, body, error)``; an unhandled exception in the app
    becomes a 500, as a real server would answer, and is kept in
    ``last_error`` for the recorder.
    """

    def __init__(self, app: FastAPI, *, fast: bool = True):
        self.app = app
        self.fast = fast and not getattr(app, "user_middleware", None)
        self._routes: list[tuple[Any, frozenset[str], dict, Any, APIRoute]] | None = None

    # -- route table, built lazily so routes added after creation count ------
    def _table(self):
        if self._routes is None:
            table = []
            for route in self.app.routes:
                if isinstance(route, APIRoute):
                    handler = route.get_route_handler()
                    table.append(
                        (route.path_regex, frozenset(route.methods), route.param_convertors, handler, route)
                    )
            self._routes = table
        return self._routes

    async def __call__(
        self,
        method: str,
        path: str,
        query: bytes = b"",
        headers: Headers = _NO_HEADERS,
        body: bytes = b"",
    ) -> tuple[int, Headers, bytes, str | None]:
        if self.fast:
            for regex, methods, convertors, handler, route in self._table():
                match = regex.match(path)
                if match is not None and method in methods:
                    params = {
                        key: convertors[key].convert(value) for key, value in match.groupdict().items()
                    }
                    return await self._fast_call(method, path, query, headers, body, params, handler, route)
        # Unmatched routes (404/405, docs) and apps with middleware: the full stack.
        return await self._asgi_call(method, path, query, headers, body)

    def _scope(self, method, path, query, headers) -> dict:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query,
            "headers": headers,
            "server": ("harness", 80),
            "client": ("harness", 1),
            "app": self.app,
            "state": {},
        }

    async def _fast_call(self, method, path, query, headers, body, params, handler, route):
        scope = self._scope(method, path, query, headers)
        scope["path_params"] = params
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        request = Request(scope, receive)
        try:
            async with AsyncExitStack() as stack:
                scope["fastapi_middleware_astack"] = stack
                scope["fastapi_inner_astack"] = stack
                scope["fastapi_function_astack"] = stack
                response = await handler(request)
        except Exception as exc:  # same mapping as Starlette's exception middleware
            handler_for = self._exception_handler(exc)
            if handler_for is None:
                return 500, [(b"content-type", b"text/plain")], b"Internal Server Error", repr(exc)
            response = handler_for(request, exc)
            if inspect.isawaitable(response):
                response = await response
        if not hasattr(response, "body"):  # streaming responses: let them send
            return await self._collect(response, scope, receive)
        if response.background is not None:
            await response.background()
        return response.status_code, response.raw_headers, response.body, None

    def _exception_handler(self, exc: Exception):
        handlers = self.app.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None

    async def _collect(self, response, scope, receive):
        messages: list[dict] = []

        async def send(message):
            messages.append(message)

        await response(scope, receive, send)
        return _unpack(messages)

    async def _asgi_call(self, method, path, query, headers, body):
        scope = self._scope(method, path, query, headers)
        messages: list[dict] = []
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            messages.append(message)

        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if not messages:
                return 500, [(b"content-type", b"text/plain")], b"Internal Server Error", repr(exc)
        return _unpack(messages)


def _unpack(messages: list[dict]) -> tuple[int, Headers, bytes, str | None]:
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:] if m["type"] == "http.response.body")
    return start["status"], list(start.get("headers", [])), body, None
