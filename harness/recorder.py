"""The recorder: every request, response, event and state change, in virtual time.

>>> rec = Recorder()
>>> _ = rec.exchange(0.0, 0.1, "client", "users", "users-1", "GET", "/users/1", 200)
>>> _ = rec.exchange(0.5, 0.8, "client", "users", "users-2", "GET", "/users/2", 503)
>>> m = rec.metrics()["users"]
>>> m["requests"], m["errors"], m["error_rate"], m["p50"]
(2, 1, 0.5, 0.1)

Quantiles use the **nearest-rank** method: the p-quantile of n sorted values
is the value at rank ceil(p * n) (1-based). It always returns an observed
latency, never an interpolated one, and for p99 of fewer than 100 samples it
is the maximum. See :func:`quantile`.

An *error* is a 5xx status or a call that got no response at all (refused,
reset, timed out); 4xx answers are the caller's fault and do not count.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "Exchange", "Recorder", "quantile"]

QUANTILE_METHOD = "nearest-rank"


def quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile: sorted(values)[ceil(q * n) - 1]; None when empty.

    >>> quantile([5, 1, 4, 2, 3], 0.5), quantile([5, 1, 4, 2, 3], 0.9)
    (3, 5)
    """
    if not 0 < q <= 1:  # checked first: a bad q is a bug even before any data arrives
        raise ValueError("q must be in (0, 1]")
    if not values:
        return None
    ordered = sorted(values)
    # q * n in floats can land a hair above a whole number (0.07 * 100 = 7.000000000000001):
    # round that noise away before taking the ceiling.
    rank = max(1, math.ceil(round(q * len(ordered), 9)))
    return ordered[rank - 1]


@dataclass(slots=True)
class Exchange:
    """One request and its outcome, as the network saw it."""

    start: float
    end: float
    caller: str
    service: str
    instance: str | None
    method: str
    path: str
    status: int | None  # None when no response arrived
    outcome: str  # ok | error (5xx) | client-error (4xx) | refused | reset | timeout
    request_headers: dict[str, str] | None = None
    response_headers: dict[str, str] | None = None
    error: str | None = None

    @property
    def latency(self) -> float:
        return self.end - self.start

    @property
    def failed(self) -> bool:
        return self.outcome not in ("ok", "client-error")

    def line(self) -> str:
        """Canonical one-line form, used for the digest."""
        return (
            f"X|{self.start!r}|{self.end!r}|{self.caller}|{self.service}|{self.instance}|"
            f"{self.method}|{self.path}|{self.status}|{self.outcome}"
        )


@dataclass(slots=True)
class Event:
    """A state change: a crash, a breaker opening, a fault switched on, a bus delivery…"""

    t: float
    kind: str
    subject: str
    data: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        items = ",".join(f"{k}={self.data[k]!r}" for k in sorted(self.data))
        return f"E|{self.t!r}|{self.kind}|{self.subject}|{items}"


def _outcome(status: int | None) -> str:
    if status is None:
        return "timeout"
    if status >= 500:
        return "error"
    if status >= 400:
        return "client-error"
    return "ok"


class Recorder:
    """Keeps the history of one world and computes metrics from it."""

    def __init__(self, *, keep_headers: bool = True):
        self.exchanges: list[Exchange] = []
        self.events: list[Event] = []
        self.keep_headers = keep_headers
        self.listeners: list = []  # callables(record) for live views

    # -- writing -------------------------------------------------------------
    def exchange(
        self,
        start: float,
        end: float,
        caller: str,
        service: str,
        instance: str | None,
        method: str,
        path: str,
        status: int | None,
        outcome: str | None = None,
        *,
        request_headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
        error: str | None = None,
    ) -> Exchange:
        record = Exchange(
            start, end, caller, service, instance, method, path, status,
            outcome or _outcome(status),
            request_headers if self.keep_headers else None,
            response_headers if self.keep_headers else None,
            error,
        )
        self.exchanges.append(record)
        for listener in self.listeners:
            listener(record)
        return record

    def event(self, t: float, kind: str, subject: str, **data: Any) -> Event:
        record = Event(t, kind, subject, data)
        self.events.append(record)
        for listener in self.listeners:
            listener(record)
        return record

    def clear(self) -> None:
        self.exchanges.clear()
        self.events.clear()

    # -- reading ---------------------------------------------------------------
    def select(
        self,
        *,
        service: str | None = None,
        caller: str | None = None,
        instance: str | None = None,
        path: str | None = None,
        method: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Exchange]:
        """Exchanges matching every given filter (``path`` is a prefix; times by start)."""
        out = []
        for x in self.exchanges:
            if service is not None and x.service != service:
                continue
            if caller is not None and x.caller != caller and not x.caller.startswith(caller + "-"):
                continue
            if instance is not None and x.instance != instance:
                continue
            if method is not None and x.method != method:
                continue
            if path is not None and not x.path.startswith(path):
                continue
            if since is not None and x.start < since:
                continue
            if until is not None and x.start >= until:
                continue
            out.append(x)
        return out

    def events_of(self, kind: str | None = None, subject: str | None = None) -> list[Event]:
        return [
            e for e in self.events
            if (kind is None or e.kind == kind) and (subject is None or e.subject == subject)
        ]

    def metrics(self, *, since: float | None = None, until: float | None = None,
                caller: str | None = None, by: str = "service") -> dict[str, dict[str, Any]]:
        """Per service (or ``by="instance"``): requests, rate, errors, error rate, p50/p90/p99.

        ``rate`` is requests per virtual second over the window (``since`` to
        ``until``, or first to last request).
        """
        groups: dict[str, list[Exchange]] = defaultdict(list)
        for x in self.select(since=since, until=until, caller=caller):
            key = x.instance if by == "instance" else x.service
            groups[key or "?"].append(x)
        return {name: summarize(xs, since=since, until=until) for name, xs in sorted(groups.items())}

    def digest(self) -> str:
        """SHA-256 of the whole history in canonical form: same seed, same digest."""
        h = hashlib.sha256()
        for x in self.exchanges:
            h.update(x.line().encode())
            h.update(b"\n")
        for e in self.events:
            h.update(e.line().encode())
            h.update(b"\n")
        return h.hexdigest()

    def by_status(self) -> dict[str, int]:
        """Counts of outcomes: status codes as strings, or refused/reset/timeout."""
        counts = Counter(str(x.status) if x.status is not None else x.outcome for x in self.exchanges)
        return dict(sorted(counts.items()))


def summarize(xs: Iterable[Exchange], *, since: float | None = None, until: float | None = None) -> dict[str, Any]:
    """Metrics of a group of exchanges (see :meth:`Recorder.metrics`)."""
    xs = list(xs)
    latencies = [x.latency for x in xs]
    errors = sum(1 for x in xs if x.failed)
    if xs:
        start = since if since is not None else min(x.start for x in xs)
        end = until if until is not None else max(x.start for x in xs)
        window = end - start
    else:
        window = 0.0
    return {
        "requests": len(xs),
        "rate": (len(xs) / window) if window > 0 else None,
        "errors": errors,
        "error_rate": (errors / len(xs)) if xs else None,
        "p50": quantile(latencies, 0.50),
        "p90": quantile(latencies, 0.90),
        "p99": quantile(latencies, 0.99),
        "quantile_method": QUANTILE_METHOD,
    }
