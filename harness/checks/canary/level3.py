"""Level 3: the canary against the baseline (error rate, p99, a rank test); failed checks in total.

The expected Mann-Whitney figures below come from
``scipy.stats.mannwhitneyu(canary, baseline, alternative="greater",
method="asymptotic")`` (normal approximation, tie-corrected variance,
continuity correction); ``tests/test_canary_kata.py`` checks them against
scipy when it is installed. :func:`_variants` computes the p-values of the
usual slips, only to name them in a message.
"""

from __future__ import annotations

import math

from .. import Context, level
from .scene import Scene, ScriptedAnalysis, Shop, SpyAnalysis, describe, exchanges, latencies

# (canary, baseline) -> (U, one-sided p)
KNOWN = [
    ([4, 5, 6], [1, 2, 3], 9.0, 0.04042779918502615),
    ([1, 2, 3], [4, 5, 6], 0.0, 0.9854518341293739),
    ([1, 3, 5], [2, 4, 6], 3.0, 0.808633455557387),
]
WITH_TIES = [
    ([1, 2, 2, 3, 3], [1, 1, 2, 3], 13.0, 0.25930250821436285),
    ([0.1, 0.2, 0.2, 0.5], [0.1, 0.1, 0.3], 8.0, 0.289201506748058),
]


def _variants(canary: list[float], baseline: list[float]) -> dict[str, float]:
    """p-values of plausible mistakes, to recognise them."""
    n1, n2 = len(canary), len(baseline)
    n = n1 + n2
    u = sum((c > b) + 0.5 * (c == b) for c in canary for b in baseline)
    mean = n1 * n2 / 2
    counts: dict[float, int] = {}
    for v in [*canary, *baseline]:
        counts[v] = counts.get(v, 0) + 1
    ties = sum(t**3 - t for t in counts.values())
    var_tied = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    var_plain = n1 * n2 * (n + 1) / 12

    def upper(z: float) -> float:
        return 0.5 * math.erfc(z / math.sqrt(2))

    return {
        "without the continuity correction: z = (U - mean - 0.5) / sd": upper((u - mean) / math.sqrt(var_tied)),
        "without the tie correction of the variance": upper((u - mean - 0.5) / math.sqrt(var_plain)),
        "two-sided: the question is whether the canary is *slower*, one side only":
            min(1.0, 2 * upper(abs(u - mean - 0.5) / math.sqrt(var_tied))),
        "for the other side (the baseline larger than the canary)": upper((n1 * n2 - u - mean - 0.5)
                                                                          / math.sqrt(var_tied)),
    }


def _check_known(scene: Scene, cases: list) -> None:
    for canary, baseline, u, p in cases:
        got = scene.call(f"mann_whitney_u({canary}, {baseline})", scene.module.mann_whitney_u, canary, baseline)
        try:
            got_u, got_p = got
        except (TypeError, ValueError):
            scene.fail(got=repr(got), expected=f"a pair (U, p) = ({u:g}, {p:.6f})")
        if abs(got_u - u) > 1e-9:
            why = None
            if abs(got_u - (len(canary) * len(baseline) - u)) < 1e-9:
                why = "this is the baseline's U: U counts pairs where the *canary* is larger"
            scene.fail(got=f"U = {got_u!r}", expected=f"U = {u:g}", why=why)
        if abs(got_p - p) > 1e-6:
            why = next((f"the p-value is computed {name}" for name, value in _variants(canary, baseline).items()
                        if abs(got_p - value) < 1e-6), None)
            scene.fail(got=f"p = {got_p!r}", expected=f"p = {p:.6f} (one-sided, normal approximation, tie-corrected, "
                                                       "continuity-corrected)", why=why)


@level(3)
def mann_whitney_u_on_small_known_cases(ctx: Context) -> None:
    """U and the one-sided p-value match scipy's asymptotic test on tiny samples."""
    _check_known(Scene(ctx), KNOWN)


@level(3)
def mann_whitney_u_with_ties(ctx: Context) -> None:
    """Tied values share their average rank, and the variance is tie-corrected."""
    _check_known(Scene(ctx), WITH_TIES)


