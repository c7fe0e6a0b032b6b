"""``kata grade DIR [--out DIR] [--jobs N] [--timeout S] [--memory MB] [--seed N]``: grade a class."""

from __future__ import annotations

import os
from pathlib import Path

from .common import UsageError, seed_arg

DEFAULT_TIMEOUT = 30.0  # grader.DEFAULT_TIMEOUT, written here so `kata` starts without the grader (tested)


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
    from ..grading import GradingError, grade_class, write_outputs
    from ..grading.grader import progress_bar

    root, out = Path(args.folder).resolve(), Path(args.out).resolve()
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.timeout <= 0 or args.memory < 64:
        raise UsageError("--timeout must be positive and --memory at least 64 (MB)")
    if out == root or root in out.parents:
        raise UsageError(f"--out {args.out!r} is inside the class folder: it would be graded as a submission")
    try:
        grades = grade_class(root, workers=args.jobs, seed=args.seed, timeout=args.timeout,
                             memory_mb=args.memory, progress=None if args.quiet else progress_bar())
    except GradingError as exc:
        raise UsageError(str(exc)) from None
    paths = write_outputs(grades, out)
    _summary(grades, paths)
    return 0


def _summary(grades: dict, paths: dict) -> None:
    subs = grades["submissions"]
    print(f"graded {len(subs)} submission(s) on {len(grades['katas'])} kata(s)")
    for sub in subs:
        cells = "  ".join(f"{k} {sub['katas'][k]['score']}/{sub['katas'][k]['max_score']}"
                          + ("" if sub["katas"][k]["status"] in ("pass", "fail") else f" ({sub['katas'][k]['status']})")
                          for k in grades["katas"])
        print(f"  {sub['name']:20} {sub['total']:>3}/{sub['max_total']:<3} {cells}")
    most = [s for s in grades["stuck"] if s["share"] >= 0.5]
    shown = most or grades["stuck"][:3]
    if shown:
        print("\nwhere the class is stuck" + ("" if most else " (no level holds back most of the class)") + ":")
        for s in shown:
            print(f"  {s['kata']} level {s['level']} ({s['title']}): {s['failing']} of the {s['of']} "
                  f"learners who handed it in ({100 * s['share']:.0f}%)")
    print(f"\nwrote {paths['csv']} and {paths['json']}")
