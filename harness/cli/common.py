"""Helpers shared by the ``kata`` subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


class UsageError(Exception):
    """Bad usage or bad input: printed as one line, exit code 2."""


def whole_number(what: str, *, low: int, high: int | None = None,
                 out_of_range: str | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``, refused in one line.

    >>> port = whole_number("port", low=1, high=65535)
    >>> port("8888")
    8888
    >>> port("eighty")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: port must be a whole number, got 'eighty'
    """
    if out_of_range is None:
        out_of_range = (f"{what} must be >= {low}, got {{value}}" if high is None
                        else f"{what} must be between {low} and {high}, got {{value}}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(out_of_range.format(value=value))
        return value

    return parse


seed_arg = whole_number("seed", low=0)  # --seed: a non-negative integer


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
