"""Shared fixtures for the harness's own tests: seeded worlds that always get closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from harness import World

SEED = 1


@pytest.fixture
def world() -> Iterator[World]:
    """An empty world with seed 1; add the services a test needs."""
    w = World(seed=SEED)
    yield w
    w.close()


@pytest.fixture
def make_world() -> Iterator[Callable[..., World]]:
    """Build worlds on demand (``make_world(seed, payments=2)``); all are closed afterwards.

    Each keyword names a shop service and how many instances to start.
    """
    made: list[World] = []

    def make(seed: int = SEED, **services: int) -> World:
        w = World(seed=seed)
        for name, instances in services.items():
            w.add_service(name, instances=instances)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()
