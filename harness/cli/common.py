"""Helpers shared by the ``kata`` subcommands."""

from __future__ import annotations

import json
import sys
from typing import Any


class UsageError(Exception):
    """Bad usage or bad input: printed as one line, exit code 2."""


def seed_arg(text: str) -> int:
    """argparse type for ``--seed``: a non-negative integer."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be >= 0, got {value}")
    return value


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
