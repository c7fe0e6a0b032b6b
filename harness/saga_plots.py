"""Saga swimlanes: who called whom, when, in one lane per participant; and the saga-chaos figure.

One horizontal lane per participant (the orchestrator or the customer, each
service, the event bus); time runs left to right. A call is an arrow from
the caller's lane, when it was sent, to the callee's lane, when it was
answered, coloured by outcome like every other plot of the harness;
compensations (refund, release, cancel) are dashed. On a choreography's
bus lane, each event is published (a dot) and delivered to its consumers
(thin arrows); a duplicate delivery is marked with a red ring. Periods when
a fault was switched on are shaded.

>>> from harness import World
>>> from harness.stepfunctions import SEED_FLOW, run_flow
>>> world = World(seed=1)
>>> for name in ("orders", "inventory", "payments", "notifications"):
...     _ = world.add_service(name)
>>> order = {"user_id": "user-1", "items": [{"sku": "sku-1", "qty": 1}], "amount": 20.0}
>>> _ = world.run(run_flow(SEED_FLOW, world.client("step-functions"), order, "exec-1"))
>>> fig = swimlane(world.recorder, title="the seed's flow")
>>> [label.get_text() for label in fig.axes[0].get_yticklabels()]
['step-functions', 'orders', 'inventory', 'payments', 'notifications']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .plots import OUTCOME_COLOURS, state_bands
from .recorder import Recorder

__all__ = ["SHOP_LANES", "saga_chaos_figure", "saga_step", "swimlane", "swimlanes"]

SHOP_LANES = ("orders", "inventory", "payments", "notifications")
COMPENSATION_COLOUR = "#7B3294"
BUS_COLOUR = "#636363"

_STEPS = [
    ("POST", r"^/orders$", "create"),
    ("POST", r"^/orders/[^/]+/confirm$", "confirm"),
    ("POST", r"^/orders/[^/]+/cancel$", "cancel"),
    ("POST", r"^/reservations$", "reserve"),
    ("DELETE", r"^/reservations/[^/]+$", "release"),
    ("POST", r"^/charges$", "charge"),
    ("POST", r"^/refunds$", "refund"),
    ("POST", r"^/notifications$", "notify"),
]
_COMPILED = [(method, re.compile(pattern), step) for method, pattern, step in _STEPS]
COMPENSATIONS = ("refund", "release", "cancel")


def saga_step(method: str, path: str) -> str:
    """The saga step a call is: ``create``, ``reserve``, ``charge``, ... or ``look-up`` for a read.

    >>> saga_step("POST", "/refunds"), saga_step("GET", "/charges")
    ('refund', 'look-up')
    """
    for want, pattern, step in _COMPILED:
        if method == want and pattern.match(path):
            return step
    return "look-up" if method == "GET" else method.lower()


def _lane_of_caller(caller: str) -> str:
    """A consumer calls as its service (``inventory-consumer`` is on inventory's lane); an instance, its service."""
    if caller.endswith("-consumer"):
        return caller[: -len("-consumer")]
    match = re.match(r"^(.*)-\d+$", caller)
    if match and match.group(1) in SHOP_LANES:
        return match.group(1)
    return caller


def _recorder(source: Any) -> Recorder:
    return source if isinstance(source, Recorder) else source.recorder


def swimlane(source: Recorder | Any, *, title: str | None = None, since: float | None = None,
             until: float | None = None, lane_of: Callable[[str], str] | None = None,
             ax: Any = None, labels: bool = True) -> Figure:
    """Draw one saga run (a recorder or a world) as swimlanes; returns the figure."""
    recorder = _recorder(source)
    lane_of = lane_of or _lane_of_caller
    exchanges = recorder.select(since=since, until=until)
    events = [e for e in recorder.events if (since is None or e.t >= since) and (until is None or e.t < until)]
    bus_events = [e for e in events if e.kind in ("publish", "deliver", "duplicate", "nack", "dead-letter")]
    callers = []
    for x in exchanges:
        lane = lane_of(x.caller)
        if lane not in SHOP_LANES and lane not in callers:
            callers.append(lane)
    lanes = callers + [s for s in SHOP_LANES if s in {x.service for x in exchanges} | {lane_of(x.caller) for x in
                                                                                       exchanges}]
    if bus_events:
        lanes.append("bus")
    y = {lane: -i for i, lane in enumerate(lanes)}
    if ax is None:
        fig = Figure(figsize=(10, 0.55 * max(len(lanes), 2) + 1.2))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    times = [x.start for x in exchanges] + [x.end for x in exchanges] + [e.t for e in bus_events]
    left = since if since is not None else min(times, default=0.0)
    right = until if until is not None else max(times, default=1.0)
    span = max(right - left, 1e-3)
    for height in y.values():
        ax.axhline(height, color="#dddddd", linewidth=6, zorder=0, solid_capstyle="butt")
    shown = 0
    for band in state_bands(recorder):
        # A latency switched on for the whole run is the setting, not an incident: not shaded.
        if band.kind != "fault" or band.subject.startswith("latency"):
            continue
        end = band.end if band.end is not None else right
        if end < left or band.start > right:
            continue
        ax.axvspan(max(band.start, left), min(end, right), color="#455a64", alpha=0.10, zorder=0)
        ax.text(max(band.start, left), 0.45 + 0.3 * shown, band.subject, fontsize=7, color="#455a64",
                va="bottom")
        shown += 1
    used: set[str] = set()
    for x in exchanges:
        step = saga_step(x.method, x.path)
        source_lane, target_lane = lane_of(x.caller), x.service
        if source_lane not in y or target_lane not in y:
            continue
        colour = OUTCOME_COLOURS.get(x.outcome, "#333333")
        dashed = step in COMPENSATIONS
        used.add(x.outcome)
        if source_lane == target_lane:  # a consumer working on its own service
            ax.plot([x.start, x.end], [y[source_lane]] * 2, color=colour, linewidth=3, zorder=3)
        else:
            ax.annotate("", xy=(x.end, y[target_lane]), xytext=(x.start, y[source_lane]), zorder=3,
                        arrowprops={"arrowstyle": "->", "color": COMPENSATION_COLOUR if dashed else colour,
                                    "linestyle": "--" if dashed else "-", "linewidth": 1.4,
                                    "shrinkA": 2, "shrinkB": 2})
        if x.status is None:
            ax.plot([x.end], [y[target_lane]], marker="x", color=colour, markersize=8, zorder=4)
        if labels:
            status = x.status if x.status is not None else x.outcome
            ax.text(x.end, y[target_lane] + 0.12, f"{step} {status}", fontsize=7, rotation=35,
                    color=COMPENSATION_COLOUR if dashed else "#222222", zorder=5)
    if bus_events:
        bus_y = y["bus"]
        for event in bus_events:
            if event.kind == "publish":
                ax.plot([event.t], [bus_y], "o", color=BUS_COLOUR, markersize=4, zorder=4)
                publisher = lane_of(str(event.data.get("source") or ""))
                if publisher in y and publisher != "bus":
                    ax.annotate("", xy=(event.t, bus_y), xytext=(event.t, y[publisher]), zorder=2,
                                arrowprops={"arrowstyle": "->", "color": BUS_COLOUR, "linewidth": 0.7,
                                            "linestyle": ":"})
                if labels:
                    ax.text(event.t, bus_y - 0.32, event.subject, fontsize=6.5, rotation=35, color=BUS_COLOUR,
                            ha="right", va="top")
            elif event.kind == "deliver":
                consumer = str(event.data.get("to", "")).split(":")[0]
                if consumer in y:
                    ax.annotate("", xy=(event.t, y[consumer]), xytext=(event.t, bus_y), zorder=2,
                                arrowprops={"arrowstyle": "->", "color": BUS_COLOUR, "linewidth": 0.7,
                                            "alpha": 0.7})
            elif event.kind == "duplicate":
                ax.plot([event.t], [bus_y], "o", markerfacecolor="none", markeredgecolor="#c62828",
                        markersize=9, zorder=5)
    ax.set_yticks(list(y.values()), list(y.keys()))
    ax.set_ylim(min(y.values(), default=0) - (1.7 if bus_events and labels else 0.8), 0.6 + 0.3 * max(shown, 1))
    ax.set_xlim(left - 0.03 * span, right + 0.12 * span)
    ax.set_xlabel("virtual seconds")
    ax.spines[["top", "right", "left"]].set_visible(False)
    handles = [Line2D([], [], color=OUTCOME_COLOURS[o], label=o) for o in OUTCOME_COLOURS if o in used]
    handles.append(Line2D([], [], color=COMPENSATION_COLOUR, linestyle="--", label="compensation"))
    if bus_events:
        handles.append(Line2D([], [], color=BUS_COLOUR, marker="o", linestyle="", label="event published"))
        if any(e.kind == "duplicate" for e in bus_events):
            handles.append(Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor="#c62828",
                                  linestyle="", label="duplicate delivery"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def swimlanes(sources: Sequence[Recorder | Any], titles: Sequence[str], **options: Any) -> Figure:
    """Several runs, one swimlane each, stacked (orchestration above choreography, say)."""
    heights = []
    for source in sources:
        recorder = _recorder(source)
        lanes = {_lane_of_caller(x.caller) for x in recorder.exchanges} | {x.service for x in recorder.exchanges}
        heights.append(0.55 * (len(lanes) + (1 if recorder.events_of("publish") else 0)) + 1.0)
    fig = Figure(figsize=(10, sum(heights) + 0.4))
    axes = fig.subplots(len(sources), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, source, title in zip(axes, sources, titles, strict=True):
        swimlane(source, ax=ax, title=title, **options)
    fig.tight_layout()
    return fig


NOT_PLACED_COLOUR = "#999999"


def tile_label(name: str) -> str:
    """An invariant's name on (at most) two balanced lines, for a tile of the saga-chaos figure.

    >>> tile_label("sagas end in time"), tile_label("no compensation twice"), tile_label("conserved")
    ('sagas end\\nin time', 'no compensation\\ntwice', 'conserved')
    """
    words = name.split()
    if len(words) < 2:
        return name
    splits = [(" ".join(words[:i]), " ".join(words[i:])) for i in range(1, len(words))]
    first, second = min(splits, key=lambda pair: (max(len(pair[0]), len(pair[1])), len(pair[1])))
    return f"{first}\n{second}"


def violations_text(count: int) -> str:
    """What a tile says: ``holds``, or how many violations (not orders: one order can break a rule twice).

    >>> violations_text(0), violations_text(1), violations_text(39)
    ('holds', '1 violation', '39 violations')
    """
    if count == 0:
        return "holds"
    return f"{count} violation{'s' if count != 1 else ''}"


def saga_chaos_figure(result: Any) -> Figure:
    """For ``kata simulate saga-chaos --plot``: how the orders ended, and which invariants broke, per variant.

    Each bar adds up to the orders attempted: confirmed, cancelled, still pending, and not placed (the
    create call failed, so the shop never had the order). A tile counts an invariant's violations, which
    are not orders: "nothing pending" counts each pending order and each reservation still held.
    """
    variants = result.variants
    fig = Figure(figsize=(12, 1.7 + 0.9 * len(variants)))
    ax_end, ax_inv = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
    names = [v.name for v in variants]
    segments = [("confirmed", "confirmed", "#009E73"), ("cancelled", "cancelled", "#56B4E9"),
                ("pending", "still pending", "#D55E00"), ("orders_not_placed", "not placed", NOT_PLACED_COLOUR)]
    left = [0] * len(variants)
    for key, label, colour in segments:
        counts = [v.summary.get(key, 0) for v in variants]
        ax_end.barh(names, counts, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    attempted = [v.summary["orders"] for v in variants]
    for i, (total, orders) in enumerate(zip(left, attempted, strict=True)):
        ax_end.text(total, i, f" {total}" if total == orders else f" {total} of {orders}", va="center",
                    fontsize=8, color="#333333")
    widest = max(left + attempted, default=1) or 1
    ax_end.set_xlim(0, widest * 1.12)  # room for the totals: no bar is clipped
    ax_end.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole orders
    ax_end.invert_yaxis()
    ax_end.set_xlabel(f"orders ({max(attempted, default=0)} attempted)")
    ax_end.spines[["top", "right"]].set_visible(False)
    ax_end.legend(fontsize=7.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=4)
    ax_end.set_title("how the orders ended", loc="left", fontsize=10)
    invariants = list(variants[0].summary["violations"])
    ax_inv.set_xlim(-0.5, len(invariants) - 0.5)
    ax_inv.set_ylim(len(names) - 0.5, -0.5)
    for i, v in enumerate(variants):
        for j, name in enumerate(invariants):
            count = v.summary["violations"][name]
            ax_inv.add_patch(Rectangle((j - 0.48, i - 0.45), 0.96, 0.9,
                                       color="#c8e6c9" if count == 0 else "#ffcdd2"))
            ax_inv.text(j, i, violations_text(count).replace(" ", "\n"), ha="center", va="center", fontsize=7.5,
                        color="#1b5e20" if count == 0 else "#b71c1c")
    ax_inv.set_xticks(range(len(invariants)), [tile_label(name) for name in invariants], fontsize=7.5)
    ax_inv.set_yticks(range(len(names)), [""] * len(names))
    ax_inv.tick_params(length=0)
    ax_inv.spines[:].set_visible(False)
    ax_inv.set_title("invariants (violations found, not orders)", loc="left", fontsize=10)
    fig.suptitle(f"saga-chaos, seed {result.seed}", x=0.01, ha="left", fontsize=11)
    fig.tight_layout()
    return fig
