"""Plots of what a world recorded: timelines, throughput, latency, the service map.

Every function takes the :class:`~harness.recorder.Recorder` of a world (a
:class:`~harness.world.World` is accepted too) and returns a
:class:`matplotlib.figure.Figure`. Nothing here touches pyplot's global state:
figures are built directly, so a loop that draws a thousand of them leaks
none, and they work under the headless ``Agg`` backend. In a notebook with
``%matplotlib inline`` a returned figure shows itself; elsewhere, :func:`save` it.

>>> from harness import World
>>> world = World(seed=7)
>>> _ = world.add_service("catalog", instances=2)
>>> _ = world.run(world.client().get("catalog", "/products"))
>>> fig = timeline(world.recorder)
>>> fig.axes[-1].get_xlabel()
'request start (virtual seconds)'

Colours mean the same thing in every plot: an *outcome* colour per request
(see :data:`OUTCOME_COLOURS`) and a *state band* per period when something
was wrong (see :func:`state_bands`).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import networkx as nx
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .recorder import QUANTILE_METHOD, Exchange, Recorder, quantile

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "BAND_STYLES",
    "HEALTH_THRESHOLDS",
    "OUTCOMES",
    "OUTCOME_COLOURS",
    "Band",
    "health_colour",
    "latency_distribution",
    "save",
    "service_graph",
    "service_map",
    "service_of",
    "state_bands",
    "throughput",
    "timeline",
]

# -- shared vocabulary -----------------------------------------------------------------

OUTCOMES = ("ok", "client-error", "error", "timeout", "refused", "reset")

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
OUTCOME_COLOURS = {
    "ok": "#009E73",
    "client-error": "#56B4E9",
    "error": "#D55E00",
    "timeout": "#E69F00",
    "refused": "#000000",
    "reset": "#CC79A7",
}
OUTCOME_LABELS = {
    "ok": "ok (2xx/3xx)",
    "client-error": "client error (4xx)",
    "error": "error (5xx)",
    "timeout": "timeout (caller gave up)",
    "refused": "refused (no connection)",
    "reset": "reset (crashed mid-request)",
}

# How each kind of state band is drawn: shaded behind the requests, and as a bar
# in its own lane above them so overlapping periods stay readable.
BAND_STYLES: dict[str, dict[str, Any]] = {
    "fault": {"color": "#8073ac", "alpha": 0.18, "hatch": None, "label": "fault switched on"},
    "crash": {"color": "#404040", "alpha": 0.16, "hatch": "///", "label": "instance down (crash)"},
    "breaker-open": {"color": "#d62728", "alpha": 0.18, "hatch": None, "label": "breaker open"},
    "breaker-half-open": {"color": "#ffbf00", "alpha": 0.30, "hatch": None, "label": "breaker half-open"},
}

# The seed's service-map colours (X-Ray): green < 1 %, yellow 1-5 %, red > 5 %.
HEALTH_THRESHOLDS = (0.01, 0.05)
HEALTH_HEX = {"green": "#4daf4a", "yellow": "#ffd92f", "red": "#e41a1c", "grey": "#cccccc"}

VIRTUAL_SECONDS = "virtual seconds"


def _recorder(source: Recorder | Any) -> Recorder:
    """Accept a Recorder or anything with one (a World)."""
    recorder = getattr(source, "recorder", source)
    if not isinstance(recorder, Recorder):
        raise TypeError(f"expected a Recorder (world.recorder), got {type(source).__name__}")
    return recorder


def _select(recorder: Recorder, services: str | Iterable[str] | None) -> list[Exchange]:
    if services is None:
        return list(recorder.exchanges)
    wanted = {services} if isinstance(services, str) else set(services)
    return [x for x in recorder.exchanges if x.service in wanted]


def _horizon(recorder: Recorder) -> float:
    """The last virtual instant the recording knows about (where open bands end)."""
    ends = [x.end for x in recorder.exchanges] + [e.t for e in recorder.events]
    return max(ends, default=0.0)


def _fmt_seconds(value: float) -> str:
    return f"{value:.3g} s"


# -- state bands -------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """A period when something was wrong: a fault on, an instance down, a breaker not closed.

    ``end`` is None when the period had not ended when the recording stopped.
    """

    kind: str  # fault | crash | breaker-open | breaker-half-open
    subject: str  # the fault's description, the instance address, the breaker name
    start: float
    end: float | None

    @property
    def lane(self) -> str:
        """A short label for the band's lane: ``latency on catalog``, ``down: payments-2``."""
        if self.kind == "fault":
            return self.subject.split(" (", 1)[0]
        if self.kind == "crash":
            return f"down: {self.subject}"
        return f"breaker: {self.subject}"