@level(3)
def mann_whitney_u_without_spread_or_data(ctx: Context) -> None:
    """All values equal (no latency fault: every latency 0 s) gives p = 1.0; an empty sample, ValueError."""
    scene = Scene(ctx)
    for canary, baseline, u in (([2, 2, 2], [2, 2], 3.0), ([0.0] * 5, [0.0] * 5, 12.5)):
        try:
            got = scene.module.mann_whitney_u(canary, baseline)
        except ZeroDivisionError:
            scene.note(f"mann_whitney_u({canary}, {baseline}) -> ZeroDivisionError")
            scene.fail(got="ZeroDivisionError", expected=f"({u:g}, 1.0)",
                       why="every value is equal, so the variance is 0: there is no evidence either way, return "
                           "p = 1.0. In the simulator this happens whenever no latency fault is on")
        except NotImplementedError:
            raise
        except Exception as error:
            scene.crashed(f"mann_whitney_u({canary}, {baseline})", error, f"({u:g}, 1.0)")
        scene.note(f"mann_whitney_u({canary}, {baseline}) -> {got!r}")
        if tuple(got) != (u, 1.0):
            scene.fail(got=repr(got), expected=f"({u:g}, 1.0)",
                       why="every value is equal: with the tie correction the variance is 0, so there is no "
                           "evidence either way and p = 1.0 (without the correction you get a p-value out of "
                           "thin air)")
    try:
        got = scene.module.mann_whitney_u([], [1.0, 2.0])
    except ValueError:
        scene.note("mann_whitney_u([], [1.0, 2.0]) -> ValueError")
        return
    except NotImplementedError:
        raise
    except Exception as error:
        scene.crashed("mann_whitney_u([], [1.0, 2.0])", error, "ValueError")
    scene.fail(got=f"mann_whitney_u([], [1.0, 2.0]) returned {got!r}",
               expected="ValueError: an empty sample cannot be compared (no data is the caller's failed check)")


def _compare(scene: Scene, comparison: object, canary: list, baseline: list, label: str) -> object:
    return scene.call(f"comparison(canary={label[0]}, baseline={label[1]})", comparison, canary, baseline)


@level(3)
def error_rate_is_judged_against_the_baseline(ctx: Context) -> None:
    """The canary fails only when its error rate is more than max_error_rate_increase above the baseline's."""
    scene = Scene(ctx)
    comparison = scene.call("comparison = BaselineComparison(max_error_rate_increase=0.01)",
                            scene.module.BaselineComparison, max_error_rate_increase=0.01)
    cases = [
        (exchanges(ok=97, errors=3), exchanges(ok=291, errors=9, instance="catalog-1"), True,
         "3 % on both releases (a shared dependency failing)",
         "it judges the canary's error rate against a fixed limit: errors that hit both releases alike are "
         "no reason to roll the canary back; compare with the baseline"),
        (exchanges(ok=95, errors=5), exchanges(ok=99, errors=1, instance="catalog-1"), False,
         "5 % against 1 %: 4 points worse", "the canary's extra errors are not judged"),
        (exchanges(ok=98, errors=2), exchanges(ok=99, errors=1, instance="catalog-1"), True,
         "2 % against 1 %: exactly the allowed 1 point more",
         "it fails a value equal to the threshold: exactly max_error_rate_increase more passes"),
    ]
    for canary, baseline, passes, what, why in cases:
        verdict = _compare(scene, comparison, canary, baseline, (describe(canary), describe(baseline)))
        if verdict.passed != passes:
            scene.fail(got=f"passed={verdict.passed!r} ({verdict.reason})",
                       expected=f"passed={passes}: {what}", why=why)
        if verdict.canary_error_rate != error_rate_of(canary) or \
                verdict.baseline_error_rate != error_rate_of(baseline):
            scene.fail(got=f"canary_error_rate={verdict.canary_error_rate!r}, "
                           f"baseline_error_rate={verdict.baseline_error_rate!r}",
                       expected=f"{error_rate_of(canary)!r} and {error_rate_of(baseline)!r}: the figures behind "
                                "the verdict")


def error_rate_of(xs: list) -> float:
    return sum(1 for x in xs if x.failed) / len(xs)


