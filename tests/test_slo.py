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


def test_burn_rate_rules_are_the_workbooks_table():
    # SRE workbook, ch. 5: for 99.9 % over 30 days, page at 14.4 over 1 h (5 min) = 2 % of the budget,
    # page at 6 over 6 h (30 min) = 5 %, ticket at 1 over 3 days (6 h) = 10 %: rate x window / 30 days.
    rules = burn_rate_rules(0.999)
    assert [(r.over, r.severity) for r in rules] == [(3600.0, "page"), (21600.0, "page"), (259200.0, "ticket")]
    assert [r.name for r in rules] == [
        "burn rate 14.4 over 3600 s and 300 s (2% of budget in 1 hour)",
        "burn rate 6 over 21600 s and 1800 s (5% of budget in 6 hours)",
        "burn rate 1 over 259200 s and 21600 s (10% of budget in 3 days)",
    ]
    scaled = burn_rate_rules(0.999, scale=1 / 60)  # the game's scale: three days become 72 minutes
    assert [r.over for r in scaled] == [60.0, 360.0, 4320.0]
    assert [r.name.split(" (")[1] for r in scaled] == [r.name.split(" (")[1] for r in rules]


def test_a_slow_leak_raises_the_ticket_and_no_page():
    # One request in 400 fails (burn rate 2.5): too slow for either page, enough for the 3-day ticket.
    rec = Recorder()
    for i in range(2 * 4500):
        t = i / 2
        rec.exchange(t, t + 0.05, "customer", "orders", "orders-1", "GET", "/orders", 503 if i % 400 == 399 else 200)
    alerts = fire_alerts(rec, "orders", burn_rate_rules(0.999, scale=1 / 60), until=4500)
    assert alerts and {a.severity for a in alerts} == {"ticket"}
    assert all(a.rule.startswith("burn rate 1 over 4320 s") for a in alerts)


def test_the_six_hour_page_outlasts_the_one_hour_page_after_a_short_burst():
    # 12 failures in four seconds, then none: the 5 s short window has forgotten them ten seconds later,
    # the 30 s one has not (the game's protected orders at t = 70 s).
    rec = Recorder()
    for i in range(4 * 200):
        t = i / 4
        down = 60 <= t < 64 and i % 4 != 3
        rec.exchange(t, t + 0.05, "customer", "orders", "orders-1", "GET", "/orders", 503 if down else 200)
    pages = burn_rate_rules(0.999, scale=1 / 60)[:2]  # the 72-minute ticket cannot be judged in 200 s
    alerts = fire_alerts(rec, "orders", pages, until=200)
    assert [(a.rule.split(" over")[0], a.severity, a.fired_at, a.resolved_at) for a in alerts] == [
        ("burn rate 6", "page", 70.0, 100.0)]
