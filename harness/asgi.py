"""Calling a FastAPI app in-process, without sockets.

Three call paths, same answers:

- **full ASGI**: the app's complete ASGI stack (middleware, router, exception
  handlers), with an in-memory receive/send pair;
- **route handler**: match the route ourselves and call FastAPI's own route
  handler (dependency injection, validation, serialisation all included),
  skipping only the middleware layers;
- **binder**: for simple routes (str/int/float path, query and header
  parameters, at most one pydantic body, no dependencies, JSON answers), bind
  the arguments ourselves and call the endpoint. Anything unusual, including
  every input FastAPI would reject with a 422, falls back to the route
  handler *before* the endpoint runs, so FastAPI still writes every error.

The fast paths are used only when the app has no user middleware, so all
three are equivalent (``tests/test_asgi.py`` checks the shop's routes through
each). Why: the cascade scenario makes tens of thousands of calls, and
``kata bench`` reports the speed of each path side by side.

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
import re
from contextlib import AsyncExitStack
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response as StarletteResponse

from .wirejson import JSON_CONTENT_TYPE, dumps

Headers = list[tuple[bytes, bytes]]

__all__ = ["AppCaller", "check_async_endpoints"]


def check_async_endpoints(app: FastAPI, where: str) -> None:
    """Refuse plain ``def`` endpoints: FastAPI runs them in a thread pool, outside virtual time.

    >>> app = FastAPI()
    >>> @app.get("/legacy")
    ... def legacy():
    ...     return {}
    >>> check_async_endpoints(app, "legacy-1")
    Traceback (most recent call last):
    ...
    TypeError: legacy-1: GET /legacy is a sync endpoint (def legacy): make it 'async def' (a sync endpoint runs in a thread pool, outside virtual time)
    """
    for route in app.routes:
        if isinstance(route, APIRoute) and not inspect.iscoroutinefunction(route.endpoint):
            methods = ",".join(sorted(route.methods))
            raise TypeError(f"{where}: {methods} {route.path} is a sync endpoint (def {route.endpoint.__name__}): "
                            "make it 'async def' (a sync endpoint runs in a thread pool, outside virtual time)")

_NO_HEADERS: Headers = []


class AppCaller:
    """Calls one app: ``await caller(method, path, query, headers, body)``.

    Returns ``(status, raw_headers, body, error)``; an unhandled exception in the app
    becomes a 500, as a real server would answer, and is kept in
    ``last_error`` for the recorder.
    """

    def __init__(self, app: FastAPI, *, fast: bool = True, bind: bool = True):
        self.app = app
        self.fast = fast and not getattr(app, "user_middleware", None)
        self.bind = bind
        self._routes: list[tuple[Any, frozenset[str], dict, Any, APIRoute, _Binder | None]] | None = None
        self._static: dict[tuple[str, str], tuple] = {}  # (method, path) of routes without parameters

    # -- route table, built lazily so routes added after creation count ------
    def _table(self):
        if self._routes is None:
            table = []
            static: dict[tuple[str, str], tuple] = {}
            for route in self.app.routes:
                if isinstance(route, APIRoute):
                    handler = route.get_route_handler()
                    binder = _Binder.for_route(route) if self.bind else None
                    entry = (route.path_regex, frozenset(route.methods), route.param_convertors, handler, route, binder)
                    if not route.param_convertors:
                        for method in route.methods:
                            # The first route declared that matches wins, as in Starlette's
                            # router: an earlier `/items/{id}` shadows a later `/items/new`.
                            shadowed = any(e[0].match(route.path) and method in e[1] for e in table)
                            if not shadowed:
                                static.setdefault((method, route.path), entry)
                    table.append(entry)
            self._routes = table
            self._static = static
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
            table = self._table()
            entry = self._static.get((method, path))
            if entry is not None:  # a path without parameters: no regex to try
                _, _, _, handler, route, binder = entry
                return await self._route_call(method, path, query, headers, body, {}, handler, route, binder)
            for regex, methods, convertors, handler, route, binder in table:
                match = regex.match(path)
                if match is not None and method in methods:
                    params = {
                        key: convertors[key].convert(value) for key, value in match.groupdict().items()
                    }
                    return await self._route_call(method, path, query, headers, body, params, handler, route, binder)
        # Unmatched routes (404/405, docs) and apps with middleware: the full stack.
        return await self._asgi_call(method, path, query, headers, body)

    def _route_call(self, method, path, query, headers, body, params, handler, route, binder):
        """The call of a matched route: bound by us if the binder can, else FastAPI's handler.

        A plain function returning the coroutine to await: no extra frame on the hot path.
        """
        if binder is not None:
            kwargs = binder.bind(params, query, headers, body)
            if kwargs is not None:
                return self._bound_call(method, path, query, headers, body, params, route, binder, kwargs)
        return self._fast_call(method, path, query, headers, body, params, handler, route)

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
        receive = _receiver(body)
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

    async def _bound_call(self, method, path, query, headers, body, params, route, binder, kwargs):
        try:
            result = await route.endpoint(**kwargs)
        except Exception as exc:
            handler_for = self._exception_handler(exc)
            if handler_for is None:
                return 500, [(b"content-type", b"text/plain")], b"Internal Server Error", repr(exc)
            scope = self._scope(method, path, query, headers)
            scope["path_params"] = params
            response = handler_for(Request(scope), exc)
            if inspect.isawaitable(response):
                response = await response
            return response.status_code, response.raw_headers, response.body, None
        if isinstance(result, StarletteResponse):
            if not hasattr(result, "body"):
                return await self._collect(result, self._scope(method, path, query, headers), _empty_receive)
            if result.background is not None:
                await result.background()
            return result.status_code, result.raw_headers, result.body, None
        try:
            payload = dumps(result)  # what starlette's JSONResponse.render writes
        except (TypeError, ValueError):  # models, dates, sets: FastAPI's encoder knows them
            payload = dumps(jsonable_encoder(result))
        return binder.status, [(b"content-length", str(len(payload)).encode()), JSON_CONTENT_TYPE], payload, None

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
        receive = _receiver(body)

        async def send(message):
            messages.append(message)

        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if not messages:
                return 500, [(b"content-type", b"text/plain")], b"Internal Server Error", repr(exc)
        if not messages:  # e.g. a middleware that swallowed an error and answered nothing
            return 500, [(b"content-type", b"text/plain")], b"Internal Server Error", "the app sent no response"
        return _unpack(messages)


_INT = re.compile(r"[+-]?\d+\Z")


async def _empty_receive():
    return {"type": "http.request", "body": b"", "more_body": False}


def _simple_type(annotation: Any) -> tuple[type, bool] | None:
    """(base type, optional?) for str/int/float and their ``| None``; else None."""
    if annotation in (str, int, float):
        return annotation, False
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        if len(args) == 1 and args[0] in (str, int, float) and len(get_args(annotation)) == 2:
            return args[0], True
    return None


def _convert(kind: type, raw: str) -> Any:
    """Convert like pydantic's lax mode for the easy cases; raise for the rest."""
    if kind is str:
        return raw
    if kind is int:
        if not _INT.match(raw):
            raise ValueError(raw)
        return int(raw)
    value = float(raw)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(raw)
    return value


