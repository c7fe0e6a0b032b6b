"""Plots: each returns a Figure whose artists match what the recorder holds.

One small, seeded world in virtual time is recorded once per test: a latency
fault, an error fault, a crash, a hang left on at the end, and a breaker that
opens twice. Artists carry gids (``band:fault``, ``requests:ok``, …) so the
tests count them instead of guessing from colours.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import matplotlib
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from harness import NetworkError, Recorder, World, quantile
from harness.plots import (
    HEALTH_HEX,
    Band,
    health_colour,
    latency_distribution,
    save,
    service_graph,
    service_map,
    service_of,
    state_bands,
    throughput,
    timeline,
)

matplotlib.use("Agg")

SCHEDULE = [
    {"at": 1, "until": 3, "fault": "latency", "target": "catalog", "dist": "constant", "value": 0.5},
    {"at": 2, "until": 4, "fault": "error", "target": "payments", "status": 503},
    {"at": 5, "until": 6, "fault": "crash", "target": "catalog-2"},
    {"at": 7, "fault": "hang", "target": "payments"},  # still on when the recording stops
]
BREAKER = [(2.5, "open"), (3.5, "half-open"), (3.6, "open"), (4.6, "half-open"), (4.7, "closed")]


async def _fire(world: World, at: float, method: str, target: str, path: str, **kwargs) -> None:
    await asyncio.sleep(at - world.now())
    # A call with no response is recorded as refused/reset/timeout: what the plots show.
    with contextlib.suppress(NetworkError):
        await world.client().request(method, target, path, timeout=1.0, **kwargs)


async def _breaker_script(world: World) -> None:
    # Stands in for a breaker kata: the harness only needs the events.
    for at, state in BREAKER:
        await asyncio.sleep(at - world.now())
        world.recorder.event(world.now(), "breaker", "payments", state=state)


@pytest.fixture
def world():
    world = World(seed=11)
    world.add_service("catalog", instances=2)
    world.add_service("payments")
    world.faults.schedule(SCHEDULE)
    world.spawn(_breaker_script(world))
    calls = [_fire(world, i / 10, "GET", "catalog", "/products") for i in range(80)]
    calls += [_fire(world, i / 4, "POST", "payments", "/charges", json={"order_id": f"o{i}", "amount": 5})
              for i in range(32)]

    async def main():
        await asyncio.gather(*calls)

    world.run(main())
    yield world
    world.close()


def _patches(fig: Figure, prefix: str) -> list:
    return [p for ax in fig.axes for p in ax.patches if str(p.get_gid()).startswith(prefix)]


def _points(fig: Figure, outcome: str) -> int:
    return sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections
               if isinstance(c, PathCollection) and c.get_gid() == f"requests:{outcome}")


# -- state bands ---------------------------------------------------------------------------------


def test_state_bands_follow_fault_crash_and_breaker_events(world):
    bands = state_bands(world.recorder)
    faults = [(b.subject.split(" (")[0], b.start, b.end) for b in bands if b.kind == "fault"]
    assert faults == [
        ("latency on catalog", 1.0, 3.0),
        ("error on payments", 2.0, 4.0),
        ("crash on catalog-2", 5.0, 6.0),
        ("hang on payments", 7.0, None),
    ]
    assert [(b.subject, b.start, b.end) for b in bands if b.kind == "crash"] == [("catalog-2", 5.0, 6.0)]
    assert [(b.start, b.end) for b in bands if b.kind == "breaker-open"] == [(2.5, 3.5), (3.6, 4.6)]
    assert [(b.start, b.end) for b in bands if b.kind == "breaker-half-open"] == [(3.5, 3.6), (4.6, 4.7)]


def test_fault_periods_are_matched_by_key_not_by_description():
    rec = Recorder()
    # The same fault switched on twice: the second "off" closes the second "on".
    rec.event(1.0, "fault-on", "hang on payments", key=1)
    rec.event(2.0, "fault-on", "hang on payments", key=2)
    rec.event(3.0, "fault-off", "hang on payments", key=2)
    rec.event(4.0, "fault-off", "hang on payments", key=1)
    assert [(b.start, b.end) for b in state_bands(rec)] == [(1.0, 4.0), (2.0, 3.0)]


def test_breaker_states_are_normalised_and_repeats_do_not_split_a_band():
    rec = Recorder()
    rec.event(1.0, "breaker", "b", state="OPEN")
    rec.event(2.0, "breaker", "b", state="open")
    rec.event(3.0, "breaker", "b", state="half_open")
    assert state_bands(rec) == [Band("breaker-open", "b", 1.0, 3.0), Band("breaker-half-open", "b", 3.0, None)]


# -- timeline --------------------------------------------------------------------------------------


def test_timeline_draws_one_band_per_period_and_one_point_per_request(world):
    fig = timeline(world.recorder)
    bands = state_bands(world.recorder)
    assert isinstance(fig, Figure)
    assert len(_patches(fig, "band:fault")) == sum(b.kind == "fault" for b in bands) == 4
    assert len(_patches(fig, "band:crash")) == 1
    assert len(_patches(fig, "band:breaker-open")) == 2
    assert len(_patches(fig, "band:breaker-half-open")) == 2
    lanes = [c for c in fig.axes[0].collections if str(c.get_gid()).startswith("lane:")]
    assert sum(len(c.get_paths()) for c in lanes) == len(bands)  # the strip above names each period
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [
        "latency on catalog", "error on payments", "breaker: payments", "crash on catalog-2",
        "down: catalog-2", "hang on payments"]
    outcomes = Counter(x.outcome for x in world.recorder.exchanges)
    assert set(outcomes) >= {"ok", "error", "refused", "timeout"}
    for outcome, count in outcomes.items():
        assert _points(fig, outcome) == count, outcome


def test_timeline_axes_speak_virtual_seconds_and_the_legend_explains_colours(world):
    fig = timeline(world.recorder, title="t")
    strip, main = fig.axes
    assert strip.get_title(loc="left") == "t"
    assert main.get_xlabel() == "request start (virtual seconds)"
    assert main.get_ylabel() == "latency (virtual seconds)"
    labels = [t.get_text() for t in strip.get_legend().get_texts()]
    assert "ok (2xx/3xx)" in labels and "error (5xx)" in labels
    assert {"fault switched on", "instance down (crash)", "breaker open", "breaker half-open"} <= set(labels)
    # Outside the plotting area, to the right: it never covers a point.
    assert strip.get_legend().get_bbox_to_anchor().x0 > strip.get_position().x1 * fig.bbox.width - 1


def test_timeline_filters_services_and_has_a_row_per_service(world):
    fig = timeline(world.recorder, services="payments", bands=False, y="service")
    (ax,) = fig.axes  # no bands: no lane strip
    assert [t.get_text() for t in ax.get_yticklabels()] == ["payments"]
    assert sum(_points(fig, o) for o in ("ok", "error", "timeout", "refused", "reset")) == 32
    assert not _patches(fig, "band:")


def test_timeline_of_an_empty_recorder_and_bad_arguments():
    fig = timeline(Recorder())
    assert "no requests recorded" in [t.get_text() for t in fig.axes[0].texts]
    with pytest.raises(ValueError, match="y must be"):
        timeline(Recorder(), y="instance")
    with pytest.raises(TypeError, match="expected a Recorder"):
        timeline([])


def test_plots_leave_no_pyplot_figures_behind(world):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    for _ in range(3):
        timeline(world.recorder)
        throughput(world.recorder)
        latency_distribution(world.recorder)
        service_map(world.recorder)
    assert plt.get_fignums() == before


# -- throughput ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", [0.5, 1.0, 2.0])
def test_throughput_bars_add_up_to_the_requests(world, bucket):
    fig = throughput(world.recorder, bucket=bucket)
    ax = fig.axes[0]
    for outcome, count in Counter(x.outcome for x in world.recorder.exchanges).items():
        bars = _patches(fig, f"throughput:{outcome}")
        assert sum(p.get_height() * bucket for p in bars) == pytest.approx(count), outcome
    assert ax.get_ylabel() == "requests per virtual second"
    assert "virtual seconds" in ax.get_xlabel()
    assert len(_patches(fig, "band:fault")) == 4


def test_throughput_per_service_and_exact_heights():
    rec = Recorder()
    for t in (0.0, 0.1, 0.9, 1.0, 2.5):
        rec.exchange(t, t, "client", "users", "users-1", "GET", "/", 200)
    rec.exchange(0.2, 0.2, "client", "orders", "orders-1", "GET", "/", 500)
    fig = throughput(rec, service="users", bucket=1.0)
    assert [(p.get_x(), float(p.get_height())) for p in _patches(fig, "throughput:ok")] == [
        (0.0, 3.0), (1.0, 1.0), (2.0, 1.0)]
    assert not _patches(fig, "throughput:error")
    with pytest.raises(ValueError, match="bucket"):
        throughput(rec, bucket=0)


# -- latency distribution ------------------------------------------------------------------------


def test_latency_distribution_marks_nearest_rank_quantiles(world):
    fig = latency_distribution(world.recorder, service="catalog", log=False)
    ax = fig.axes[0]
    latencies = [x.latency for x in world.recorder.select(service="catalog")]
    for q, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
        (line,) = [ln for ln in ax.lines if ln.get_gid() == f"quantile:{name}"]
        assert line.get_xdata()[0] == quantile(latencies, q)
    assert "nearest-rank" in ax.get_legend().get_title().get_text()
    heights = sum(p.get_height() for p in ax.patches)  # stacked: every request once
    assert heights == len(latencies) == 80


def test_latency_distribution_on_a_log_axis_counts_instant_answers_in_the_legend():
    rec = Recorder()
    for latency in (0.0, 0.0, 0.01, 0.1, 1.0):
        rec.exchange(0.0, latency, "client", "users", "users-1", "GET", "/", 200)
    ax = latency_distribution(rec).axes[0]
    assert ax.get_xscale() == "log"
    assert sum(p.get_height() for p in ax.patches if p.get_height()) == 3  # the positive ones
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "+ 2 answered in 0 s (not on a log axis):\n   2 ok (2xx/3xx)" in labels
    assert "p50 = 0.01 s" in labels and "p99 = 1 s" in labels
    assert ax.get_xlabel() == "latency (virtual seconds, log scale)"


# -- service graph and map -----------------------------------------------------------------------


def _shop_calls() -> World:
    world = World(seed=3)
    for name in ("gateway", "users", "orders", "payments"):
        world.add_service(name, instances=2)

    async def main():
        for _ in range(6):
            await world.client().get("gateway", "/profile/user-1")

    world.run(main())
    return world


def test_service_graph_counts_every_recorded_call():
    world = _shop_calls()
    graph = service_graph(world.recorder)
    exchanges = world.recorder.exchanges
    pairs = Counter((service_of(x.caller), x.service) for x in exchanges)
    assert sorted(graph.edges) == sorted(pairs) == [
        ("client", "gateway"), ("gateway", "orders"), ("gateway", "payments"), ("gateway", "users")]
    assert sum(d["calls"] for _, _, d in graph.edges(data=True)) == len(exchanges) == 24
    assert all(graph.edges[pair]["calls"] == n for pair, n in pairs.items())
    assert "gateway-1" not in graph and graph.nodes["client"]["external"]
    world.close()


def test_service_graph_error_rates_and_colours():
    rec = Recorder()
    for i in range(100):  # 5 of 100 fail: exactly 5 %, still yellow
        rec.exchange(0, 0, "orders-2", "payments", "payments-1", "POST", "/charges", 503 if i < 5 else 201)
    for i in range(10):
        rec.exchange(0, 0, "client", "orders", "orders-2", "POST", "/checkout", 504 if i < 1 else 201)
    graph = service_graph(rec)
    edge = graph.edges["orders", "payments"]
    assert (edge["calls"], edge["errors"], edge["error_rate"]) == (100, 5, 0.05)
    assert graph.nodes["payments"]["colour"] == "yellow"
    assert graph.nodes["orders"]["colour"] == "red"  # 1 in 10
    assert graph.nodes["client"]["error_rate"] is None and graph.nodes["client"]["colour"] == "grey"


def test_service_of_strips_instance_numbers_but_prefers_the_recorded_service():
    assert service_of("orders-12") == "orders"
    assert service_of("client") == "client"
    assert service_of("load-gen") == "load-gen"
    assert service_of("orders-canary", {"orders-canary": "orders"}) == "orders"


@pytest.mark.parametrize(("rate", "colour"), [
    (0.0, "green"),
    (0.00999999, "green"),
    (0.01, "yellow"),       # 1 % exactly is yellow
    (0.03, "yellow"),
    (0.05, "yellow"),       # 5 % exactly is yellow
    (3 / 60, "yellow"),     # float noise around 5 % does not tip it over
    (0.0500001, "red"),
    (1.0, "red"),
    (None, "grey"),
])
def test_health_colour_boundaries(rate, colour):
    assert health_colour(rate) == colour


def test_health_colour_refuses_nonsense():
    with pytest.raises(ValueError):
        health_colour(-0.1)


def test_service_map_draws_each_service_in_its_health_colour():
    world = _shop_calls()
    graph = service_graph(world.recorder)
    fig = service_map(world.recorder)
    ax = fig.axes[0]
    (nodes,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(nodes.get_offsets()) == graph.number_of_nodes() == 5
    drawn = {matplotlib.colors.to_hex(c) for c in nodes.get_facecolors()}
    assert drawn == {HEALTH_HEX[graph.nodes[n]["colour"]] for n in graph}
    assert ax.get_title(loc="left") == "Service map (5 services, 24 calls)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "healthy: < 1 % errors" in labels and "unhealthy: > 5 % errors" in labels
    world.close()


def test_save_writes_a_png(tmp_path, world):
    path = save(timeline(world.recorder), tmp_path / "plots" / "timeline.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_distribution_with_a_fixed_axis_keeps_every_request():
    rec = Recorder()
    for latency in (0.0005, 0.01, 0.1, 1.0, 30.0):  # two of them outside the axis
        rec.exchange(0.0, latency, "client", "users", "users-1", "GET", "/", 200)
    ax = latency_distribution(rec, xlim=(0.001, 10.0)).axes[0]
    assert ax.get_xlim() == pytest.approx((0.001, 10.0))
    assert sum(p.get_height() for p in ax.patches) == 5  # the outliers sit in the end bins
    with pytest.raises(ValueError, match="xlim"):
        latency_distribution(rec, xlim=(0.0, 1.0))  # log axis: low must be > 0