def _breaker_state(value: Any) -> str:
    return str(value).strip().lower().replace("_", "-").replace(" ", "-")


def state_bands(recorder: Recorder) -> list[Band]:
    """The periods of the recording when a fault, a crash or a breaker was on.

    - faults: a ``fault-on`` event to the ``fault-off`` with the same ``data["key"]``;
    - crashes: a ``crash`` event to the next ``restart`` of the same instance;
    - breakers: events of kind ``breaker`` (subject = breaker name,
      ``data["state"]`` = closed / open / half-open): one band per open or
      half-open stretch, ended by the next state change of that breaker.

    >>> from harness import Recorder
    >>> rec = Recorder()
    >>> _ = rec.event(1.0, "breaker", "payments", state="open")
    >>> _ = rec.event(4.0, "breaker", "payments", state="half-open")
    >>> _ = rec.event(4.5, "breaker", "payments", state="closed")
    >>> [(b.kind, b.start, b.end) for b in state_bands(rec)]
    [('breaker-open', 1.0, 4.0), ('breaker-half-open', 4.0, 4.5)]
    """
    recorder = _recorder(recorder)
    bands: list[Band] = []
    faults_on: dict[Any, tuple[float, str]] = {}
    down_since: dict[str, float] = {}
    breakers: dict[str, tuple[str, float]] = {}  # name -> (state, since)
    for event in recorder.events:
        kind = event.kind
        if kind == "fault-on":
            faults_on[event.data.get("key", event.subject)] = (event.t, event.subject)
        elif kind == "fault-off":
            opened = faults_on.pop(event.data.get("key", event.subject), None)
            if opened is not None:
                bands.append(Band("fault", opened[1], opened[0], event.t))
        elif kind == "crash":
            down_since.setdefault(event.subject, event.t)
        elif kind == "restart":
            since = down_since.pop(event.subject, None)
            if since is not None:
                bands.append(Band("crash", event.subject, since, event.t))
        elif kind == "breaker":
            state = _breaker_state(event.data.get("state", ""))
            previous = breakers.get(event.subject)
            if previous is not None and previous[0] == state:
                continue  # a repeated report of the same state does not split the band
            if previous is not None and previous[0] in ("open", "half-open"):
                bands.append(Band(f"breaker-{previous[0]}", event.subject, previous[1], event.t))
            breakers[event.subject] = (state, event.t)
    for start, subject in faults_on.values():
        bands.append(Band("fault", subject, start, None))
    for subject, start in down_since.items():
        bands.append(Band("crash", subject, start, None))
    for subject, (state, start) in breakers.items():
        if state in ("open", "half-open"):
            bands.append(Band(f"breaker-{state}", subject, start, None))
    kinds = list(BAND_STYLES)
    bands.sort(key=lambda b: (b.start, kinds.index(b.kind), b.subject))
    return bands


def _shade(ax: Axes, bands: Sequence[Band], horizon: float) -> None:
    """Shade each band across the whole height of ``ax`` (gid ``band:<kind>``)."""
    for band in bands:
        style = BAND_STYLES[band.kind]
        end = band.end if band.end is not None else horizon
        ax.axvspan(band.start, end, facecolor=style["color"], alpha=style["alpha"],
                   hatch=style["hatch"], edgecolor=style["color"] if style["hatch"] else "none",
                   linewidth=0, zorder=0, gid=f"band:{band.kind}")


