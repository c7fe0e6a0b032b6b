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

__all__ = ["ScenarioResult", "Variant", "faults_per_variant"]


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
    notes: list[str] = field(default_factory=list)  # e.g. a fault skipped in a variant that lacks its target

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
        """The ``simulate --json`` contract of DESIGN.md §6 (metrics per variant).

        Times are rounded to 6 decimals (a microsecond: virtual time is exact,
        its float sums are not), and every key with a unit says it: metrics
        in seconds (``p50_s``), summaries in ms (``p50_ms``).
        """
        requests = sum(len(v.world.recorder.exchanges) for v in self.variants)
        by_status: dict[str, dict[str, int]] = {v.name: v.world.recorder.by_status() for v in self.variants}
        metrics = {v.name: json_metrics(v.world.recorder.metrics()) for v in self.variants}
        out = {
            "scenario": self.name,
            "seed": self.seed,
            "digest": self.digest,
            "virtual_seconds": round(self.virtual_seconds, 6),
            "requests": requests,
            "by_status": by_status,
            "metrics": metrics,
            "variants": [v.name for v in self.variants],
            "summary": _rounded({v.name: v.summary for v in self.variants} | self.summary),
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def close(self) -> None:
        for v in self.variants:
            v.world.close()


def faults_per_variant(faults: list[dict] | dict, targets: dict[str, set[str]], *,
                       callers: tuple[str, ...] = (), others: dict[str, set[str]] | None = None,
                       ) -> tuple[dict[str, list[dict]], list[str]]:
    """Check a fault schedule against the variants that will run, before any runs.

    ``targets``: variant -> its services and instances. A target (or source)
    must exist in at least one variant, else :class:`FaultError` lists them
    all; an entry whose target only some variants have is left out of the
    others, with a note saying so. ``callers`` (clients such as
    ``"customer"``) may be a partition's side; ``others``: the variants not
    chosen, to say where a target missing here could be found. Returns
    (schedule per variant, notes).

    >>> per_variant, notes = faults_per_variant(
    ...     [{"at": 1, "fault": "crash", "target": "gateway"}],
    ...     {"a": {"gateway", "users"}, "b": {"bff", "users"}})
    >>> per_variant["b"], notes
    ([], ["fault schedule entry 1 (crash on gateway): variant 'b' has no 'gateway'; it runs without this fault"])
    """
    from ..faults import BUS_FAULTS, FaultError, parse_fault, parse_schedule

    parse_schedule(faults)  # the entries themselves first: one line naming the entry and field
    entries = faults["faults"] if isinstance(faults, dict) else faults
    known = set().union(*targets.values())
    per_variant: dict[str, list[dict]] = {name: [] for name in targets}
    notes: list[str] = []
    for index, entry in enumerate(entries, start=1):
        where = f"fault schedule entry {index}"
        fault = parse_fault(entry, where)
        names = [] if fault.kind in BUS_FAULTS else [fault.target]
        names += [fault.source] if fault.source else []
        lacking: dict[str, list[str]] = {}  # variant -> the names it lacks
        for name in names:
            if name in ("*", "client", *callers):
                continue
            if name not in known:
                found_in = [v for v, have in (others or {}).items() if name in have and v not in targets]
                hint = f"; variants with it: {', '.join(found_in)}" if found_in else ""
                raise FaultError(f"{where}: fault target {name!r} is neither a service nor an instance "
                                 f"(services: {_where_found(targets)}{hint})")
            for variant, have in targets.items():
                if name not in have:
                    lacking.setdefault(variant, []).append(name)
        for variant in targets:
            if variant in lacking:
                missing = ", ".join(repr(n) for n in lacking[variant])
                notes.append(f"{where} ({fault.kind} on {fault.target}): variant {variant!r} has no {missing}; "
                             f"it runs without this fault")
            else:
                per_variant[variant].append(entry)
    return per_variant, notes


def _where_found(targets: dict[str, set[str]]) -> str:
    """Services (not instances) of all variants, each marked with its variants if not in all."""
    variants = list(targets)
    services = sorted({name for have in targets.values() for name in have if not _is_instance(name, have)})
    shown = []
    for service in services:
        having = [v for v in variants if service in targets[v]]
        shown.append(service if len(having) == len(variants) else f"{service} (only {', '.join(having)})")
    return ", ".join(shown)


def _is_instance(name: str, have: set[str]) -> bool:
    service, _, number = name.rpartition("-")
    return number.isdigit() and service in have


# recorder.metrics() key -> its name in the JSON output, with its unit.
JSON_METRIC_KEYS = {"rate": "rate_per_s", "p50": "p50_s", "p90": "p90_s", "p99": "p99_s"}


def json_metrics(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``recorder.metrics()`` for the JSON output: keys that name their unit, values rounded.

    >>> json_metrics({"users": {"requests": 2, "rate": 0.5, "p50": 0.1 + 0.2}})
    {'users': {'requests': 2, 'rate_per_s': 0.5, 'p50_s': 0.3}}
    """
    return {service: {JSON_METRIC_KEYS.get(k, k): v for k, v in _rounded(m).items()}
            for service, m in metrics.items()}


def _rounded(value: Any) -> Any:
    """Floats rounded to 6 decimals, in nested dicts and lists too."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value
