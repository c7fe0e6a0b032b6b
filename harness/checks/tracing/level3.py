"""Level 3: trace trees from flat spans (orphans kept), and the service map."""

from __future__ import annotations

from typing import Any

from .. import Context, level
from .scene import Story, span


def _shape(nodes: Any) -> list:
    """A tree as nested tuples: (span id, orphan?, children)."""
    return [(n.span.span_id, bool(n.orphan), _shape(n.children)) for n in nodes]


def _drawn(shape: list, depth: int = 0) -> str:
    lines = []
    for span_id, orphan, children in shape:
        lines.append(f"\n    {'  ' * depth}{span_id}{' (orphan)' if orphan else ''}")
        lines.append(_drawn(children, depth + 1))
    return "".join(lines)


def _count(shape: list) -> int:
    return sum(1 + _count(children) for _, _, children in shape)


@level(3)
def groups_spans_by_trace_in_start_order(ctx: Context) -> None:
    """group_traces: traces in order of their first start; spans by start, ties in input order."""
    story = Story(ctx)
    m = ctx.module
    spans = [span(m, "c2", "c1", "orders", 3.0, 3.5, trace_id="t3"),
             span(m, "b1", None, "gateway", 1.0, 2.0, trace_id="t2"),
             span(m, "a2", "a1", "users", 0.5, 0.75, trace_id="t1"),
             span(m, "a3", "a1", "orders", 0.5, 0.9, trace_id="t1"),
             span(m, "c1", None, "gateway", 2.5, 4.0, trace_id="t3"),
             span(m, "a1", None, "gateway", 0.0, 1.0, trace_id="t1")]
    story.note("group_traces(6 spans of traces t1, t2, t3, shuffled; a2 and a3 both start at 0.5, a2 listed first)")
    got = {trace: [s.span_id for s in group] for trace, group in m.group_traces(spans).items()}
    expected = {"t1": ["a1", "a2", "a3"], "t2": ["b1"], "t3": ["c1", "c2"]}
    if list(got.items()) != list(expected.items()):
        story.fail(got=repr(got), expected=f"{expected!r} (in that order)",
                   why="traces go by their earliest start and spans by start; a stable sort keeps a2 before a3")


def _random_trace(ctx: Context, size: int) -> list[Any]:
    """A seeded random trace: each span inside a random earlier one."""
    m = ctx.module
    spans = [span(m, "s0", None, "gateway", 0.0, 10.0)]
    for n in range(1, size):
        parent = ctx.rng.choice(spans)
        start = ctx.rng.uniform(parent.start, parent.end)
        spans.append(span(m, f"s{n}", parent.span_id, ctx.rng.choice(["users", "orders", "payments"]),
                          start, ctx.rng.uniform(start, parent.end)))
    return spans


def _expected_shape(spans: list[Any], missing: set[str] = frozenset()) -> list:
    kept = sorted((s for s in spans if s.span_id not in missing), key=lambda s: s.start)
    ids = {s.span_id for s in kept}

    def under(parent_id: str) -> list:
        return [(s.span_id, False, under(s.span_id)) for s in kept if s.parent_id == parent_id]

    return [(s.span_id, s.parent_id is not None, under(s.span_id)) for s in kept
            if s.parent_id is None or s.parent_id not in ids]


@level(3)
def builds_the_tree_of_a_trace(ctx: Context) -> None:
    """build_trace hangs each span under its parent, children by start, from shuffled input."""
    story = Story(ctx)
    spans = _random_trace(ctx, 14)
    shuffled = spans[:]
    ctx.rng.shuffle(shuffled)
    story.note(f"build_trace(a random trace of {len(spans)} spans, shuffled): "
               + ", ".join(f"{s.span_id}<-{s.parent_id}" for s in shuffled))
    got = _shape(ctx.module.build_trace(shuffled))
    expected = _expected_shape(spans)
    if got != expected:
        story.fail(got=f"the tree:{_drawn(got)}", expected=f"the tree:{_drawn(expected)}",
                   why="each span goes under the span whose span_id is its parent_id; children in start order")


