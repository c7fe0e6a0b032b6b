"""``kata grade DIR [--out DIR] [--jobs N] [--timeout S] [--memory MB] [--seed N]``: grade a class."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from .common import UsageError, seed_arg

DEFAULT_TIMEOUT = 30.0  # grader.DEFAULT_TIMEOUT, written here so `kata` starts without the grader (tested)
MIN_MEMORY_MB = 64
NAME_WIDTH = 24  # the submission column of the summary; longer names push their row right

# How a kata that did not end in pass or fail shows in the summary table.
MARKS = {"timeout": "t", "error": "e"}
MISSING = "-"


def register(sub) -> None:
    p = sub.add_parser("grade", help="grade a class folder (one subfolder per learner)",
                       description="Check every kata of every submission in its own confined process; "
                                   "write grades.csv and grades.json and say where the class is stuck.")
    p.add_argument("folder", help="the class folder: one subfolder per learner with their katas/<kata>.py")
    p.add_argument("--out", default="grades", help="where to write grades.csv and grades.json (default ./grades)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="jobs at once (default: CPU count)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"real seconds per kata of a submission (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--memory", type=int, default=1024, help="MB of memory per job (default 1024)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="seed of every check (default 0, the one learners see in `kata check`)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..grading import GradingError, find_submissions, grade_class, write_outputs
    from ..grading.grader import progress_bar

    root, out = Path(args.folder).resolve(), Path(args.out).resolve()
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.memory < MIN_MEMORY_MB:
        raise UsageError(f"--memory must be at least {MIN_MEMORY_MB} (MB), got {args.memory}")
    if out == root or root in out.parents:
        raise UsageError(f"--out {args.out!r} is inside the class folder: it would be graded as a submission")
    try:
        submissions = find_submissions(root)
    except GradingError as exc:
        raise UsageError(str(exc)) from None
    created = prepare_out(out, args.out)  # before grading: a bad --out must not cost a whole run
    for note in ambiguous_files(submissions):
        print(f"kata: note: {note}", file=sys.stderr)
    try:
        grades = grade_class(root, workers=args.jobs, seed=args.seed, timeout=args.timeout,
                             memory_mb=args.memory, progress=None if args.quiet else progress_bar())
    except GradingError as exc:
        _remove_empty(created)
        raise UsageError(str(exc)) from None
    except BaseException:
        _remove_empty(created)
        raise
    paths = write_outputs(grades, out)
    _summary(grades, paths)
    return 0


def prepare_out(out: Path, given: str) -> list[Path]:
    """Make sure grades can be written to ``out``: a folder, created if need be, writable.

    Raises :class:`UsageError` (one line) otherwise. Returns the folders it
    created, outermost first, so that a run that stops early can take them back.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {given!r} is a file, not a folder: give a folder for grades.csv and grades.json")
    created = [p for p in [*reversed(out.parents), out] if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _remove_empty(created)
        raise UsageError(f"--out {given!r} cannot be created: {error.strerror or error}") from None
    for name in ("grades.csv", "grades.json"):
        if (out / name).is_dir():
            _remove_empty(created)
            raise UsageError(f"--out {given!r} holds a folder named {name}: move it away first")
    probe = out / f".kata-grade-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        _remove_empty(created)
        raise UsageError(f"--out {given!r} is not writable: {error.strerror or error}") from None
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):  # innermost first
        try:
            folder.rmdir()
        except OSError:
            return


def ambiguous_files(submissions: list[tuple[str, Path]]) -> list[str]:
    """A note for each kata that a submission hands in twice, at the top and in katas/.

    The grader takes ``katas/<kata>.py`` when it is there (a file, or a link it
    refuses) and the top-level file only otherwise (see
    ``harness.grading.grader.kata_places``).
    """
    from ..grading.grader import kata_places
    from ..toolchain import catalogue

    def there(path: Path) -> bool:
        return path.is_symlink() or path.is_file()

    notes = []
    for name, folder in submissions:
        for kata in catalogue.katas():
            if kata.levels and all(there(place) for place in kata_places(folder, kata.name)):
                notes.append(f"{name} has both {kata.name}.py and katas/{kata.name}.py: "
                             f"grading katas/{kata.name}.py")
    return notes


def summary_table(grades: dict) -> list[str]:
    """One row per submission: its total, then the levels passed of each kata.

    ``-`` is a kata not handed in; a trailing ``t`` or ``e`` marks a kata the
    grader stopped (time limit) or that crashed, exited or was refused.
    """
    katas, subs = grades["katas"], grades["submissions"]
    maxima = {k: max((s["katas"][k]["max_score"] for s in subs if k in s["katas"]), default=0) for k in katas}
    same = len(set(maxima.values())) == 1
    heads = {k: k if same else f"{k}/{maxima[k]}" for k in katas}

    def cell(sub: dict, kata: str) -> str:
        report = sub["katas"].get(kata)
        if report is None or report["status"] == "missing":
            return MISSING
        return f"{report['score']}{MARKS.get(report['status'], '')}"

    cells = [[cell(s, k) for k in katas] for s in subs]
    widths = [max([len(heads[k])] + [len(row[j]) for row in cells]) for j, k in enumerate(katas)]
    totals = [f"{s['total']}/{s['max_total']}" for s in subs]
    total_width = max([len("total")] + [len(t) for t in totals])
    name_width = min(NAME_WIDTH, max([len("submission")] + [len(s["name"]) for s in subs]))
    lines = ["  " + f"{'submission':<{name_width}}  {'total':>{total_width}}  "
             + "  ".join(f"{heads[k]:>{w}}" for k, w in zip(katas, widths, strict=True))]
    for sub, total, row in zip(subs, totals, cells, strict=True):
        lines.append("  " + f"{sub['name']:<{name_width}}  {total:>{total_width}}  "
                     + "  ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)))
    return [line.rstrip() for line in lines]


def _summary(grades: dict, paths: dict) -> None:
    subs, katas = grades["submissions"], grades["katas"]
    maxima = {r["max_score"] for s in subs for r in s["katas"].values()}
    per_kata = f", {maxima.pop()} levels each" if len(maxima) == 1 else ""
    print(f"graded {len(subs)} submission{'s' if len(subs) != 1 else ''} on {len(katas)} "
          f"kata{'s' if len(katas) != 1 else ''}{per_kata}: levels passed per kata")
    for line in summary_table(grades):
        print(line)
    statuses = {r["status"] for s in subs for r in s["katas"].values()}
    legend = []
    if "missing" in statuses:
        legend.append(f"{MISSING} not handed in")
    if "timeout" in statuses:
        legend.append(f"{MARKS['timeout']} stopped at --timeout")
    if "error" in statuses:
        legend.append(f"{MARKS['error']} crashed, exited, did not load or was refused")
    if legend:
        print("  (" + "; ".join(legend) + ")")
    most = [s for s in grades["stuck"] if s["share"] >= 0.5]
    shown = most or grades["stuck"][:3]
    if shown:
        print("\nwhere the class is stuck" + ("" if most else " (no level holds back most of the class)") + ":")
        for s in shown:
            print(f"  {s['kata']} level {s['level']} ({s['title']}): {s['failing']} of the {s['of']} "
                  f"learners who handed it in ({100 * s['share']:.0f}%)")
    print(f"\nwrote {paths['csv']} and {paths['json']}")
