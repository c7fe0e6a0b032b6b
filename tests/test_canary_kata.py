"""The canary kata's checks bite: the solution passes, the stub fails, each plausible mistake is named.

Each wrong variant is the reference solution with one mistake a learner might
make, written into a temporary ``canary.py`` and checked the way a learner's
file is. It must fail the level that teaches the rule it breaks, with a
message that names the mistake (and where the mistake breaks a later rule
too, that level as well: ``levels`` says which).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from harness.toolchain import catalogue
from harness.toolchain.reset import ResetError, starting_version
from harness.toolchain.runner import check_kata

PRELUDE = """\
import asyncio
import contextlib
import random

from solutions.canary import *  # noqa: F403
from solutions.canary import (
    BaselineComparison as ReferenceComparison,
    ErrorRateAnalysis as ReferenceAnalysis,
    OutlierDetector as ReferenceDetector,
    RetryPolicy as ReferencePolicy,
    Rollout as ReferenceRollout,
    TrafficSplit as ReferenceSplit,
    _in_flight,
    mann_whitney_u as reference_mann_whitney_u,
)
from harness.http import NetworkError, Response


"""


def variant(tmp_path: Path, body: str | tuple[str, ...]) -> str:
    """A folder holding canary.py = the prelude + ``body`` (which overrides some reference names)."""
    parts = body if isinstance(body, tuple) else (body,)
    (tmp_path / "canary.py").write_text(PRELUDE + "\n".join(textwrap.dedent(part) for part in parts))
    return str(tmp_path)


# The reference classes look names up in the reference module: a variant that replaces a
# function or a class also makes the classes that use it use the replacement, as a learner's
# own module would.
ERROR_RATE_USERS = """
class ErrorRateAnalysis(ReferenceAnalysis):
    def __call__(self, canary, baseline):
        if len(canary) < max(1, self.min_requests):
            return Analysis(False, "no data", canary_requests=len(canary))
        rate = error_rate(canary)
        passed = rate <= self.max_error_rate
        return Analysis(passed, f"error rate {rate}", canary_requests=len(canary), canary_error_rate=rate)
"""
ANALYSIS_USERS = """
class Rollout(ReferenceRollout):
    def __init__(self, *args, analysis=None, **kwargs):
        super().__init__(*args, analysis=analysis if analysis is not None else ErrorRateAnalysis(), **kwargs)