def _lanes(ax: Axes, bands: Sequence[Band], horizon: float) -> None:
    """One row per band subject, with a bar per period (gid ``lane:<kind>``)."""
    order: list[str] = []
    for band in bands:
        if band.lane not in order:
            order.append(band.lane)
    for band in bands:
        style = BAND_STYLES[band.kind]
        row = order.index(band.lane)
        end = band.end if band.end is not None else horizon
        # A zero-length period (switched on and off at one instant) still gets a sliver.
        width = max(end - band.start, horizon * 0.002)
        ax.broken_barh([(band.start, width)], (row - 0.35, 0.7), facecolors=style["color"],
                       alpha=min(1.0, style["alpha"] * 3.5), hatch=style["hatch"],
                       edgecolor="white", gid=f"lane:{band.kind}")
    ax.set_yticks(range(len(order)), [_clip(label, 34) for label in order], fontsize=8)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.tick_params(axis="x", labelbottom=False)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _legend(ax: Axes, handles: list, title: str | None = None) -> None:
    """Legend outside the plotting area, on the right, so it never covers data."""
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                  fontsize=8, title=title, title_fontsize=8, frameon=False)


def _outcome_handles(present: Iterable[str], marker: bool = True) -> list:
    present = set(present)
    handles = []
    for outcome in OUTCOMES:
        if outcome not in present:
            continue
        colour = OUTCOME_COLOURS[outcome]
        if marker:
            handles.append(Line2D([], [], linestyle="", marker="o", markersize=6, color=colour,
                                  label=OUTCOME_LABELS[outcome]))
        else:
            handles.append(Patch(facecolor=colour, label=OUTCOME_LABELS[outcome]))
    return handles


def _band_handles(bands: Iterable[Band]) -> list:
    kinds = {b.kind for b in bands}
    return [
        Patch(facecolor=style["color"], alpha=min(1.0, style["alpha"] * 2.5), hatch=style["hatch"],
              edgecolor="white", label=style["label"])
        for kind, style in BAND_STYLES.items() if kind in kinds
    ]


def _new_figure(width: float, height: float) -> Figure:
    # A bare Figure, not plt.figure(): pyplot would keep a reference to every
    # figure until someone closes it, which a slider re-drawing 100 times never does.
    return Figure(figsize=(width, height), layout="constrained")


# -- timeline ------------------------------------------------------------------------------


