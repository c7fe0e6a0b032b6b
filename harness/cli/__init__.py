"""The ``kata`` command: one small module per subcommand, registered here.

Exit codes: 0 all good, 1 checks failed, 2 bad usage or bad input (a
one-line reason on stderr, never a traceback).

>>> main(["simulate", "no-such-scenario"])
2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .common import UsageError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def _commands():
    # Each module has register(subparsers) which sets func=run on its parser.
    from . import bench, grade, katas, lab, serve, simulate

    return [*katas.MODULES, simulate, grade, bench, serve, lab]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kata", description="Microservice Katas: build the patterns, break them, check them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _commands():
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if getattr(args, "func", None) is None:  # bare `kata`: the progress overview
        from .katas import default as overview

        args.func = overview
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"kata: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kata: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
