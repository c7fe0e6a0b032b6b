"""Trace plots: each artist matches the spans it was drawn from (counted by gid, never by colour)."""

from __future__ import annotations

import matplotlib
import pytest

import solutions.tracing as tracing
from harness import SHOP, World
from harness.trace_plots import percentile_chart, span_rows, spans_service_map, waterfall

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def profile_spans() -> list:
    """One traced profile page: 8 spans, payments failing with a 503 before its code runs."""
    with World(seed=3) as world:
        tracer = tracing.Tracer(world.clock, world.rng("tracing"))
        for name in ("gateway", "users", "orders", "payments"):
            world.add_service(name, tracer.instrument(SHOP[name]))
        world.faults.inject({"fault": "latency", "target": "orders", "dist": "constant", "value": 0.25})
        world.faults.inject({"fault": "error", "target": "payments", "status": 503})
        world.run(tracer.client(world.client("browser")).get("gateway", "/profile/user-1"))
        return list(tracer.spans)


def _gids(fig, prefix: str) -> list[str]:
    ax = fig.axes[0]
    return [a.get_gid() for a in ax.patches + ax.lines if (a.get_gid() or "").startswith(prefix)]


def test_waterfall_draws_a_bar_per_span_and_the_critical_path(profile_spans):
    path = tracing.critical_path(profile_spans)
    fig = waterfall(profile_spans, critical=path)
    bars = _gids(fig, "span:")
    assert len(bars) == 7  # payments' 503 came from a fault before its code: no payments server span
    assert bars.count("span:client:error") == 1  # the gateway's call to payments
    assert len(_gids(fig, "critical")) == len(path)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0].startswith("browser") and labels[1].startswith("  gateway")


def test_rows_keep_orphans_and_survive_a_parent_cycle():
    from types import SimpleNamespace as S

    spans = [S(span_id="a", parent_id="b", start=0.0), S(span_id="b", parent_id="a", start=1.0),
             S(span_id="c", parent_id="gone", start=2.0)]
    assert [(s.span_id, depth, orphan) for s, depth, orphan in span_rows(spans)] == [
        ("c", 0, True), ("a", 0, True), ("b", 1, False)]


def test_service_map_and_percentiles_from_spans(profile_spans):
    graph = tracing.service_map(profile_spans)
    fig = spans_service_map(graph)
    assert fig.axes[0].get_title(loc="left") == "Service map from spans (5 services, 4 calls)"
    assert graph.nodes["payments"]["colour"] == "red"
    chart = percentile_chart(tracing.latency_percentiles(profile_spans))
    assert len(_gids(chart, "quantile:")) == 3 * 4  # three quantiles for four called services


def test_an_empty_waterfall_says_so():
    fig = waterfall([])
    assert fig.axes[0].texts[0].get_text() == "no spans"