"""

# name: (the levels it fails, a phrase the failure message of its first level must contain, the mistake,
#        and the shared bodies it needs)
VARIANTS: dict[str, tuple] = {
    # -- level 1 ---------------------------------------------------------------------
    "draws_from_the_global_random": ({1}, "global `random` module", """
        class TrafficSplit(ReferenceSplit):
            def pick_release(self):
                total = sum(self._weights.values())
                point = random.random() * total
                for release, weight in self._weights.items():
                    if point < weight:
                        return release
                    point -= weight
                return release
    """),
    "draw_includes_its_upper_end": ({1}, "draw a point in [0, total)", """
        class TrafficSplit(ReferenceSplit):
            def pick_release(self):
                point = self.rng.randint(0, sum(self._weights.values()))
                for release, weight in self._weights.items():
                    if point <= weight:
                        return release
                    point -= weight
                return release
    """),
    "weights_taken_as_percentages": ({1}, "do not add up to 100", """
        class TrafficSplit(ReferenceSplit):
            def pick_release(self):
                point = self.rng.random() * 100
                for release, weight in self._weights.items():
                    if point < weight:
                        return release
                    point -= weight
                return release
    """),
    "set_weights_merges": ({1}, "replace every weight", """
        class TrafficSplit(ReferenceSplit):
            def set_weights(self, weights):
                merged = dict(getattr(self, "_weights", {}))
                merged.update(weights)
                super().set_weights(merged)
    """),
    "balancer_ignores_the_release": ({1, 2, 5}, "routed by the release's weight", """
        class TrafficSplit(ReferenceSplit):
            def __call__(self, service, instances):
                return self._round_robin(service, list(instances))
    """),
    # -- level 2 ---------------------------------------------------------------------
    "errors_over_100_like_the_seed": ({2}, "divides by 100", """
        def error_rate(exchanges):
            if not exchanges:
                return None
            return sum(1 for x in exchanges if x.failed) / 100
    """, ERROR_RATE_USERS, ANALYSIS_USERS),
    "zero_error_rate_without_data": ({2}, "no requests has no error rate", """
        def error_rate(exchanges):
            if not exchanges:
                return 0.0
            return sum(1 for x in exchanges if x.failed) / len(exchanges)
    """),
    "no_traffic_judged_healthy": ({2, 5}, "judges a stage with no traffic as healthy", """
        class ErrorRateAnalysis(ReferenceAnalysis):
            def __call__(self, canary, baseline):
                if not canary:
                    return Analysis(True, "no errors seen")
                return super().__call__(canary, baseline)
    """, ANALYSIS_USERS),
    "fails_a_rate_equal_to_the_threshold": ({2}, "fails a value equal to the threshold", """
        class ErrorRateAnalysis(ReferenceAnalysis):
            def __call__(self, canary, baseline):
                verdict = super().__call__(canary, baseline)
                if verdict.passed and verdict.canary_error_rate == self.max_error_rate:
                    return Analysis(False, "at the limit", canary_requests=verdict.canary_requests,
                                    canary_error_rate=verdict.canary_error_rate)
                return verdict
    """, ANALYSIS_USERS),
    "counts_4xx_as_errors": ({2}, "counts 4xx answers as errors", """
        def error_rate(exchanges):
            if not exchanges:
                return None
            return sum(1 for x in exchanges if x.status is None or x.status >= 400) / len(exchanges)
    """, ERROR_RATE_USERS, ANALYSIS_USERS),
    "misses_requests_without_an_answer": ({2}, "got no answer at all", """
        def error_rate(exchanges):
            if not exchanges:
                return None
            return sum(1 for x in exchanges if x.status is not None and x.status >= 500) / len(exchanges)
    """, ERROR_RATE_USERS, ANALYSIS_USERS),
    "judges_the_whole_service": ({2}, "requests of the whole service", """
        class Rollout(ReferenceRollout):
            def _window(self, start, end):
                canary, baseline = super()._window(start, end)
                return canary + baseline, baseline
    """),
    "judges_everything_since_the_start": ({2, 3}, "before the stage began", """
        class Rollout(ReferenceRollout):
            def _window(self, start, end):
                return super()._window(0.0, end)
    """),
    "rollback_leaves_the_weights": ({2, 5}, "rollback must set the canary's weight to 0", """
        class Rollout(ReferenceRollout):
            async def rollback(self):
                pass
    """),
    "rollback_drops_the_canary_from_the_weights": ({2}, "keep the canary in the weights at 0", """
        class Rollout(ReferenceRollout):
            async def rollback(self):
                await super().rollback()
                self.split.set_weights({self.baseline: 100})
    """),
    # -- level 3 ---------------------------------------------------------------------
    "mann_whitney_without_continuity_correction": ({3}, "without the continuity correction", """
        import math
        def mann_whitney_u(canary, baseline):
            u, _ = reference_mann_whitney_u(canary, baseline)
            n1, n2 = len(canary), len(baseline)
            pooled = [*canary, *baseline]
            n = n1 + n2
            ties = sum(pooled.count(v) ** 3 - pooled.count(v) for v in set(pooled))
            variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
            if variance <= 0:
                return u, 1.0
            return u, 0.5 * math.erfc((u - n1 * n2 / 2) / math.sqrt(variance) / math.sqrt(2))
    """),
    "mann_whitney_without_tie_correction": ({3}, "without the tie correction", """
        import math
        def mann_whitney_u(canary, baseline):
            u, _ = reference_mann_whitney_u(canary, baseline)
            n1, n2 = len(canary), len(baseline)
            variance = n1 * n2 * (n1 + n2 + 1) / 12
            return u, 0.5 * math.erfc((u - n1 * n2 / 2 - 0.5) / math.sqrt(variance) / math.sqrt(2))
    """),
    "mann_whitney_two_sided": ({3}, "two-sided", """
        def mann_whitney_u(canary, baseline):
            u, greater = reference_mann_whitney_u(canary, baseline)
            _, less = reference_mann_whitney_u(baseline, canary)
            return u, min(1.0, 2 * min(greater, less))
    """),
    "mann_whitney_divides_by_a_zero_variance": ({3}, "the variance is 0", """
        import math
        def mann_whitney_u(canary, baseline):
            u, p = reference_mann_whitney_u(canary, baseline)
            if len(set([*canary, *baseline])) == 1:
                raise ZeroDivisionError("float division by zero")
            return u, p
    """),
    "compares_errors_with_a_fixed_limit": ({3}, "against a fixed limit", """
        class BaselineComparison(ReferenceComparison):
            def __call__(self, canary, baseline):
                verdict = super().__call__(canary, baseline)
                if verdict.canary_error_rate is not None and verdict.canary_error_rate > self.max_error_rate_increase:
                    return Analysis(False, "too many errors", **{k: getattr(verdict, k) for k in (
                        "canary_requests", "canary_error_rate", "baseline_requests", "baseline_error_rate",
                        "canary_p99", "baseline_p99", "p_value")})
                return verdict
    """),
    "judges_latency_by_p99_alone": ({3}, "judges p99 alone", """
        class BaselineComparison(ReferenceComparison):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.alpha = 1.01  # every p-value is "significant"
    """),
    "judges_latency_by_the_rank_test_alone": ({3}, "judges the rank test alone", """
        class BaselineComparison(ReferenceComparison):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.max_p99_ratio = 0.0  # any p99 is "worse"
    """),
    "comparison_without_baseline_passes": ({3}, "no traffic as healthy", """
        class BaselineComparison(ReferenceComparison):
            def __call__(self, canary, baseline):
                if canary and not baseline:
                    return Analysis(True, "nothing to compare with")
                return super().__call__(canary, baseline)
    """),
    "counts_failed_checks_in_a_row": ({3}, "counts failed checks in a row", """
        class Rollout(ReferenceRollout):
            async def run(self):
                from solutions.canary import RolloutReport, StageCheck
                report = RolloutReport("running")
                stage, in_a_row = 0, 0
                while True:
                    weight = self.stages[stage]
                    self.split.set_weights({self.baseline: 100 - weight, self.canary: weight})
                    start = self.world.now()
                    await asyncio.sleep(self.interval)
                    canary, baseline = self._window(start, self.world.now())
                    verdict = self.analysis(canary, baseline)
                    report.checks.append(StageCheck(weight, start, self.world.now(), verdict))
                    if not verdict.passed:
                        report.failed_checks += 1
                        in_a_row += 1
                        if in_a_row >= self.max_failed_checks:
                            await self.rollback()
                            report.status, report.finished_at = "rolled-back", self.world.now()
                            return report
                        continue
                    in_a_row = 0  # the mistake: a pass wipes the slate
                    stage += 1
                    if stage == len(self.stages):
                        self.split.set_weights({self.baseline: 0, self.canary: 100})
                        report.status, report.finished_at = "promoted", self.world.now()
                        return report
    """),
    "advances_after_a_failed_check": ({3}, "advances after a failed check", """
        class Rollout(ReferenceRollout):
            async def run(self):
                from solutions.canary import RolloutReport, StageCheck
                report = RolloutReport("running")
                for weight in self.stages:
                    self.split.set_weights({self.baseline: 100 - weight, self.canary: weight})
                    start = self.world.now()
                    await asyncio.sleep(self.interval)
                    canary, baseline = self._window(start, self.world.now())
                    verdict = self.analysis(canary, baseline)
                    report.checks.append(StageCheck(weight, start, self.world.now(), verdict))
                    if not verdict.passed:
                        report.failed_checks += 1
                        if report.failed_checks >= self.max_failed_checks:
                            await self.rollback()
                            report.status, report.finished_at = "rolled-back", self.world.now()
                            return report
                self.split.set_weights({self.baseline: 0, self.canary: 100})
                report.status, report.finished_at = "promoted", self.world.now()
                return report
    """),
    "gives_the_analysis_no_baseline": ({3}, "gets no baseline requests", """
        class Rollout(ReferenceRollout):
            def _window(self, start, end):
                canary, _ = super()._window(start, end)
                return canary, []
    """),
    # -- level 4 ---------------------------------------------------------------------
    "retries_4xx": ({4}, "retries 4xx", """
        class RetryPolicy(ReferencePolicy):
            async def call(self, attempt):
                async def as_server_error(timeout):
                    response = await attempt(timeout)
                    if 400 <= response.status < 500:
                        return Response(500 + response.status % 100, response.headers, response.body,
                                        instance=response.instance)
                    return response
                response = await super().call(as_server_error)
                return response
    """),
    "retries_after_the_overall_deadline": ({4}, "retries after the overall deadline", """
        class RetryPolicy(ReferencePolicy):
            async def call(self, attempt):
                deadline = self.clock.now() + self.timeout
                for retry in range(self.max_retries + 1):
                    if retry and self.backoff:
                        await asyncio.sleep(self.backoff)
                    allowed = max(0.0, min(self.per_try_timeout, deadline - self.clock.now()))
                    try:
                        outcome = await attempt(allowed)
                    except NetworkError as error:
                        outcome = error
                    else:
                        if outcome.status < 500:
                            return outcome
                if isinstance(outcome, Response):
                    return outcome
                raise outcome
    """),
    "per_try_timeouts_exceed_the_budget": ({4}, "per-try timeouts must not exceed the overall budget", """
        class RetryPolicy(ReferencePolicy):
            async def call(self, attempt):
                per_try = self.per_try_timeout
                return await super().call(lambda timeout: attempt(per_try))
    """),
    "max_retries_counts_the_tries": ({4}, "counts the retries, not the tries", """
        class RetryPolicy(ReferencePolicy):
            def __init__(self, *, max_retries=3, **kwargs):
                super().__init__(max_retries=max_retries - 1, **kwargs)
                self.max_retries = max_retries
                self._retries = max_retries - 1

            async def call(self, attempt):
                shown, self.max_retries = self.max_retries, self._retries
                try:
                    return await super().call(attempt)
                finally:
                    self.max_retries = shown
    """),
    "ejects_every_instance": ({4}, "ejected every instance", """
        class OutlierDetector(ReferenceDetector):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.max_ejection_percent = 1000
    """),
    "ejection_share_checked_before_ejecting": ({4}, "about to eject", """
        class OutlierDetector(ReferenceDetector):
            def _eject(self, host, now):
                ejected = sum(1 for h in self.hosts if self.is_ejected(h))
                if 100 * ejected / len(self.hosts) >= self.max_ejection_percent:
                    return
                limit, self.max_ejection_percent = self.max_ejection_percent, 100
                try:
                    super()._eject(host, now)
                finally:
                    self.max_ejection_percent = limit
    """),
    "constant_ejection_time": ({4}, "the ejection time does not grow", """
        class OutlierDetector(ReferenceDetector):
            def _eject(self, host, now):
                self._times_ejected[host] = 0
                super()._eject(host, now)
    """),
    "ejection_time_without_cap": ({4}, "max_ejection_time caps it", """
        class OutlierDetector(ReferenceDetector):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.max_ejection_time = float("inf")
    """),
    "ejects_on_failures_in_total": ({4}, "counts failures in total", """
        class OutlierDetector(ReferenceDetector):
            def observe(self, exchange):
                before = dict(self._in_a_row)
                super().observe(exchange)
                host = exchange.instance
                if host in before and not exchange.failed:
                    self._in_a_row[host] = before[host]
    """),
    # -- level 5 ---------------------------------------------------------------------
    "stops_the_canary_at_once": ({5}, "stops the canary while requests are still running", """
        class Rollout(ReferenceRollout):
            async def rollback(self):
                self.split.set_weights({self.baseline: 100, self.canary: 0})
                for instance in self.world.instances(self.split.service):
                    if instance.release == self.canary and instance.up:
                        instance.crash()
    """),
    "never_stops_the_canary": ({5}, "must not keep running", """
        class Rollout(ReferenceRollout):
            async def rollback(self):
                self.split.set_weights({self.baseline: 100, self.canary: 0})
    """),
    "drains_without_a_deadline": ({5}, "waits for every request however long", """
        class Rollout(ReferenceRollout):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.drain_timeout = None
    """),
    "drains_with_a_fixed_sleep": ({5}, "waits the whole drain_timeout", """
        class Rollout(ReferenceRollout):
            async def rollback(self):
                self.split.set_weights({self.baseline: 100, self.canary: 0})
                await asyncio.sleep(self.drain_timeout)
                for instance in self.world.instances(self.split.service):
                    if instance.release == self.canary and instance.up:
                        instance.crash()
    """),
    "stops_before_rerouting": ({5}, "stops the canary while requests are still running", """
        class Rollout(ReferenceRollout):
            async def rollback(self):
                for instance in self.world.instances(self.split.service):
                    if instance.release == self.canary and instance.up:
                        instance.crash()
                await asyncio.sleep(0.5)
                self.split.set_weights({self.baseline: 100, self.canary: 0})
    """),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_mistake_fails_its_level_and_is_named(tmp_path: Path, name: str) -> None:
    levels, phrase, *body = VARIANTS[name]
    report = check_kata("canary", variant(tmp_path, tuple(body)))
    failing = {level.level for level in report.levels if level.status != "pass"}
    assert failing == levels, f"{name} fails levels {sorted(failing)}, expected {sorted(levels)}"
    first = report.levels[min(levels) - 1]
    messages = [test.message or "" for test in first.failures]
    assert all(test.status == "fail" for test in first.failures), [(t.status, t.message) for t in first.failures]
    assert any(phrase in message for message in messages), "\n\n".join(messages)


def test_an_unchanged_module_passes_so_the_variants_are_fair(tmp_path: Path) -> None:
    """The control for the variants above: the prelude alone changes nothing."""
    report = check_kata("canary", variant(tmp_path, "pass\n"))
    assert report.status == "pass", [t.message for lv in report.levels for t in lv.failures]


def starting_stub(folder: Path) -> str:
    """A folder holding the stub as git has it (a learner's progress in katas/ never fails this)."""
    stub = Path(__file__).resolve().parents[1] / "katas" / "canary.py"
    try:
        source, _ = starting_version(stub)
    except ResetError:  # not committed yet, or no git: the working copy is the stub
        source = stub.read_bytes()
    (folder / "canary.py").write_bytes(source)
    return str(folder)


def test_the_stub_fails_every_level_as_not_implemented(tmp_path: Path) -> None:
    report = check_kata("canary", starting_stub(tmp_path))
    assert [level.status for level in report.levels] == ["fail"] * len(catalogue.kata("canary").levels)
    for level in report.levels:
        for test in level.tests:
            assert test.status == "fail", (test.name, test.status, test.message)
            assert test.message.startswith("not implemented yet: "), test.message
            assert test.message.endswith(f"(level {level.level})")


def test_the_known_mann_whitney_figures_are_scipys() -> None:
    """The level 3 checks' expected values, and the reference on random samples, agree with scipy."""
    stats = pytest.importorskip("scipy.stats")
    import random

    from harness.checks.canary.level3 import KNOWN, WITH_TIES
    from solutions.canary import mann_whitney_u

    for canary, baseline, u, p in KNOWN + WITH_TIES:
        result = stats.mannwhitneyu(canary, baseline, alternative="greater", method="asymptotic")
        assert (result.statistic, result.pvalue) == (pytest.approx(u), pytest.approx(p, abs=1e-12))
    rng = random.Random(11)
    for _ in range(100):
        canary = [rng.choice([0.1, 0.2, 0.3, 0.5]) for _ in range(rng.randint(1, 40))]
        baseline = [rng.choice([0.1, 0.2, 0.4, 0.5]) for _ in range(rng.randint(1, 40))]
        result = stats.mannwhitneyu(canary, baseline, alternative="greater", method="asymptotic")
        u, p = mann_whitney_u(canary, baseline)
        assert u == pytest.approx(result.statistic)
        assert p == pytest.approx(result.pvalue, abs=1e-12) or (math.isnan(result.pvalue) and p == 1.0)


def test_the_mann_whitney_tiny_case_by_hand() -> None:
    """[4, 5, 6] against [1, 2, 3]: every pair has the canary larger, U = 9; z = (9 - 4.5 - 0.5) / sqrt(5.25)."""
    from solutions.canary import mann_whitney_u

    u, p = mann_whitney_u([4, 5, 6], [1, 2, 3])
    z = (9 - 4.5 - 0.5) / math.sqrt(3 * 3 * 7 / 12)
    assert u == 9.0
    assert p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2))) == pytest.approx(0.0404278, abs=1e-7)


