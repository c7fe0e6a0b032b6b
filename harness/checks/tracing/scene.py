"""Scenes for the tracing checks: a story to tell, hand-made spans, and a small traced shop.

A :class:`Story` keeps what a check did, so that a failure can say what was
done, what came back, what was expected, at which virtual time and seed.
:func:`span` builds the learner's own ``Span`` from keyword arguments.
:class:`TracedShop` is a world with the learner's tracer wired into two tiny
services, ``front`` and ``back``, whose endpoints take exact virtual times.

>>> from harness.checks import Context
>>> import solutions.tracing as reference
>>> with TracedShop(Context(reference)) as shop:
...     shop.add("back")
...     response = shop.get("back", "/work", params={"seconds": 0.25}, at=2.0)
...     [(s.service, s.start, s.end) for s in shop.tracer.spans]
[('back', 2.0, 2.25)]
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from .. import CheckFailed, Context, failure_message

__all__ = ["Boom", "Story", "TracedShop", "describe", "listing", "short", "span", "tiny_app"]

STORY_LINES = 12  # the last steps shown in a failure message
SHOWN_SPANS = 10  # spans listed in a failure message


class Boom(RuntimeError):
    """What the ``/boom`` endpoint raises: an unhandled error in a service."""


class Story:
    """What a check did, for its failure message (Exercism style)."""

    def __init__(self, ctx: Context, clock: Any = None):
        self.ctx = ctx
        self.clock = clock
        self.steps: list[str] = []

    def note(self, text: str) -> None:
        self.steps.append(text)

    def fail(self, *, got: str, expected: str, why: str | None = None) -> NoReturn:
        raise CheckFailed(failure_message(self.steps, got=got, expected=expected, why=why,
                                          at=self.clock.now() if self.clock is not None else None,
                                          seed=self.ctx.seed, keep=STORY_LINES))


def short(identifier: Any) -> str:
    """The first 8 characters of an id, enough to tell ids apart in a message."""
    if identifier is None:
        return "None"
    text = str(identifier)
    return text if len(text) <= 10 else text[:8] + "…"


def describe(s: Any) -> str:
    """One span on one line: kind, name, service, times, ids, status."""
    try:
        times = f"t={s.start:g}..{s.end:g}" if s.end is not None else f"t={s.start:g}.. (not ended)"
    except (TypeError, ValueError):
        times = f"t={s.start!r}..{s.end!r}"
    return (f"{s.kind} span {s.name!r} of {s.service}, {times}, trace {short(s.trace_id)}, "
            f"id {short(s.span_id)}, parent {short(s.parent_id)}, {s.status}, http {s.http_status}")


def listing(spans: Iterable[Any]) -> str:
    """Several spans, one per line (at most SHOWN_SPANS), for a 'What came back'."""
    spans = list(spans)
    if not spans:
        return "no spans"
    lines = [f"\n    {describe(s)}" for s in spans[:SHOWN_SPANS]]
    if len(spans) > SHOWN_SPANS:
        lines.append(f"\n    ... and {len(spans) - SHOWN_SPANS} more")
    return f"{len(spans)} span(s):" + "".join(lines)


def span(module: Any, span_id: str, parent_id: str | None, service: str, start: float, end: float,
         **fields: Any) -> Any:
    """The learner's ``Span`` with a short form for the checks (trace ``t1`` unless given)."""
    fields.setdefault("trace_id", "t1")
    fields.setdefault("name", f"GET /{service}")
    return module.Span(span_id=span_id, parent_id=parent_id, service=service, start=start, end=end, **fields)


# -- a small traced shop ----------------------------------------------------------------------


def tiny_app(module: Any) -> Callable[[Any], Any]:
    """A service factory whose endpoints take exact virtual times (async sleeps).

    ``/work?seconds=s``, ``/chain`` (0.5 s, then back /work 0.25 s, then
    0.125 s), ``/fanout`` (three calls to back at once), ``/impatient`` (a call
    to back that gives up after 1 s), ``/fail`` (503), ``/boom`` (raises),
    ``/annotated/{user_id}`` (annotates and adds metadata through the
    learner's ``current_span()``). Unknown routes answer 404.
    """

    def factory(ctx: Any) -> Any:
        from fastapi import FastAPI
        from fastapi.responses import JSONResponse

        from harness.http import RequestTimeout

        app = FastAPI()

        @app.get("/work")
        async def work(seconds: float = 0.0):
            await asyncio.sleep(seconds)
            return {"worked": seconds, "by": ctx.address}

        @app.get("/chain")
        async def chain():
            await asyncio.sleep(0.5)
            r = await ctx.call("back", "GET", "/work", params={"seconds": 0.25})
            await asyncio.sleep(0.125)
            return {"back": r.status}

        @app.get("/fanout")
        async def fanout():
            calls = [ctx.call("back", "GET", "/work", params={"seconds": s}) for s in (0.25, 0.5, 0.125)]
            return {"back": [r.status for r in await asyncio.gather(*calls)]}

        @app.get("/impatient")
        async def impatient():
            try:
                await ctx.call("back", "GET", "/work", params={"seconds": 3}, timeout=1.0)
            except RequestTimeout:
                return JSONResponse({"detail": "back is too slow"}, status_code=504)
            return {"back": "in time"}

        @app.get("/fail")
        async def fail():
            return JSONResponse({"detail": "not today"}, status_code=503)

        @app.get("/boom")
        async def boom():
            raise Boom("the handler crashed")

        @app.get("/annotated/{user_id}")
        async def annotated(user_id: str):
            here = module.current_span()
            if here is None:
                return {"user": user_id, "current_span": None}
            here.annotate("user_id", user_id)
            here.put_metadata("cart", {"sku-1": 2, "sku-7": 1})
            return {"user": user_id}

        return app

    return factory


