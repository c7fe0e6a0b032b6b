"""Figures of the composition scenarios (``fanout``, ``fanout-cache``, ``slow-backend``) for chapter 03.

Each function takes a :class:`~harness.scenarios.base.ScenarioResult` (or
plain numbers) and returns a matplotlib Figure, built without pyplot (see
:mod:`harness.plots`).

>>> from harness.scenarios import run_scenario
>>> fig = waterfall(run_scenario("fanout", seed=1, requests=1))
>>> [ax.get_title(loc="left") for ax in fig.axes][:1]
['client-sequential: 370 ms']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .base import ScenarioResult

__all__ = ["cache_figure", "saving_curve", "slow_backend_figure", "waterfall"]

SERVICE_COLOURS = {"users": "#0072B2", "orders": "#E69F00", "payments": "#009E73", "gateway": "#999999",
                   "bff": "#999999", "catalog": "#CC79A7"}
CACHE_COLOURS = {"hit": "#009E73", "joined": "#56B4E9", "miss": "#E69F00", "off": "#999999",
                 "stale": "#CC79A7", "partial": "#F0E442", "error": "#D55E00", "timeout": "#000000"}
VARIANT_COLOURS = ("#999999", "#E69F00", "#0072B2", "#009E73")


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def waterfall(result: ScenarioResult) -> Figure:
    """The calls of the first page view of each ``fanout`` variant, as bars on a time axis."""
    rows = len(result.variants)
    fig = _figure(8, 1.35 * rows + 0.5)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    horizon = 0.0
    for ax, variant in zip(axes, result.variants, strict=True):
        xs = variant.world.recorder.exchanges
        top = [x for x in xs if x.caller == "browser"]
        if not top:
            continue
        if top[0].service == "gateway":  # the gateway's call, and the calls it made meanwhile
            page = [x for x in xs if top[0].start <= x.start and x.end <= top[0].end]
        else:  # the browser calls the three services itself
            page = top[:3]
        first_start, page_end = min(x.start for x in page), max(x.end for x in page)
        order = ("gateway", "users", "orders", "payments")
        page.sort(key=lambda x: (x.service != "gateway", round(x.start, 9),
                                 order.index(x.service) if x.service in order else 9))
        for row, x in enumerate(page):
            ax.barh(row, (x.end - x.start) * 1000, left=(x.start - first_start) * 1000, height=0.6,
                    color=SERVICE_COLOURS.get(x.service, "#777777"))
            ax.text((x.end - first_start) * 1000 + 4, row, f"{x.service} {(x.end - x.start) * 1000:g} ms",
                    va="center", fontsize=8)
        ax.set_yticks([])
        ax.invert_yaxis()
        took = (page_end - first_start) * 1000
        horizon = max(horizon, took)
        ax.set_title(f"{variant.name}: {took:g} ms", loc="left", fontsize=10)
    axes[-1].set_xlim(0, horizon * 1.3)
    axes[-1].set_xlabel("virtual ms since the page view started")
    return fig


def cache_figure(result: ScenarioResult) -> Figure:
    """``fanout-cache``: backend calls per variant, and what the page views got."""
    fig = _figure(10, 0.7 * len(result.variants) + 1.6)
    calls_ax, views_ax = fig.subplots(1, 2)
    names = [v.name for v in result.variants]
    calls = [v.summary["backend_calls"] for v in result.variants]
    bars = calls_ax.barh(names, calls, color=VARIANT_COLOURS[: len(names)])
    calls_ax.bar_label(bars, labels=[f"{c}  (saved {v.summary['backend_calls_saved_percent']:g} %)"
                                     for c, v in zip(calls, result.variants, strict=True)], padding=3, fontsize=8)
    calls_ax.set_xlim(0, max(calls) * 1.6 if max(calls) else 1)
    calls_ax.invert_yaxis()
    calls_ax.set_xlabel("backend calls (users + orders + payments)")
    calls_ax.set_title("what the backends paid", loc="left", fontsize=10)
    kinds = [k for k in CACHE_COLOURS if any(k in v.summary["x_cache"] for v in result.variants)]
    for i, variant in enumerate(result.variants):
        total = sum(variant.summary["x_cache"].values()) or 1
        left = 0.0
        for kind in kinds:
            share = 100 * variant.summary["x_cache"].get(kind, 0) / total
            views_ax.barh(i, share, left=left, color=CACHE_COLOURS[kind], height=0.6)
            left += share
    views_ax.set_yticks(range(len(names)), [""] * len(names))
    views_ax.invert_yaxis()
    views_ax.set_xlim(0, 100)
    views_ax.set_xlabel("% of page views")
    views_ax.set_title("what the customers got", loc="left", fontsize=10)
    labels = {"off": "composed (no cache)", "joined": "joined (coalesced)"}
    fig.legend(handles=[Patch(color=CACHE_COLOURS[k], label=labels.get(k, k)) for k in kinds], fontsize=8,
               loc="outside lower center", ncol=len(kinds), frameon=False)
    return fig


def slow_backend_figure(result: ScenarioResult) -> Figure:
    """``slow-backend``: each page view's latency over time, one colour per variant."""
    fig = _figure(9, 3.6)
    ax = fig.add_subplot()
    for colour, variant in zip(VARIANT_COLOURS[1:] + VARIANT_COLOURS[:1], result.variants, strict=False):
        views = variant.world.recorder.select(caller="customer")
        ax.scatter([x.start for x in views], [x.latency * 1000 for x in views], s=6, color=colour,
                   label=variant.name, alpha=0.7)
    for band in _slowdowns(result):
        ax.axvspan(*band, color="#8073ac", alpha=0.15, label="orders takes 3 s")
    ax.set_yscale("log")
    ticks = [100, 200, 500, 1000, 2000, 5000]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_ylabel("page latency (virtual ms, log)")
    ax.set_xlabel("page view start (virtual seconds)")
    ax.legend(fontsize=8, loc="upper right", markerscale=2)
    ax.set_title(f"slow-backend, seed {result.seed}: the page waits for its slowest part, unless it has a deadline",
                 loc="left", fontsize=10)
    return fig