class _Binder:
    """Binds a simple route's arguments without FastAPI's machinery.

    ``bind`` returns the keyword arguments, or None to mean "let FastAPI do
    it" (a missing or odd parameter, an invalid body: FastAPI writes the 422).
    """

    def __init__(self, route: APIRoute, params, body: tuple[str, type[BaseModel]] | None):
        self.route = route
        self.params = params  # [(source, name, key, base type, required, default)]
        self.body = body
        self.status = route.status_code or 200
        self.wants_headers = any(p[0] == "header" for p in params)
        self.wants_query = any(p[0] == "query" for p in params)

    @classmethod
    def for_route(cls, route: APIRoute) -> _Binder | None:
        d = route.dependant
        if (d.dependencies or d.cookie_params or d.request_param_name or d.response_param_name
                or d.background_tasks_param_name or d.security_scopes_param_name or d.websocket_param_name
                or route.response_model is not None or route.dependencies
                or not inspect.iscoroutinefunction(route.endpoint)):
            return None
        response_class = route.response_class
        if isinstance(response_class, DefaultPlaceholder):
            response_class = response_class.value
        if response_class is not JSONResponse:
            return None
        params = []
        for source, fields in (("path", d.path_params), ("query", d.query_params), ("header", d.header_params)):
            for f in fields:
                simple = _simple_type(f.field_info.annotation)
                if simple is None or f.field_info.default_factory is not None:
                    return None
                key = f.alias.lower() if source == "header" else f.alias
                required = f.field_info.is_required()
                params.append((source, f.name, key, simple[0], required, None if required else f.field_info.default))
        body = None
        if d.body_params:
            if len(d.body_params) != 1:
                return None
            f = d.body_params[0]
            model = f.field_info.annotation
            embed = getattr(f.field_info, "embed", False)
            if embed or not (isinstance(model, type) and issubclass(model, BaseModel)) or not f.field_info.is_required():
                return None
            body = (f.name, model)
        return cls(route, params, body)

    def bind(self, path_params: dict, query: bytes, headers, body: bytes) -> dict | None:
        kwargs: dict[str, Any] = {}
        query_values = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if self.wants_query and query else {}
        header_values = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers} if self.wants_headers else {}
        for source, name, key, kind, required, default in self.params:
            if source == "path":
                raw = path_params.get(key)
                raw = raw if isinstance(raw, str) else (str(raw) if raw is not None else None)
            elif source == "query":
                raw = query_values.get(key)
            else:
                raw = header_values.get(key)
            if raw is None:
                if required:
                    return None
                kwargs[name] = default
                continue
            try:
                kwargs[name] = _convert(kind, raw)
            except ValueError:
                return None
        if self.body is not None:
            name, model = self.body
            if not body:
                return None
            try:
                kwargs[name] = model.model_validate_json(body)
            except ValidationError:
                return None
        return kwargs


def _receiver(body: bytes):
    """An ASGI ``receive``: the whole body once, then a disconnect."""
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _unpack(messages: list[dict]) -> tuple[int, Headers, bytes, str | None]:
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:] if m["type"] == "http.response.body")
    return start["status"], list(start.get("headers", [])), body, None
