"""``kata simulate SCENARIO [--seed N] [--json] [--plot FILE] [--faults FILE] [--variant V]``.

Runs a named scenario in virtual time and prints what happened: per variant,
the headline figures and per-service metrics; with ``--json`` the contract of
DESIGN.md §6 (``scenario, seed, digest, virtual_seconds, requests, by_status,
metrics``). ``--faults FILE`` replaces the scenario's fault schedule with a
JSON list of faults (see :mod:`harness.faults`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .common import UsageError, print_json, seed_arg


def register(sub) -> None:
    p = sub.add_parser("simulate", help="run a named scenario in virtual time",
                       description="Run a named scenario (cascade, fanout, ...) in virtual time.")
    p.add_argument("scenario", help="scenario name (kata simulate --list shows them)", nargs="?")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed for every random choice (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="FILE", help="save a figure of the run (PNG or SVG)")
    p.add_argument("--faults", metavar="FILE", help="JSON fault schedule replacing the scenario's own")
    p.add_argument("--variant", action="append", metavar="NAME", help="run only this variant (repeatable)")
    p.add_argument("--list", action="store_true", help="list the scenarios and their variants")
    p.set_defaults(func=run)


def load_schedule(path: str) -> list[dict]:
    """Read and validate a fault schedule file; any problem is a UsageError."""
    from ..faults import FaultError, parse_schedule

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"fault schedule {path!r}: no such file")
    try:
        data = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"fault schedule {path!r} is not valid JSON: {exc}") from None
    try:
        parse_schedule(data)
    except FaultError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return data["faults"] if isinstance(data, dict) else data


def run(args) -> int:
    from ..scenarios import SCENARIOS, describe, run_scenario

    if args.list or not args.scenario:
        for name, text, variants in describe():
            print(f"{name:14} {text}\n{'':14} variants: {', '.join(variants)}")
        return 0
    if args.scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {args.scenario!r} (known: {', '.join(SCENARIOS)})")
    known = SCENARIOS[args.scenario][2]
    for variant in args.variant or []:
        if variant not in known:
            raise UsageError(f"scenario {args.scenario!r} has no variant {variant!r} (variants: {', '.join(known)})")
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--plot {args.plot!r}: use a .png, .svg or .pdf file name")
    faults = load_schedule(args.faults) if args.faults else None
    from ..faults import FaultError

    started = time.perf_counter()
    try:
        result = run_scenario(args.scenario, seed=args.seed, variants=args.variant, faults=faults)
    except (FaultError, KeyError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    wall = time.perf_counter() - started
    if args.plot:
        from ..scenarios.figures import scenario_figure

        scenario_figure(result).savefig(args.plot, dpi=110, bbox_inches="tight")
    if args.json:
        print_json(result.to_json())
        return 0
    _print_human(result, wall, args)
    return 0


def _print_human(result, wall: float, args) -> None:
    print(f"scenario {result.name}  seed {result.seed}  {result.virtual_seconds:g} virtual s "
          f"in {wall:.2f} wall s  digest {result.digest[:12]}")
    for variant in result.variants:
        print(f"\n── {variant.name}")
        for key, value in variant.summary.items():
            print(f"   {key:40} {value}")
        print(f"   {'service':12} {'requests':>9} {'errors':>7} {'error%':>7} {'p50 ms':>8} {'p99 ms':>8}")
        for service, m in variant.world.recorder.metrics().items():
            p50 = f"{m['p50'] * 1000:.1f}" if m["p50"] is not None else "-"
            p99 = f"{m['p99'] * 1000:.1f}" if m["p99"] is not None else "-"
            print(f"   {service:12} {m['requests']:>9} {m['errors']:>7} {100 * (m['error_rate'] or 0):>6.1f}% "
                  f"{p50:>8} {p99:>8}")
    for key, value in result.summary.items():
        print(f"\n{key}: {value}")
    if args.plot:
        print(f"\nplot saved to {args.plot}")
    print(f"\nreplay: kata simulate {result.name} --seed {result.seed}")
