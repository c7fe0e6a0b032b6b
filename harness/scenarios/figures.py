"""Figures for ``kata simulate --plot`` and the chapters: one glance per scenario.

>>> from harness.scenarios import run_scenario
>>> fig = scenario_figure(run_scenario("fanout", seed=1, requests=3))
>>> len(fig.axes)
1
"""

from __future__ import annotations

from matplotlib.figure import Figure

from ..recorder import Recorder
from .base import ScenarioResult

__all__ = ["availability_axes", "scenario_figure"]

OK_COLOUR = "#2e7d32"
FAIL_COLOUR = "#c62828"
QUEUED_COLOUR = "#f9a825"


def availability_axes(ax, recorder: Recorder, *, caller: str = "customer", bucket: float = 1.0,
                      title: str = "") -> None:
    """Stacked answers per virtual second seen by ``caller``: ok, queued (202), failed.

    Shades outages and open breakers from the recorder's events.
    """
    from ..plots import state_bands

    xs = recorder.select(caller=caller)
    horizon = max((x.start for x in xs), default=0.0) + bucket
    n = int(horizon // bucket) + 1
    ok, queued, failed = [0] * n, [0] * n, [0] * n
    for x in xs:
        i = int(x.start // bucket)
        if x.failed:
            failed[i] += 1
        elif x.status == 202:
            queued[i] += 1
        else:
            ok[i] += 1
    t = [i * bucket for i in range(n)]
    ax.stackplot(t, ok, queued, failed, colors=[OK_COLOUR, QUEUED_COLOUR, FAIL_COLOUR], step="post",
                 labels=["answered", "202 payment queued (fallback)", "failed (5xx, timeout)"], alpha=0.85)
    seen: set[str] = set()
    for band in state_bands(recorder):
        end = band.end if band.end is not None else horizon
        if band.kind == "fault" and band.subject.startswith(("hang", "crash", "partition", "error")):
            ax.axvspan(band.start, end, color="#455a64", alpha=0.12,
                       label=None if "fault" in seen else "outage (fault on)")
            seen.add("fault")
        elif band.kind == "breaker-open":
            ax.axvspan(band.start, end, ymin=0.96, ymax=1.0, color=FAIL_COLOUR, alpha=0.6,
                       label=None if "open" in seen else "a breaker open")
            seen.add("open")
    ax.set_xlim(0, horizon)
    ax.set_ylabel(f"answers / {bucket:g} s")
    ax.set_title(title, loc="left", fontsize=10)


def scenario_figure(result: ScenarioResult) -> Figure:
    """The figure of a scenario: its own (``result.plot``), or availability/latency per variant."""
    if result.plot is not None:
        return result.plot(result)
    if result.name == "fanout":
        fig = Figure(figsize=(7, 3.2))
        ax = fig.add_subplot()
        names = [v.name for v in result.variants]
        p50 = [v.summary["p50_ms"] for v in result.variants]
        bars = ax.barh(names, p50, color=["#90a4ae", "#b0bec5", "#43a047"][: len(names)])
        ax.bar_label(bars, labels=[f"{v:.0f} ms" for v in p50], padding=3)
        ax.set_xlabel("page latency, p50 (virtual ms)")
        ax.set_title(f"fanout, seed {result.seed}: the slowest call, not the sum", loc="left", fontsize=10)
        ax.invert_yaxis()
        ax.set_xlim(0, max(p50) * 1.25)
        fig.tight_layout()
        return fig
    rows = len(result.variants)
    fig = Figure(figsize=(9, 2.4 * rows + 0.6))
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for ax, variant in zip(axes, result.variants, strict=True):
        availability_axes(ax, variant.world.recorder, title=f"{variant.name}")
    axes[-1].set_xlabel("virtual seconds")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(f"{result.name}, seed {result.seed}: what customers of orders got", x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    return fig