class _Watch:
    """Outermost ASGI layer: remembers an error from the learner's code, then lets it go on.

    An error inside a service becomes a 500 for the caller; without this, a
    learner would read "status 500" instead of "not implemented yet" or the
    line of their code that raised.
    """

    def __init__(self, app: Any, shop: TracedShop):
        self.app = app
        self.shop = shop

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        try:
            await self.app(scope, receive, send)
        except BaseException as error:
            self.shop.remember(error)
            raise


class TracedShop:
    """A world, the learner's tracer, and traced services (``front``, ``back`` or the shop's)."""

    def __init__(self, ctx: Context):
        from harness import World

        self.ctx = ctx
        self.module = ctx.module
        self.world = World(seed=ctx.seed)
        self.story = Story(ctx, self.world.clock)
        self.errors: list[BaseException] = []
        self.story.note("world = World(seed); tracer = Tracer(world.clock, world.rng('tracing'))")
        self.tracer = self.module.Tracer(self.world.clock, self.world.rng("tracing"))

    def __enter__(self) -> TracedShop:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.world.close()

    # -- building ------------------------------------------------------------------------
    def add(self, name: str, factory: Callable[[Any], Any] | None = None, **options: Any) -> None:
        """``world.add_service(name, tracer.instrument(factory))`` (default factory: :func:`tiny_app`)."""
        traced = self.tracer.instrument(factory or tiny_app(self.module))
        if not callable(traced):
            self.story.fail(got=f"tracer.instrument(factory) returned {traced!r}",
                            expected="a factory: a function that takes ctx and returns the app")

        def watched(ctx: Any) -> Any:
            app = traced(ctx)
            app.add_middleware(_Watch, shop=self)
            return app

        self.world.add_service(name, watched, **options)
        self.story.note(f"world.add_service({name!r}, tracer.instrument({'SHOP[' + repr(name) + ']' if factory else 'app'}))")

    def remember(self, error: BaseException) -> None:
        """Keep an error raised by the learner's code inside a service (not the /boom one)."""
        if isinstance(error, Boom) or not isinstance(error, Exception):
            return  # the /boom endpoint's own error, or a cancellation: not the learner's doing
        if isinstance(error, NotImplementedError) or self._learner_frames(error):
            self.errors.append(error)

    def _learner_frames(self, error: BaseException) -> bool:
        path = getattr(self.module, "__file__", None)
        return any(frame.filename == path for frame in traceback.extract_tb(error.__traceback__))

    def raise_learner_errors(self) -> None:
        """Raise the first error the learner's code raised inside a service, as it was."""
        if self.errors:
            raise self.errors[0]

    # -- acting --------------------------------------------------------------------------
    def run(self, coro: Any) -> Any:
        try:
            return self.world.run(coro)
        finally:
            self.raise_learner_errors()

    def at(self, when: float) -> None:
        if when > self.world.now():
            self.world.run(until=when)

    def get(self, target: str, path: str, *, at: float | None = None, traced: bool = False,
            headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """One GET from outside the shop (plain, or through ``tracer.client``); the response."""
        if at is not None:
            self.at(at)
        client = self.world.client("browser")
        if traced:
            client = self.tracer.client(client)
        shown = f" with headers {headers}" if headers else ""
        params = kwargs.get("params")
        query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
        label = f"t={self.world.now():g}  {'tracer.client(browser)' if traced else 'browser'}.get({target!r}, {path + query!r}){shown}"
        from harness.http import NetworkError

        try:
            response = self.run(client.get(target, path, headers=headers, **kwargs))
        except NetworkError as error:
            self.story.note(f"{label} -> raised {type(error).__name__}")
            raise
        except Exception as error:
            if isinstance(error, NotImplementedError) or self.errors or self._learner_frames(error):
                raise  # the learner's own error: the runner shows it with its line
            self.story.note(f"{label} -> raised {type(error).__name__}: {error}")
            self.story.fail(got=f"no HTTP response: the request failed with {type(error).__name__}",
                            expected="an HTTP response",
                            why="the app sent no answer: if your middleware catches the app's error, re-raise "
                                "it so that the server answers 500")
        self.story.note(f"{label} -> {response.status}")
        return response

    def settle(self, until: float) -> None:
        """Let work that callers gave up on finish (servers keep going)."""
        self.at(until)
        self.raise_learner_errors()

    # -- looking -------------------------------------------------------------------------
    @property
    def spans(self) -> list[Any]:
        return list(self.tracer.spans)

    def spans_of(self, service: str, kind: str | None = None) -> list[Any]:
        return [s for s in self.tracer.spans if s.service == service and (kind is None or s.kind == kind)]

    def one(self, service: str, kind: str, *, why: str | None = None) -> Any:
        found = self.spans_of(service, kind)
        if len(found) != 1:
            self.story.fail(got=f"{len(found)} {kind} span(s) of {service} in tracer.spans; {listing(self.spans)}",
                            expected=f"exactly one {kind} span of {service}", why=why)
        return found[0]

    def headers_sent(self, caller_service: str, callee: str) -> list[dict[str, str]]:
        """The request headers of every recorded call from ``caller_service``'s instances to ``callee``."""
        return [dict(x.request_headers or {}) for x in self.world.recorder.exchanges
                if x.caller.startswith(f"{caller_service}-") and x.service == callee]