def test_the_solution_passes_every_level_for_many_seeds() -> None:
    """Seeds 0 to 5 (tests/test_katas_both_directions.py adds 7 and 2024)."""
    for seed in range(6):
        report = check_kata("canary", "solutions", seed=seed)
        assert report.status == "pass", (seed, [t.message for lv in report.levels for t in lv.failures])


def test_bad_release_scenario_tells_its_story_the_same_way_every_time() -> None:
    """Good release promoted, bad one rolled back after one stage, the seed's check promotes the bad one."""
    from harness.scenarios import run_scenario

    result = run_scenario("bad-release", seed=3)
    summary = {v.name: v.summary for v in result.variants}
    assert (summary["good-release"]["status"], summary["good-release"]["finished_at"]) == ("promoted", 1500.0)
    assert (summary["bad-release"]["status"], summary["bad-release"]["finished_at"]) == ("rolled-back", 300.0)
    assert summary["seed-check"]["status"] == "promoted"
    assert 0 == summary["good-release"]["customer_errors"] < summary["bad-release"]["customer_errors"] \
        < summary["seed-check"]["customer_errors"] / 5
    again = run_scenario("bad-release", seed=3, variants=["bad-release"])
    assert again.variant("bad-release").digest == result.variant("bad-release").digest
    labels = {ax.get_ylabel() for ax in result.plot(result).axes}
    assert {"canary weight (%)", "canary error rate (%)"} <= labels


def test_mesh_scenario_retries_hide_the_outage_and_ejection_saves_the_attempts() -> None:
    from harness.canary_plots import mesh_timeline, record_ejections
    from harness.scenarios import run_scenario

    result = run_scenario("mesh", seed=3)
    summary = {v.name: v.summary for v in result.variants}
    assert summary["no-mesh"]["customer_failures"] > 0
    assert summary["retries"]["customer_failures"] == summary["retries+ejection"]["customer_failures"] == 0
    assert summary["retries+ejection"]["attempts_on_catalog-2_during_outage"] == 15  # 5 per ejection, 3 ejections
    ejecting = result.variant("retries+ejection")
    assert [round(e.until - e.at, 6) for e in ejecting.ejections] == [30.0, 60.0, 90.0]
    assert run_scenario("mesh", seed=3, variants=["retries+ejection"]).digest \
        == run_scenario("mesh", seed=3, variants=["retries+ejection"]).digest
    record_ejections(ejecting.world.recorder, ejecting.ejections)
    figure = mesh_timeline(ejecting.world.recorder, services="catalog")
    assert "ejected: catalog-2" in [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert len(result.plot(result).axes) == 3