def timeline(
    recorder: Recorder,
    *,
    services: str | Iterable[str] | None = None,
    title: str | None = None,
    bands: bool = True,
    y: Literal["latency", "service"] = "latency",
    log: bool = False,
) -> Figure:
    """Every request as a point at its start time, coloured by outcome, over state bands.

    ``y="latency"`` puts slow requests high; ``y="service"`` gives one row per
    service (within a row, higher means slower). ``services`` keeps only the
    requests *to* those services; the state bands always show the whole
    world. With bands, a strip above the plot names each fault, crashed
    instance and breaker in its own lane.

    >>> from harness import Recorder
    >>> rec = Recorder()
    >>> _ = rec.exchange(0.0, 0.2, "client", "users", "users-1", "GET", "/users/1", 200)
    >>> fig = timeline(rec, title="one request")
    >>> fig.axes[0].get_title(loc="left")
    'one request'
    """
    recorder = _recorder(recorder)
    if y not in ("latency", "service"):
        raise ValueError(f"y must be 'latency' or 'service', got {y!r}")
    xs = _select(recorder, services)
    periods = state_bands(recorder) if bands else []
    horizon = _horizon(recorder)
    lanes = len({b.lane for b in periods})

    if lanes:
        fig = _new_figure(10, 4.2 + 0.22 * lanes)
        strip, ax = fig.subplots(2, 1, sharex=True, height_ratios=[0.5 + 0.22 * lanes, 4])
        _lanes(strip, periods, horizon)
        strip.set_title(title or _default_title("Requests over virtual time", services), loc="left")
    else:
        fig = _new_figure(10, 4.2)
        ax = fig.add_subplot()
        ax.set_title(title or _default_title("Requests over virtual time", services), loc="left")
    _shade(ax, periods, horizon)

    by_outcome: dict[str, list[Exchange]] = defaultdict(list)
    for x in xs:
        by_outcome[x.outcome].append(x)
    if y == "latency":
        for outcome in OUTCOMES:
            group = by_outcome.get(outcome)
            if group:
                ax.scatter([x.start for x in group], [x.latency for x in group], s=10, alpha=0.75,
                           color=OUTCOME_COLOURS[outcome], linewidths=0, zorder=2, gid=f"requests:{outcome}")
        ax.set_ylabel(f"latency ({VIRTUAL_SECONDS})")
        if log:
            # symlog, not log: a request answered in 0 s (no latency fault) must still show.
            ax.set_yscale("symlog", linthresh=1e-3)
        else:
            # A little room below 0 so that instant answers (refused calls) are not cut in half.
            top = max((x.latency for x in xs), default=1.0) or 1.0
            ax.set_ylim(-0.03 * top, top * 1.05)
    else:
        rows = sorted({x.service for x in xs})
        slowest = {s: max((x.latency for x in xs if x.service == s), default=0.0) for s in rows}
        for outcome in OUTCOMES:
            group = by_outcome.get(outcome)
            if group:
                # Offset within the row by relative latency: deterministic, and it means something.
                ys = [rows.index(x.service) + (x.latency / slowest[x.service] - 0.5) * 0.7
                      if slowest[x.service] > 0 else rows.index(x.service) for x in group]
                ax.scatter([x.start for x in group], ys, s=10, alpha=0.75, color=OUTCOME_COLOURS[outcome],
                           linewidths=0, zorder=2, gid=f"requests:{outcome}")
        ax.set_yticks(range(len(rows)), rows)
        if rows:
            ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_ylabel("service (higher in a row = slower)")
    ax.set_xlabel(f"request start ({VIRTUAL_SECONDS})")
    ax.set_xlim(left=min([0.0] + [x.start for x in xs]), right=horizon * 1.01 if horizon > 0 else 1.0)
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    if not xs:
        ax.text(0.5, 0.5, "no requests recorded", transform=ax.transAxes, ha="center", color="#777777")
    _legend(ax if not lanes else strip, _outcome_handles(by_outcome) + _band_handles(periods),
            title=f"{len(xs)} requests")
    return fig


def _default_title(what: str, services: str | Iterable[str] | None) -> str:
    if services is None:
        return what
    names = [services] if isinstance(services, str) else list(services)
    return f"{what}: {', '.join(names)}"


# -- throughput ------------------------------------------------------------------------------