BASELINE = [0.010 + 0.001 * i for i in range(50)]  # 10 ms .. 59 ms


@level(3)
def latency_fails_when_significant_and_p99_is_worse(ctx: Context) -> None:
    """Latency fails only when Mann-Whitney says slower (p < alpha) and p99 is above max_p99_ratio times."""
    scene = Scene(ctx)
    comparison = scene.call("comparison = BaselineComparison(max_p99_ratio=1.2, alpha=0.05)",
                            scene.module.BaselineComparison, max_p99_ratio=1.2, alpha=0.05)
    baseline = latencies(BASELINE, instance="catalog-1")
    one_outlier = latencies(BASELINE[:-1] + [0.2])
    slower = latencies([v * 1.5 for v in BASELINE])
    slower_middle = latencies([0.040 + 0.0004 * i for i in range(50)])
    cases = [
        (one_outlier, "the baseline's latencies with its slowest (59 ms) replaced by 200 ms", True,
         "p99 is 3.4 times the baseline's, but it is one request in 50: Mann-Whitney finds no shift "
         "(p = 0.5)", "it judges p99 alone: one slow request moves the p99 of a small sample; require "
         "the rank test to say the canary is slower too"),
        (slower, "every latency 1.5 times the baseline's", False,
         "slower (p = 4.5e-05) and p99 1.5 times the baseline's", "a canary slower across the board passes"),
        (slower_middle, "40 ms to 59.6 ms: slower in the middle, the same tail", True,
         "slower in the middle (p = 7e-08) but p99 59.6 ms against 59 ms, within 1.2 times",
         "it judges the rank test alone: on big samples it flags differences too small to matter; "
         "require the p99 to be worse than max_p99_ratio times too"),
    ]
    for canary, what, passes, expected, why in cases:
        verdict = _compare(scene, comparison, canary, baseline, (what, "50 latencies, 10 ms to 59 ms"))
        if verdict.passed != passes:
            scene.fail(got=f"passed={verdict.passed!r} ({verdict.reason})", expected=f"passed={passes}: {expected}",
                       why=why)
    equal = scene.call("comparison = BaselineComparison(max_p99_ratio=1.5)",
                       scene.module.BaselineComparison, max_p99_ratio=1.5)
    at_limit = [v / 100 * 1.5 for v in range(1, 51)]
    verdict = _compare(scene, equal, latencies(at_limit), latencies([v / 100 for v in range(1, 51)]),
                       ("p99 0.75 s", "p99 0.5 s"))
    if not verdict.passed:
        scene.fail(got=f"passed=False ({verdict.reason})",
                   expected="passed=True: p99 exactly 1.5 times the baseline's is within max_p99_ratio=1.5",
                   why="it fails a value equal to the threshold: a p99 ratio equal to max_p99_ratio passes")
    if verdict.p_value is None or verdict.canary_p99 != 0.75 or verdict.baseline_p99 != 0.5:
        scene.fail(got=f"canary_p99={verdict.canary_p99!r}, baseline_p99={verdict.baseline_p99!r}, "
                       f"p_value={verdict.p_value!r}",
                   expected="canary_p99=0.75, baseline_p99=0.5 (nearest rank) and the p_value: the figures "
                            "behind the verdict")


@level(3)
def no_data_on_either_side_fails_the_comparison(ctx: Context) -> None:
    """A comparison without canary requests, or without baseline requests, is a failed check."""
    scene = Scene(ctx)
    comparison = scene.call("comparison = BaselineComparison()", scene.module.BaselineComparison)
    some = exchanges(ok=50)
    for canary, baseline, side in (([], some, "canary"), (some, [], "baseline")):
        try:
            verdict = comparison(canary, baseline)
        except NotImplementedError:
            raise
        except Exception as error:
            scene.crashed(f"comparison(canary={describe(canary)}, baseline={describe(baseline)})", error,
                          "a failed Analysis: no data")
        scene.note(f"comparison(canary={describe(canary)}, baseline={describe(baseline)}) -> {verdict!r}")
        if verdict.passed:
            scene.fail(got="passed=True", expected=f"passed=False: no {side} data to compare",
                       why="it judges a comparison with no traffic as healthy"
                           + ("; at a 100 % stage the baseline gets nothing: end the stages below 100 when "
                              "you compare (Flagger's maxWeight)" if side == "baseline" else ""))


