"""Figures for canary releases: the rollout chart, and the mesh's retries and ejections on a timeline.

- :func:`rollout_chart`: for each variant of the ``bad-release`` scenario, the
  canary's weight stage by stage (top) and the error rate each check saw
  (bottom), with the threshold and the verdict;
- :func:`report_stages`: the rows of that chart from a canary kata
  ``RolloutReport``, so a learner's own rollout can be drawn the same way;
- :func:`record_ejections` and :func:`mesh_timeline`: outlier ejections as
  bands on :func:`harness.plots.timeline`.

>>> from harness.scenarios import run_scenario
>>> fig = rollout_chart(run_scenario("bad-release", seed=1, variants=["bad-release"]))
>>> [ax.get_ylabel() for ax in fig.axes]
['canary weight (%)', 'canary error rate (%)']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .recorder import Recorder

__all__ = ["EJECTION_SUBJECT", "mesh_chart", "mesh_timeline", "record_ejections", "report_stages",
           "rollout_axes", "rollout_chart"]

PASS_COLOUR = "#009E73"  # the Okabe-Ito colours of harness.plots: ok
FAIL_COLOUR = "#D55E00"  # error
WEIGHT_COLOUR = "#0072B2"
SEED_COLOUR = "#000000"
EJECTION_SUBJECT = "ejected "  # breaker-style events drawn as ejection bands (see record_ejections)


def report_stages(report: Any) -> list[dict[str, Any]]:
    """The chart's rows from a canary kata ``RolloutReport`` (``report.checks``)."""
    rows = []
    for check in report.checks:
        analysis = check.analysis
        rows.append({"weight": check.weight, "start": check.start, "end": check.end, "passed": analysis.passed,
                     "canary_error_rate": analysis.canary_error_rate, "canary_requests": analysis.canary_requests})
    return rows


def rollout_axes(top: Any, bottom: Any, stages: Sequence[dict[str, Any]], *, status: str, finished_at: float,
                 until: float | None = None, threshold: float = 0.01, seed_values: bool = False,
                 title: str = "") -> None:
    """Draw one rollout: weights per stage on ``top``, each check's error rate on ``bottom``.

    ``stages``: one row per check (weight, start, end, passed, canary_error_rate);
    the weight line runs on to ``until`` (virtual seconds) after the decision.
    """
    minutes = [(s["start"] / 60, s["end"] / 60) for s in stages]
    # The weight holds from each stage's start; after the last check it is 0 (rolled back) or 100.
    end = max(finished_at, until or finished_at) / 60
    xs = [m[0] for m in minutes] + [finished_at / 60, end]
    weights = [s["weight"] for s in stages]
    final = 0 if status == "rolled-back" else 100
    top.step(xs, weights + [final, final], where="post", color=WEIGHT_COLOUR, linewidth=2)
    top.fill_between(xs, weights + [final, final], step="post", color=WEIGHT_COLOUR, alpha=0.15)
    top.set_ylim(0, 105)
    top.set_ylabel("canary weight (%)")
    top.set_title(title, loc="left", fontsize=10)
    for (start, _end), weight in zip(minutes, weights, strict=True):
        top.annotate(f"{weight}", (start, weight), xytext=(2, 3), textcoords="offset points", fontsize=8,
                     color=WEIGHT_COLOUR)
    verdict = f"{status} at {finished_at / 60:g} min"
    top.text(0.98, 0.06, verdict, transform=top.transAxes, ha="right", fontsize=9,
             color=FAIL_COLOUR if status == "rolled-back" else PASS_COLOUR, fontweight="bold")

    for (start, end), stage in zip(minutes, stages, strict=True):
        rate = stage.get("canary_error_rate")
        colour = PASS_COLOUR if stage["passed"] else FAIL_COLOUR
        if rate is None:
            bottom.text((start + end) / 2, 0, "no data", ha="center", va="bottom", fontsize=8, color=FAIL_COLOUR)
        else:
            bottom.bar(start, 100 * rate, width=end - start, align="edge", color=colour, alpha=0.75,
                       edgecolor="white")
            bottom.annotate(f"{rate:.1%}", ((start + end) / 2, 100 * rate), xytext=(0, 2), textcoords="offset points",
                            ha="center", fontsize=7, color=colour)
        if seed_values and stage.get("judged_value") is not None:
            bottom.plot([(start + end) / 2], [100 * stage["judged_value"]], marker="D", markersize=6,
                        markerfacecolor="white", markeredgecolor=SEED_COLOUR, linestyle="")
    bottom.axhline(100 * threshold, color="#555555", linestyle="--", linewidth=1)
    bottom.set_ylabel("canary error rate (%)")
    bottom.set_xlabel("virtual minutes")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.set_axisbelow(True)


