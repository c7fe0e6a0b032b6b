"""Distributed tracing kata: the reference solution, with the reasoning in comments.

Same public API as ``katas/tracing.py`` (read its docstrings for the rules);
here each function says *why* it does what it does.

Whom we follow, where trusted systems differ:

- W3C Trace Context Level 1 for ``traceparent``/``tracestate``, checked
  against OpenTelemetry's ``TraceContextTextMapPropagator``;
- X-Ray for annotations (indexed, scalar values) versus metadata (anything,
  not indexed), and a subset of its filter expressions (durations in seconds);
- Jaeger for the critical path (children clipped to their parent), except
  that a sibling ending exactly when the next one starts stays on the path
  (jaeger-ui compares with ``<`` and hands that time to the parent);
- nearest-rank percentiles, like ``harness.recorder.quantile``;
- the OpenTelemetry Collector's tail sampling: wait ``decision_wait`` after a
  trace's first span, then decide for the whole trace.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import networkx as nx

__all__ = [
    "PathSegment",
    "QueryError",
    "Span",
    "SpanMiddleware",
    "TailSampler",
    "TraceContext",
    "TraceNode",
    "Tracer",
    "TracingClient",
    "IdGenerator",
    "build_trace",
    "child_context",
    "critical_path",
    "current_span",
    "extract",
    "find_traces",
    "format_traceparent",
    "group_traces",
    "health_colour",
    "inject",
    "latency_percentiles",
    "parse_query",
    "parse_traceparent",
    "percentile",
    "service_map",
]


class SupportsNow(Protocol):
    """A clock: ``now()`` in seconds (``world.clock`` is one)."""

    def now(self) -> float: ...


# -- level 1: the W3C trace context -------------------------------------------------------


@dataclass(frozen=True)
class TraceContext:
    """What travels from a caller to a callee: the trace, the sending span, and vendor state."""

    trace_id: str
    span_id: str
    sampled: bool = True
    tracestate: str = ""


# Lower-case hex only: the W3C spec says uppercase MUST be treated as invalid,
# so `[0-9a-f]`, never `re.IGNORECASE` and never `int(x, 16)` (which takes "AB").
_HEX = re.compile(r"[0-9a-f]+")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_V00_LENGTH = 55  # "00-" + 32 + "-" + 16 + "-" + 2


def _hex(text: str, length: int) -> bool:
    return len(text) == length and _HEX.fullmatch(text) is not None


def parse_traceparent(value: str | None) -> TraceContext | None:
    """A valid ``traceparent`` as a TraceContext, anything else None (see the kata)."""
    if not isinstance(value, str):
        return None
    value = value.strip(" \t")  # optional white space around a header value (RFC 9110)
    version = value[:2]
    if not _hex(version, 2) or version == "ff":
        return None
    if version == "00":
        if len(value) != _V00_LENGTH:  # version 00 has exactly four fields
            return None
    elif len(value) > _V00_LENGTH and value[_V00_LENGTH] != "-":
        return None  # a later version may add fields, but only after a dash
    head = value[:_V00_LENGTH]
    if len(head) != _V00_LENGTH or head[2] != "-" or head[35] != "-" or head[52] != "-":
        return None
    trace_id, span_id, flags = head[3:35], head[36:52], head[53:55]
    if not (_hex(trace_id, 32) and _hex(span_id, 16) and _hex(flags, 2)):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, sampled=bool(int(flags, 16) & 0x01))


def format_traceparent(context: TraceContext) -> str:
    """``00-<trace id>-<span id>-<flags>``: we always write version 00."""
    return f"00-{context.trace_id}-{context.span_id}-{'01' if context.sampled else '00'}"


def extract(headers: Mapping[str, str]) -> TraceContext | None:
    """The caller's context from request headers, or None to start a new trace."""
    context = parse_traceparent(headers.get("traceparent"))
    if context is None:
        # W3C: when traceparent cannot be parsed, tracestate must not be parsed
        # either; the new trace starts without it.
        return None
    # Forwarded as received: the vendors' entries are theirs, not ours to reorder.
    return TraceContext(context.trace_id, context.span_id, context.sampled, headers.get("tracestate", ""))


