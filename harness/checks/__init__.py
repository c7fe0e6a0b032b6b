"""The trusted level checks of every kata, and the registry that knows their levels.

A check is a plain function taking a :class:`Context` (the learner's module,
loaded by path, and the seed). It passes by returning and fails by raising
:class:`CheckFailed` with a message for the learner. ``harness/checks/<kata>/``
holds one module per level; each check declares its level with :func:`level`:

>>> @level(1)
... def adds_up(ctx):
...     if ctx.module.add(2, 2) != 4:
...         raise CheckFailed("add(2, 2) should be 4")
>>> adds_up.level
1

The checks always come from this installed package, never from the folder
being checked: a learner's submission is only their ``katas/<kata>.py``.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

__all__ = ["Check", "CheckFailed", "Context", "checks_for", "failure_message", "level"]


class CheckFailed(AssertionError):
    """A check's verdict: the learner's code did not do what the level asks."""


def failure_message(steps: list[str], *, got: str, expected: str, why: str | None = None,
                    at: float | None = None, seed: int, keep: int = 14, head: int = 1) -> str:
    """The one shape of every kata's failure message (Exercism-style).

    Long stories keep their first ``head`` steps (the set-up) and the last ones.

    >>> print(failure_message(["b = Breaker(fail_max=2)", "t=0  b.call(fails)", "t=0  b.call(fails)"],
    ...                       got="state 'closed'", expected="'open'", why="off by one", at=0.0, seed=3, keep=2))
    What was done:
      b = Breaker(fail_max=2)
      ... (1 more step)
      t=0  b.call(fails)
    What came back: state 'closed'
    Expected: 'open'
    Likely cause: off by one
    (virtual time t=0, seed 3)
    """
    shown = list(steps)
    if len(shown) > keep:
        hidden = len(shown) - keep
        shown = [*shown[:head], f"... ({hidden} more step{'s' if hidden > 1 else ''})", *shown[-(keep - head):]]
    lines = ["What was done:", *(f"  {line}" for line in shown)] if shown else []
    lines += [f"What came back: {got}", f"Expected: {expected}"]
    if why:
        lines.append(f"Likely cause: {why}")
    when = f"virtual time t={at:g}, " if at is not None else ""
    lines.append(f"({when}seed {seed})")
    return "\n".join(lines)


@dataclass
class Context:
    """What a check gets: the module under test and the seed of this run."""

    module: ModuleType
    seed: int = 0
    level: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


@dataclass(frozen=True)
class Check:
    """One registered check: its kata, level, name and function."""

    kata: str
    level: int
    name: str
    run: Callable[[Context], None]

    @property
    def summary(self) -> str:
        """First line of the check's docstring: what it checks, in a sentence."""
        doc = (self.run.__doc__ or self.name).strip()
        return doc.splitlines()[0].replace("``", "`")  # docstrings use RST literals; learners read plain text


_REGISTRY: dict[str, list[Check]] = {}


def level(number: int) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register a check of ``harness.checks.<kata>.*`` at level ``number``."""

    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        parts = fn.__module__.split(".")
        kata = parts[2] if len(parts) > 2 and parts[:2] == ["harness", "checks"] else fn.__module__
        fn.level = number  # type: ignore[attr-defined]
        _REGISTRY.setdefault(kata, []).append(Check(kata, number, fn.__name__, fn))
        return fn

    return register


def checks_for(kata: str) -> list[Check]:
    """Every check of a kata, by level, in the order they are written.

    >>> [c.level for c in checks_for("breaker")][:2]
    [1, 1]
    """
    importlib.import_module(f"{__name__}.{kata}")
    return sorted(_REGISTRY.get(kata, []), key=lambda check: check.level)
