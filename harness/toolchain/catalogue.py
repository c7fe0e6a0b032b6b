"""The kata catalogue: every kata in learning order, with its levels and hints.

One ordered file, ``catalogue.toml`` beside this module, read by the ``kata``
command, the chapters and the grader alike (rustlings' ``info.toml`` is the
model).

>>> breaker = kata("breaker")
>>> breaker.title, len(breaker.levels), breaker.levels[0].title
('Circuit breaker', 5, 'Trip and fail fast')
>>> [k.name for k in katas()][:3]
['registry', 'breaker', 'composer']
>>> kata("breaker").coming
False
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["Kata", "Level", "UnknownKata", "kata", "katas"]

CATALOGUE = Path(__file__).with_name("catalogue.toml")


class UnknownKata(KeyError):
    """No kata of that name in the catalogue."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class Level:
    """One level of a kata: a small set of checks and one hint."""

    number: int
    title: str
    hint: str


@dataclass(frozen=True)
class Kata:
    """A kata: what the learner implements in ``katas/<name>.py``."""

    name: str
    title: str
    chapter: str
    levels: tuple[Level, ...]

    @property
    def coming(self) -> bool:
        """Listed in the catalogue, but no levels to check yet."""
        return not self.levels

    @property
    def filename(self) -> str:
        return f"{self.name}.py"

    def level(self, number: int) -> Level:
        for level in self.levels:
            if level.number == number:
                return level
        raise ValueError(f"{self.name} has levels 1 to {len(self.levels)}, not {number}")


@cache
def katas() -> tuple[Kata, ...]:
    """Every kata, in learning order."""
    with CATALOGUE.open("rb") as f:
        data = tomllib.load(f)
    return tuple(_kata(entry) for entry in data["kata"])


def kata(name: str) -> Kata:
    """The kata called ``name``; :class:`UnknownKata` names the known ones."""
    for entry in katas():
        if entry.name == name:
            return entry
    known = ", ".join(k.name for k in katas())
    raise UnknownKata(f"unknown kata {name!r} (katas: {known})")


def _kata(entry: dict) -> Kata:
    levels = tuple(
        Level(number, level["title"], " ".join(level["hint"].split()))
        for number, level in enumerate(entry.get("level", []), start=1)
    )
    return Kata(entry["name"], entry["title"], entry.get("chapter", ""), levels)