def inject(context: TraceContext, headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``headers`` with ``traceparent`` (and ``tracestate`` when there is one)."""
    out = dict(headers or {})
    out["traceparent"] = format_traceparent(context)
    if context.tracestate:
        out["tracestate"] = context.tracestate
    else:
        out.pop("tracestate", None)  # never forward someone else's stale state
    return out


class IdGenerator:
    """Trace and span ids drawn from an injected ``random.Random``: seeded, so reproducible."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def trace_id(self) -> str:
        return self._draw(128)

    def span_id(self) -> str:
        return self._draw(64)

    def _draw(self, bits: int) -> str:
        while True:
            value = self.rng.getrandbits(bits)
            if value:  # all zeros is the "invalid" id: draw again
                return f"{value:0{bits // 4}x}"


def child_context(parent: TraceContext | None, ids: IdGenerator) -> TraceContext:
    """The context of a new span: under ``parent``, or the root of a new trace."""
    if parent is None:
        return TraceContext(ids.trace_id(), ids.span_id())
    # Same trace, same flags and vendor state; a span id of its own, always:
    # the parent's id is how the child points at its parent.
    return TraceContext(parent.trace_id, ids.span_id(), parent.sampled, parent.tracestate)


# -- level 2: spans, the middleware and the client ----------------------------------------

_ANNOTATION_KEY = re.compile(r"[A-Za-z0-9_]+")


@dataclass
class Span:
    """One unit of work: a service handling a request (server) or calling another (client)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str = "server"
    start: float = 0.0
    end: float | None = None
    status: str = "ok"
    http_status: int | None = None
    peer: str | None = None
    annotations: dict[str, str | int | float | bool] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    tracestate: str = ""
    sampled: bool = True

    @property
    def duration(self) -> float:
        """``end - start`` in virtual seconds (a span must have ended)."""
        if self.end is None:
            raise ValueError(f"span {self.name!r} has not ended")
        return self.end - self.start

    @property
    def context(self) -> TraceContext:
        """What this span sends to the services it calls."""
        return TraceContext(self.trace_id, self.span_id, self.sampled, self.tracestate)

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        """An indexed key-value pair, searchable with ``annotation.<key>`` queries."""
        # Keys end up in a query (annotation.user_id): only what the query
        # language can spell. Values are indexed: scalars only, as in X-Ray.
        if not isinstance(key, str) or not _ANNOTATION_KEY.fullmatch(key):
            raise ValueError(f"annotation key {key!r}: use letters, digits and underscores only")
        if not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"annotation {key!r}: a string, number or boolean, not {type(value).__name__} "
                            "(put objects in metadata)")
        self.annotations[key] = value

    def put_metadata(self, key: str, value: Any) -> None:
        """Any value, kept with the span but never indexed (queries do not see it)."""
        self.metadata[key] = value


# The span whose work is running now. A ContextVar, not an attribute of the
# tracer: every asyncio task gets its own copy, so two requests handled at the
# same time (or three calls fanned out with gather) never see each other's span.
_CURRENT: ContextVar[Span | None] = ContextVar("current_span", default=None)


def current_span() -> Span | None:
    """The span of the request being handled here (inside a traced service), else None."""
    return _CURRENT.get()


class Tracer:
    """Starts, ends and keeps the spans of one world."""

    def __init__(self, clock: SupportsNow, rng: random.Random):
        self.clock = clock
        self.ids = IdGenerator(rng)
        self.spans: list[Span] = []

    def start_span(self, name: str, service: str, *, kind: str = "server",
                   parent: TraceContext | None = None, peer: str | None = None) -> Span:
        """A new span starting now: under ``parent``, or the root of a new trace."""
        context = child_context(parent, self.ids)
        return Span(context.trace_id, context.span_id, parent.span_id if parent else None, name, service,
                    kind=kind, start=self.clock.now(), peer=peer, tracestate=context.tracestate,
                    sampled=context.sampled)

    def finish(self, span: Span, *, http_status: int | None = None, error: bool = False) -> None:
        """End ``span`` now, set its status, and keep it in ``self.spans``."""
        span.end = self.clock.now()
        span.http_status = http_status
        # 5xx is the callee's failure; a 4xx is the caller's mistake and the
        # service worked (the same rule as the harness recorder and OTel's
        # server spans). No response at all is an error too (error=True).
        span.status = "error" if error or (http_status is not None and http_status >= 500) else "ok"
        self.spans.append(span)

    def instrument(self, factory: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Wrap a service factory: its requests get server spans, its calls client spans."""
        tracer = self

        def traced(ctx: Any) -> Any:
            # ctx.call() goes through ctx.client, read at call time: swapping the
            # client is the outgoing-request hook. Guard against wrapping twice
            # when an instance restarts without its state (the factory runs again).
            if not isinstance(ctx.client, TracingClient):
                ctx.client = TracingClient(ctx.client, tracer, ctx.service)
            app = factory(ctx)
            # Added last, so outermost among the app's middleware: the span
            # covers everything the app does, other middleware included.
            app.add_middleware(SpanMiddleware, tracer=tracer, service=ctx.service)
            return app

        return traced

    def client(self, client: Any, service: str | None = None) -> TracingClient:
        """Trace the calls of a caller outside the shop (``world.client("browser")``)."""
        return TracingClient(client, self, service or getattr(client, "caller", "client"))


class SpanMiddleware:
    """Pure ASGI middleware: one server span per HTTP request."""

    def __init__(self, app: Any, tracer: Tracer, service: str):
        self.app = app
        self.tracer = tracer
        self.service = service

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        span = self.tracer.start_span(f"{scope['method']} {scope['path']}", self.service, parent=extract(headers))
        status: int | None = None

        async def watch(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = _CURRENT.set(span)
        try:
            await self.app(scope, receive, watch)
        except BaseException:
            # The server's error handler (outside us) answers 500: say so, end
            # the span anyway, and let the error go on its way.
            self.tracer.finish(span, http_status=status or 500)
            raise
        else:
            self.tracer.finish(span, http_status=status)
        finally:
            _CURRENT.reset(token)


class TracingClient:
    """A caller that records a client span per call and sends the trace context along."""

    def __init__(self, client: Any, tracer: Tracer, service: str):
        self.client = client
        self.tracer = tracer
        self.service = service

    async def request(self, method: str, target: str, path: str, **kwargs: Any) -> Any:
        """Call through the wrapped client inside a client span; same answer, same errors."""
        here = current_span()
        # Inside a traced request, that request's span is the parent. Outside
        # one, a traceparent the caller passed by hand is (it came from upstream).
        parent = here.context if here is not None else extract(kwargs.get("headers") or {})
        span = self.tracer.start_span(f"{method.upper()} {target}{path}", self.service, kind="client",
                                      parent=parent, peer=target)
        # The callee's parent is this client span, not the server span around
        # it: that is how a waterfall nests "orders called payments" correctly.
        kwargs["headers"] = inject(span.context, kwargs.get("headers"))
        try:
            response = await self.client.request(method, target, path, **kwargs)
        except BaseException:
            self.tracer.finish(span, error=True)  # timeout, refused, reset: no answer
            raise
        self.tracer.finish(span, http_status=response.status)
        return response

    async def get(self, target: str, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", target, path, **kwargs)

    async def post(self, target: str, path: str, **kwargs: Any) -> Any:
        return await self.request("POST", target, path, **kwargs)

    async def put(self, target: str, path: str, **kwargs: Any) -> Any:
        return await self.request("PUT", target, path, **kwargs)

    async def delete(self, target: str, path: str, **kwargs: Any) -> Any:
        return await self.request("DELETE", target, path, **kwargs)


# -- level 3: trees and the service map ----------------------------------------------------


@dataclass
class TraceNode:
    """A span with the spans it caused."""

    span: Span
    children: list[TraceNode] = field(default_factory=list)
    orphan: bool = False


def _by_start(spans: Iterable[Span]) -> list[Span]:
    return sorted(spans, key=lambda s: s.start)  # stable: ties keep the input order


def group_traces(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Spans by trace id; traces in order of their first start, spans by start."""
    traces: dict[str, list[Span]] = {}
    for span in _by_start(spans):
        traces.setdefault(span.trace_id, []).append(span)
    return traces


def build_trace(spans: Iterable[Span]) -> list[TraceNode]:
    """The trees of one trace: roots (the root span, then orphans) by start."""
    ordered = _by_start(spans)
    nodes = {s.span_id: TraceNode(s) for s in ordered}
    roots: list[TraceNode] = []
    for span in ordered:
        node = nodes[span.span_id]
        parent = nodes.get(span.parent_id) if span.parent_id is not None else None
        if parent is None or parent is node:
            # A parent we never received (lost, sampled away, still running, or
            # from a service that does not trace) does not make the span
            # disappear: it heads a tree of its own, flagged so a viewer can warn.
            node.orphan = span.parent_id is not None
            roots.append(node)
        else:
            parent.children.append(node)
    _adopt_cycles(ordered, nodes, roots)
    roots.sort(key=lambda n: n.span.start)
    return roots


def _adopt_cycles(ordered: list[Span], nodes: dict[str, TraceNode], roots: list[TraceNode]) -> None:
    """Spans whose parents form a loop are reachable from no root: make them orphans too."""
    reached: set[int] = set()

    def reach(node: TraceNode) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            reached.add(id(current))
            stack.extend(current.children)

    for root in roots:
        reach(root)
    for span in ordered:
        node = nodes[span.span_id]
        if id(node) not in reached:
            parent = nodes.get(span.parent_id)
            if parent is not None:
                parent.children.remove(node)
            node.orphan = True
            roots.append(node)
            reach(node)


def health_colour(error_rate: float | None) -> str:
    """The seed's colours: green < 1 %, yellow 1-5 % (both ends), red > 5 %, grey without calls."""
    if error_rate is None:
        return "grey"
    # 1 - 57/60 (a rate worked out from the successes) is 0.050000000000000044
    # in floating point: it *is* 5 %, so round away the noise before comparing.
    rate = round(error_rate, 12)
    if rate < 0.01:
        return "green"
    if rate <= 0.05:
        return "yellow"
    return "red"


EXTERNAL = "client"  # the node for callers that left no client span (X-Ray's "Client")


def service_map(spans: Iterable[Span]) -> nx.DiGraph:
    """Who called whom, with calls, errors and error rates per edge and per service."""
    spans = list(spans)
    client_ids = {s.span_id for s in spans if s.kind == "client"}
    calls: list[tuple[str, str, bool]] = []
    for span in spans:
        if span.kind == "client":
            # The caller's side is the truth about a call: a timeout or a
            # refused connection never reaches the callee's middleware.
            calls.append((span.service, span.peer or "?", span.status == "error"))
        elif span.parent_id not in client_ids:
            # A request whose caller left no client span: count it once, from
            # "client". A request *with* a client span is already counted above.
            calls.append((EXTERNAL, span.service, span.status == "error"))
    graph = nx.DiGraph()
    for span in spans:
        graph.add_node(span.service, calls=0, errors=0)
    for caller, callee, failed in calls:
        for node in (caller, callee):
            if node not in graph:
                graph.add_node(node, calls=0, errors=0)
        if not graph.has_edge(caller, callee):
            graph.add_edge(caller, callee, calls=0, errors=0)
        edge = graph.edges[caller, callee]
        edge["calls"] += 1
        edge["errors"] += failed
        graph.nodes[callee]["calls"] += 1
        graph.nodes[callee]["errors"] += failed
    for _, _, edge in graph.edges(data=True):
        edge["error_rate"] = edge["errors"] / edge["calls"]
    for _, node in graph.nodes(data=True):
        # Per service: the errors of the calls *it* received, over those calls.
        # Dividing by every call in the map would paint the whole map one colour.
        node["error_rate"] = node["errors"] / node["calls"] if node["calls"] else None
        node["colour"] = health_colour(node["error_rate"])
    return graph


# -- level 4: percentiles and the critical path --------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest rank: the value at rank ceil(q * n) of the sorted values; None when empty."""
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q!r}")
    ordered = sorted(values)
    if not ordered:
        return None
    # Always a latency that really happened: no averaging of neighbours, no
    # interpolation. For p99 of fewer than 100 values, that is the maximum.
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _quantile_name(q: float) -> str:
    return "p" + format(q * 100, "g")


def latency_percentiles(spans: Iterable[Span], quantiles: Iterable[float] = (0.5, 0.9, 0.99)
                        ) -> dict[str, dict[str, float]]:
    """Per called service (client spans' peer), the latency its callers saw, by quantile."""
    latencies: dict[str, list[float]] = {}
    for span in spans:
        if span.kind == "client" and span.peer is not None:
            latencies.setdefault(span.peer, []).append(span.duration)
    quantiles = tuple(quantiles)
    return {service: {_quantile_name(q): percentile(values, q) for q in quantiles}
            for service, values in sorted(latencies.items())}


@dataclass(frozen=True)
class PathSegment:
    """A stretch of the critical path: which span the request was waiting on, from when to when."""

    span_id: str
    start: float
    end: float


def critical_path(spans: Iterable[Span]) -> list[PathSegment]:
    """The critical path of one trace, in time order (see the kata for the rules)."""
    roots = build_trace(spans)
    if not roots:
        return []
    root = next((r for r in roots if r.span.parent_id is None), roots[0])
    backwards: list[PathSegment] = []

    def clipped(node: TraceNode, start: float, end: float) -> list[tuple[TraceNode, float, float]]:
        # A child cannot block its parent outside the parent's own time: a
        # server span that outlived a caller who gave up counts up to the
        # give-up instant only (Jaeger's sanitizeOverFlowingChildren).
        kept = []
        for child in node.children:
            child_start, child_end = max(child.span.start, start), min(child.span.end, end)
            if child_start < child_end:
                kept.append((child, child_start, child_end))
        return kept

    def walk(node: TraceNode, start: float, end: float) -> None:
        children = clipped(node, start, end)
        until = end
        while True:
            # The last child to finish (at or before `until`) is what the
            # span was waiting for. `<=`, not `<`: a sibling that ends exactly
            # when the next starts (sequential calls) is on the path too.
            ready = [c for c in children if c[2] <= until]
            if not ready:
                backwards.append(PathSegment(node.span.span_id, start, until))
                return
            # Latest end wins; on a tie, the one that started first.
            child, child_start, child_end = max(ready, key=lambda c: (c[2], -c[1]))
            backwards.append(PathSegment(node.span.span_id, child_end, until))
            walk(child, child_start, child_end)
            until = child_start
            children = [c for c in children if c[0] is not child]

    walk(root, root.span.start, root.span.end)
    path: list[PathSegment] = []
    for segment in reversed(backwards):
        if segment.end <= segment.start:
            continue  # zero-length: nothing waited there
        if path and path[-1].span_id == segment.span_id and path[-1].end == segment.start:
            path[-1] = PathSegment(segment.span_id, path[-1].start, segment.end)
        else:
            path.append(segment)
    return path


# -- level 5: queries and tail-based sampling ----------------------------------------------


class QueryError(ValueError):
    """A query that cannot be understood; the message says what and where, in one line."""


_TOKEN = re.compile(r"""\s*(?:
    (?P<string>"[^"]*")
  | (?P<open_string>"[^"]*$)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|=|<|>)
  | (?P<paren>[()])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
)""", re.VERBOSE)

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
_FIELDS = 'duration, http.status, annotation.KEY, service("NAME")'

Predicate = Callable[[list[Span]], bool]


def _tokens(text: str) -> list[tuple[str, Any, int]]:
    tokens = []
    at = 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None or match.lastgroup is None:
            start = len(text) - len(text[at:].lstrip())
            raise QueryError(f"unexpected character {text[start]!r} at position {start}")
        kind = match.lastgroup
        start = match.start(kind)
        raw = match.group(kind)
        if kind == "open_string":
            raise QueryError(f"unclosed string starting at position {start}: add the closing \"")
        if kind == "string":
            tokens.append(("string", raw[1:-1], start))
        elif kind == "number":
            tokens.append(("number", float(raw) if "." in raw else int(raw), start))
        elif kind == "word" and raw.upper() in ("AND", "OR", "NOT"):
            tokens.append((raw.upper(), raw, start))
        elif kind == "word" and raw in ("true", "false"):
            tokens.append(("bool", raw == "true", start))
        else:
            tokens.append((kind, raw, start))
        at = match.end()
    tokens.append(("end", None, len(text)))
    return tokens


def _describe(token: tuple[str, Any, int]) -> str:
    kind, value, _ = token
    if kind == "end":
        return "the end of the query"
    if kind == "string":
        return f'"{value}"'
    return repr(str(value)) if kind != "number" else repr(value)


class _Parser:
    """Recursive descent: or := and (OR and)*; and := not (AND not)*; not := NOT not | primary."""

    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.at]

    def take(self) -> tuple[str, Any, int]:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, expected: str, token: tuple[str, Any, int] | None = None) -> QueryError:
        token = token or self.peek()
        return QueryError(f"expected {expected} at position {token[2]}, got {_describe(token)}")

    def query(self) -> Predicate:
        if self.peek()[0] == "end":
            raise QueryError(f"empty query: give a condition such as duration > 1 (fields: {_FIELDS})")
        predicate = self.disjunction()
        if self.peek()[0] != "end":
            raise self.fail("AND, OR or the end of the query")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek()[0] == "OR":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda trace: any(p(trace) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.peek()[0] == "AND":
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda trace: all(p(trace) for p in parts))

    def negation(self) -> Predicate:
        if self.peek()[0] == "NOT":
            self.take()
            inner = self.negation()
            return lambda trace: not inner(trace)
        return self.primary()

    def primary(self) -> Predicate:
        token = self.take()
        kind, value, _ = token
        if kind == "paren" and value == "(":
            inner = self.disjunction()
            if self.take()[1] != ")":
                self.at -= 1
                raise self.fail("')'")
            return inner
        if kind != "word":
            raise self.fail(f"a condition ({_FIELDS})", token)
        if value == "service":
            return self.service()
        if value == "duration":
            op, number = self.comparison("duration", numbers_only=True)
            # The whole trace: from its first start to its last end, in seconds.
            return lambda trace: op(max(s.end for s in trace) - min(s.start for s in trace), number)
        if value == "http.status":
            op, number = self.comparison("http.status", numbers_only=True)
            return lambda trace: any(s.http_status is not None and op(s.http_status, number) for s in trace)
        if value.startswith("annotation.") and _ANNOTATION_KEY.fullmatch(value[len("annotation."):]):
            key = value[len("annotation."):]
            op, literal = self.comparison(value, numbers_only=False)
            # Annotations only: metadata is not indexed, so it is never searched.
            return lambda trace: any(key in s.annotations and _compare(op, s.annotations[key], literal)
                                     for s in trace)
        raise QueryError(f"unknown field {value!r} at position {token[2]} (fields: {_FIELDS})")

    def service(self) -> Predicate:
        if self.take()[1] != "(":
            self.at -= 1
            raise self.fail("'(' after service")
        token = self.take()
        if token[0] != "string":
            raise self.fail('a quoted service name, as in service("orders")', token)
        if self.take()[1] != ")":
            self.at -= 1
            raise self.fail("')'")
        name = token[1]
        # Through the service: one of its spans, or a call to it (a call that
        # timed out or was refused never produced a span of the callee).
        return lambda trace: any(s.service == name or (s.kind == "client" and s.peer == name) for s in trace)

    def comparison(self, name: str, *, numbers_only: bool) -> tuple[Callable[[Any, Any], bool], Any]:
        op_token = self.take()
        if op_token[0] != "op":
            raise self.fail(f"an operator (=, !=, <, <=, >, >=) after {name}", op_token)
        value_token = self.take()
        kind, value, _ = value_token
        if kind not in ("number", "string", "bool"):
            raise self.fail(f"a value after {op_token[1]!r}", value_token)
        if numbers_only and kind != "number":
            raise self.fail(f"a number after {name} {op_token[1]}", value_token)
        if kind != "number" and op_token[1] not in ("=", "!="):
            raise self.fail(f"= or != (a {kind} cannot be ordered)", op_token)
        return _OPS[op_token[1]], value


def _compare(op: Callable[[Any, Any], bool], annotation: Any, literal: Any) -> bool:
    # Typed, as X-Ray indexes them: "123" is not 123, and True is not 1.
    if isinstance(literal, bool) or isinstance(annotation, bool):
        return isinstance(literal, bool) and isinstance(annotation, bool) and op(annotation, literal)
    if isinstance(literal, str) != isinstance(annotation, str):
        return False
    return op(annotation, literal)


def parse_query(text: str) -> Callable[[list[Span]], bool]:
    """A query as a predicate on one trace's spans; QueryError when it makes no sense."""
    if not isinstance(text, str):
        raise QueryError(f"a query is a string, got {type(text).__name__}")
    return _Parser(text).query()


def find_traces(spans: Iterable[Span], query: str) -> list[str]:
    """The ids of the traces that match ``query``, in ``group_traces`` order."""
    predicate = parse_query(query)  # first: a bad query fails even on no data
    return [trace_id for trace_id, trace in group_traces(spans).items() if predicate(trace)]


class TailSampler:
    """Decide per trace, after it had time to finish: errors always kept, the rest at ``rate``."""

    def __init__(self, rate: float, rng: random.Random, *, decision_wait: float = 10.0,
                 keep_slower_than: float | None = None):
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")
        self.rate = rate
        self.rng = rng
        self.decision_wait = decision_wait
        self.keep_slower_than = keep_slower_than
        self._pending: dict[str, list[Span]] = {}  # trace id -> spans, in arrival order
        self._first_arrival: dict[str, float] = {}
        self._decided: dict[str, bool] = {}
        self._released: list[Span] = []

    def add(self, span: Span) -> None:
        """A span arrives (when it ends); late spans follow their trace's decision."""
        decision = self._decided.get(span.trace_id)
        if decision is not None:
            # Decided already: a late span joins a kept trace, and is dropped
            # with a dropped one; it never reopens the decision.
            if decision:
                self._released.append(span)
            return
        if span.trace_id not in self._pending:
            self._pending[span.trace_id] = []
            self._first_arrival[span.trace_id] = span.end
        self._pending[span.trace_id].append(span)

    def flush(self, now: float) -> list[Span]:
        """Decide every trace whose first span arrived at or before ``now - decision_wait``."""
        for trace_id in list(self._pending):
            if self._first_arrival[trace_id] + self.decision_wait > now:
                continue  # the trace may still be running: an error may yet come
            spans = self._pending.pop(trace_id)
            del self._first_arrival[trace_id]
            keep = self._keep(spans)
            self._decided[trace_id] = keep
            if keep:
                self._released.extend(spans)
        released, self._released = self._released, []
        return released

    def _keep(self, spans: list[Span]) -> bool:
        if any(s.status == "error" for s in spans):
            return True  # the traces you will be asked about: never leave them to chance
        if self.keep_slower_than is not None:
            duration = max(s.end for s in spans) - min(s.start for s in spans)
            if duration > self.keep_slower_than:
                return True
        return self.rng.random() < self.rate
