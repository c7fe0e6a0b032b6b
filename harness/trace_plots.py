"""Plots of traces: a waterfall with its critical path, the service map of spans, percentiles.

The functions take spans (anything with ``trace_id``, ``span_id``,
``parent_id``, ``name``, ``service``, ``kind``, ``start``, ``end`` and
``status``: the tracing kata's ``Span``, yours or the reference) and return a
:class:`matplotlib.figure.Figure`, built without pyplot like
:mod:`harness.plots`, whose colours they share.

>>> from types import SimpleNamespace as S
>>> spans = [S(trace_id="t1", span_id="a", parent_id=None, name="GET /profile", service="gateway",
...            kind="server", start=0.0, end=0.3, status="ok"),
...          S(trace_id="t1", span_id="b", parent_id="a", name="GET /users/1", service="users",
...            kind="server", start=0.1, end=0.2, status="error")]
>>> fig = waterfall(spans, critical=[("a", 0.0, 0.1), ("b", 0.1, 0.2), ("a", 0.2, 0.3)])
>>> [label.get_text() for label in fig.axes[0].get_yticklabels()]
['gateway  GET /profile', '  users  GET /users/1']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .plots import HEALTH_HEX, OUTCOME_COLOURS, _calls, _layered_positions, _legend, _new_figure

__all__ = ["percentile_chart", "span_rows", "spans_service_map", "waterfall"]

STATUS_COLOURS = {"ok": OUTCOME_COLOURS["ok"], "error": OUTCOME_COLOURS["error"]}
CRITICAL_COLOUR = "#111111"
MAX_ROWS = 60  # a waterfall taller than this is unreadable: the rest are counted, not drawn


def _field(segment: Any, name: str, index: int) -> Any:
    return getattr(segment, name) if hasattr(segment, name) else segment[index]


def span_rows(spans: Iterable[Any]) -> list[tuple[Any, int, bool]]:
    """Spans in waterfall order: depth first, children by start; ``(span, depth, orphan)``.

    A span whose parent is not among the spans starts a tree of its own
    (``orphan`` True), so nothing is ever left out.

    >>> from types import SimpleNamespace as S
    >>> rows = span_rows([S(span_id="b", parent_id="a", start=1.0), S(span_id="a", parent_id=None, start=0.0),
    ...                   S(span_id="c", parent_id="lost", start=0.5)])
    >>> [(s.span_id, depth, orphan) for s, depth, orphan in rows]
    [('a', 0, False), ('b', 1, False), ('c', 0, True)]
    """
    ordered = sorted(spans, key=lambda s: s.start)
    ids = {s.span_id for s in ordered}
    children: dict[str, list[Any]] = {}
    for s in ordered:
        if s.parent_id in ids and s.parent_id != s.span_id:
            children.setdefault(s.parent_id, []).append(s)
    rows: list[tuple[Any, int, bool]] = []
    seen: set[str] = set()

    def visit(s: Any, depth: int, orphan: bool) -> None:
        if s.span_id in seen:  # a parent cycle: draw each span once
            return
        seen.add(s.span_id)
        rows.append((s, depth, orphan))
        for child in children.get(s.span_id, []):
            visit(child, depth + 1, False)

    for s in ordered:
        if s.parent_id is None or s.parent_id not in ids:
            visit(s, 0, s.parent_id is not None)
    for s in ordered:  # whatever a cycle kept unreachable
        if s.span_id not in seen:
            visit(s, 0, True)
    return rows


def waterfall(spans: Iterable[Any], *, critical: Sequence[Any] | None = None, title: str | None = None) -> Figure:
    """One trace as a waterfall: a bar per span, nested by parent, coloured by status.

    Client spans (a call, as the caller saw it) are hatched; server spans
    (the callee's own work) are solid. The gap between a client span and the
    server span under it is time the request spent outside the callee's
    code: on the wire, in its queue, in an injected latency. ``critical``
    (segments with ``span_id``, ``start``, ``end``, or such tuples, e.g. the
    kata's ``critical_path``) is drawn as a black line over the bars it
    crosses, and its share of the trace is given in the legend.
    """
    rows = span_rows(spans)
    shown, hidden = rows[:MAX_ROWS], len(rows) - MAX_ROWS
    fig = _new_figure(10, 1.4 + 0.36 * max(len(shown), 1))
    ax = fig.add_subplot()
    if not rows:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no spans", transform=ax.transAxes, ha="center", color="#777777")
        return fig
    first = min(s.start for s, _, _ in rows)
    last = max(s.end for s, _, _ in rows)
    trace_ids = {s.trace_id for s, _, _ in rows}
    name = next(iter(trace_ids)) if len(trace_ids) == 1 else f"{len(trace_ids)} traces"
    ax.set_title(title or f"Trace {str(name)[:8]}: {len(rows)} spans, {last - first:.3g} s", loc="left")
    position = {}
    for row, (s, _, _) in enumerate(shown):
        position[s.span_id] = row
        colour = STATUS_COLOURS.get(s.status, "#999999")
        client = getattr(s, "kind", "server") == "client"
        # A zero-length span (an in-process call with no latency) still gets a sliver.
        width = max(s.end - s.start, (last - first) * 0.003 or 1e-3)
        ax.barh(row, width, left=s.start, height=0.62, color=colour, alpha=0.45 if client else 0.9,
                hatch="///" if client else None, edgecolor=colour, linewidth=0.8,
                gid=f"span:{getattr(s, 'kind', 'server')}:{s.status}")
        ax.text(s.end + (last - first) * 0.01, row, f"{(s.end - s.start) * 1000:.0f} ms", va="center",
                fontsize=7, color="#444444")
    labels = [f"{'  ' * depth}{s.service}  {s.name}{'  (orphan)' if orphan else ''}" for s, depth, orphan in shown]
    labels = [label if len(label) <= 48 else label[:47] + "…" for label in labels]
    ax.set_yticks(range(len(shown)), labels, fontsize=8, fontfamily="monospace")
    # Left-aligned, so that the indentation shows who called whom.
    for tick in ax.get_yticklabels():
        tick.set_horizontalalignment("left")
    ax.tick_params(axis="y", pad=6 + 5.3 * max(len(label) for label in labels), length=0)
    ax.set_ylim(len(shown) - 0.5, -0.7)
    ax.set_xlim(first - (last - first) * 0.01, last + (last - first) * 0.12 + 1e-9)
    ax.set_xlabel("virtual seconds")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    handles: list = [Patch(facecolor=STATUS_COLOURS["ok"], label="server span, ok"),
                     Patch(facecolor=STATUS_COLOURS["ok"], alpha=0.45, hatch="///", edgecolor=STATUS_COLOURS["ok"],
                           label="client span (the call), ok"),
                     Patch(facecolor=STATUS_COLOURS["error"], label="error (5xx or no answer)")]
    if critical:
        covered = 0.0
        for segment in critical:
            span_id = _field(segment, "span_id", 0)
            start, end = _field(segment, "start", 1), _field(segment, "end", 2)
            if span_id in position:
                ax.plot([start, end], [position[span_id]] * 2, color=CRITICAL_COLOUR, linewidth=3.2,
                        solid_capstyle="butt", gid="critical")
            covered += end - start
        total = last - first
        share = f" ({covered / total:.0%} of the trace)" if total > 0 else ""
        handles.append(Line2D([], [], color=CRITICAL_COLOUR, linewidth=3.2, label=f"critical path{share}"))
    if hidden > 0:
        handles.append(Patch(facecolor="none", edgecolor="none", label=f"+ {hidden} more spans not drawn"))
    _legend(ax, handles)
    return fig


def spans_service_map(graph: nx.DiGraph, *, title: str | None = None) -> Figure:
    """Draw a service map built from spans (the kata's ``service_map``), like ``harness.plots.service_map``.

    Nodes need ``colour`` (green / yellow / red / grey) and ``error_rate``;
    edges need ``calls`` and ``error_rate``.

    >>> graph = nx.DiGraph()
    >>> graph.add_node("browser", calls=0, errors=0, error_rate=None, colour="grey")
    >>> graph.add_node("gateway", calls=4, errors=1, error_rate=0.25, colour="red")
    >>> graph.add_edge("browser", "gateway", calls=4, errors=1, error_rate=0.25)
    >>> spans_service_map(graph).axes[0].get_title(loc="left")
    'Service map from spans (2 services, 4 calls)'
    """
    fig = _new_figure(max(6.5, 2.2 * len({x for x, _ in _layered_positions(graph).values()}) + 2.2), 4.6)
    ax = fig.add_subplot()
    total = sum(d.get("calls", 0) for _, _, d in graph.edges(data=True))
    ax.set_title(title or f"Service map from spans ({graph.number_of_nodes()} services, {_calls(total)})", loc="left")
    ax.set_axis_off()
    if not graph:
        ax.text(0.5, 0.5, "no spans", transform=ax.transAxes, ha="center", color="#777777")
        return fig
    pos = _layered_positions(graph)
    nodes = list(graph)
    nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_size=2200, edgecolors="#333333", linewidths=1.0, ax=ax,
                           node_color=[HEALTH_HEX.get(graph.nodes[n].get("colour"), "#cccccc") for n in nodes])
    labels = {n: n if graph.nodes[n].get("error_rate") is None else f"{n}\n{graph.nodes[n]['error_rate']:.1%} err"
              for n in nodes}
    nx.draw_networkx_labels(graph, pos, labels=labels, font_size=8, ax=ax)
    for long in (False, True):
        edges = [(u, v) for u, v in graph.edges if (pos[v][0] - pos[u][0] != 1.0) is long]
        if not edges:
            continue
        bend = "arc3,rad=-0.3" if long else "arc3,rad=0.06"
        nx.draw_networkx_edges(graph, pos, edgelist=edges, arrows=True, arrowstyle="-|>", arrowsize=14,
                               node_size=2200, edge_color="#555555", connectionstyle=bend, ax=ax)
        edge_labels = {e: f"{_calls(graph.edges[e]['calls'])}, {graph.edges[e]['error_rate']:.1%} err" for e in edges}
        nx.draw_networkx_edge_labels(graph, pos, edge_labels=edge_labels, font_size=7, connectionstyle=bend, ax=ax,
                                     bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    _legend(ax, [Patch(facecolor=HEALTH_HEX["green"], edgecolor="#333333", label="healthy: < 1 % errors"),
                 Patch(facecolor=HEALTH_HEX["yellow"], edgecolor="#333333", label="degraded: 1 % to 5 %"),
                 Patch(facecolor=HEALTH_HEX["red"], edgecolor="#333333", label="unhealthy: > 5 % errors"),
                 Patch(facecolor=HEALTH_HEX["grey"], edgecolor="#333333", label="caller only (no calls in)")],
            title="error rate of calls received\n(as their callers saw them)")
    return fig


def percentile_chart(percentiles: Mapping[str, Mapping[str, float | None]], *, title: str | None = None) -> Figure:
    """Grouped bars: a service per group, a bar per quantile (``{"users": {"p50": ..., ...}}``).

    >>> fig = percentile_chart({"users": {"p50": 0.01, "p90": 0.02, "p99": 0.05}})
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['users']
    """
    services = list(percentiles)
    names: list[str] = []
    for values in percentiles.values():
        names += [n for n in values if n not in names]
    fig = _new_figure(max(6.0, 1.3 * len(services) + 2.5), 3.6)
    ax = fig.add_subplot()
    ax.set_title(title or "Latency by service, as callers saw it (nearest rank)", loc="left")
    width = 0.8 / max(len(names), 1)
    shades = ["#9ecae1", "#4292c6", "#08306b", "#041a3d"]
    for i, name in enumerate(names):
        heights = [percentiles[s].get(name) or 0.0 for s in services]
        xs = [n + (i - (len(names) - 1) / 2) * width for n in range(len(services))]
        ax.bar(xs, heights, width=width * 0.95, color=shades[i % len(shades)], label=name, gid=f"quantile:{name}")
    ax.set_xticks(range(len(services)), services)
    ax.set_ylabel("latency (virtual seconds)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    _legend(ax, ax.get_legend_handles_labels()[0])
    return fig
