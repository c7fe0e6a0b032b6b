"""Level 2: span-recording middleware and a tracing client, in a real (simulated) shop."""

from __future__ import annotations

import asyncio
import re
from typing import Any

# Imported with the checks, before any check's time limit starts: FastAPI and
# pydantic take about half a second to import, once.
import harness.world  # noqa: F401

from .. import Context, level
from .level1 import TRACESTATE_WITH_SPACES, W3C_EXAMPLE, W3C_PARENT, W3C_TRACE
from .scene import Story, TracedShop, describe, listing, short

HEX16, HEX32 = re.compile(r"[0-9a-f]{16}"), re.compile(r"[0-9a-f]{32}")


def _expect_times(shop: TracedShop, span: Any, start: float, end: float, *, why: str | None = None) -> None:
    if (span.start, span.end) != (start, end):
        shop.story.fail(got=describe(span), expected=f"start {start:g}, end {end:g} (virtual seconds, exactly)",
                        why=why or "read the time from the tracer's clock (tracer.clock.now()) when the request "
                                   "arrives and again when the answer has been sent")


def _expect_status(shop: TracedShop, span: Any, status: str, http_status: int | None, *, why: str) -> None:
    if (span.status, span.http_status) != (status, http_status):
        shop.story.fail(got=describe(span), expected=f"status {status!r}, http_status {http_status}", why=why)


def _expect_child(shop: TracedShop, child: Any, parent: Any, *, why: str) -> None:
    if child.parent_id != parent.span_id or child.trace_id != parent.trace_id:
        shop.story.fail(got=f"{describe(child)}\n  and its parent should be {describe(parent)}",
                        expected=f"parent_id {short(parent.span_id)} and trace {short(parent.trace_id)}", why=why)


@level(2)
def records_a_server_span_in_virtual_time(ctx: Context) -> None:
    """Each request gets one server span: name, service, virtual start and end, status, fresh ids."""
    with TracedShop(ctx) as shop:
        shop.add("back")
        shop.get("back", "/work", params={"seconds": 0.25}, at=2.0)
        first = shop.one("back", "server", why="the middleware records no span, or more than one: instrument() "
                                               "must add SpanMiddleware, and the span must be finished once")
        _expect_times(shop, first, 2.0, 2.25)
        if first.name != "GET /work" or first.kind != "server":
            shop.story.fail(got=describe(first), expected="a server span named 'GET /work' (method and path)")
        _expect_status(shop, first, "ok", 200, why="the status comes from the app's http.response.start message")
        if first.parent_id is not None or not HEX32.fullmatch(str(first.trace_id)) or not HEX16.fullmatch(str(first.span_id)):
            shop.story.fail(got=describe(first), expected="a new trace (parent None) with 32- and 16-digit hex ids")

        async def then_look() -> Any:
            await shop.world.client("browser").get("back", "/work", params={"seconds": 0.5})
            return shop.module.current_span()

        shop.at(3.0)
        leftover = shop.run(then_look())
        shop.story.note("t=3  browser.get('back', '/work?seconds=0.5'), then current_span() in the caller")
        second = [s for s in shop.spans_of("back", "server") if s is not first]
        if len(second) != 1:
            shop.story.fail(got=listing(shop.spans), expected="a second server span of back")
        _expect_times(shop, second[0], 3.0, 3.5)
        if second[0].trace_id == first.trace_id:
            shop.story.fail(got=describe(second[0]), expected="a trace of its own: another request, another trace")
        if leftover is not None:
            shop.story.fail(got=f"current_span() is {describe(leftover)} after the request",
                            expected="None: outside a request there is no current span",
                            why="the middleware leaves its span current: reset the ContextVar "
                                "(_CURRENT.reset(token)) in a finally")