@level(3)
def keeps_orphans_as_roots_of_their_own(ctx: Context) -> None:
    """A span whose parent is missing heads its own tree (orphan=True) with its children; none is lost."""
    story = Story(ctx)
    m = ctx.module
    spans = [span(m, "root", None, "gateway", 0.0, 1.0),
             span(m, "users", "root", "users", 0.1, 0.3),
             span(m, "orders", "lost", "orders", 0.2, 0.6),
             span(m, "db", "orders", "orders", 0.3, 0.5)]
    story.note("build_trace([root, users <- root, orders <- lost (not among the spans), db <- orders])")
    got = _shape(m.build_trace(spans))
    expected = [("root", False, [("users", False, [])]), ("orders", True, [("db", False, [])])]
    if got != expected:
        if _count(got) < len(spans):
            why = ("it drops orphans: a span whose parent was lost (sampled away, still running, an untraced "
                   "service) must still be shown, as a root of its own, with its children")
        else:
            why = ("an orphan is a root of its own, flagged orphan=True: not the root's child (its parent is "
                   "unknown), and its children stay under it")
        story.fail(got=f"the trees:{_drawn(got)}", expected=f"the trees:{_drawn(expected)}", why=why)
    spans = _random_trace(ctx, 12)
    lost = {ctx.rng.choice(spans[1:]).span_id, "s0"}
    story.note(f"build_trace(a random trace of 12 spans without {sorted(lost)})")
    got = _shape(m.build_trace([s for s in spans if s.span_id not in lost]))
    expected = _expected_shape(spans, lost)
    if got != expected:
        story.fail(got=f"the trees:{_drawn(got)}", expected=f"the trees:{_drawn(expected)}",
                   why="with the root itself lost, every span whose parent is missing is an orphan root")


# The colours of harness.plots.health_colour (tests/test_tracing_kata.py checks
# that they agree; importing it here would import matplotlib, a second's work).
COLOURS = [(0.0, "green"), (0.005, "green"), (0.0099, "green"), (0.01, "yellow"), (1 / 100, "yellow"),
           (0.02, "yellow"), (0.05, "yellow"), (3 / 60, "yellow"), (0.0501, "red"), (0.06, "red"), (1.0, "red"),
           (None, "grey"), (1 - 99 / 100, "yellow"), (1 - 57 / 60, "yellow")]


@level(3)
def health_colour_agrees_with_the_harness(ctx: Context) -> None:
    """health_colour matches harness.plots.health_colour, boundaries and float noise included."""
    story = Story(ctx)
    for rate, expected in COLOURS:
        got = ctx.module.health_colour(rate)
        story.note(f"health_colour({rate!r}) -> {got!r}")
        if got != expected:
            why = {0.01: "exactly 1 % is yellow: green is *below* 1 %",
                   0.05: "exactly 5 % is yellow: red is *above* 5 %",
                   1 - 57 / 60: "an error rate worked out as 1 - 57/60 (from the successes) is 5 %, but floating "
                                "point gives 0.050000000000000044: round (say to 12 places) before comparing",
                   1 - 99 / 100: "1 - 99/100 is 1 %, but floating point gives 0.010000000000000009: round (say "
                                 "to 12 places) before comparing",
                   None: "no calls, no verdict: grey"}.get(rate)
            story.fail(got=repr(got), expected=f"{expected!r} (as harness.plots.health_colour says)", why=why)


def _profile(m: Any, n: int, *, payments_fails: bool, start: float) -> list[Any]:
    """One traced profile request: browser -> gateway -> users, orders, payments."""
    t = f"p{n}"
    spans = [span(m, f"{t}b", None, "browser", start, start + 0.3, trace_id=t, kind="client", peer="gateway",
                  http_status=200),
             span(m, f"{t}g", f"{t}b", "gateway", start, start + 0.3, trace_id=t, http_status=200)]
    for part in ("users", "orders", "payments"):
        failed = part == "payments" and payments_fails
        status, code = ("error", 503) if failed else ("ok", 200)
        spans.append(span(m, f"{t}{part}c", f"{t}g", "gateway", start, start + 0.2, trace_id=t, kind="client",
                          peer=part, status=status, http_status=code))
        spans.append(span(m, f"{t}{part}s", f"{t}{part}c", part, start, start + 0.2, trace_id=t, status=status,
                          http_status=code))
    return spans


def _checkouts(m: Any, count: int, failed: int) -> list[Any]:
    spans = []
    for n in range(count):
        t = f"k{n}"
        status, code = ("error", 500) if n < failed else ("ok", 201)
        spans.append(span(m, f"{t}c", None, "checkout", 10.0 + n, 10.5 + n, trace_id=t, kind="client",
                          peer="orders", status=status, http_status=code))
        spans.append(span(m, f"{t}s", f"{t}c", "orders", 10.0 + n, 10.5 + n, trace_id=t, status=status,
                          http_status=code))
    return spans


def _edge(graph: Any, caller: str, callee: str) -> dict | None:
    return dict(graph.edges[caller, callee]) if graph.has_edge(caller, callee) else None


