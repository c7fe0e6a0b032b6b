"""Distributed tracing kata: follow one request through the shop, then ask questions of it.

Implement the functions and classes below level by level; check your work with::

    kata check tracing          # every level
    kata check tracing --level 1
    kata hint tracing           # the hint of the first level that fails

Look for ``# TODO (level N):`` below. Replace each ``raise
NotImplementedError`` with your code; keep the names and signatures (the
checks and the chapter use them).

The five levels:

1. **Trace context** (W3C ``traceparent``/``tracestate``): parse, format,
   extract from and inject into headers, fresh ids from a seeded generator.
2. **Spans**: a middleware that records a server span per request, a client
   wrapper that records a client span per call *and* sends the context along,
   annotations (indexed) versus metadata (not indexed).
3. **Trees and the map**: flat spans to trace trees (orphans kept), and a
   service map with calls, error rates and the seed's colours.
4. **Where the time goes**: nearest-rank percentiles per service, and the
   critical path of a trace.
5. **Questions and sampling**: a small query language (``service("orders")
   AND duration > 1``) and a tail-based sampler that keeps every error trace.

Whom we follow, where trusted systems differ:

- W3C Trace Context Level 1 for ``traceparent`` and ``tracestate``. Your
  headers must read the same in OpenTelemetry's
  ``TraceContextTextMapPropagator``, and its headers the same in yours (the
  checks try both directions).
- X-Ray for annotations (string, number or boolean values, indexed: queries
  see them) versus metadata (any value, not indexed: queries never see it),
  and for the query language: durations are in **seconds**.
- Jaeger for the critical path: children are clipped to their parent's time.
  One difference: a sibling that ends exactly when the next one starts stays
  on the path (jaeger-ui compares with ``<`` and gives that time to the
  parent; in virtual time, sequential calls touch exactly).
- Percentiles by **nearest rank**, like ``harness.recorder.quantile``.
- The OpenTelemetry Collector's tail sampling: wait ``decision_wait`` after a
  trace's first span, then keep or drop the whole trace.

Read time only from the injected clock (``tracer.clock.now()``), and draw ids
only from the injected ``random.Random``: never ``time.time()``, never
``os.urandom``. The checks run in virtual time, with a seed.

Plugging your tracer into the shop (level 2)::

    tracer = Tracer(world.clock, world.rng("tracing"))
    world.add_service("orders", tracer.instrument(SHOP["orders"]))
    browser = tracer.client(world.client("browser"))
    world.run(browser.get("orders", "/orders"))
    tracer.spans  # every finished span, client and server

>>> context = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
>>> context.trace_id, context.span_id, context.sampled
('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', True)
>>> parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01") is None
True
"""

from __future__ import annotations

import random
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
    """What travels from a caller to a callee: the trace, the sending span, and vendor state.

    ``trace_id`` is 32 lower-case hex digits, ``span_id`` 16: the id of the
    span that *sent* the request (the receiver's parent). ``tracestate`` is
    the vendors' header, kept as the exact text received ("" when none).

    >>> TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7").sampled
    True
    """

    trace_id: str
    span_id: str
    sampled: bool = True
    tracestate: str = ""


def parse_traceparent(value: str | None) -> TraceContext | None:
    """A valid ``traceparent`` header as a TraceContext (empty tracestate); anything else None.

    ``version-traceid-parentid-flags``: ``00-<32 hex>-<16 hex>-<2 hex>``.
    Invalid, so None (the receiver then starts a new trace):

    - uppercase hex anywhere, or any non-hex character;
    - a trace id of 32 zeros, or a parent id of 16 zeros;
    - version ``ff``; a field of the wrong length; a delimiter that is not ``-``;
    - version ``00`` with anything after the flags (it has exactly 55 characters).

    A *later* version (``01``..``fe``) may carry more fields: parse its first
    55 characters like version 00; anything after them must start with ``-``.
    Spaces and tabs around the whole value are ignored (HTTP's optional white
    space). ``sampled`` is bit 0 of the flags.

    >>> parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").sampled
    False
    >>> parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01") is None
    True
    >>> parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next").span_id
    '00f067aa0ba902b7'
    """
    # TODO (level 1): check every field as above; return None for every invalid form.
    raise NotImplementedError


def format_traceparent(context: TraceContext) -> str:
    """The ``traceparent`` header for ``context``: always version 00, flags 01 or 00.

    >>> format_traceparent(TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    """
    # TODO (level 1): four fields joined with "-".
    raise NotImplementedError