@level(2)
def continues_the_callers_trace(ctx: Context) -> None:
    """A request with a valid traceparent gets a span in that trace, under the caller's span."""
    with TracedShop(ctx) as shop:
        shop.add("back")
        shop.get("back", "/work", headers={"traceparent": W3C_EXAMPLE, "tracestate": TRACESTATE_WITH_SPACES}, at=1.0)
        server = shop.one("back", "server")
        if server.trace_id != W3C_TRACE or server.parent_id != W3C_PARENT:
            shop.story.fail(got=describe(server), expected=f"trace {W3C_TRACE}, parent_id {W3C_PARENT}",
                            why="the middleware does not extract the request's traceparent (ASGI headers are "
                                "(bytes, bytes) pairs: decode them)")
        if server.span_id == W3C_PARENT:
            shop.story.fail(got=describe(server), expected="a span id of its own",
                            why="it reuses the parent's span id: the caller's span id is this span's parent id")
        if server.tracestate != TRACESTATE_WITH_SPACES:
            shop.story.fail(got=f"span.tracestate {server.tracestate!r}", expected=repr(TRACESTATE_WITH_SPACES),
                            why="it drops tracestate: the span must carry it on to the calls it makes")
        shop.get("back", "/work", headers={"traceparent": W3C_EXAMPLE.upper(), "tracestate": TRACESTATE_WITH_SPACES},
                 at=2.0)
        fresh = [s for s in shop.spans_of("back", "server") if s is not server][0]
        if fresh.parent_id is not None or fresh.trace_id.lower() == W3C_TRACE or fresh.tracestate:
            shop.story.fail(got=describe(fresh) + f", tracestate {fresh.tracestate!r}",
                            expected="a new trace (parent None, another trace id, no tracestate)",
                            why="it accepts uppercase hex: an invalid traceparent starts a new trace")


@level(2)
def status_is_error_on_5xx_only(ctx: Context) -> None:
    """5xx answers and crashing handlers make error spans (http 500 for a crash); 4xx are ok."""
    with TracedShop(ctx) as shop:
        shop.add("back")
        cases = [("/fail", "error", 503, "a 5xx answer is the service's failure: status 'error'"),
                 ("/no-such-route", "ok", 404, "a 4xx is the caller's mistake: the service worked, status 'ok' "
                                              "(the harness recorder's rule too)"),
                 ("/boom", "error", 500, "a handler that raises: the server answers 500; end the span with "
                                         "http_status 500 and status 'error' (try/except around the app), "
                                         "then re-raise"),
                 ("/work", "ok", 200, "a 200 is ok")]
        for n, (path, status, http_status, why) in enumerate(cases):
            before = len(shop.spans)
            response = shop.get("back", path, at=float(n + 1))
            if response.status != http_status:
                shop.story.fail(got=f"the caller got HTTP {response.status}", expected=f"HTTP {http_status}",
                                why="the middleware changed the answer: pass every message on to `send`, and "
                                    "re-raise the app's errors")
            new = shop.spans[before:]
            if len(new) != 1:
                shop.story.fail(got=listing(new), expected=f"one server span for GET {path}",
                                why="the span is not finished when the app raises: finish it in the except "
                                    "branch too" if path == "/boom" else None)
            _expect_status(shop, new[0], status, http_status, why=why)


@level(2)
def a_call_gets_a_client_span_and_carries_the_context(ctx: Context) -> None:
    """A service's call through ctx.call gets a client span; the callee's span is its child."""
    with TracedShop(ctx) as shop:
        shop.add("front")
        shop.add("back")
        shop.get("front", "/chain", at=2.0)
        server = shop.one("front", "server")
        client = shop.one("front", "client", why="no client span for front's call to back: instrument() must "
                                                 "replace ctx.client by a TracingClient (ctx.call uses it)")
        callee = shop.one("back", "server")
        _expect_times(shop, server, 2.0, 2.875)
        _expect_times(shop, client, 2.5, 2.75, why="the client span starts when the call is made and ends when "
                                                   "the answer arrives (0.5 s into /chain, 0.25 s long)")
        _expect_times(shop, callee, 2.5, 2.75)
        if client.kind != "client" or client.peer != "back" or client.name != "GET back/work":
            shop.story.fail(got=describe(client) + f", peer {client.peer!r}",
                            expected="kind 'client', peer 'back', name 'GET back/work'")
        _expect_status(shop, client, "ok", 200, why="the client span ends with the response's status")
        _expect_child(shop, client, server, why="the client span must be a child of the request being handled: "
                                                "its parent is current_span() when the call starts")
        _expect_child(shop, callee, client, why="the callee's parent is the client span: send "
                                                "inject(client_span.context, headers) with the call")
        sent = shop.headers_sent("front", "back")
        expected = f"00-{server.trace_id}-{client.span_id}-01"
        if not sent or sent[0].get("traceparent") != expected:
            shop.story.fail(got=f"front sent back the headers {sent[0] if sent else None}",
                            expected=f"traceparent {expected}")


