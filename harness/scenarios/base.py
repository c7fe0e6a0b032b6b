"""What every named scenario returns, and the pieces they share.

>>> from harness.scenarios import run_scenario
>>> result = run_scenario("fanout", seed=1)
>>> result.name, result.seed, len(result.digest)
('fanout', 1, 64)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..world import World

__all__ = ["ScenarioResult", "Variant"]


@dataclass
class Variant:
    """One run of a scenario (e.g. "with a breaker"), with its own world."""

    name: str
    world: World
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.world.digest()


@dataclass
class ScenarioResult:
    """The outcome of ``kata simulate``: variants side by side, and headline figures."""

    name: str
    seed: int
    variants: list[Variant]
    summary: dict[str, Any] = field(default_factory=dict)
    plot: Callable[..., Any] | None = None  # plot(result) -> Figure

    @property
    def digest(self) -> str:
        """One digest over every variant's history."""
        h = hashlib.sha256()
        for variant in self.variants:
            h.update(f"{variant.name}:{variant.digest}\n".encode())
        return h.hexdigest()

    @property
    def virtual_seconds(self) -> float:
        return max(v.world.now() for v in self.variants)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"no variant {name!r} (have: {', '.join(v.name for v in self.variants)})")

    def to_json(self) -> dict[str, Any]:
        """The ``simulate --json`` contract of DESIGN.md §6 (metrics per variant)."""
        requests = sum(len(v.world.recorder.exchanges) for v in self.variants)
        by_status: dict[str, dict[str, int]] = {v.name: v.world.recorder.by_status() for v in self.variants}
        metrics = {v.name: _rounded(v.world.recorder.metrics()) for v in self.variants}
        return {
            "scenario": self.name,
            "seed": self.seed,
            "digest": self.digest,
            "virtual_seconds": self.virtual_seconds,
            "requests": requests,
            "by_status": by_status,
            "metrics": metrics,
            "variants": [v.name for v in self.variants],
            "summary": {v.name: v.summary for v in self.variants} | self.summary,
        }

    def close(self) -> None:
        for v in self.variants:
            v.world.close()


def _rounded(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for service, m in metrics.items():
        out[service] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in m.items()}
    return out
