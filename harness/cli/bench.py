"""``kata bench [--json] [--quick]``: speed figures and ratios, measured side by side."""

from __future__ import annotations

import sys

from .common import print_json


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure the harness's speed (ratios, side by side)",
                       description="Measure request paths, experiments and check times in one run.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds (noisier)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..bench import run_bench

    def say(message: str) -> None:
        if not args.json:
            print(f"… {message}", file=sys.stderr, flush=True)

    report = run_bench(quick=args.quick, progress=say)
    if args.json:
        print_json(report)
        return 0
    print(f"method: {report['method']}\n")
    for name, value in report["figures"].items():
        print(f"  {name:45} {value:>12}")
    print()
    for name, value in report["ratios"].items():
        print(f"  {name:45} {value:>11}x")
    print()
    for name, goal in report["goals"].items():
        mark = "✓" if goal["met"] else "✗"
        print(f"  {mark} {name:43} {goal['value']!s:>12}  goal {goal['goal']}")
    return 0
