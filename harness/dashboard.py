"""The class dashboard: a class's progress per kata and level, read from ``grades.json``.

``kata grade`` writes ``grades.json``: for each submission, the ``kata check
--json`` report of every kata (DESIGN.md §6), and a list of the levels where
learners are stuck. This module turns it into what an instructor looks at
(everything is computed from the submissions, so a file merged from shards
with :func:`merge` reads right):

- :func:`status_matrix` and :func:`heatmap`: submissions × levels, a cell per
  level coloured by how it ended (pass, fail, error, timeout, missing);
- :func:`pass_shares` and :func:`pass_share_bars`: the share of the class
  passing each level;
- :func:`stuck` and :func:`stuck_bars`: the first level each learner has not
  passed yet, where most of the class is;
- :func:`needs_a_look`: the submissions that crashed, hung or were refused;
- :func:`merge`: one class from the ``grades.json`` of several shards.

>>> grades = load_grades(SAMPLE)
>>> len(grades["submissions"]), grades["katas"][:2]
(30, ['registry', 'breaker'])
>>> share = pass_shares(grades)[0]
>>> share.kata, share.level, share.passing, share.of
('registry', 1, 29, 30)
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .toolchain import catalogue
from .toolchain.loader import display_path
from .toolchain.reports import stuck_levels

__all__ = [
    "ENV_VAR",
    "display_path",
    "SAMPLE",
    "STATUSES",
    "STATUS_COLOURS",
    "GradesError",
    "LevelColumn",
    "LevelShare",
    "grades_path",
    "heatmap",
    "kata_table",
    "level_status",
    "learner_summary",
    "levels",
    "load_grades",
    "merge",
    "needs_a_look",
    "pass_share_bars",
    "pass_shares",
    "status_matrix",
    "stuck",
    "stuck_bars",
]

ENV_VAR = "KATA_GRADES"  # where the dashboard looks first, when no path is given
SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "grades-sample.json"
GRADES_VERSION = 1
MOST = 0.5  # "most of the class": the grader's threshold too
MESSAGE_LINES = 6  # of a failure message, in a learner's summary

# How a level can end, best first. Okabe-Ito colours, as in harness.plots: they stay
# apart for the common colour-vision deficiencies.
STATUSES = ("pass", "fail", "error", "timeout", "missing")
STATUS_COLOURS = {
    "pass": "#009E73",
    "fail": "#D55E00",
    "error": "#CC79A7",
    "timeout": "#E69F00",
    "missing": "#E8E8E8",
}
STATUS_LABELS = {
    "pass": "pass",
    "fail": "fail",
    "error": "error (crashed, exited, or did not load)",
    "timeout": "timeout (stopped by the grader)",
    "missing": "missing (no file handed in)",
}


class GradesError(ValueError):
    """A grades file that cannot be read: one line saying why."""


# -- reading -------------------------------------------------------------------------------


def grades_path(path: str | os.PathLike | None = None) -> Path:
    """The grades file to read: ``path``, else ``$KATA_GRADES``, else the sample class.

    A folder means the ``grades.json`` inside it (what ``kata grade --out DIR`` writes).

    >>> grades_path("/tmp/grades").name
    'grades.json'
    """
    chosen = path if path not in (None, "") else os.environ.get(ENV_VAR) or SAMPLE
    chosen = Path(chosen).expanduser()
    if chosen.is_dir() or (not chosen.suffix and not chosen.exists()):
        chosen = chosen / "grades.json"
    return chosen


def load_grades(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read and check a ``grades.json`` (see :func:`grades_path` for which one).

    Raises :class:`GradesError` with one line when the file is missing, is not
    JSON, or is not a grades file of a version this dashboard reads.
    """
    where = grades_path(path)
    try:
        grades = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GradesError(f"no grades file at {where} (run `kata grade CLASS --out DIR` first)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise GradesError(f"cannot read {where}: {error}") from None
    except json.JSONDecodeError as error:
        raise GradesError(f"{where} is not JSON: {error}") from None
    _check(grades, where)
    return grades


def _check(grades: Any, where: Path) -> None:
    if not isinstance(grades, dict) or "submissions" not in grades or "katas" not in grades:
        raise GradesError(f"{where} is not a grades file: it needs 'katas' and 'submissions'")
    if grades.get("version") != GRADES_VERSION:
        raise GradesError(f"{where} has version {grades.get('version')!r}; this dashboard reads version "
                          f"{GRADES_VERSION}")
    katas = grades["katas"]
    if not isinstance(katas, list) or not all(isinstance(k, str) for k in katas):
        raise GradesError(f"{where}: 'katas' must be a list of kata names")
    if not isinstance(grades["submissions"], list):
        raise GradesError(f"{where}: 'submissions' must be a list")
    for i, submission in enumerate(grades["submissions"]):
        if not isinstance(submission, dict) or not isinstance(submission.get("name"), str) \
                or not isinstance(submission.get("katas"), dict):
            raise GradesError(f"{where}: submission {i} needs a 'name' and a 'katas' object")
        for kata, report in submission["katas"].items():
            if not isinstance(report, dict) or report.get("status") not in STATUSES \
                    or not isinstance(report.get("levels", []), list):
                raise GradesError(f"{where}: {submission['name']}/{kata} is not a check report")


# -- tables ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelColumn:
    """One level of one kata: a column of the heat map."""

    kata: str
    level: int
    title: str

    @property
    def label(self) -> str:
        return f"{self.kata} {self.level}"


@dataclass(frozen=True)
class LevelShare:
    """How many of the class pass one level."""

    kata: str
    level: int
    title: str
    passing: int
    of: int

    @property
    def share(self) -> float:
        return self.passing / self.of if self.of else 0.0


def levels(grades: dict[str, Any]) -> list[LevelColumn]:
    """Every level of every graded kata, in the catalogue's order (the file's ``katas``).

    A kata's levels come from its ``max_score``; titles from any report that ran
    the level (a kata nobody handed in keeps "level N").
    """
    columns = []
    for kata in grades["katas"]:
        reports = [s["katas"][kata] for s in grades["submissions"] if kata in s["katas"]]
        count = max((r.get("max_score", 0) for r in reports), default=0)
        count = max([count] + [lv["level"] for r in reports for lv in r.get("levels", [])])
        titles: dict[int, str] = {}
        for report in reports:
            for level in report.get("levels", []):
                titles.setdefault(level["level"], level.get("title") or f"level {level['level']}")
        columns += [LevelColumn(kata, n, titles.get(n, f"level {n}")) for n in range(1, count + 1)]
    return columns


def level_status(report: dict[str, Any] | None, level: int) -> str:
    """How one level of one kata report ended: pass, fail, error, timeout or missing.

    A report without levels (nothing handed in, a refused file) gives its own
    status to every level.

    >>> level_status({"status": "missing", "levels": []}, 3)
    'missing'
    >>> level_status({"status": "fail", "levels": [{"level": 1, "status": "pass"}]}, 1)
    'pass'
    """
    if report is None:
        return "missing"
    for entry in report.get("levels", []):
        if entry["level"] == level:
            return entry["status"] if entry["status"] in STATUSES else "error"
    status = report.get("status", "missing")
    # A level the report does not list did not run: say why if the kata says so.
    return status if status in ("error", "timeout", "missing") else "missing"


def _ranked(grades: dict[str, Any]) -> list[dict[str, Any]]:
    """Submissions, most levels passed first (then by name, so the order is stable)."""
    return sorted(grades["submissions"], key=lambda s: (-s.get("total", 0), s["name"]))


def status_matrix(grades: dict[str, Any]) -> tuple[list[str], list[LevelColumn], list[list[str]]]:
    """Submission names (most levels passed first), the level columns, and a status per cell.

    >>> names, columns, cells = status_matrix(load_grades(SAMPLE))
    >>> names[0], columns[0].label, cells[0][0]
    ('ada', 'registry 1', 'pass')
    """
    columns = levels(grades)
    ranked = _ranked(grades)
    cells = [[level_status(s["katas"].get(c.kata), c.level) for c in columns] for s in ranked]
    return [s["name"] for s in ranked], columns, cells


def pass_shares(grades: dict[str, Any]) -> list[LevelShare]:
    """For each level: how many submissions pass it, out of the whole class."""
    names, columns, cells = status_matrix(grades)
    return [LevelShare(c.kata, c.level, c.title, sum(row[j] == "pass" for row in cells), len(names))
            for j, c in enumerate(columns)]


def stuck(grades: dict[str, Any], *, at_least: float = 0.0) -> list[dict[str, Any]]:
    """Where learners are stuck, largest share first, counted from ``grades["submissions"]``.

    Each entry is the first level of a kata that ``failing`` of the ``of``
    learners who handed that kata in do not pass yet (a report without levels,
    such as a refused file, counts at level 1): the rule ``kata grade`` uses for
    the ``stuck`` list it writes, which is not read here, so that a file whose
    submissions were merged from shards gives the class-wide picture.
    ``at_least=0.5`` keeps the levels where most of them are.

    >>> top = stuck(load_grades(SAMPLE), at_least=0.5)[0]
    >>> top["kata"], top["level"], top["failing"], top["of"]
    ('registry', 4, 17, 29)
    """
    titles = {(c.kata, c.level): c.title for c in levels(grades)}
    entries = stuck_levels(grades["submissions"], grades["katas"], lambda kata, level: _title(kata, level, titles))
    return [e for e in entries if e["share"] >= at_least]


def _title(kata: str, level: int, titles: dict[tuple[str, int], str]) -> str:
    """The catalogue's title of a level (as the grader writes it), else the reports', else "level N"."""
    try:
        return catalogue.kata(kata).level(level).title
    except (KeyError, LookupError, ValueError):
        return titles.get((kata, level), f"level {level}")


def merge(paths: list[str | os.PathLike]) -> dict[str, Any]:
    """One class from the ``grades.json`` files of its shards: every submission, and ``stuck`` recounted.

    The shards must have been graded by the same project (same katas) with the
    same seed, and a submission name may appear in one shard only; otherwise
    :class:`GradesError` says which file differs. Submissions come out sorted by
    name, as ``kata grade`` writes them. Write the result (and a ``grades.csv``
    rebuilt from it) with ``harness.grading.write_outputs(merged, Path(DIR))``.

    >>> merged = merge([SAMPLE])
    >>> len(merged["submissions"]), merged["stuck"] == stuck(merged)
    (30, True)
    """
    if not paths:
        raise GradesError("nothing to merge: give the grades.json of each shard")
    merged: dict[str, Any] | None = None
    owner: dict[str, Path] = {}
    for path in paths:
        where = grades_path(path)
        shard = load_grades(where)
        if merged is None:
            merged = {"version": shard["version"], "seed": shard.get("seed"), "katas": list(shard["katas"]),
                      "submissions": []}
            first = where
        elif shard["katas"] != merged["katas"]:
            raise GradesError(f"{where} grades the katas {', '.join(shard['katas'])}; {first} grades "
                              f"{', '.join(merged['katas'])}: grade every shard with the same project")
        elif shard.get("seed") != merged["seed"]:
            raise GradesError(f"{where} was graded with seed {shard.get('seed')}, {first} with seed "
                              f"{merged['seed']}: grade every shard with the same --seed")
        for submission in shard["submissions"]:
            if submission["name"] in owner:
                raise GradesError(f"submission {submission['name']!r} is in both {owner[submission['name']]} "
                                  f"and {where}: each learner belongs in one shard")
            owner[submission["name"]] = where
            merged["submissions"].append(submission)
    merged["submissions"].sort(key=lambda s: s["name"])
    merged["stuck"] = stuck(merged)
    return merged


def kata_table(grades: dict[str, Any]) -> list[dict[str, Any]]:
    """Per kata: how many handed it in, finished it, and the mean score of those who handed it in.

    >>> row = kata_table(load_grades(SAMPLE))[1]
    >>> row["kata"], row["handed_in"], row["finished"]
    ('breaker', 29, 5)
    """
    rows = []
    for kata in grades["katas"]:
        reports = [s["katas"].get(kata) for s in grades["submissions"]]
        handed = [r for r in reports if r is not None and r["status"] != "missing"]
        statuses = Counter(r["status"] for r in handed)
        rows.append({
            "kata": kata,
            "handed_in": len(handed),
            "finished": statuses["pass"],
            "mean_score": round(sum(r["score"] for r in handed) / len(handed), 2) if handed else None,
            "max_score": max((r.get("max_score", 0) for r in reports if r is not None), default=0),
            "errors": statuses["error"],
            "timeouts": statuses["timeout"],
        })
    return rows


def needs_a_look(grades: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Submissions the grader could not judge on their merits: (name, kata, status, why).

    Errors, timeouts and grader warnings (a submission that wrote on the result
    channel) are worth a word with the learner: their score says little.
    """
    found = []
    for submission in sorted(grades["submissions"], key=lambda s: s["name"]):
        for kata in grades["katas"]:
            report = submission["katas"].get(kata)
            if report is None:
                continue
            if report["status"] in ("error", "timeout"):
                found.append((submission["name"], kata, report["status"], _first_problem(report)))
            elif report.get("warning"):
                found.append((submission["name"], kata, "warning", report["warning"]))
    return found


def learner_summary(grades: dict[str, Any], name: str) -> str:
    """One learner's grades as text: per kata the score, and the first level not passed with why.

    >>> print(learner_summary(load_grades(SAMPLE), "gus").splitlines()[0])
    gus: 7 of 30 levels
    """
    found = [s for s in grades["submissions"] if s["name"] == name]
    if not found:
        raise KeyError(f"no submission named {name!r}")
    submission = found[0]
    lines = [f"{name}: {submission.get('total', 0)} of {submission.get('max_total', 0)} levels"]
    for kata in grades["katas"]:
        report = submission["katas"].get(kata) or {"status": "missing", "score": 0, "max_score": 0, "levels": []}
        head = f"  {kata:<10} {report['score']}/{report.get('max_score', 0)}  {report['status']}"
        first = next((lv for lv in report.get("levels", []) if lv["status"] != "pass"), None)
        if first is None:
            lines.append(head if report["status"] != "missing" else f"{head} (no file handed in)")
            continue
        lines.append(f"{head}, stuck at level {first['level']}: {first.get('title', '')}")
        test = next((t for t in first.get("tests", []) if t.get("status") != "pass"), None)
        if test is not None and test.get("message"):
            said = test["message"].splitlines()
            lines.append(f"      {test['name']}:")
            lines += [f"        {_clip(line, 150)}" for line in said[:MESSAGE_LINES]]
            if len(said) > MESSAGE_LINES:
                more = len(said) - MESSAGE_LINES
                lines.append(f"        … ({more} more line{'s' if more != 1 else ''})")
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _first_problem(report: dict[str, Any]) -> str:
    if report.get("message"):
        return report["message"].splitlines()[0]
    for level in report.get("levels", []):
        for test in level.get("tests", []):
            if test.get("status") in ("error", "timeout") and test.get("message"):
                return f"level {level['level']}: {test['message'].splitlines()[0]}"
    return report["status"]


# -- plots -------------------------------------------------------------------------------------


def _legend_handles(present: set[str]) -> list[Patch]:
    return [Patch(facecolor=STATUS_COLOURS[s], edgecolor="#999999", label=STATUS_LABELS[s])
            for s in STATUSES if s in present]


def _kata_groups(ax, columns: list[LevelColumn], *, line: str, width: float) -> None:
    """Kata names centred above their levels, and a line of colour ``line`` between katas."""
    start = 0
    for j in range(1, len(columns) + 1):
        if j == len(columns) or columns[j].kata != columns[start].kata:
            ax.text((start + j - 1) / 2, 1.01, columns[start].kata, ha="center", va="bottom", fontsize=9,
                    fontweight="bold", transform=ax.get_xaxis_transform())
            if j < len(columns):
                ax.axvline(j - 0.5, color=line, linewidth=width)
            start = j


def heatmap(grades: dict[str, Any], *, title: str | None = None) -> Figure:
    """Submissions × levels, each cell coloured by how the level ended; best submissions on top.

    >>> fig = heatmap(load_grades(SAMPLE))
    >>> fig.axes[0].get_ylabel()
    'submission (levels passed)'
    """
    from matplotlib.colors import ListedColormap

    names, columns, cells = status_matrix(grades)
    index = {s: i for i, s in enumerate(STATUSES)}
    values = [[index[c] for c in row] for row in cells]
    fig = Figure(figsize=(max(7.0, 0.34 * len(columns) + 3.5), 0.26 * len(names) + 2.2), layout="constrained")
    ax = fig.add_subplot()
    if names and columns:
        ax.imshow(values, cmap=ListedColormap([STATUS_COLOURS[s] for s in STATUSES]), vmin=-0.5,
                  vmax=len(STATUSES) - 0.5, aspect="auto", interpolation="nearest")
    totals = {s["name"]: (s.get("total", 0), s.get("max_total", 0)) for s in grades["submissions"]}
    ax.set_yticks(range(len(names)), [f"{n} ({totals[n][0]}/{totals[n][1]})" for n in names], fontsize=8)
    ax.set_xticks(range(len(columns)), [str(c.level) for c in columns], fontsize=7)
    ax.tick_params(length=0)
    # Thin white lines between cells, so a row can be followed across the page.
    ax.set_xticks([j - 0.5 for j in range(1, len(columns))], minor=True)
    ax.set_yticks([i - 0.5 for i in range(1, len(names))], minor=True)
    ax.tick_params(which="minor", length=0)
    ax.grid(which="minor", color="white", linewidth=0.6)
    _kata_groups(ax, columns, line="white", width=3.0)
    ax.set_ylabel("submission (levels passed)")
    ax.set_xlabel("level")
    ax.set_title(title or f"Class progress: {len(names)} submissions × {len(columns)} levels", loc="left",
                 pad=18)
    present = {c for row in cells for c in row}
    if present:
        ax.legend(handles=_legend_handles(present), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  frameon=False, title="how the level ended", title_fontsize=8)
    return fig


def pass_share_bars(grades: dict[str, Any], *, title: str | None = None) -> Figure:
    """A bar per level: the share of the class that passes it (count on top of each bar).

    >>> fig = pass_share_bars(load_grades(SAMPLE))
    >>> round(float(max(p.get_height() for p in fig.axes[0].patches)), 3)
    0.967
    """
    shares = pass_shares(grades)
    fig = Figure(figsize=(max(7.0, 0.34 * len(shares) + 2.5), 3.6), layout="constrained")
    ax = fig.add_subplot()
    heights = [s.share for s in shares]
    bars = ax.bar(range(len(shares)), heights, color=STATUS_COLOURS["pass"], width=0.8)
    ax.bar_label(bars, labels=[str(s.passing) for s in shares], fontsize=6, padding=1)
    ax.axhline(MOST, color="#555555", linestyle="--", linewidth=0.8)
    ax.text(len(shares) - 0.5, MOST, " half the class", va="center", ha="left", fontsize=7, color="#555555")
    ax.set_xticks(range(len(shares)), [str(s.level) for s in shares], fontsize=7)
    ax.set_xlim(-0.6, len(shares) - 0.4)
    ax.set_ylim(0, 1.08)
    ax.yaxis.set_major_formatter(lambda value, _pos: f"{value:.0%}")
    ax.set_ylabel("share of the class passing")
    ax.set_xlabel("level")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    columns = [LevelColumn(s.kata, s.level, s.title) for s in shares]
    _kata_groups(ax, columns, line="#9e9e9e", width=0.8)
    of = shares[0].of if shares else 0
    ax.set_title(title or f"Who passes each level ({of} submissions; the number is how many)", loc="left",
                 pad=18)
    return fig


def stuck_bars(grades: dict[str, Any], *, at_least: float = 0.0, limit: int = 12,
               title: str | None = None) -> Figure:
    """The levels where learners are stuck, largest share first; "most of the class" stands out.

    >>> fig = stuck_bars(load_grades(SAMPLE), limit=5)
    >>> len(fig.axes[0].patches)
    5
    """
    entries = stuck(grades, at_least=at_least)[:limit]
    fig = Figure(figsize=(9.0, 0.36 * max(len(entries), 1) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    labels = [f"{e['kata']} {e['level']}: {e.get('title', '')}" for e in entries]
    shares = [e["share"] for e in entries]
    colours = [STATUS_COLOURS["fail"] if s >= MOST else "#9e9e9e" for s in shares]
    bars = ax.barh(range(len(entries)), shares, color=colours, height=0.7)
    ax.bar_label(bars, labels=[f"{e['failing']} of {e['of']}" for e in entries], fontsize=7, padding=2)
    ax.set_yticks(range(len(entries)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(MOST, color="#555555", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, 1.0)
    ax.xaxis.set_major_formatter(lambda value, _pos: f"{value:.0%}")
    ax.set_xlabel("share of those who handed the kata in, stuck here (their first level not passed)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    if not entries:
        ax.text(0.5, 0.5, "nobody is stuck", transform=ax.transAxes, ha="center", color="#777777")
    ax.set_title(title or "Where learners are stuck (red: most of those who handed the kata in)", loc="left")
    return fig