@level(2)
def tracestate_travels_through_a_service(ctx: Context) -> None:
    """The tracestate a service receives goes, unchanged, on every call it makes."""
    with TracedShop(ctx) as shop:
        shop.add("front")
        shop.add("back")
        shop.get("front", "/chain", headers={"traceparent": W3C_EXAMPLE, "tracestate": TRACESTATE_WITH_SPACES}, at=1.0)
        sent = shop.headers_sent("front", "back")
        if not sent or sent[0].get("tracestate") != TRACESTATE_WITH_SPACES or W3C_TRACE not in sent[0].get("traceparent", ""):
            shop.story.fail(got=f"front sent back the headers {sent[0] if sent else None}",
                            expected=f"traceparent in trace {W3C_TRACE}, and tracestate {TRACESTATE_WITH_SPACES!r}",
                            why="it drops tracestate between the incoming request and the outgoing call: the "
                                "server span keeps it (start_span from the extracted context), the client span "
                                "inherits it, inject sends it")


@level(2)
def concurrent_requests_keep_their_own_traces(ctx: Context) -> None:
    """Requests handled at the same time, and calls fanned out with gather, never mix their spans."""
    with TracedShop(ctx) as shop:
        shop.add("front")
        shop.add("back")
        shop.at(1.0)

        async def three_at_once() -> None:
            browser = shop.world.client("browser")
            await asyncio.gather(browser.get("front", "/chain"), browser.get("front", "/fanout"),
                                 browser.get("front", "/chain"))

        shop.story.note("t=1  three requests at once: front /chain, front /fanout, front /chain")
        shop.run(three_at_once())
        servers = {s.span_id: s for s in shop.spans_of("front", "server")}
        clients = {s.span_id: s for s in shop.spans_of("front", "client")}
        why = ("spans are mixed between requests: keep the current span in a ContextVar (each asyncio task has its "
               "own value), not in an attribute of the tracer or the middleware")
        if len(servers) != 3 or len(clients) != 5 or len(shop.spans_of("back", "server")) != 5:
            shop.story.fail(got=listing(shop.spans), expected="3 server spans of front, 5 client spans of front, "
                                                              "5 server spans of back")
        if len({s.trace_id for s in servers.values()}) != 3:
            shop.story.fail(got=listing(servers.values()), expected="three traces, one per request", why=why)
        for client in clients.values():
            parent = servers.get(client.parent_id)
            if parent is None or parent.trace_id != client.trace_id or not parent.start <= client.start <= parent.end:
                shop.story.fail(got=f"{describe(client)}\n  its parent: {describe(parent) if parent else 'not a front server span'}",
                                expected="the client span under the front request that made the call, in its trace",
                                why=why)
        for callee in shop.spans_of("back", "server"):
            parent = clients.get(callee.parent_id)
            if parent is None or parent.trace_id != callee.trace_id or (parent.start, parent.end) != (callee.start, callee.end):
                shop.story.fail(got=f"{describe(callee)}\n  its parent: {describe(parent) if parent else 'not a front client span'}",
                                expected="each back span under the client span of the call that reached it", why=why)
        children = sorted(sum(c.parent_id == s for c in clients.values()) for s in servers)
        if children != [1, 1, 3]:
            shop.story.fail(got=f"client spans per front request: {children}", expected="[1, 1, 3] (/chain, /chain, "
                            "/fanout)", why=why)