def throughput(
    recorder: Recorder,
    *,
    service: str | None = None,
    bucket: float = 1.0,
    bands: bool = True,
    title: str | None = None,
) -> Figure:
    """Requests per virtual second, stacked by outcome, in buckets of ``bucket`` seconds.

    A request counts in the bucket where it *started*. Bar heights are
    ``count / bucket``, so the area of the bars is the number of requests.

    >>> from harness import Recorder
    >>> rec = Recorder()
    >>> for t in (0.1, 0.2, 1.5):
    ...     _ = rec.exchange(t, t, "client", "users", "users-1", "GET", "/", 200)
    >>> ax = throughput(rec).axes[0]
    >>> [float(p.get_height()) for p in ax.patches if p.get_gid() == "throughput:ok"]
    [2.0, 1.0]
    """
    recorder = _recorder(recorder)
    if not bucket > 0:
        raise ValueError(f"bucket must be > 0 virtual seconds, got {bucket!r}")
    xs = _select(recorder, service)
    fig = _new_figure(10, 3.8)
    ax = fig.add_subplot()
    periods = state_bands(recorder) if bands else []
    _shade(ax, periods, _horizon(recorder))
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for x in xs:
        counts[x.outcome][math.floor(x.start / bucket)] += 1
    slots = sorted({slot for c in counts.values() for slot in c})
    bottom = dict.fromkeys(slots, 0.0)
    for outcome in OUTCOMES:
        if outcome not in counts:
            continue
        heights = [counts[outcome][slot] / bucket for slot in slots]
        lefts = [slot * bucket for slot in slots]
        ax.bar(lefts, heights, width=bucket, align="edge", bottom=[bottom[s] for s in slots],
               color=OUTCOME_COLOURS[outcome], edgecolor="white", linewidth=0.3, zorder=2,
               gid=f"throughput:{outcome}")
        for slot, height in zip(slots, heights, strict=True):
            bottom[slot] += height
    # Bars made of zero-height pieces would clutter the artist list; drop them.
    for patch in list(ax.patches):
        if str(patch.get_gid()).startswith("throughput:") and patch.get_height() == 0:
            patch.remove()
    ax.set_xlabel(f"virtual time ({VIRTUAL_SECONDS}; bucket = {bucket:g} s)")
    ax.set_ylabel("requests per virtual second")
    ax.set_title(title or _default_title("Throughput by outcome", service), loc="left")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if not xs:
        ax.text(0.5, 0.5, "no requests recorded", transform=ax.transAxes, ha="center", color="#777777")
    _legend(ax, _outcome_handles(counts, marker=False) + _band_handles(periods), title=f"{len(xs)} requests")
    return fig


# -- latency distribution -------------------------------------------------------------------

QUANTILES = ((0.50, "p50", "-"), (0.90, "p90", "--"), (0.99, "p99", ":"))