def _slowdowns(result: ScenarioResult) -> list[tuple[float, float]]:
    events = result.variants[0].world.recorder.events_of("fault-on")
    ends = {e.data.get("key"): e.t for e in result.variants[0].world.recorder.events_of("fault-off")}
    spans = []
    for event in events:
        if event.subject.startswith("latency on orders") and event.t > 0:  # not the usual 150 ms
            spans.append((event.t, ends.get(event.data.get("key"), result.virtual_seconds)))
    return spans[:1]


def saving_curve(points: Sequence[dict[str, Any]], *, ttl: float) -> Figure:
    """Backend calls saved vs views of one page per TTL: simulated points over lambda*T / (1 + lambda*T)."""
    fig = _figure(7, 3.4)
    ax = fig.add_subplot()
    xs = [0.05 * 1.1**i for i in range(105)]  # 0.05 to about 1000 views per TTL
    ax.plot(xs, [100 * x / (1 + x) for x in xs], color="#555555", label="expected: λT / (1 + λT)")
    ax.scatter([p["views_per_ttl"] for p in points], [p["saved_percent"] for p in points], color="#0072B2",
               zorder=3, label="simulated (fanout-cache, coalescing)")
    for i, p in enumerate(sorted(points, key=lambda p: p["views_per_ttl"])):
        # Alternate below-right and above-left, so that labels of close points do not overlap.
        ax.annotate(p.get("label", ""), (p["views_per_ttl"], p["saved_percent"]), textcoords="offset points",
                    xytext=(6, -12) if i % 2 == 0 else (-6, 7), ha="left" if i % 2 == 0 else "right", fontsize=7)
    ax.axhline(95, color="#D55E00", linestyle="--", linewidth=1, label="the seed's 95 %")
    ax.axvline(19, color="#D55E00", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(0.05, max(xs))
    ax.set_ylim(0, 100)
    ax.set_xlabel(f"views of one page per TTL (λT, TTL = {ttl:g} s)")
    ax.set_ylabel("backend calls saved (%)")
    ax.legend(fontsize=8, loc="lower right")
    return fig
