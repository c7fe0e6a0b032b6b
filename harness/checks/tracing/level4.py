"""Level 4: nearest-rank percentiles per service, and the critical path of a trace."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from .. import Context, level
from .scene import Story, span

FIVE = [0.3, 0.1, 0.5, 0.2, 0.4]


def _interpolated(values: list[float], q: float) -> float:
    """numpy's default ("linear") percentile: what the check must *not* get."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _why_percentile(values: list[float], q: float, got: Any) -> str | None:
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        return None
    ordered = sorted(values)
    expected = ordered[max(1, math.ceil(q * len(ordered))) - 1]
    mean = sum(values) / len(values)
    if math.isclose(got, mean) and not math.isclose(expected, mean):
        return "it averages the values: a percentile is a rank, not a mean"
    if q == 0.5 and len(ordered) % 2 == 0 and math.isclose(got, (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2):
        return ("it averages the two middle values (the textbook median, statistics.median; numpy's interpolation "
                "gives the same here): nearest rank takes one value, at rank ceil(q * n)")
    if got not in values and math.isclose(got, _interpolated(values, q)):
        return ("it interpolates between neighbours (numpy's default): nearest rank returns a latency that was "
                "measured, sorted(values)[ceil(q * n) - 1]")
    if got in values:
        return "the rank is off: ceil(q * n), counted from 1 (so index ceil(q * n) - 1)"
    return "nearest rank returns one of the values, never a number computed from several"


def _expect_percentile(story: Story, module: Any, values: list[float], q: float, expected: float) -> None:
    got = module.percentile(list(values), q)
    story.note(f"percentile({values}, {q}) -> {got!r}")
    if got != expected:
        story.fail(got=repr(got), expected=f"{expected!r} (nearest rank: rank ceil({q} x {len(values)}) = "
                                           f"{max(1, math.ceil(q * len(values)))})",
                   why=_why_percentile(values, q, got))


@level(4)
def nearest_rank_on_five_values(ctx: Context) -> None:
    """percentile on 5 values: p50 is the 3rd smallest, p90 and p99 the largest (nearest rank)."""
    story = Story(ctx)
    for q, expected in ((0.5, 0.3), (0.9, 0.5), (0.99, 0.5), (0.2, 0.1), (0.4, 0.2), (0.41, 0.3), (0.8, 0.4),
                        (1.0, 0.5)):
        _expect_percentile(story, ctx.module, FIVE, q, expected)


@level(4)
def never_averages(ctx: Context) -> None:
    """The answer is always one of the values: no mean, no middle average, no interpolation."""
    story = Story(ctx)
    _expect_percentile(story, ctx.module, [1.0, 2.0, 3.0, 10.0], 0.5, 2.0)
    _expect_percentile(story, ctx.module, [1.0, 2.0, 3.0, 4.0, 10.0], 0.5, 3.0)
    _expect_percentile(story, ctx.module, [0.12], 0.99, 0.12)
    got = ctx.module.percentile([], 0.5)
    story.note(f"percentile([], 0.5) -> {got!r}")
    if got is not None:
        story.fail(got=repr(got), expected="None: no values, no percentile")
    for q in (0, 1.5, -0.1):
        try:
            ctx.module.percentile(FIVE, q)
        except ValueError:
            story.note(f"percentile(..., {q}) -> ValueError")
            continue
        story.fail(got=f"percentile(..., {q}) returned", expected="ValueError: q must be in (0, 1]")


@level(4)
def agrees_with_the_harness_recorder(ctx: Context) -> None:
    """On seeded random latencies, percentile equals harness.recorder.quantile (both nearest rank)."""
    from harness.recorder import quantile

    story = Story(ctx)
    for _ in range(40):
        values = [round(ctx.rng.lognormvariate(-2, 1), 6) for _ in range(ctx.rng.randint(1, 250))]
        for q in (0.5, 0.9, 0.99, 0.999, 0.01, 1.0):
            got, expected = ctx.module.percentile(values, q), quantile(values, q)
            if got != expected:
                story.note(f"percentile(<{len(values)} seeded latencies>, {q}) -> {got!r}")
                story.fail(got=repr(got), expected=f"{expected!r}, as harness.recorder.quantile",
                           why=_why_percentile(values, q, got))


@level(4)
def latency_percentiles_per_called_service(ctx: Context) -> None:
    """latency_percentiles: per peer of the client spans (the callers' view), p50/p90/p99 by nearest rank."""
    story = Story(ctx)
    m = ctx.module
    spans = []
    for n, d in enumerate(FIVE):
        spans.append(span(m, f"u{n}", None, "gateway", 1.0, 1.0 + d, kind="client", peer="users"))
        spans.append(span(m, f"us{n}", f"u{n}", "users", 1.0, 1.0 + d / 2))  # the server's view: not counted
    for n, d in enumerate([1.0, 2.0, 3.0, 4.0, 10.0, 0.5, 0.25]):
        spans.append(span(m, f"p{n}", None, "orders", 0.0, d, kind="client", peer="payments"))
    story.note("latency_percentiles(5 client spans gateway -> users of 0.3, 0.1, 0.5, 0.2, 0.4 s (+ the users "
               "server spans, half as long), 7 client spans orders -> payments of 1, 2, 3, 4, 10, 0.5, 0.25 s)")
    got = m.latency_percentiles(spans)
    users = {"p50": 1.0 + 0.3 - 1.0, "p90": 1.0 + 0.5 - 1.0, "p99": 1.0 + 0.5 - 1.0}
    expected = {"payments": {"p50": 2.0, "p90": 10.0, "p99": 10.0}, "users": users}
    if got != expected:
        why = None
        p50 = got.get("users", {}).get("p50") if isinstance(got, dict) and isinstance(got.get("users"), dict) else None
        if isinstance(p50, float) and math.isclose(p50, 0.15):
            why = "it measures server spans: use the client spans, grouped by peer (the callers' view)"
        story.fail(got=repr(got), expected=repr(expected), why=why)
    got = m.latency_percentiles(spans, (0.5, 0.999))
    if set(got.get("users", {})) != {"p50", "p99.9"}:
        story.fail(got=repr(got), expected="keys 'p50' and 'p99.9' for quantiles (0.5, 0.999): 'p' + format(q * 100, 'g')")


# -- the critical path ------------------------------------------------------------------------


def _reference_path(spans: list[Any]) -> list[tuple[str, float, float]]:
    """The checks' own critical path (iterative; same rules as the kata's docstring)."""
    by_id = {s.span_id: s for s in spans}
    children = defaultdict(list)
    for s in sorted(spans, key=lambda s: s.start):
        if s.parent_id in by_id and s.parent_id != s.span_id:
            children[s.parent_id].append(s)
    root = min((s for s in spans if s.parent_id is None), key=lambda s: s.start)

    def inside(s: Any, low: float, high: float) -> list[tuple[Any, float, float]]:
        clipped = [(c, max(c.start, low), min(c.end, high)) for c in children[s.span_id]]
        return [c for c in clipped if c[1] < c[2]]

    backwards = []
    stack = [[root, root.start, root.end, inside(root, root.start, root.end)]]
    while stack:
        frame = stack[-1]
        node, low, until, left = frame
        ready = [c for c in left if c[2] <= until]
        if not ready:
            backwards.append((node.span_id, low, until))
            stack.pop()
            continue
        best = max(ready, key=lambda c: (c[2], -c[1]))
        backwards.append((node.span_id, best[2], until))
        frame[2], frame[3] = best[1], [c for c in left if c is not best]
        stack.append([best[0], best[1], best[2], inside(best[0], best[1], best[2])])
    path: list[tuple[str, float, float]] = []
    for span_id, start, end in reversed(backwards):
        if end <= start:
            continue
        if path and path[-1][0] == span_id and path[-1][2] == start:
            path[-1] = (span_id, path[-1][1], end)
        else:
            path.append((span_id, start, end))
    return path


def _path(story: Story, module: Any, spans: list[Any], label: str) -> list[tuple[str, float, float]]:
    story.note(f"critical_path({label})")
    return [(s.span_id, s.start, s.end) for s in module.critical_path(spans)]


def _why_path(got: list, expected: list, spans: list[Any]) -> str | None:
    root = next(s for s in spans if s.parent_id is None)
    total = sum(end - start for _, start, end in got)
    if total > root.end - root.start + 1e-9:
        return ("the segments add up to more than the trace lasted: parallel children overlap, and only the one "
                "that ends last is waited on. Never add up every child: walk back from the end")
    if any(start < root.start or end > root.end for _, start, end in got):
        return "a segment lies outside the root's time: clip every child to its parent before walking"
    return None


def _expect_path(story: Story, got: list, expected: list, spans: list[Any], why: str | None = None) -> None:
    if got != expected:
        story.fail(got=repr(got), expected=repr(expected), why=_why_path(got, expected, spans) or why)


@level(4)
def critical_path_of_sequential_calls(ctx: Context) -> None:
    """Back-to-back calls are both on the path; the parent owns the gaps."""
    story = Story(ctx)
    m = ctx.module
    spans = [span(m, "root", None, "gateway", 0.0, 1.0), span(m, "users", "root", "users", 0.0, 0.25),
             span(m, "orders", "root", "orders", 0.25, 0.75)]
    got = _path(story, m, spans, "root 0..1; users 0..0.25; orders 0.25..0.75 (sequential, back to back)")
    _expect_path(story, got, [("users", 0.0, 0.25), ("orders", 0.25, 0.75), ("root", 0.75, 1.0)], spans,
                 why="back-to-back siblings stay on the path: a child that ends exactly when the next one starts "
                     "counts (<=, not <), or its time is wrongly given to the parent")
    spans = [span(m, "root", None, "gateway", 0.0, 10.0), span(m, "a", "root", "users", 1.0, 4.0),
             span(m, "a1", "a", "users", 2.0, 3.0), span(m, "b", "root", "orders", 5.0, 9.0)]
    got = _path(story, m, spans, "root 0..10; a 1..4 with a1 2..3 inside; b 5..9")
    _expect_path(story, got, [("root", 0.0, 1.0), ("a", 1.0, 2.0), ("a1", 2.0, 3.0), ("a", 3.0, 4.0),
                              ("root", 4.0, 5.0), ("b", 5.0, 9.0), ("root", 9.0, 10.0)], spans,
                 why="recurse into each chosen child: its own children are on the path too; the parent owns "
                     "the gaps between them")


@level(4)
def critical_path_takes_the_last_of_parallel_calls(ctx: Context) -> None:
    """Of children running in parallel, only the one that ends last is on the path."""
    story = Story(ctx)
    m = ctx.module
    spans = [span(m, "root", None, "gateway", 0.0, 10.0), span(m, "users", "root", "users", 0.0, 3.0),
             span(m, "payments", "root", "payments", 0.0, 8.0), span(m, "orders", "root", "orders", 1.0, 5.0)]
    got = _path(story, m, spans, "root 0..10; users 0..3, payments 0..8, orders 1..5 (in parallel)")
    _expect_path(story, got, [("payments", 0.0, 8.0), ("root", 8.0, 10.0)], spans,
                 why="users and orders finished while payments was still running: nobody waited for them")


@level(4)
def critical_path_clips_children_to_their_parent(ctx: Context) -> None:
    """A child that outlives its parent (the caller gave up) counts only within its parent's time."""
    story = Story(ctx)
    m = ctx.module
    spans = [span(m, "call", None, "orders", 0.0, 1.0, kind="client", peer="payments", status="error"),
             span(m, "work", "call", "payments", 0.0, 3.0)]
    got = _path(story, m, spans, "client span 0..1 (gave up at its 1 s timeout); the callee's span 0..3")
    _expect_path(story, got, [("work", 0.0, 1.0)], spans,
                 why="unclipped children: the callee's span is clipped to its parent's end (1 s) before "
                     "choosing, and then it is what the caller waited on")
    spans = [span(m, "root", None, "gateway", 1.0, 2.0), span(m, "early", "root", "users", 0.5, 1.5),
             span(m, "late", "root", "users", 2.5, 3.0)]
    got = _path(story, m, spans, "root 1..2; a child 0.5..1.5 (starts before its parent); a child 2.5..3 (after it)")
    _expect_path(story, got, [("early", 1.0, 1.5), ("root", 1.5, 2.0)], spans,
                 why="unclipped children: clip a child's start to its parent's start too, and drop a child "
                     "with nothing left inside its parent")


def _random_spans(ctx: Context, size: int) -> list[Any]:
    m = ctx.module
    spans = [span(m, "s0", None, "gateway", 0.0, 10.0)]
    for n in range(1, size):
        parent = ctx.rng.choice(spans)
        siblings = [s for s in spans if s.parent_id == parent.span_id]
        start = ctx.rng.uniform(parent.start, parent.end)
        if siblings and ctx.rng.random() < 0.3:
            touching = ctx.rng.choice(siblings).end  # back to back with a sibling
            if parent.start <= touching < parent.end and all(s.start != touching for s in siblings):
                start = touching
        end = start + ctx.rng.uniform(0.0, (parent.end - parent.start) * 0.8 + 0.5)  # may overflow the parent
        spans.append(span(m, f"s{n}", parent.span_id, ctx.rng.choice(["users", "orders", "payments"]), start, end))
    return spans


@level(4)
def critical_path_of_random_traces(ctx: Context) -> None:
    """On seeded random traces, the path matches the rules and tiles the root's time exactly."""
    story = Story(ctx)
    for n in range(30):
        spans = _random_spans(ctx, ctx.rng.randint(2, 14))
        shuffled = spans[:]
        ctx.rng.shuffle(shuffled)
        story.steps = [f"random trace {n + 1}: " + "; ".join(
            f"{s.span_id}<-{s.parent_id} {s.start:.3f}..{s.end:.3f}" for s in spans)]
        got = _path(story, ctx.module, shuffled, "that trace, shuffled")
        expected = _reference_path(spans)
        _expect_path(story, got, expected, spans)
        covered = sum(end - start for _, start, end in got)
        if not math.isclose(covered, 10.0, abs_tol=1e-9):
            story.fail(got=f"segments covering {covered:g} s", expected="segments covering the root's 10 s exactly")