def latency_distribution(
    recorder: Recorder,
    *,
    service: str | None = None,
    log: bool = True,
    bins: int = 40,
    xlim: tuple[float, float] | None = None,
    title: str | None = None,
) -> Figure:
    """A histogram of latencies, stacked by outcome, with p50/p90/p99 marked.

    Quantiles are **nearest-rank** (:func:`harness.recorder.quantile`), over
    every request shown, the same numbers as ``recorder.metrics()``. With
    ``log`` the latency axis is logarithmic (tails are the interesting part);
    requests answered in exactly 0 s cannot sit on a log axis, so they are
    counted in the legend instead.

    ``xlim`` fixes the latency axis (and the bins) to ``(low, high)`` virtual
    seconds, so that figures from a slider can be compared by eye; latencies
    outside it are counted in the first or last bin.

    >>> from harness import Recorder
    >>> rec = Recorder()
    >>> for i in range(1, 11):
    ...     _ = rec.exchange(0.0, i / 10, "client", "users", "users-1", "GET", "/", 200)
    >>> fig = latency_distribution(rec)
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['p50 = 0.5 s', 'p90 = 0.9 s', 'p99 = 1 s']
    """
    recorder = _recorder(recorder)
    xs = _select(recorder, service)
    fig = _new_figure(9, 3.8)
    ax = fig.add_subplot()
    ax.set_title(title or _default_title("Latency distribution", service), loc="left")
    ax.set_ylabel("requests")
    latencies = [x.latency for x in xs]
    if not xs:
        ax.text(0.5, 0.5, "no requests recorded", transform=ax.transAxes, ha="center", color="#777777")
        ax.set_xlabel(f"latency ({VIRTUAL_SECONDS})")
        return fig

    positive = [v for v in latencies if v > 0]
    instant = len(latencies) - len(positive)
    # A log axis needs positive values and only helps when they span a range.
    if xlim is not None:
        low, high = float(xlim[0]), float(xlim[1])
        if not high > low or (log and low <= 0):
            raise ValueError(f"xlim must be (low, high) with low < high (and low > 0 on a log axis), got {xlim!r}")
        use_log = log
    else:
        # A log axis needs positive values and only helps when they span a range.
        use_log = log and len(positive) > 0 and max(positive) > min(positive) * 1.5
        low, high = (min(positive), max(positive)) if use_log else (min(latencies), max(latencies))
        if high == low:
            high = low + 1e-3
    if use_log:
        edges = [low * (high / low) ** (i / bins) for i in range(bins + 1)]
        shown = positive
        ax.set_xscale("log")
    else:
        edges = [low + (high - low) * i / bins for i in range(bins + 1)]
        shown = latencies
    edges[-1] = high * (1 + 1e-9)  # the maximum belongs inside the last bin

    def binned(value: float) -> float:
        return min(max(value, low), high) if xlim is not None else value

    groups = [(o, [binned(x.latency) for x in xs if x.outcome == o and (not use_log or x.latency > 0)])
              for o in OUTCOMES]
    groups = [(o, vals) for o, vals in groups if vals]
    if groups:
        ax.hist([vals for _, vals in groups], bins=edges, stacked=True,
                color=[OUTCOME_COLOURS[o] for o, _ in groups], edgecolor="white", linewidth=0.3,
                label=[OUTCOME_LABELS[o] for o, _ in groups])
    if xlim is not None:
        ax.set_xlim(low, high)

    handles: list = _outcome_handles([o for o, _ in groups], marker=False)
    for q, name, style in QUANTILES:
        value = quantile(latencies, q)
        if value is None:
            continue
        label = f"{name} = {value:.3g} s"
        if use_log and value <= 0:
            # Cannot be drawn on a log axis; still named in the legend.
            handles.append(Line2D([], [], color="black", linestyle=style, label=label + " (not drawn)"))
            continue
        handles.append(ax.axvline(value, color="black", linestyle=style, linewidth=1.2, label=label,
                                  gid=f"quantile:{name}"))
    if use_log and instant:
        # Say what they were: 0 s refusals and 0 s successes mean very different things.
        kinds = Counter(x.outcome for x in xs if x.latency <= 0)
        what = ", ".join(f"{kinds[o]} {OUTCOME_LABELS[o]}" for o in OUTCOMES if kinds[o])
        handles.append(Patch(facecolor="none", edgecolor="none",
                             label=f"+ {instant} answered in 0 s (not on a log axis):\n   {what}"))
    scale = ", log scale" if use_log else ""
    ax.set_xlabel(f"latency ({VIRTUAL_SECONDS}{scale})")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    _legend(ax, handles, title=f"{len(shown) + (instant if use_log else 0)} requests; "
                              f"quantiles: {QUANTILE_METHOD}")
    return fig


# -- the service map --------------------------------------------------------------------------

_INSTANCE_SUFFIX = re.compile(r"-\d+$")


def service_of(caller: str, instances: dict[str, str] | None = None) -> str:
    """The service a caller belongs to: ``orders-2`` -> ``orders``; ``client`` stays ``client``.

    ``instances`` (address -> service, as recorded) wins over the naming rule,
    so an instance with an unusual address (``orders-canary``) maps correctly.

    >>> service_of("orders-2"), service_of("client"), service_of("orders-canary", {"orders-canary": "orders"})
    ('orders', 'client', 'orders')
    """
    if instances and caller in instances:
        return instances[caller]
    return _INSTANCE_SUFFIX.sub("", caller)