def rollout_chart(result: Any) -> Figure:
    """The ``bad-release`` scenario side by side: one column per variant (rows: ``variant.stages``)."""
    variants = list(result.variants)
    fig = Figure(figsize=(4.2 * len(variants) + 0.6, 5.6), layout="constrained")
    grid = fig.subplots(2, len(variants), sharex=True, squeeze=False, height_ratios=[1, 1.15])
    highest = max([s.get("canary_error_rate") or 0 for v in variants for s in v.stages] + [0.02])
    for column, variant in enumerate(variants):
        summary = variant.summary
        seed_judged = summary.get("judge", "").startswith("the seed")
        rollout_axes(grid[0][column], grid[1][column], variant.stages, status=summary["status"],
                     finished_at=summary["finished_at"], until=variant.world.now(), seed_values=seed_judged,
                     title=f"{variant.name}: judged by {summary.get('judge', 'errors / canary requests')}")
        grid[1][column].set_ylim(0, 100 * highest * 1.25)
        grid[0][column].set_xlim(0, max(v.world.now() for v in variants) / 60 * 1.02)
        if column:
            grid[0][column].set_ylabel("")
            grid[1][column].set_ylabel("")
    handles = [Patch(color=PASS_COLOUR, alpha=0.75, label="check passed"),
               Patch(color=FAIL_COLOUR, alpha=0.75, label="check failed"),
               Line2D([], [], color="#555555", linestyle="--", label="threshold: 1 %")]
    if any(v.summary.get("judge", "").startswith("the seed") for v in variants):
        handles.append(Line2D([], [], marker="D", markerfacecolor="white", markeredgecolor=SEED_COLOUR,
                              linestyle="", label="the seed's number: 5xx count / 100, read as %"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"{result.name}, seed {result.seed}: the canary's weight and what each check saw",
                 x=0.01, ha="left", fontsize=11)
    return fig


def mesh_chart(result: Any, *, bucket: float = 5.0, host: str = "catalog-2") -> Figure:
    """The ``mesh`` scenario: per variant, what customers saw and what reached the failing host."""
    from .scenarios.mesh import OUTAGE

    variants = list(result.variants)
    fig = Figure(figsize=(9.5, 2.2 * len(variants) + 0.9), layout="constrained")
    axes = fig.subplots(len(variants), 1, sharex=True, squeeze=False)[:, 0]
    horizon = max(v.world.now() for v in variants)
    n = int(horizon // bucket) + 1
    edges = [i * bucket for i in range(n)]
    for ax, variant in zip(axes, variants, strict=True):
        failures, on_host = [0] * n, [0] * n
        for start, _end, status in variant.answers:
            if status is None or status >= 500:
                failures[int(start // bucket)] += 1
        for x in variant.world.recorder.select(instance=host):
            on_host[int(x.start // bucket)] += 1
        ax.axvspan(*OUTAGE, color="#8073ac", alpha=0.15, linewidth=0)
        for ejection in getattr(variant, "ejections", []):
            ax.axvspan(ejection.at, min(ejection.until, horizon), ymin=0, ymax=0.08, color=FAIL_COLOUR, alpha=0.6,
                       linewidth=0)
        ax.bar(edges, failures, width=bucket, align="edge", color=FAIL_COLOUR, alpha=0.8)
        ax.step(edges, on_host, where="post", color=WEIGHT_COLOUR, linewidth=1.5)
        summary = variant.summary
        ax.set_title(f"{variant.name}: {summary['customer_failures']} of {summary['customer_requests']} customers "
                     f"got an error; {summary['attempts_on_catalog-2_during_outage']} attempts reached {host} "
                     "during its outage", loc="left", fontsize=9)
        ax.set_ylabel(f"per {bucket:g} s")
        ax.grid(alpha=0.3)
        ax.set_axisbelow(True)
    axes[-1].set_xlabel("virtual seconds")
    axes[-1].set_xlim(0, horizon)
    handles = [Patch(color="#8073ac", alpha=0.3, label=f"{host} answers 503"),
               Patch(color=FAIL_COLOUR, alpha=0.8, label="customers who got an error"),
               Line2D([], [], color=WEIGHT_COLOUR, label=f"requests (attempts) reaching {host}"),
               Patch(color=FAIL_COLOUR, alpha=0.6, label=f"{host} ejected")]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"{result.name}, seed {result.seed}: retries hide the failures, ejection stops paying for them",
                 x=0.01, ha="left", fontsize=11)
    return fig


def record_ejections(recorder: Recorder, ejections: Iterable[Any]) -> None:
    """Write each ``Ejection(host, at, until, number)`` as a pair of state events, for the timeline's bands.

    :func:`harness.plots.state_bands` knows faults, crashes and breakers; an
    ejection is a breaker on one host (Envoy's outlier detection is exactly
    that), so it is recorded as breaker events and relabelled by
    :func:`mesh_timeline`.
    """
    for ejection in ejections:
        subject = f"{EJECTION_SUBJECT}{ejection.host}"
        recorder.event(ejection.at, "breaker", subject, state="open", number=ejection.number)
        recorder.event(ejection.until, "breaker", subject, state="closed")
    recorder.events.sort(key=lambda e: e.t)  # the bands are read in time order


def mesh_timeline(recorder: Recorder, *, services: str | Iterable[str] | None = None, title: str | None = None,
                  **options: Any) -> Figure:
    """:func:`harness.plots.timeline`, with the ejection bands called what they are."""
    from .plots import timeline

    fig = timeline(recorder, services=services, title=title, **options)
    for ax in fig.axes:
        labels = [label.get_text() for label in ax.get_yticklabels()]
        if any(EJECTION_SUBJECT in text for text in labels):
            ax.set_yticks(ax.get_yticks(), [text.replace(f"breaker: {EJECTION_SUBJECT}", "ejected: ")
                                            for text in labels], fontsize=8)
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                if text.get_text() == "breaker open":
                    text.set_text("host ejected (outlier detection)")
    return fig
