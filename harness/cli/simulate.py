"""``kata simulate SCENARIO [--seed N] [--json] [--plot FILE] [--faults FILE] [--variant V]``.

Runs a named scenario in virtual time and prints what happened: per variant,
the headline figures and per-service metrics; with ``--json`` the contract of
DESIGN.md §6 (``scenario, seed, digest, virtual_seconds, requests, by_status,
metrics``), virtual times rounded to 6 decimals, metrics in seconds
(``p50_s``, ``rate_per_s``), summaries in ms (``p50_ms``). ``--faults FILE``
replaces the scenario's fault schedule with a JSON list of faults (see
:mod:`harness.faults`). The closing ``replay:`` line repeats every option that
shapes the run (seed, variants, fault file).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
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
    if file.is_dir():
        raise UsageError(f"fault schedule {path!r} is a folder, not a file")
    if not file.is_file():
        raise UsageError(f"fault schedule {path!r}: no such file")
    try:
        data = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"fault schedule {path!r} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise UsageError(f"fault schedule {path!r} cannot be read: {exc.strerror or exc}") from None
    try:
        parse_schedule(data)
    except FaultError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return data["faults"] if isinstance(data, dict) else data  # "until": null, never cleared, is read by each scenario


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str) -> None:
    """Refuse a --plot file that cannot be written, before the run rather than after it."""
    file = Path(path)
    if file.is_dir():
        raise UsageError(f"--plot {path!r} is a folder; give a file name such as {str(file / 'run.png')!r}")
    if file.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot {path!r}: use a .png, .svg or .pdf file name")
    folder = file.parent
    if not folder.exists():
        raise UsageError(f"--plot {path!r}: folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise UsageError(f"--plot {path!r}: {str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (file.exists() and not os.access(file, os.W_OK)):
        raise UsageError(f"--plot {path!r}: no permission to write there")


def replay_command(args) -> str:
    """The command that runs the same scenario again: every option that shapes the run."""
    words = ["kata", "simulate", args.scenario, "--seed", str(args.seed)]
    for variant in args.variant or []:
        words += ["--variant", variant]
    if args.faults:
        words += ["--faults", args.faults]
    return shlex.join(words)


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
    if args.plot:
        check_plot_path(args.plot)
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

        try:
            scenario_figure(result).savefig(args.plot, dpi=110, bbox_inches="tight")
        except OSError as exc:  # checked before the run, but the disk can still fill up
            raise UsageError(f"--plot {args.plot!r}: cannot save the figure: {exc.strerror or exc}") from None
    for note in result.notes:
        print(f"kata: note: {note}", file=sys.stderr)
    if args.json:
        print_json(result.to_json())
        return 0
    _print_human(result, wall, args)
    return 0


def _print_human(result, wall: float, args) -> None:
    print(f"scenario {result.name}  seed {result.seed}  {round(result.virtual_seconds, 6)} virtual s "
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
    print(f"\nreplay: {replay_command(args)}")