@level(2)
def a_caller_that_gives_up_ends_its_span_then(ctx: Context) -> None:
    """A call that times out ends its client span at the give-up instant, with an error; the callee's span ends later."""
    with TracedShop(ctx) as shop:
        shop.add("front")
        shop.add("back")
        shop.get("front", "/impatient", at=2.0)
        client = shop.one("front", "client")
        _expect_times(shop, client, 2.0, 3.0, why="the caller gave up after its 1 s timeout: its span ends then")
        _expect_status(shop, client, "error", None, why="no answer came back (RequestTimeout): finish the client "
                                                        "span with error=True and re-raise the error")
        _expect_status(shop, shop.one("front", "server"), "error", 504, why="front answered 504")
        shop.settle(6.0)
        shop.story.note("t=6  (back kept working after front gave up)")
        callee = shop.one("back", "server")
        _expect_times(shop, callee, 2.0, 5.0, why="the callee works on (3 s): its span ends when it answers")
        _expect_child(shop, callee, client, why="the callee's parent is the client span that called it")


@level(2)
def traces_a_caller_outside_the_shop(ctx: Context) -> None:
    """tracer.client(...) records root client spans, honours an explicit traceparent, passes errors on."""
    from harness.http import ConnectError

    with TracedShop(ctx) as shop:
        shop.add("front")
        shop.add("back")
        response = shop.get("front", "/chain", traced=True, at=2.0)
        if response.status != 200:
            shop.story.fail(got=f"HTTP {response.status}", expected="HTTP 200, the wrapped client's own response")
        browser = shop.one("browser", "client")
        _expect_times(shop, browser, 2.0, 2.875)
        if browser.parent_id is not None or browser.peer != "front":
            shop.story.fail(got=describe(browser) + f", peer {browser.peer!r}",
                            expected="the root of a new trace (no current span, no traceparent), peer 'front'")
        _expect_child(shop, shop.one("front", "server"), browser, why="the browser's call carries its span's context")
        shop.get("back", "/work", traced=True, headers={"traceparent": W3C_EXAMPLE}, at=3.0)
        given = [s for s in shop.spans_of("browser", "client") if s is not browser][0]
        if given.trace_id != W3C_TRACE or given.parent_id != W3C_PARENT:
            shop.story.fail(got=describe(given), expected=f"trace {W3C_TRACE}, parent {W3C_PARENT}",
                            why="outside a traced request, a valid traceparent in the call's own headers is the "
                                "parent (it came from upstream)")
        before = len(shop.spans)
        try:
            shop.get("nowhere", "/", traced=True, at=4.0)
        except ConnectError:
            pass
        else:
            shop.story.fail(got="the call returned", expected="ConnectError (no such service), raised as it was")
        failed = shop.spans[before:]
        if len(failed) != 1 or (failed[0].status, failed[0].http_status) != ("error", None):
            shop.story.fail(got=listing(failed), expected="one client span, status 'error', http_status None",
                            why="a call that got no answer still ends its span, with error=True")