def extract(headers: Mapping[str, str]) -> TraceContext | None:
    """The caller's context from request headers (lower-case names), or None for a new trace.

    With a valid ``traceparent``, ``tracestate`` comes along exactly as
    received. With an invalid or missing one, None: the new trace starts
    without the old ``tracestate`` (W3C: do not even parse it).

    >>> headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ...            "tracestate": "congo=t61rcWkgMzE"}
    >>> extract(headers).tracestate
    'congo=t61rcWkgMzE'
    >>> extract({"tracestate": "congo=t61rcWkgMzE"}) is None
    True
    """
    # TODO (level 1): parse traceparent; keep tracestate unchanged when it is valid.
    raise NotImplementedError


def inject(context: TraceContext, headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """A new dict: ``headers`` plus ``traceparent``, and ``tracestate`` when the context has one.

    ``headers`` itself is not changed. A ``tracestate`` already in ``headers``
    is replaced by the context's (removed when the context has none).

    >>> inject(TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", tracestate="congo=t61rcWkgMzE"),
    ...        {"accept": "application/json"})
    {'accept': 'application/json', 'traceparent': '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'tracestate': 'congo=t61rcWkgMzE'}
    """
    # TODO (level 1): copy, then set traceparent (and tracestate).
    raise NotImplementedError


class IdGenerator:
    """Trace and span ids drawn from an injected ``random.Random``.

    Same seed, same ids: that is what makes a traced run reproducible. Ids
    are lower-case hex of the right length, and never all zeros (the W3C
    "invalid" id).

    >>> a, b = IdGenerator(random.Random(7)), IdGenerator(random.Random(7))
    >>> a.trace_id() == b.trace_id(), len(a.span_id())
    (True, 16)
    """

    def __init__(self, rng: random.Random):
        self.rng = rng

    def trace_id(self) -> str:
        """32 lower-case hex digits, not all zero."""
        # TODO (level 1): 128 random bits from self.rng, as hex; never all zeros.
        raise NotImplementedError

    def span_id(self) -> str:
        """16 lower-case hex digits, not all zero."""
        # TODO (level 1): 64 random bits from self.rng, as hex; never all zeros.
        raise NotImplementedError


def child_context(parent: TraceContext | None, ids: IdGenerator) -> TraceContext:
    """The context of a new span: a child of ``parent``, or the root of a new trace.

    A child keeps the parent's trace id, ``sampled`` and ``tracestate``, and
    gets a fresh span id of its own. A root (``parent`` None) gets a fresh
    trace id and span id, ``sampled`` True and no tracestate.

    >>> parent = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    >>> child = child_context(parent, IdGenerator(random.Random(1)))
    >>> child.trace_id == parent.trace_id, child.span_id != parent.span_id
    (True, True)
    """
    # TODO (level 1): same trace (and state) for a child; new ids for a root.
    raise NotImplementedError


# -- level 2: spans, the middleware and the client ----------------------------------------


@dataclass
class Span:
    """One unit of work: a service handling a request (``kind="server"``) or calling another (``"client"``).

    Times are virtual seconds. ``status`` is ``"ok"`` or ``"error"``;
    ``http_status`` is None when no answer came back. A client span names the
    service it called in ``peer`` (the target as given to the call).

    >>> span = Span("t1", "a", None, "GET /orders", "orders", start=1.0, end=1.25)
    >>> span.duration
    0.25
    """

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
        """What this span sends to the services it calls (its own id as the parent id)."""
        return TraceContext(self.trace_id, self.span_id, self.sampled, self.tracestate)

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        """An indexed key-value pair: ``annotation.<key>`` queries find it (X-Ray's annotations).

        ``key``: letters, digits and underscores only, else ValueError.
        ``value``: a string, number or boolean only, else TypeError (objects
        belong in metadata).

        >>> span = Span("t1", "a", None, "POST /orders", "orders")
        >>> span.annotate("user_id", "user-123"); span.annotations
        {'user_id': 'user-123'}
        """
        # TODO (level 2): validate key and value, then keep the pair in self.annotations.
        raise NotImplementedError

    def put_metadata(self, key: str, value: Any) -> None:
        """Any value, kept with the span but not indexed: queries never see metadata.

        >>> span = Span("t1", "a", None, "POST /orders", "orders")
        >>> span.put_metadata("cart", {"sku-1": 2}); span.metadata, span.annotations
        ({'cart': {'sku-1': 2}}, {})
        """
        # TODO (level 2): keep it in self.metadata (and nowhere else).
        raise NotImplementedError


# The span whose work is running now. A ContextVar: each asyncio task has its
# own value, so requests handled at the same time never see each other's span.
_CURRENT: ContextVar[Span | None] = ContextVar("current_span", default=None)


def current_span() -> Span | None:
    """The server span of the request being handled here, or None outside a traced request.

    >>> current_span() is None
    True
    """
    return _CURRENT.get()


class Tracer:
    """Starts, ends and keeps the spans of one world.

    ``clock`` is read for every start and end (``world.clock``); ``rng``
    draws every id (``world.rng("tracing")``). Finished spans are appended to
    ``tracer.spans`` in the order they end.

    >>> from harness.clock import Clock
    >>> clock = Clock.manual()
    >>> tracer = Tracer(clock, random.Random(1))
    >>> span = tracer.start_span("GET /users/user-1", "users")
    >>> clock.advance(0.25); tracer.finish(span, http_status=503)
    >>> span.start, span.end, span.status, span.parent_id, tracer.spans == [span]
    (0.0, 0.25, 'error', None, True)
    """

    def __init__(self, clock: SupportsNow, rng: random.Random):
        self.clock = clock
        self.ids = IdGenerator(rng)
        self.spans: list[Span] = []

    def start_span(self, name: str, service: str, *, kind: str = "server",
                   parent: TraceContext | None = None, peer: str | None = None) -> Span:
        """A new span starting now: a child of ``parent`` (``parent_id`` = its span id), or a root.

        The span carries the context it will send on (``tracestate``, ``sampled``).

        >>> from harness.clock import Clock
        >>> tracer = Tracer(Clock.manual(start=2.0), random.Random(1))
        >>> parent = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", tracestate="congo=t61rcWkgMzE")
        >>> span = tracer.start_span("GET /orders", "orders", parent=parent)
        >>> span.trace_id == parent.trace_id, span.parent_id, span.start, span.tracestate
        (True, '00f067aa0ba902b7', 2.0, 'congo=t61rcWkgMzE')
        """
        # TODO (level 2): child_context for the ids; start = self.clock.now().
        raise NotImplementedError

    def finish(self, span: Span, *, http_status: int | None = None, error: bool = False) -> None:
        """End ``span`` now, set ``http_status`` and ``status``, and append it to ``self.spans``.

        ``status`` is ``"error"`` for a 5xx or when ``error`` is True (no
        answer at all: a timeout, a refused connection); a 4xx is ``"ok"``: the
        caller's mistake, not the service's failure (the harness recorder's rule).
        """
        # TODO (level 2): end time from the clock, status, keep the span.
        raise NotImplementedError

    def instrument(self, factory: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Wrap a service factory (``SHOP["orders"]``): a factory whose apps are traced.

        The new factory receives the instance's ``ctx`` and must:

        - replace ``ctx.client`` by a :class:`TracingClient` (``ctx.call`` uses
          ``ctx.client``: this is how the service's outgoing calls get client
          spans and carry the context), once only (an instance that restarts
          without its state runs the factory again on the same ctx);
        - build the app with ``factory(ctx)`` and add :class:`SpanMiddleware`
          (``app.add_middleware(SpanMiddleware, tracer=self, service=ctx.service)``).

        >>> # world.add_service("orders", tracer.instrument(SHOP["orders"]))
        """
        # TODO (level 2): return a factory that wires the client and the middleware.
        raise NotImplementedError

    def client(self, client: Any, service: str | None = None) -> TracingClient:
        """Trace the calls of a caller outside the shop: ``tracer.client(world.client("browser"))``.

        ``service`` names the caller in its spans (default: the client's name).
        """
        return TracingClient(client, self, service or getattr(client, "caller", "client"))


class SpanMiddleware:
    """Pure ASGI middleware: one server span per HTTP request.

    For each ``http`` request (other scopes pass straight through):

    - the parent is ``extract(headers)`` of the request (ASGI gives headers as
      a list of ``(bytes, bytes)`` pairs, names in lower case);
    - the span is named ``"<METHOD> <path>"`` (``"GET /orders"``) and belongs to ``service``;
    - while the app runs, the span is the current one (``_CURRENT.set``, and
      ``_CURRENT.reset`` afterwards, however the app ends);
    - it ends when the app has answered, with the status the app sent in its
      ``http.response.start`` message; an app that raises ends it with 500
      (the server's error handler answers 500) and the error goes on.
    """

    def __init__(self, app: Any, tracer: Tracer, service: str):
        self.app = app
        self.tracer = tracer
        self.service = service

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        # TODO (level 2): start the span, make it current, watch the status
        #   through a wrapped `send`, finish the span however the app ends.
        raise NotImplementedError


class TracingClient:
    """A caller that records a client span per call and sends the trace context along.

    Wraps anything with ``await client.request(method, target, path, **kwargs)``
    (a harness ``Client``, ``ctx.client``). Each call:

    - starts a client span named ``"<METHOD> <target><path>"`` with
      ``peer=target``, whose parent is the current span; outside a traced
      request, the ``traceparent`` in the call's own ``headers`` (if valid);
      else it is the root of a new trace;
    - sends ``inject(span.context, headers)``: the callee's parent is this
      client span;
    - returns the same response, or raises the same error, as the wrapped
      client; the span ends with the response's status, or with
      ``error=True`` when no response came.
    """

    def __init__(self, client: Any, tracer: Tracer, service: str):
        self.client = client
        self.tracer = tracer
        self.service = service

    async def request(self, method: str, target: str, path: str, **kwargs: Any) -> Any:
        """Call through the wrapped client inside a client span; same answer, same errors."""
        # TODO (level 2): start the client span, inject its context into the
        #   headers, call, finish the span (status, or error=True), return/raise.
        raise NotImplementedError

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
    """A span with the spans it caused (``orphan``: its parent is not among the spans)."""

    span: Span
    children: list[TraceNode] = field(default_factory=list)
    orphan: bool = False


def group_traces(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Spans by trace id: traces in order of their earliest start, spans by start.

    Sorting is stable: spans (and traces) that start at the same instant keep
    the order they came in.

    >>> spans = [Span("t2", "c", None, "GET /", "users", start=0.5, end=1.0),
    ...          Span("t1", "b", "a", "GET /", "orders", start=0.2, end=0.4),
    ...          Span("t1", "a", None, "GET /", "gateway", start=0.0, end=1.0)]
    >>> {trace: [s.span_id for s in group] for trace, group in group_traces(spans).items()}
    {'t1': ['a', 'b'], 't2': ['c']}
    """
    # TODO (level 3): group by trace_id, ordered as described.
    raise NotImplementedError


def build_trace(spans: Iterable[Span]) -> list[TraceNode]:
    """The trees of one trace's spans: a list of roots, by start time.

    Each span hangs under the span named by its ``parent_id``; children are
    ordered by start (stable). A span without a parent is a root. A span
    whose parent is *not among the spans* (lost, sampled away, still running)
    is an **orphan**: it heads a tree of its own, with ``orphan=True``, and
    keeps its own children. No span is ever left out.

    >>> spans = [Span("t1", "a", None, "GET /profile", "gateway", start=0.0, end=1.0),
    ...          Span("t1", "b", "a", "GET /users/1", "users", start=0.1, end=0.3),
    ...          Span("t1", "c", "lost", "GET /orders", "orders", start=0.2, end=0.5)]
    >>> [(root.span.span_id, [child.span.span_id for child in root.children], root.orphan)
    ...  for root in build_trace(spans)]
    [('a', ['b'], False), ('c', [], True)]
    """
    # TODO (level 3): index nodes by span id; attach each to its parent or make it a root.
    raise NotImplementedError


def health_colour(error_rate: float | None) -> str:
    """The seed's service-map colours for an error rate (a fraction: 0.02 is 2 %).

    ``"green"`` below 1 %; ``"yellow"`` from 1 % to 5 % with **both ends
    included**; ``"red"`` above 5 %; ``"grey"`` for None (no calls to judge).
    The same rule as ``harness.plots.health_colour``. Mind floating point: an
    error rate worked out as ``1 - 57 / 60`` is 5 %, yet it is
    ``0.050000000000000044``.

    >>> [health_colour(r) for r in (0.0, 0.01, 0.05, 0.06, None)]
    ['green', 'yellow', 'yellow', 'red', 'grey']
    """
    # TODO (level 3): the boundaries above (mind the floating-point noise).
    raise NotImplementedError


def service_map(spans: Iterable[Span]) -> nx.DiGraph:
    """Who called whom, as a ``networkx.DiGraph`` of services.

    Every call counts **once**:

    - a client span is a call from its ``service`` to its ``peer``; it failed
      when its status is ``"error"`` (the caller's view: a timeout or a
      refused connection never reaches the callee);
    - a server span whose parent is not a client span among ``spans`` is a
      call from ``"client"`` (an untraced caller) to its service.

    Each edge has ``calls``, ``errors`` and ``error_rate`` (errors / calls).
    Each node (every service in a span, every peer, and ``"client"`` when
    used) has ``calls`` and ``errors`` of the calls *it received*,
    ``error_rate`` (None when it received none) and ``colour``
    (:func:`health_colour` of its error rate).

    >>> spans = [Span("t1", "a", None, "GET gateway/profile", "browser", kind="client", peer="gateway", end=1.0,
    ...               status="error", http_status=502),
    ...          Span("t1", "b", "a", "GET /profile", "gateway", end=1.0, status="error", http_status=502)]
    >>> graph = service_map(spans)
    >>> graph.edges["browser", "gateway"]["calls"], graph.nodes["gateway"]["colour"], graph.nodes["browser"]["colour"]
    (1, 'red', 'grey')
    """
    # TODO (level 3): count calls once; error rates per edge and per callee; colours.
    raise NotImplementedError


# -- level 4: percentiles and the critical path --------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank ``q``-quantile: the value at rank ceil(q * n) of the sorted values.

    Ranks count from 1. The answer is always one of the values: no averaging
    of two middle values, no interpolation. None for no values; ValueError
    unless 0 < q <= 1.

    >>> latencies = [0.3, 0.1, 0.5, 0.2, 0.4]
    >>> percentile(latencies, 0.5), percentile(latencies, 0.9), percentile(latencies, 0.99)
    (0.3, 0.5, 0.5)
    """
    # TODO (level 4): sort, rank = ceil(q * n), 1-based.
    raise NotImplementedError


def latency_percentiles(spans: Iterable[Span], quantiles: Iterable[float] = (0.5, 0.9, 0.99)
                        ) -> dict[str, dict[str, float]]:
    """Per called service, the latencies its callers saw: ``{"payments": {"p50": ..., "p90": ..., "p99": ...}}``.

    Measured from **client spans**, grouped by ``peer`` (what the harness
    recorder measures too: time in the network and the queue included, and a
    caller that gave up counts the time it waited). Keys are ``"p"`` plus
    ``q * 100`` in ``format(..., "g")`` (0.5 -> "p50", 0.999 -> "p99.9");
    services in alphabetical order.

    >>> spans = [Span("t1", "a", None, "GET users/u", "gateway", kind="client", peer="users", start=0, end=d)
    ...          for d in (0.1, 0.2, 0.3, 0.4, 0.5)]
    >>> latency_percentiles(spans)
    {'users': {'p50': 0.3, 'p90': 0.5, 'p99': 0.5}}
    """
    # TODO (level 4): client spans by peer; percentile of their durations.
    raise NotImplementedError


@dataclass(frozen=True)
class PathSegment:
    """A stretch of the critical path: the span the request was waiting on, from when to when."""

    span_id: str
    start: float
    end: float


def critical_path(spans: Iterable[Span]) -> list[PathSegment]:
    """The critical path of one trace: which span the end-to-end time waited on, when.

    Start at the root (the first span without a parent, by start; if every
    span has one, the first orphan) over its whole time. Inside a span, with
    ``until`` first its end:

    1. clip its children to its own time (a child that outlived a caller who
       gave up counts only up to its parent's end; a child with nothing left
       inside its parent is dropped);
    2. among the children not yet used that end at or before ``until``
       (``<=``: back-to-back siblings stay on the path), take the one that
       ends last (on a tie, the one that started first); the parent owns
       ``child end .. until``; recurse into the child over its clipped time;
       then ``until`` becomes the child's start and repeat;
    3. with no such child left, the parent owns ``start .. until``.

    Return the segments in time order, zero-length ones left out and
    neighbouring segments of the same span merged. They tile the root's time
    exactly: their durations add up to the root's, never more.

    >>> spans = [Span("t1", "root", None, "GET /profile", "gateway", start=0.0, end=1.0),
    ...          Span("t1", "users", "root", "GET /users/1", "users", start=0.0, end=0.25),
    ...          Span("t1", "orders", "root", "GET /orders", "orders", start=0.25, end=0.75)]
    >>> [(s.span_id, s.start, s.end) for s in critical_path(spans)]
    [('users', 0.0, 0.25), ('orders', 0.25, 0.75), ('root', 0.75, 1.0)]
    """
    # TODO (level 4): build the tree, clip, walk back from the root's end.
    raise NotImplementedError


# -- level 5: queries and tail-based sampling ----------------------------------------------


class QueryError(ValueError):
    """A query that cannot be understood. The message is one line saying what and where."""


def parse_query(text: str) -> Callable[[list[Span]], bool]:
    """A query as a predicate on one trace (the list of its spans).

    The language (a subset of X-Ray's filter expressions)::

        query     := or
        or        := and ("OR" and)*
        and       := not ("AND" not)*
        not       := "NOT" not | primary
        primary   := "(" or ")" | 'service("' NAME '")' | field op value
        field     := duration | http.status | annotation.KEY
        op        := = | != | < | <= | > | >=
        value     := number | "string" | true | false

    - ``service("orders")``: the trace went through orders: one of its spans
      belongs to orders, or is a client span calling it (``peer``): a call
      that timed out or was refused left no span of orders itself;
    - ``duration``: the trace's duration in **seconds**, from its earliest
      start to its latest end (numbers only);
    - ``http.status``: some span answered with that status (numbers only);
    - ``annotation.KEY``: some span has that annotation with a matching value
      (typed: ``"123"`` is not ``123``; strings and booleans take only
      ``=``/``!=``). Metadata is never searched.

    AND, OR and NOT may be written in any case. Anything else raises
    :class:`QueryError` at once, with a one-line message that names the
    problem (an unknown field by its name).

    >>> slow_orders = parse_query('service("orders") AND duration > 1')
    >>> slow_orders([Span("t1", "a", None, "GET /orders", "orders", start=0.0, end=1.5)])
    True
    """
    # TODO (level 5): a tokenizer and a recursive-descent parser building predicates.
    raise NotImplementedError


def find_traces(spans: Iterable[Span], query: str) -> list[str]:
    """The ids of the traces that match ``query``, in :func:`group_traces` order.

    A bad query raises QueryError even when there are no spans at all.

    >>> spans = [Span("t1", "a", None, "POST /charges", "payments", end=0.2, status="error", http_status=500),
    ...          Span("t2", "b", None, "POST /charges", "payments", end=0.1, http_status=201)]
    >>> find_traces(spans, "http.status = 500")
    ['t1']
    """
    # TODO (level 5): parse first, then filter the grouped traces.
    raise NotImplementedError


class TailSampler:
    """Tail-based sampling: decide per *trace*, once it had time to finish.

    - ``add(span)``: a span arrives; its arrival time is its ``end``.
    - ``flush(now)``: every trace whose *first* span arrived at or before
      ``now - decision_wait`` is decided, for the whole trace: kept when any
      of its spans has status ``"error"``, or (with ``keep_slower_than``) when
      it lasted longer than that (earliest start to latest end); otherwise
      kept with probability ``rate``, drawn from ``rng``. Returns the spans
      released since the last flush: trace by trace, each in arrival order.
    - A span of a trace decided already follows the decision: released at the
      next flush if the trace was kept, dropped if it was not.

    >>> sampler = TailSampler(rate=0.0, rng=random.Random(1), decision_wait=10)
    >>> sampler.add(Span("t1", "a", None, "GET /", "gateway", end=0.5))
    >>> sampler.add(Span("t2", "b", None, "GET /", "gateway", end=0.5, status="error"))
    >>> sampler.flush(5.0)
    []
    >>> [span.trace_id for span in sampler.flush(10.5)]
    ['t2']
    """

    def __init__(self, rate: float, rng: random.Random, *, decision_wait: float = 10.0,
                 keep_slower_than: float | None = None):
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")
        self.rate = rate
        self.rng = rng
        self.decision_wait = decision_wait
        self.keep_slower_than = keep_slower_than
        # TODO (level 5): what you need: the spans of undecided traces, when
        #   each trace's first span arrived, the decisions made, released spans.

    def add(self, span: Span) -> None:
        """A span arrives (at ``span.end``)."""
        # TODO (level 5): buffer it, or follow its trace's decision.
        raise NotImplementedError

    def flush(self, now: float) -> list[Span]:
        """Decide the traces whose wait is over; return the spans released since the last flush."""
        # TODO (level 5): decide whole traces; errors always kept; the rest at `rate`.
        raise NotImplementedError
