"""The kata commands: ``kata`` (progress), ``list``, ``check``, ``hint``, ``watch``, ``reset``.

Registered by :mod:`harness.cli` through :data:`MODULES`; ``default`` is bare
``kata``. Exit codes: 0 every check passes, 1 some fail, 2 bad usage or a
kata file that cannot be loaded (one line on stderr, never a traceback).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="kata")
>>> sub = parser.add_subparsers()
>>> for command in MODULES:
...     command.register(sub)
>>> args = parser.parse_args(["check", "breaker", "--against", "solutions", "--level", "1"])
>>> args.func(args)  # doctest: +ELLIPSIS
breaker: solutions/breaker.py (seed 0)
  ... level 1  Trip and fail fast
<BLANKLINE>
1/1 levels pass
0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..toolchain import catalogue
from ..toolchain.catalogue import UnknownKata
from ..toolchain.loader import KataLoadError, kata_dir
from ..toolchain.reports import KataReport, render, render_all, to_json_all
from .common import UsageError, print_json, seed_arg, whole_number

__all__ = ["MODULES", "default"]

AGAINST_HELP = "the folder of kata files: katas (yours, the default), solutions, or a path"


@dataclass(frozen=True)
class Command:
    """One subcommand: ``register(subparsers)`` adds its parser with ``func=run``."""

    register: Callable[[Any], None]


def default(args: argparse.Namespace) -> int:
    """Bare ``kata``: progress through every kata, and what to do next."""
    from ..toolchain.progress import overview

    print(overview(_against(args)))
    return 0


# -- list ------------------------------------------------------------------------------
def _register_list(sub: Any) -> None:
    parser = sub.add_parser("list", help="the katas in learning order, with their levels")
    parser.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    for number, kata in enumerate(catalogue.katas(), start=1):
        status = "coming soon" if kata.coming else f"{len(kata.levels)} levels"
        print(f"{number}. {kata.name:<9} {kata.title:<33} chapters/{kata.chapter}  ({status})")
        for level in kata.levels:
            print(f"     level {level.number}  {level.title}")
    return 0


# -- check -----------------------------------------------------------------------------
def _register_check(sub: Any) -> None:
    parser = _kata_command(sub, "check", run_check, "run a kata's level checks against your file", optional=True)
    parser.add_argument("--all", action="store_true", help="every kata that has levels")
    parser.add_argument("--level", type=_level_arg, metavar="N", help="only level N")
    parser.add_argument("--seed", type=seed_arg, default=0, metavar="N", help="seed of the random checks (default 0)")
    parser.add_argument("--json", action="store_true", help="the JSON report (DESIGN.md §6) on stdout")


def run_check(args: argparse.Namespace) -> int:
    if args.all == bool(args.kata):
        raise UsageError("give one kata, or --all (see `kata list`)")
    if args.all and args.level is not None:
        raise UsageError("--level goes with one kata, not with --all")
    names = [k.name for k in catalogue.katas() if not k.coming] if args.all else [args.kata]
    reports = [_check(name, args.against, level=args.level, seed=args.seed) for name in names]
    if args.json:
        print_json(to_json_all(reports) if args.all else reports[0].to_json())
    else:
        loaded = [r for r in reports if r.load_error is None]
        if loaded:
            print(render_all(loaded))
    for report in reports:
        if report.load_error is not None:
            print(f"kata: {report.load_error}", file=sys.stderr)
    return max(r.exit_code for r in reports)


# -- hint ------------------------------------------------------------------------------
def _register_hint(sub: Any) -> None:
    _kata_command(sub, "hint", run_hint, "the hint of the first level that does not pass yet")


def run_hint(args: argparse.Namespace) -> int:
    from ..toolchain.hints import hint

    report = _check(args.kata, args.against)
    if report.load_error is not None:
        raise UsageError(report.load_error)
    print(hint(report))
    return 0


# -- watch -----------------------------------------------------------------------------
def _register_watch(sub: Any) -> None:
    parser = _kata_command(sub, "watch", run_watch, "check again every time you save the kata file (Ctrl-C stops)",
                           optional=True)
    parser.add_argument("--seed", type=seed_arg, default=0, metavar="N", help="seed of the random checks")
    parser.add_argument("--interval", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--max-checks", type=int, default=None, help=argparse.SUPPRESS)  # for tests


def run_watch(args: argparse.Namespace) -> int:
    from ..toolchain.watch import INTERVAL, watch

    name = args.kata or _first_unfinished(args.against)
    directory = _directory(args.against)
    _check(name, args.against, level=1)  # bad usage fails now, not inside the loop

    def check_once() -> int:
        report = _check(name, args.against, seed=args.seed)
        if report.load_error is not None:
            print(f"kata: {report.load_error}")
        else:
            print(render(report))
        print(f"\nWatching {report.path} (Ctrl-C stops)...", flush=True)
        return report.exit_code

    return watch([directory / f"{name}.py"], check_once, interval=args.interval or INTERVAL,
                 max_checks=args.max_checks, on_change=lambda: print("\n--- saved: checking again ---\n"))


# -- reset -----------------------------------------------------------------------------
def _register_reset(sub: Any) -> None:
    _kata_command(sub, "reset", run_reset, "start a kata over (your file is backed up first)")


def run_reset(args: argparse.Namespace) -> int:
    from ..toolchain.reset import ResetError, reset_kata

    _kata(args.kata)
    try:
        result = reset_kata(args.kata, _directory(args.against))
    except ResetError as error:
        raise UsageError(str(error)) from None
    print(result.describe())
    return 0


MODULES = [Command(_register_list), Command(_register_check), Command(_register_hint),
           Command(_register_watch), Command(_register_reset)]


# -- shared ----------------------------------------------------------------------------
def _kata_command(sub: Any, name: str, run: Callable[[argparse.Namespace], int], help: str, *,
                  optional: bool = False) -> argparse.ArgumentParser:
    """A subcommand about one kata: the KATA argument and --against, with ``func=run``."""
    parser = sub.add_parser(name, help=help)
    if optional:
        parser.add_argument("kata", nargs="?", help="which kata (see `kata list`)")
    else:
        parser.add_argument("kata", help="which kata (see `kata list`)")
    parser.add_argument("--against", default="katas", metavar="katas|solutions|DIR", help=AGAINST_HELP)
    parser.set_defaults(func=run)
    return parser


def _against(args: argparse.Namespace) -> str:
    return getattr(args, "against", None) or "katas"


_level_arg = whole_number("level", low=1, out_of_range="levels start at 1, got {value}")


def _kata(name: str) -> catalogue.Kata:
    try:
        return catalogue.kata(name)
    except UnknownKata as error:
        raise UsageError(str(error)) from None


def _directory(against: str):
    try:
        return kata_dir(against)
    except KataLoadError as error:
        raise UsageError(str(error)) from None


def _check(name: str, against: str, *, level: int | None = None, seed: int = 0) -> KataReport:
    """check_kata, with the learner's usage mistakes turned into one-line UsageErrors."""
    from ..toolchain.runner import check_kata

    kata = _kata(name)
    if kata.coming:
        ready = ", ".join(k.name for k in catalogue.katas() if not k.coming)
        raise UsageError(f"the {name} kata has no levels yet (coming soon); ready now: {ready}")
    if level is not None and level > len(kata.levels):
        raise UsageError(f"{name} has levels 1 to {len(kata.levels)}, not {level}")
    _directory(against)
    return check_kata(name, against, level=level, seed=seed)


def _first_unfinished(against: str) -> str:
    ready = [k.name for k in catalogue.katas() if not k.coming]
    for name in ready:
        if _check(name, against).status != "pass":
            return name
    return ready[0]
