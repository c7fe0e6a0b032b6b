"""Service level objectives, error budgets and alerts, computed from the recorder.

An SLO says how good is good enough: "99.9 % of checkout requests succeed"
(availability) and "99 % of them answer within 1 s" (latency). The error
budget is what the objective allows to fail: with 99.9 % over 100,000
requests, 100 may fail. Spending it fast is what should wake someone up.

>>> from harness.recorder import Recorder
>>> rec = Recorder()
>>> for i in range(1000):
...     _ = rec.exchange(i * 0.1, i * 0.1 + 0.05, "client", "orders", "orders-1", "GET", "/orders",
...                      503 if i % 400 == 0 else 200)
>>> report = evaluate(rec, SLO("orders", availability=0.999))
>>> report.bad, round(report.budget, 6), round(report.budget_consumed, 2), report.met
(3, 1.0, 3.0, False)

Alert rules follow Prometheus's ``for:`` semantics: a condition is evaluated
every ``step`` seconds over the trailing ``over`` seconds, and the alert fires
once it has held continuously for ``for_`` seconds. See :func:`seed_rules`
(the source chapter's rules) and :func:`burn_rate_rules` (the multi-window
burn-rate alerts of Google's SRE workbook, which fire in minutes instead of
after the budget is gone).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .recorder import Exchange, Recorder, quantile

__all__ = [
    "SLO",
    "Alert",
    "AlertRule",
    "SLOReport",
    "burn_rate_rules",
    "evaluate",
    "fire_alerts",
    "seed_rules",
]


@dataclass(frozen=True)
class SLO:
    """An objective for one service (or one route of it)."""

    service: str
    availability: float = 0.999  # share of requests that must succeed
    latency: float | None = 1.0  # seconds: ...and answer within this (None: availability only)
    latency_target: float = 0.99  # share of requests that must be that fast
    path: str | None = None  # only requests whose path starts with this
    caller: str | None = None  # only requests from this caller (e.g. the customers)

    def describe(self) -> str:
        what = f"{self.service}{self.path or ''}"
        text = f"{100 * self.availability:g}% of {what} requests succeed"
        if self.latency is not None:
            text += f"; {100 * self.latency_target:g}% within {self.latency * 1000:g} ms"
        return text


@dataclass
class SLOReport:
    """How an SLO did over a window."""

    slo: SLO
    since: float
    until: float
    requests: int
    bad: int  # failed (5xx, no answer)
    slow: int  # answered, but slower than the latency objective
    p99: float | None

    @property
    def availability(self) -> float | None:
        return None if not self.requests else 1 - self.bad / self.requests

    @property
    def budget(self) -> float:
        """Failures the availability objective allows over this window."""
        return (1 - self.slo.availability) * self.requests

    @property
    def budget_consumed(self) -> float:
        """Share of the error budget spent (1.0 = all of it; above 1 = overspent)."""
        if self.budget == 0:
            return math.inf if self.bad else 0.0
        return self.bad / self.budget

    @property
    def latency_ok(self) -> bool:
        if self.slo.latency is None or not self.requests:
            return True
        return (self.requests - self.slow - self.bad) / self.requests >= self.slo.latency_target - 1e-12

    @property
    def met(self) -> bool:
        """No data is a failed check: an SLO with no requests is not met."""
        return bool(self.requests) and self.availability >= self.slo.availability - 1e-12 and self.latency_ok

    def summary(self) -> dict[str, Any]:
        return {
            "slo": self.slo.describe(), "requests": self.requests, "bad": self.bad, "slow": self.slow,
            "availability": None if self.availability is None else round(self.availability, 6),
            "p99": None if self.p99 is None else round(self.p99, 6),
            "budget": round(self.budget, 3),
            "budget_consumed": round(self.budget_consumed, 3) if math.isfinite(self.budget_consumed) else None,
            "met": self.met,
        }


def _select(recorder: Recorder, slo: SLO, since: float | None, until: float | None) -> list[Exchange]:
    return recorder.select(service=slo.service, path=slo.path, caller=slo.caller, since=since, until=until)


def evaluate(recorder: Recorder, slo: SLO, *, since: float | None = None, until: float | None = None) -> SLOReport:
    """The SLO over a window of the recording (all of it by default)."""
    xs = _select(recorder, slo, since, until)
    bad = sum(1 for x in xs if x.failed)
    slow = sum(1 for x in xs if not x.failed and slo.latency is not None and x.latency > slo.latency)
    start = since if since is not None else min((x.start for x in xs), default=0.0)
    end = until if until is not None else max((x.start for x in xs), default=0.0)
    return SLOReport(slo, start, end, len(xs), bad, slow, quantile([x.latency for x in xs], 0.99))


# -- alerts -------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertRule:
    """``condition(window) -> bool`` over the trailing ``over`` seconds, held for ``for_`` seconds."""

    name: str
    condition: Callable[[list[Exchange], list[Exchange]], bool]  # (this window, the window before)
    over: float = 60.0
    for_: float = 300.0
    severity: str = "ticket"  # page | ticket
    why: str = ""


@dataclass
class Alert:
    rule: str
    severity: str
    fired_at: float  # when it had held for `for_`
    pending_since: float  # when the condition first held
    resolved_at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def fire_alerts(recorder: Recorder, service: str, rules: list[AlertRule], *, until: float,
                step: float = 10.0, since: float = 0.0, caller: str | None = None,
                path: str | None = None) -> list[Alert]:
    """Evaluate each rule every ``step`` virtual seconds; return the alerts that fired, in order."""
    xs = sorted(recorder.select(service=service, caller=caller, path=path), key=lambda x: x.start)
    starts = [x.start for x in xs]
    from bisect import bisect_left

    def window(lo: float, hi: float) -> list[Exchange]:
        return xs[bisect_left(starts, lo):bisect_left(starts, hi)]

    alerts: list[Alert] = []
    for rule in rules:
        pending: float | None = None
        firing: Alert | None = None
        t = since + step
        while t <= until + 1e-9:
            now_window = window(t - rule.over, t)
            before = window(t - 2 * rule.over, t - rule.over)
            holds = rule.condition(now_window, before)
            if holds:
                if pending is None:
                    pending = t
                if firing is None and t - pending >= rule.for_ - 1e-9:
                    firing = Alert(rule.name, rule.severity, round(t, 6), round(pending, 6))
                    alerts.append(firing)
            else:
                pending = None
                if firing is not None and firing.resolved_at is None:
                    firing.resolved_at = round(t, 6)
                    firing = None
            t = round(t + step, 9)
    alerts.sort(key=lambda a: (a.fired_at, a.rule))
    return alerts


def _error_rate(xs: list[Exchange]) -> float:
    return sum(1 for x in xs if x.failed) / len(xs) if xs else 0.0


def seed_rules(*, error_rate: float = 0.01, p99: float = 1.0, drop: float = 0.5, for_: float = 300.0,
               over: float = 60.0) -> list[AlertRule]:
    """The source chapter's symptom alerts: error rate > 1 % for 5 min, p99 > 1000 ms for
    5 min, request rate drops > 50 %."""
    return [
        AlertRule("error rate > 1% for 5 min", lambda w, _: _error_rate(w) > error_rate, over, for_, "page",
                  "customers are seeing errors"),
        AlertRule("p99 latency > 1000 ms for 5 min",
                  lambda w, _: bool(w) and quantile([x.latency for x in w], 0.99) > p99, over, for_, "page",
                  "customers are waiting"),
        AlertRule("request rate dropped > 50%",
                  lambda w, b: bool(b) and len(w) < (1 - drop) * len(b), over, 0.0, "ticket",
                  "traffic vanished: broken client, DNS, or load balancer?"),
    ]


def burn_rate_rules(availability: float = 0.999, *, period: float = 30 * 86400.0,
                    scale: float = 1.0) -> list[AlertRule]:
    """Multi-window, multi-burn-rate alerts (Google SRE workbook, ch. 5 "Alerting on SLOs").

    Burn rate = error rate / (1 - objective): 1 spends the budget exactly over
    the SLO period, so burning at rate ``r`` for a window ``w`` spends
    ``r * w / period`` of the budget. The workbook's table for 99.9 % over 30 days:

    ============  ============  ============  ===============  ========
    burn rate     long window   short window  budget spent     action
    ============  ============  ============  ===============  ========
    14.4          1 h           5 min         2 %              page
    6             6 h           30 min        5 %              page
    1             3 days        6 h           10 %             ticket
    ============  ============  ============  ===============  ========

    A rule fires when the error rate over both of its windows is at least
    ``rate * (1 - availability)`` (the short window makes it stop soon after
    the burning does). ``scale`` shrinks the windows for short virtual
    experiments (e.g. scale=1/60: an hour becomes a minute, three days 72
    minutes); the labels name the scaled windows in seconds and the budget
    share of the unscaled period.

    >>> [(r.name, r.severity) for r in burn_rate_rules(scale=1 / 60)]  # doctest: +NORMALIZE_WHITESPACE
    [('burn rate 14.4 over 60 s and 5 s (2% of budget in 1 hour)', 'page'),
     ('burn rate 6 over 360 s and 30 s (5% of budget in 6 hours)', 'page'),
     ('burn rate 1 over 4320 s and 360 s (10% of budget in 3 days)', 'ticket')]
    """
    budget = 1 - availability

    def burning(rate: float, long: float, short: float):
        def condition(w: list[Exchange], _before: list[Exchange]) -> bool:
            if not w:
                return False
            end = max(x.start for x in w)
            recent = [x for x in w if x.start >= end - short]
            return _error_rate(w) >= rate * budget and _error_rate(recent) >= rate * budget
        return condition

    hour = 3600.0
    table = [  # (burn rate, long window, short window, in words, severity)
        (14.4, hour, hour / 12, "1 hour", "page"),
        (6.0, 6 * hour, hour / 2, "6 hours", "page"),
        (1.0, 72 * hour, 6 * hour, "3 days", "ticket"),
    ]
    rules = []
    for rate, long, short, words, severity in table:
        spent = rate * long / period  # share of the period's budget the long window spends
        left = period / rate / 86400.0  # days until the whole budget is gone at this rate
        rules.append(AlertRule(
            f"burn rate {rate:g} over {long * scale:g} s and {short * scale:g} s "
            f"({100 * spent:.3g}% of budget in {words})",
            burning(rate, long * scale, short * scale), long * scale, 0.0, severity,
            f"at this rate the budget is gone in {left:.3g} days"))
    return rules