@level(3)
def service_map_has_calls_and_error_rates_per_edge_and_service(ctx: Context) -> None:
    """Edges count calls and errors; each service's error rate is over the calls it received."""
    story = Story(ctx)
    m = ctx.module
    spans = []
    for n in range(20):
        spans += _profile(m, n, payments_fails=n in (3, 11), start=float(n) * 0.5)
    spans += _checkouts(m, 80, failed=1)
    ctx.rng.shuffle(spans)
    story.note("service_map(20 profile traces: browser -> gateway -> users, orders, payments, 2 payments "
               "calls failed; 80 checkout -> orders calls, 1 failed)")
    graph = m.service_map(spans)
    edges = {("browser", "gateway"): (20, 0), ("gateway", "users"): (20, 0), ("gateway", "orders"): (20, 0),
             ("gateway", "payments"): (20, 2), ("checkout", "orders"): (80, 1)}
    got_edges = {e: (d.get("calls"), d.get("errors")) for e, d in graph.edges.items()} if graph.edges else {}
    if got_edges != edges:
        counted = sum(calls or 0 for calls, _ in got_edges.values())
        story.fail(got=f"edges (calls, errors): {got_edges}", expected=f"{edges}",
                   why="each call is counted once, from its client span: a server span under a client span is "
                       "the same call seen from the other end" if counted > 160 else None)
    edge = _edge(graph, "gateway", "payments")
    if edge is None or edge.get("error_rate") != 0.1:
        story.fail(got=f"gateway -> payments: {edge}", expected="error_rate 0.1 (2 errors in 20 calls)")
    nodes = {"gateway": (20, 0, 0.0, "green"), "users": (20, 0, 0.0, "green"),
             "orders": (100, 1, 0.01, "yellow"), "payments": (20, 2, 0.1, "red"),
             "browser": (0, 0, None, "grey"), "checkout": (0, 0, None, "grey")}
    for node, (calls, errors, rate, colour) in nodes.items():
        data = dict(graph.nodes[node]) if node in graph else None
        got = None if data is None else (data.get("calls"), data.get("errors"), data.get("error_rate"), data.get("colour"))
        if got != (calls, errors, rate, colour):
            overall = 3 / 160
            story.fail(got=f"node {node}: calls, errors, error_rate, colour = {got}",
                       expected=f"{(calls, errors, rate, colour)}",
                       why="it computes the error rate over all calls instead of per service: each service's "
                           "rate is the errors of the calls *it received* over those calls"
                       if got is not None and got[2] is not None and abs(got[2] - overall) < 1e-9 else
                       "a service that only calls others received no calls: error_rate None, colour grey"
                       if calls == 0 else None)


@level(3)
def service_map_counts_each_call_once(ctx: Context) -> None:
    """A call seen from both ends counts once; calls from untraced callers come from "client"."""
    story = Story(ctx)
    m = ctx.module
    spans = [
        # a traced call: client span + server span, one call
        span(m, "a", None, "orders", 0.0, 1.0, trace_id="t1", kind="client", peer="payments", http_status=201),
        span(m, "b", "a", "payments", 0.0, 1.0, trace_id="t1", http_status=201),
        # a call that timed out: only the caller's span knows
        span(m, "c", None, "orders", 2.0, 3.0, trace_id="t2", kind="client", peer="payments", status="error"),
        # requests from an untraced caller: a root and an orphan server span
        span(m, "d", None, "payments", 4.0, 4.5, trace_id="t3", http_status=200),
        span(m, "e", "gone", "payments", 5.0, 5.5, trace_id="t4", status="error", http_status=500),
    ]
    story.note("service_map([orders -> payments (client + server span), orders -> payments (timed out, client "
               "span only), a root payments span, an orphan payments span with status error])")
    graph = m.service_map(spans)
    got = {e: (d.get("calls"), d.get("errors")) for e, d in graph.edges.items()} if graph.edges else {}
    expected = {("orders", "payments"): (2, 1), ("client", "payments"): (2, 1)}
    if got != expected:
        story.fail(got=f"edges (calls, errors): {got}", expected=f"{expected}",
                   why="each call is counted once: from its client span when there is one (a timeout exists "
                       "only there), else from the server span, as a call from 'client'")
    node = dict(graph.nodes["payments"]) if "payments" in graph else {}
    if (node.get("calls"), node.get("errors"), node.get("error_rate"), node.get("colour")) != (4, 2, 0.5, "red"):
        story.fail(got=f"node payments: {node}", expected="calls 4, errors 2, error_rate 0.5, colour 'red'")
