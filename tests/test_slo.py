"""SLOs, error budgets and alerts: exact figures on hand-made histories."""

from __future__ import annotations

import pytest

from harness.recorder import Recorder
from harness.slo import SLO, burn_rate_rules, evaluate, fire_alerts, seed_rules


def history(seconds: int, rate: int, *, failing: tuple[float, float] | None = None, latency: float = 0.05,
            slow: tuple[float, float] | None = None) -> Recorder:
    """`rate` requests per second to orders; 503s inside `failing`, 2 s answers inside `slow`."""
    rec = Recorder()
    for i in range(seconds * rate):
        t = i / rate
        down = failing is not None and failing[0] <= t < failing[1]
        lag = 2.0 if slow is not None and slow[0] <= t < slow[1] else latency
        rec.exchange(t, t + lag, "customer", "orders", "orders-1", "GET", "/orders", 503 if down else 200)
    return rec


def test_budget_is_what_the_objective_allows_to_fail():
    rec = history(100, 10, failing=(0, 0.5))  # 5 of 1,000 fail
    report = evaluate(rec, SLO("orders", availability=0.999))
    assert (report.requests, report.bad, report.budget) == (1000, 5, pytest.approx(1.0))
    assert report.budget_consumed == pytest.approx(5.0) and not report.met


def test_an_slo_without_requests_is_not_met():
    assert not evaluate(Recorder(), SLO("orders")).met


def test_latency_objective_counts_slow_answers():
    rec = history(100, 10, slow=(0, 2))  # 20 of 1,000 take 2 s: 98 % fast < 99 %
    report = evaluate(rec, SLO("orders", availability=0.99, latency=1.0))
    assert report.slow == 20 and report.availability == 1.0 and not report.met


def test_seed_error_rate_rule_fires_after_five_minutes_of_errors():
    rec = history(900, 2, failing=(120, 900))
    alerts = fire_alerts(rec, "orders", seed_rules()[:1], until=900)
    # The 60 s window first exceeds 1 % at t=130 (step 10); held for 300 s: fires at 430.
    assert [(a.rule, a.pending_since, a.fired_at) for a in alerts] == [("error rate > 1% for 5 min", 130.0, 430.0)]


def test_a_short_outage_never_pages_with_a_five_minute_for():
    rec = history(900, 2, failing=(120, 300))  # three minutes of errors
    assert fire_alerts(rec, "orders", seed_rules()[:1], until=900) == []


def test_the_seeds_thirty_day_slo_alert_comes_too_late_where_burn_rate_pages_in_minutes():
    # A full outage from t=600 s, scaled SLO period: one hour of virtual time stands for 30 days.
    rec = history(3600, 1, failing=(600, 3600))
    scale = 3600 / (30 * 86400)
    pages = [a for a in fire_alerts(rec, "orders", burn_rate_rules(0.999, scale=scale), until=3600, step=1)
             if a.severity == "page"]
    assert pages and pages[0].fired_at < 610  # within seconds of the outage (minutes, in real scale)
