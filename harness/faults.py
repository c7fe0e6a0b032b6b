"""The fault catalogue, and fault schedules as plain data.

A fault is a dict an instructor can write by hand (or load from JSON):

>>> f = parse_fault({"fault": "error", "target": "payments", "status": 503, "probability": 0.5})
>>> f.kind, f.target, f.params["status"]
('error', 'payments', 503)

A schedule is a list of such dicts, each with ``at`` (virtual seconds) and
optionally ``until`` (when the fault is cleared; for ``crash``, when the
instance restarts):

>>> schedule = parse_schedule([
...     {"at": 10, "until": 40, "fault": "crash", "target": "payments-2"},
...     {"at": 5, "fault": "latency", "target": "catalog", "dist": "constant", "value": 0.2},
... ])
>>> [(e.at, e.fault.kind) for e in schedule]
[(5.0, 'latency'), (10.0, 'crash')]

Anything malformed raises :class:`FaultError` with a one-line reason that
names the entry and the field.

Targets: a service (``"payments"``), an instance (``"payments-2"``) or ``"*"``;
an optional ``route`` narrows to ``"POST /charges"`` or a path prefix
``"/charges"``; link faults (``partition``) name a ``source`` too.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUS_FAULTS",
    "Fault",
    "FaultError",
    "INSTANCE_FAULTS",
    "LINK_FAULTS",
    "SERVICE_FAULTS",
    "ScheduledFault",
    "parse_fault",
    "parse_schedule",
    "sample_latency",
]


class FaultError(ValueError):
    """A fault or schedule that cannot be understood (one-line reason)."""


# Faults applied inside the callee's worker slot, per service/instance/route.
SERVICE_FAULTS = ("latency", "error", "hang", "malformed")
# Faults on an instance's life.
INSTANCE_FAULTS = ("crash", "flap", "capacity", "unhealthy")
# Faults on the link between two services.
LINK_FAULTS = ("partition", "link-latency")
# Faults on event-bus deliveries, per topic.
BUS_FAULTS = ("duplicate", "delay", "reorder", "drop-ack")
ALL_FAULTS = SERVICE_FAULTS + INSTANCE_FAULTS + LINK_FAULTS + BUS_FAULTS

DISTRIBUTIONS = {
    "constant": ("value",),
    "uniform": ("low", "high"),
    "exponential": ("mean",),
    "lognormal": ("median", "sigma"),
}

# Allowed parameters per fault kind (beyond fault/target/route/source/topic/at/until/id).
_PARAMS: dict[str, dict[str, Any]] = {
    "latency": {"dist": "constant", "value": 0.0, "low": None, "high": None, "mean": None,
                "median": None, "sigma": None, "probability": 1.0},
    "link-latency": {"dist": "constant", "value": 0.0, "low": None, "high": None, "mean": None,
                     "median": None, "sigma": None, "probability": 1.0},
    "error": {"status": 500, "probability": 1.0},
    "hang": {"probability": 1.0},
    "malformed": {"probability": 1.0},
    "crash": {"keep_state": True},
    "flap": {"down": 2.0, "up": 3.0},
    "capacity": {"workers": 1, "queue": 0},
    "unhealthy": {},
    "partition": {"direction": "both"},
    "duplicate": {"probability": 1.0, "copies": 1},
    "delay": {"dist": "constant", "value": 1.0, "low": None, "high": None, "mean": None,
              "median": None, "sigma": None, "probability": 1.0},
    "reorder": {"window": 1.0},
    "drop-ack": {"probability": 1.0},
}
_COMMON = {"fault", "target", "route", "source", "topic", "at", "until", "id"}


@dataclass
class Fault:
    """One fault: what kind, where, with which parameters."""

    kind: str
    target: str = "*"
    route: str | None = None  # "POST /charges" or "/charges" (prefix)
    source: str | None = None  # link faults: the calling service
    topic: str | None = None  # bus faults
    params: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def describe(self) -> str:
        where = self.topic if self.kind in BUS_FAULTS else self.target
        if self.source:
            where = f"{self.source}->{self.target}"
        if self.route:
            where += f" {self.route}"
        shown = {k: v for k, v in self.params.items() if v is not None}
        extra = ", ".join(f"{k}={v}" for k, v in shown.items())
        return f"{self.kind} on {where}" + (f" ({extra})" if extra else "")

    # -- matching -----------------------------------------------------------
    def matches_target(self, service: str, instance: str) -> bool:
        return self.target in ("*", service, instance)

    def matches_route(self, method: str, path: str) -> bool:
        if self.route is None:
            return True
        route = self.route
        if " " in route:
            want_method, route = route.split(" ", 1)
            if want_method.upper() != method:
                return False
        return path == route or path.startswith(route.rstrip("/") + "/") or route == "/"


@dataclass(order=True)
class ScheduledFault:
    """A fault switched on at ``at`` and (optionally) off at ``until``."""

    at: float
    until: float | None = field(compare=False)
    fault: Fault = field(compare=False)


def _number(entry: dict, key: str, where: str, *, minimum: float | None = None) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FaultError(f"{where}: '{key}' must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise FaultError(f"{where}: '{key}' must be >= {minimum}, got {value!r}")
    return float(value)


def parse_fault(entry: Any, where: str = "fault") -> Fault:
    """Validate one fault dict and build a :class:`Fault`."""
    if not isinstance(entry, dict):
        raise FaultError(f"{where}: expected an object like {{\"fault\": \"hang\", \"target\": \"payments\"}}, got {type(entry).__name__}")
    kind = entry.get("fault")
    if kind not in ALL_FAULTS:
        raise FaultError(f"{where}: unknown fault {kind!r} (expected one of: {', '.join(ALL_FAULTS)})")
    allowed = _PARAMS[kind]
    unknown = sorted(set(entry) - _COMMON - set(allowed))
    if unknown:
        raise FaultError(f"{where}: unknown field {unknown[0]!r} for fault {kind!r} (allowed: {', '.join(sorted(allowed)) or 'none'})")
    params = dict(allowed)
    for key in allowed:
        if key in entry:
            params[key] = entry[key]
    fault = Fault(
        kind=kind,
        target=str(entry.get("target", "*")),
        route=entry.get("route"),
        source=entry.get("source"),
        topic=entry.get("topic"),
        params=params,
        id=entry.get("id"),
    )
    _check_params(fault, entry, where)
    if kind in ("latency", "link-latency", "delay"):
        # Keep only the chosen distribution's parameters, so descriptions read right.
        wanted = DISTRIBUTIONS[params["dist"]]
        for key in ("value", "low", "high", "mean", "median", "sigma"):
            if key not in wanted:
                params[key] = None
    return fault


def _check_params(fault: Fault, entry: dict, where: str) -> None:
    kind, p = fault.kind, fault.params
    if "probability" in entry:
        prob = _number(entry, "probability", where, minimum=0)
        if prob > 1:
            raise FaultError(f"{where}: 'probability' must be between 0 and 1, got {prob}")
    if kind in ("latency", "link-latency", "delay"):
        dist = p["dist"]
        if dist not in DISTRIBUTIONS:
            raise FaultError(f"{where}: unknown dist {dist!r} (expected one of: {', '.join(DISTRIBUTIONS)})")
        for key in DISTRIBUTIONS[dist]:
            if entry.get(key) is None and not (dist == "constant" and key == "value"):
                raise FaultError(f"{where}: dist {dist!r} needs '{key}'")
            if key in entry:
                _number(entry, key, where, minimum=0)
        if dist == "uniform" and p["low"] > p["high"]:
            raise FaultError(f"{where}: uniform needs low <= high, got {p['low']} > {p['high']}")
    if kind == "error":
        status = p["status"]
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise FaultError(f"{where}: 'status' must be an HTTP error status (400-599), got {status!r}")
    if kind == "flap":
        for key in ("down", "up"):
            if key in entry:
                _number(entry, key, where, minimum=0.001)
    if kind == "capacity":
        for key in ("workers", "queue"):
            if key in entry and (not isinstance(entry[key], int) or isinstance(entry[key], bool) or entry[key] < (1 if key == "workers" else 0)):
                raise FaultError(f"{where}: '{key}' must be a whole number (workers >= 1, queue >= 0), got {entry[key]!r}")
    if kind == "partition":
        if not fault.source:
            raise FaultError(f"{where}: a partition needs 'source' and 'target' (the two sides)")
        if p["direction"] not in ("both", "request", "response"):
            raise FaultError(f"{where}: 'direction' must be both, request or response, got {p['direction']!r}")
    if kind in BUS_FAULTS and not fault.topic:
        raise FaultError(f"{where}: a {kind} fault needs a 'topic' (or '*')")
    if kind in ("duplicate",) and "copies" in entry and (not isinstance(entry["copies"], int) or entry["copies"] < 1):
        raise FaultError(f"{where}: 'copies' must be a whole number >= 1")
    if kind == "reorder" and "window" in entry:
        _number(entry, "window", where, minimum=0)
    if fault.route is not None and not isinstance(fault.route, str):
        raise FaultError(f"{where}: 'route' must be a string like 'POST /charges'")
    if kind in INSTANCE_FAULTS and fault.target == "*":
        raise FaultError(f"{where}: a {kind} fault needs a 'target' service or instance")


def parse_schedule(entries: Any) -> list[ScheduledFault]:
    """Validate a whole schedule; returns it sorted by ``at``."""
    if isinstance(entries, dict) and "faults" in entries:
        entries = entries["faults"]
    if not isinstance(entries, list):
        raise FaultError("fault schedule: expected a list of entries (or {\"faults\": [...]})")
    schedule = []
    for index, entry in enumerate(entries, start=1):
        where = f"fault schedule entry {index}"
        if not isinstance(entry, dict):
            raise FaultError(f"{where}: expected an object, got {type(entry).__name__}")
        if "at" not in entry:
            raise FaultError(f"{where}: missing 'at' (virtual seconds when the fault starts)")
        at = _number(entry, "at", where, minimum=0)
        until = None
        if entry.get("until") is not None:
            until = _number(entry, "until", where, minimum=0)
            if until <= at:
                raise FaultError(f"{where}: 'until' ({until}) must be after 'at' ({at})")
        schedule.append(ScheduledFault(at, until, parse_fault(entry, where)))
    schedule.sort()
    return schedule


def sample_latency(params: dict[str, Any], rng: random.Random) -> float:
    """Draw one delay (seconds) from a latency fault's distribution.

    >>> sample_latency({"dist": "constant", "value": 0.25}, random.Random(1))
    0.25
    """
    dist = params["dist"]
    if dist == "constant":
        return float(params["value"])
    if dist == "uniform":
        return rng.uniform(params["low"], params["high"])
    if dist == "exponential":
        return rng.expovariate(1.0 / params["mean"]) if params["mean"] > 0 else 0.0
    if dist == "lognormal":
        return rng.lognormvariate(math.log(params["median"]), params["sigma"]) if params["median"] > 0 else 0.0
    raise FaultError(f"unknown dist {dist!r}")