@level(2)
def annotations_are_indexed_metadata_is_not(ctx: Context) -> None:
    """Handlers annotate through current_span(); annotations hold scalars only, metadata anything."""
    with TracedShop(ctx) as shop:
        shop.add("front")
        response = shop.get("front", "/annotated/user-123", at=1.0)
        if response.status == 200 and response.json().get("current_span", "set") is None:
            shop.story.fail(got="current_span() returned None inside the handler",
                            expected="the request's server span",
                            why="the middleware does not make its span current (_CURRENT.set(span) while the app runs)")
        server = shop.one("front", "server")
        if server.annotations != {"user_id": "user-123"} or server.metadata != {"cart": {"sku-1": 2, "sku-7": 1}}:
            shop.story.fail(got=f"annotations {server.annotations!r}, metadata {server.metadata!r}",
                            expected="annotations {'user_id': 'user-123'}, metadata {'cart': {'sku-1': 2, 'sku-7': 1}}",
                            why="annotations and metadata are two separate dicts: metadata is never indexed")
    story = Story(ctx)
    span = ctx.module.Span("t1", "a", None, "POST /orders", "orders")
    for key, value in (("vip", True), ("total", 20.5), ("items", 3), ("order_type", "online")):
        span.annotate(key, value)
        story.note(f"span.annotate({key!r}, {value!r})")
    for key, value, error, why in (
            ("cart", {"sku-1": 2}, TypeError, "an annotation is indexed: a string, number or boolean only"),
            ("cart", None, TypeError, "an annotation is indexed: a string, number or boolean only"),
            ("user id", "x", ValueError, "keys are letters, digits and underscores (a query must spell them)"),
            ("user-id", "x", ValueError, "keys are letters, digits and underscores (a query must spell them)")):
        try:
            span.annotate(key, value)
        except error:
            story.note(f"span.annotate({key!r}, {value!r}) -> {error.__name__}")
            continue
        except NotImplementedError:
            raise
        except Exception as other:
            story.fail(got=f"span.annotate({key!r}, {value!r}) raised {type(other).__name__}",
                       expected=error.__name__, why=why)
        story.fail(got=f"span.annotate({key!r}, {value!r}) was accepted", expected=error.__name__, why=why)
    span.put_metadata("lines", [{"sku": "sku-1"}])
    if span.annotations != {"vip": True, "total": 20.5, "items": 3, "order_type": "online"} or \
            span.metadata != {"lines": [{"sku": "sku-1"}]}:
        story.fail(got=f"annotations {span.annotations!r}, metadata {span.metadata!r}",
                   expected="the four valid annotations, and the metadata, each in its own dict")


@level(2)
def same_seed_same_spans(ctx: Context) -> None:
    """Two worlds with the same seed record the same spans, ids included."""
    runs = []
    for _ in range(2):
        with TracedShop(ctx) as shop:
            shop.add("back")
            shop.get("back", "/work", at=1.0, traced=True)
            shop.get("back", "/work", at=2.0)
            runs.append([(s.trace_id, s.span_id, s.parent_id, s.start, s.end) for s in shop.spans])
    if runs[0] != runs[1]:
        shop.story.fail(got=f"first run {runs[0][:2]}..., second run {runs[1][:2]}...",
                        expected="identical spans",
                        why="ids do not come from the tracer's injected random (IdGenerator(rng)): a replay "
                            "with the same seed must give the same trace")


@level(2)
def the_profile_page_is_one_trace(ctx: Context) -> None:
    """The shop's gateway, instrumented: one profile request is one trace of 8 spans."""
    from harness.services import SHOP

    with TracedShop(ctx) as shop:
        for name in ("gateway", "users", "orders", "payments"):
            shop.add(name, SHOP[name])
        shop.get("gateway", "/profile/user-123", traced=True, at=1.0)
        spans = shop.spans
        if len(spans) != 8 or len({s.trace_id for s in spans}) != 1:
            shop.story.fail(got=listing(spans), expected="8 spans in one trace: the browser's call, the gateway's "
                            "request, its 3 calls, and the 3 requests they made",
                            why="the gateway's parallel calls (asyncio.gather) lose the context: each task copies "
                                "the ContextVars of the task that created it, so current_span() works in them")
        gateway = shop.one("gateway", "server")
        _expect_child(shop, gateway, shop.one("browser", "client"), why="the browser's span is the gateway's parent")
        for service in ("users", "orders", "payments"):
            call = [s for s in shop.spans_of("gateway", "client") if s.peer == service]
            if len(call) != 1:
                shop.story.fail(got=listing(shop.spans_of("gateway", "client")),
                                expected=f"one client span of gateway with peer {service!r}")
            _expect_child(shop, call[0], gateway, why="the gateway's calls hang under its request")
            _expect_child(shop, shop.one(service, "server"), call[0], why="each callee hangs under the call")