def health_colour(error_rate: float | None) -> str:
    """The seed's service-map colour for an error rate (a fraction, 0.02 = 2 %).

    ``green`` below 1 %; ``yellow`` from 1 % to 5 %, **both ends included**
    (exactly 1 % and exactly 5 % are yellow); ``red`` above 5 %; ``grey``
    when there is no traffic to judge (None).

    >>> [health_colour(r) for r in (0.0, 0.0099, 0.01, 0.05, 0.0501, None)]
    ['green', 'green', 'yellow', 'yellow', 'red', 'grey']
    """
    if error_rate is None:
        return "grey"
    if error_rate < 0 or math.isnan(error_rate):
        raise ValueError(f"error rate must be a fraction >= 0, got {error_rate!r}")
    # Rounded so that float noise (1 - 57/60 = 0.050000000000000044)
    # does not push a rate that *is* 5 % over the boundary.
    rate = round(error_rate, 12)
    low, high = HEALTH_THRESHOLDS
    if rate < low:
        return "green"
    if rate <= high:
        return "yellow"
    return "red"


def service_graph(recorder: Recorder) -> nx.DiGraph:
    """Who called whom: a directed graph of services built from the recorded requests.

    Nodes are services; a caller that is an instance (``orders-2``) counts as
    its service (``orders``), external callers (``client``) are nodes of their
    own. Each edge caller -> callee has ``calls``, ``errors`` and
    ``error_rate`` (errors are 5xx or no response, as in the recorder). Each
    node has the same three for the calls it *received* (``error_rate`` None
    when it received none), and ``colour`` from :func:`health_colour`.

    >>> from harness import Recorder
    >>> rec = Recorder()
    >>> _ = rec.exchange(0, 0, "client", "orders", "orders-1", "POST", "/checkout", 201)
    >>> _ = rec.exchange(0, 0, "orders-1", "payments", "payments-1", "POST", "/charges", 503)
    >>> g = service_graph(rec)
    >>> sorted(g.edges), g.edges["orders", "payments"]["error_rate"], g.nodes["payments"]["colour"]
    ([('client', 'orders'), ('orders', 'payments')], 1.0, 'red')
    """
    recorder = _recorder(recorder)
    instances = {x.instance: x.service for x in recorder.exchanges if x.instance}
    graph = nx.DiGraph()
    for x in recorder.exchanges:
        caller = service_of(x.caller, instances)
        for node in (caller, x.service):
            if node not in graph:
                graph.add_node(node, calls=0, errors=0)
        if graph.has_edge(caller, x.service):
            edge = graph.edges[caller, x.service]
        else:
            graph.add_edge(caller, x.service, calls=0, errors=0)
            edge = graph.edges[caller, x.service]
        edge["calls"] += 1
        graph.nodes[x.service]["calls"] += 1
        if x.failed:
            edge["errors"] += 1
            graph.nodes[x.service]["errors"] += 1
    for _, _, edge in graph.edges(data=True):
        edge["error_rate"] = edge["errors"] / edge["calls"]
    for _, node in graph.nodes(data=True):
        node["error_rate"] = node["errors"] / node["calls"] if node["calls"] else None
        node["colour"] = health_colour(node["error_rate"])
        node["external"] = node["calls"] == 0
    return graph