def _scripted(shop: Shop, script: list[bool], max_failed: int) -> object:
    shop.install_split()
    analysis = ScriptedAnalysis(shop.module, script)
    return shop.rollout("await rollout.run()", interval=60.0, analysis=analysis, max_failed_checks=max_failed)


@level(3)
def failed_checks_are_counted_in_total(ctx: Context) -> None:
    """With max_failed_checks=2, fail-pass-fail rolls back at the 2nd failure although a pass came between."""
    with Shop(ctx) as shop:
        report = _scripted(shop, [False, True, False, True], 2)
        weights = [c.weight for c in report.checks]
        if report.status != "rolled-back" or report.failed_checks != 2 or report.finished_at < 180:
            why = None
            if report.status == "promoted":
                why = ("it counts failed checks in a row, so the pass between the two failures reset the "
                       "count. Flagger counts them in total over the rollout (its status.failedChecks is "
                       "only reset by a new revision): a canary that fails every other check is not healthy")
            shop.fail(got=f"status={report.status!r}, failed_checks={report.failed_checks}, checks at weights "
                          f"{weights}",
                      expected="status='rolled-back' at t=180, failed_checks=2, checks at weights [10, 10, 25]",
                      why=why)
        if weights != [10, 10, 25]:
            shop.fail(got=f"checks at weights {weights}", expected="[10, 10, 25]: the failed first check holds "
                                                                   "the weight at 10")


@level(3)
def a_failed_check_holds_the_weight(ctx: Context) -> None:
    """Below the limit, a failed check keeps the weight for another interval instead of advancing."""
    with Shop(ctx) as shop:
        report = _scripted(shop, [True, False, True], 3)
        weights = [c.weight for c in report.checks]
        if weights != [10, 25, 25, 50, 75, 100] or report.status != "promoted" or report.finished_at != 360:
            why = None
            if weights[:3] == [10, 25, 50]:
                why = "it advances after a failed check: hold the weight and check again after another interval"
            elif report.status == "rolled-back":
                why = "it rolls back before max_failed_checks failed checks"
            shop.fail(got=f"status={report.status!r} at t={report.finished_at:g}, checks at weights {weights}",
                      expected="checks at weights [10, 25, 25, 50, 75, 100], then promoted at t=360", why=why)


@level(3)
def the_analysis_gets_the_baseline_requests_of_the_same_window(ctx: Context) -> None:
    """Each check is given the baseline's requests of its window too, to compare with."""
    with Shop(ctx) as shop:
        shop.install_split()
        shop.load(rate=5, until=300)
        spy = SpyAnalysis(shop.module)
        report = shop.rollout("await rollout.run()", interval=60.0, stages=(10, 25, 50), analysis=spy)
        if len(spy.given) != len(report.checks):
            shop.fail(got=f"the analysis was called {len(spy.given)} times for {len(report.checks)} checks",
                      expected="one call per check")
        for n, (check, (_canary, baseline)) in enumerate(zip(report.checks, spy.given, strict=True)):
            want = shop.window(check.start, check.end, release="v1")
            if {id(x) for x in baseline} == {id(x) for x in want} and len(baseline) == len(want):
                continue
            why = "the analysis gets no baseline requests" if not baseline else None
            shop.fail(got=f"check {n + 1} (weight {check.weight}) was given {len(baseline)} baseline requests",
                      expected=f"the {len(want)} requests answered by catalog-1 and catalog-2 (v1) that started "
                               f"in [{check.start:g}, {check.end:g})", why=why)
        if report.status != "promoted" or report.finished_at != 180:
            shop.fail(got=f"status={report.status!r} at t={report.finished_at:g}",
                      expected="promoted at t=180: stages may end below 100; promotion then sets the canary "
                               "to 100 (Flagger's maxWeight)")
        final = shop._weights_now()
        if final != {"v1": 0, "v2": 100}:
            shop.fail(got=f"after promotion split.weights is {final!r}", expected="{'v1': 0, 'v2': 100}")