def _layered_positions(graph: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Callers on the left, callees to the right: a column per call depth."""
    depth: dict[str, int] = {}
    try:
        for node in nx.topological_sort(graph):
            preds = list(graph.predecessors(node))
            depth[node] = 1 + max(depth[p] for p in preds) if preds else 0
    except nx.NetworkXUnfeasible:  # a cycle: fall back to distance from the external callers
        sources = [n for n in graph if graph.in_degree(n) == 0] or sorted(graph)[:1]
        lengths = nx.multi_source_dijkstra_path_length(graph, sources)
        depth = {n: int(lengths.get(n, 0)) for n in graph}
    columns: dict[int, list[str]] = defaultdict(list)
    for node in sorted(graph, key=lambda n: (depth[n], n)):
        columns[depth[node]].append(node)
    positions: dict[str, tuple[float, float]] = {}
    for col in sorted(columns):
        nodes = columns[col]

        def barycentre(node: str) -> tuple[float, str]:
            # Sit each node near the callers already placed: fewer crossing arrows.
            ys = [positions[p][1] for p in graph.predecessors(node) if p in positions]
            return (-sum(ys) / len(ys) if ys else 0.0, node)

        nodes.sort(key=barycentre)
        for row, node in enumerate(nodes):
            positions[node] = (float(col), (len(nodes) - 1) / 2 - row)
    return positions


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"


def service_map(recorder: Recorder, *, title: str | None = None) -> Figure:
    """The service graph drawn left to right, nodes coloured by the errors they returned.

    Edge labels give calls and error rate; node colours follow
    :func:`health_colour` (the seed's X-Ray thresholds).

    >>> from harness import Recorder
    >>> rec = Recorder()
    >>> _ = rec.exchange(0, 0, "client", "users", "users-1", "GET", "/users/1", 200)
    >>> fig = service_map(rec)
    >>> fig.axes[0].get_title(loc="left")
    'Service map (2 services, 1 call)'
    """
    recorder = _recorder(recorder)
    graph = service_graph(recorder)
    columns = len({x for x, _ in _layered_positions(graph).values()}) if graph else 1
    fig = _new_figure(max(6.5, 2.2 * columns + 2.2), 4.6)
    ax = fig.add_subplot()
    total = sum(d["calls"] for _, _, d in graph.edges(data=True))
    ax.set_title(title or f"Service map ({graph.number_of_nodes()} services, {_calls(total)})", loc="left")
    ax.set_axis_off()
    if not graph:
        ax.text(0.5, 0.5, "no requests recorded", transform=ax.transAxes, ha="center", color="#777777")
        return fig
    pos = _layered_positions(graph)
    nodes = list(graph)
    colours = [HEALTH_HEX[graph.nodes[n]["colour"]] for n in nodes]
    nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_color=colours, node_size=2200,
                           edgecolors="#333333", linewidths=1.0, ax=ax)
    node_labels = {}
    for n in nodes:
        rate = graph.nodes[n]["error_rate"]
        node_labels[n] = n if rate is None else f"{n}\n{rate:.1%} err"
    nx.draw_networkx_labels(graph, pos, labels=node_labels, font_size=8, ax=ax)
    # An arrow that skips a column would run straight through the nodes in
    # between: bend those further than the arrows between neighbouring columns.
    for long in (False, True):
        edges = [(u, v) for u, v in graph.edges if (pos[v][0] - pos[u][0] != 1.0) is long]
        if not edges:
            continue
        bend = "arc3,rad=-0.3" if long else "arc3,rad=0.06"
        widths = [0.8 + math.log10(1 + graph.edges[e]["calls"]) for e in edges]
        nx.draw_networkx_edges(graph, pos, edgelist=edges, width=widths, arrows=True, arrowstyle="-|>",
                               arrowsize=14, node_size=2200, edge_color="#555555", connectionstyle=bend, ax=ax)
        labels = {e: f"{_calls(graph.edges[e]['calls'])}, {graph.edges[e]['error_rate']:.1%} err" for e in edges}
        nx.draw_networkx_edge_labels(graph, pos, edge_labels=labels, font_size=7, label_pos=0.5,
                                     connectionstyle=bend, ax=ax,
                                     bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    handles = [
        Patch(facecolor=HEALTH_HEX["green"], edgecolor="#333333", label="healthy: < 1 % errors"),
        Patch(facecolor=HEALTH_HEX["yellow"], edgecolor="#333333", label="degraded: 1 % to 5 %\n(both ends included)"),
        Patch(facecolor=HEALTH_HEX["red"], edgecolor="#333333", label="unhealthy: > 5 % errors"),
        Patch(facecolor=HEALTH_HEX["grey"], edgecolor="#333333", label="caller only (no calls in)"),
    ]
    _legend(ax, handles, title="error rate of calls received\n(5xx or no response)")
    return fig


# -- saving --------------------------------------------------------------------------------------


def save(fig: Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Write a figure to ``path`` (format from the suffix: .png, .svg, .pdf); returns the path.

    >>> # save(timeline(world.recorder), "/tmp/cascade.png")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
