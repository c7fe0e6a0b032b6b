"""Level 2: a staged rollout judged on the canary's own requests; rollback to weight 0.

The customers in the shop arrive at t = 0.05, 0.15, 0.25, ... (10 per
second), never on a stage boundary, so which window a request belongs to is
never a matter of who ran first at the same instant.
"""

from __future__ import annotations

from .. import Context, level
from .scene import Scene, Shop, SpyAnalysis, describe, exchanges

STAGES = (10, 25, 50, 75, 100)


def _rate(scene: Scene, xs: list, label: str) -> object:
    return scene.call(f"error_rate({label})", scene.module.error_rate, xs)


@level(2)
def error_rate_is_errors_over_the_canary_requests(ctx: Context) -> None:
    """error_rate divides the failed requests by the requests there were (the seed divides by 100)."""
    scene = Scene(ctx)
    for ok, errors in ((45, 5), (995, 5), (198, 2)):
        xs = exchanges(ok=ok, errors=errors)
        rate, expected = _rate(scene, xs, describe(xs)), errors / (ok + errors)
        if rate is None or not isinstance(rate, (int, float)) or abs(rate - expected) > 1e-12:
            why = None
            if rate == errors / 100:
                why = ("it divides by 100, like the seed's `errors / 100`: that is a rate only when "
                       "exactly 100 requests were made. Divide by the number of canary requests")
            elif rate == 100 * expected:
                why = "it returns a percentage: rates are fractions here (0.1 is 10 %)"
            scene.fail(got=f"{rate!r}", expected=f"{expected:g} = {errors} errors / {ok + errors} requests",
                       why=why)


@level(2)
def no_answer_is_an_error_and_4xx_is_not(ctx: Context) -> None:
    """A timed-out or refused request counts as an error; a 4xx answer does not."""
    scene = Scene(ctx)
    xs = exchanges(ok=6, client_errors=2, timeouts=1, refused=1)
    rate = _rate(scene, xs, describe(xs))
    if rate == 0.2:
        return
    why = None
    if rate == 0.4:
        why = "it counts 4xx answers as errors: a 404 is the caller's mistake, the release answered fine"
    elif rate in (0.0, 0.1):
        why = "requests that got no answer at all (timeout, refused) failed too: count them (Exchange.failed)"
    scene.fail(got=f"{rate!r}", expected="0.2: the timeout and the refused call are errors, the two 404s are not",
               why=why)


@level(2)
def no_requests_have_no_error_rate(ctx: Context) -> None:
    """error_rate([]) is None, not 0.0: no data is not a healthy 0 %."""
    scene = Scene(ctx)
    try:
        rate = scene.module.error_rate([])
    except ZeroDivisionError:
        scene.note("error_rate([]) -> ZeroDivisionError")
        scene.fail(got="ZeroDivisionError", expected="None", why="no requests: return None before dividing")
    except NotImplementedError:
        raise
    except Exception as error:
        scene.crashed("error_rate([])", error, "None")
    scene.note(f"error_rate([]) -> {rate!r}")
    if rate is not None:
        scene.fail(got=f"{rate!r}", expected="None",
                   why="no requests has no error rate. The seed's check returns 0.0 when CloudWatch has no "
                       "datapoints, so a canary that gets no traffic looks perfect")


@level(2)
def a_stage_without_data_fails(ctx: Context) -> None:
    """No canary request, or fewer than min_requests, is a failed check."""
    scene = Scene(ctx)
    baseline = exchanges(ok=100, instance="catalog-1")
    analysis = scene.call("analysis = ErrorRateAnalysis(max_error_rate=0.01)", scene.module.ErrorRateAnalysis, 0.01)
    verdict = scene.call("analysis(canary=[], baseline=100 requests (100 x 200))", analysis, [], baseline)
    if verdict.passed:
        scene.fail(got=f"{verdict!r}", expected="passed=False: no data",
                   why="it judges a stage with no traffic as healthy. A canary that receives nothing (a "
                       "weight never applied, a typo in a route) must not be promoted: no data fails the "
                       "check, as in Flagger ('no values found')")
    analysis = scene.call("analysis = ErrorRateAnalysis(0.01, min_requests=20)",
                          scene.module.ErrorRateAnalysis, 0.01, min_requests=20)
    few, enough = exchanges(ok=19), exchanges(ok=20)
    if scene.call("analysis(canary=19 requests (19 x 200), baseline)", analysis, few, baseline).passed:
        scene.fail(got="passed=True", expected="passed=False: 19 requests are fewer than min_requests=20",
                   why="min_requests is ignored: below it there is not enough data to judge")
    if not scene.call("analysis(canary=20 requests (20 x 200), baseline)", analysis, enough, baseline).passed:
        scene.fail(got="passed=False", expected="passed=True: 20 requests, no errors (min_requests=20 is met)")


@level(2)
def a_rate_equal_to_the_threshold_passes(ctx: Context) -> None:
    """2 errors in 200 requests is 1 %: it passes a 1 % threshold; 3 errors fail it."""
    scene = Scene(ctx)
    analysis = scene.call("analysis = ErrorRateAnalysis(max_error_rate=0.01)", scene.module.ErrorRateAnalysis, 0.01)
    at_limit = exchanges(ok=198, errors=2)
    verdict = scene.call(f"analysis(canary={describe(at_limit)}, baseline=[])", analysis, at_limit, [])
    if not verdict.passed:
        scene.fail(got=f"{verdict!r}", expected="passed=True: 1 % is not above 1 %",
                   why="it fails a value equal to the threshold: a rate equal to max_error_rate passes "
                       "(<=, not <), like the seed's `error_rate > 1.0` and Flagger's threshold range")
    if verdict.canary_requests != 200 or verdict.canary_error_rate != 0.01:
        scene.fail(got=f"canary_requests={verdict.canary_requests!r}, canary_error_rate={verdict.canary_error_rate!r}",
                   expected="canary_requests=200, canary_error_rate=0.01: the figures the verdict is based on")
    over = exchanges(ok=197, errors=3)
    if scene.call(f"analysis(canary={describe(over)}, baseline=[])", analysis, over, []).passed:
        scene.fail(got="passed=True", expected="passed=False: 1.5 % is above 1 %")


def _healthy_rollout(ctx: Context, shop: Shop, analysis: object | None = None) -> tuple[object, list]:
    shop.install_split()
    shop.load(rate=5, until=300)
    samples = shop.sample_weights([1, 61, 121, 181, 241, 301])
    options = {"interval": 60.0} if analysis is None else {"interval": 60.0, "analysis": analysis}
    report = shop.rollout("await rollout.run()", **options)
    shop.world.run(until=302)  # the last sample, after the promotion
    return report, samples


@level(2)
def stages_advance_every_interval_then_promote(ctx: Context) -> None:
    """A healthy canary goes 10, 25, 50, 75, 100 %, one stage per interval, then is promoted."""
    with Shop(ctx) as shop:
        report, samples = _healthy_rollout(ctx, shop)
        expected = [{"v1": 100 - w, "v2": w} for w in STAGES] + [{"v1": 0, "v2": 100}]
        for (t, weights), want in zip(samples, expected, strict=True):
            shop.note(f"split.weights at t={t:g}: {weights!r}")
            if weights != want:
                shop.fail(got=f"at t={t:g} split.weights was {weights!r}",
                          expected=f"{want}: {f'stage {int(t // 60) + 1}' if t < 300 else 'promoted'}, each stage "
                                   "lasting interval=60 s",
                          why="set the weights at the start of each stage (canary = the stage's weight, "
                              "baseline = 100 - it), then wait `interval` (await asyncio.sleep)")
        windows = [(c.weight, c.start, c.end) for c in report.checks]
        want_windows = [(w, 60.0 * i, 60.0 * (i + 1)) for i, w in enumerate(STAGES)]
        if report.status != "promoted" or windows != want_windows or report.finished_at != 300:
            shop.fail(got=f"status={report.status!r}, finished_at={report.finished_at!r}, checks (weight, start, "
                          f"end) = {windows}",
                      expected=f"status='promoted', finished_at=300, checks {want_windows}")
        if report.failed_checks != 0 or not all(c.analysis.passed for c in report.checks):
            shop.fail(got=f"failed_checks={report.failed_checks}, verdicts "
                          f"{[c.analysis.reason for c in report.checks]}",
                      expected="every check passed: v2 has no bug and answered every request")


@level(2)
def the_analysis_gets_the_canary_requests_of_its_window(ctx: Context) -> None:
    """Each check is given the canary's requests that started in its stage's window, and only those."""
    with Shop(ctx) as shop:
        spy = SpyAnalysis(shop.module)
        report, _ = _healthy_rollout(ctx, shop, spy)
        if len(spy.given) != len(STAGES) or len(report.checks) != len(STAGES):
            shop.fail(got=f"the analysis was called {len(spy.given)} times, {len(report.checks)} checks reported",
                      expected=f"{len(STAGES)} of each, one at the end of each stage")
        for n, (check, (canary, _baseline)) in enumerate(zip(report.checks, spy.given, strict=True)):
            want = shop.window(check.start, check.end)
            if {id(x) for x in canary} == {id(x) for x in want} and len(canary) == len(want):
                continue
            service_wide = shop.world.recorder.select(service="catalog", since=check.start, until=check.end)
            given_ids = {id(x) for x in canary}
            why = None
            if given_ids == {id(x) for x in service_wide}:
                why = ("the analysis was given the requests of the whole service, both releases: judge the "
                       "canary on its own requests, those answered by instances of the canary's release "
                       "(the seed reads the load balancer's 5xx count for the whole target group)")
            elif any(x.start < check.start for x in canary):
                why = "it includes requests from before the stage began: select since=start, until=end"
            elif given_ids > {id(x) for x in want}:
                why = "it includes requests of another release, or from after the window"
            shop.fail(got=f"check {n + 1} (weight {check.weight}, [{check.start:g}, {check.end:g})) was given "
                          f"{len(canary)} requests, {sum(1 for x in canary if x.instance in shop.canary_addresses)}"
                          " of them answered by the canary",
                      expected=f"the {len(want)} requests answered by catalog-3 (v2) that started in "
                               f"[{check.start:g}, {check.end:g})", why=why)


@level(2)
def a_bad_canary_is_rolled_back_at_the_first_failing_stage(ctx: Context) -> None:
    """With 5 % of the canary's answers failing, the rollout stops at the first stage above 1 %."""
    with Shop(ctx, bug_rate=0.05) as shop:
        shop.install_split()
        shop.load(rate=5, until=400)
        report = shop.rollout("await rollout.run()", interval=60.0)
        # The trusted verdict of each stage, from what the recorder saw.
        expected_checks = 0
        for stage, weight in enumerate(STAGES):
            canary = shop.window(60.0 * stage, 60.0 * (stage + 1))
            failed = sum(1 for x in canary if x.failed)
            expected_checks += 1
            shop.note(f"[{60 * stage}, {60 * (stage + 1)}) at weight {weight}: the canary answered "
                      f"{len(canary)} requests, {failed} failed")
            if not canary or failed / len(canary) > 0.01:
                break
        else:
            shop.fail(got="every stage of this seed stayed within 1 %", expected="(a stage above 1 %)")
        if report.status != "rolled-back" or len(report.checks) != expected_checks:
            shop.fail(got=f"status={report.status!r} after {len(report.checks)} checks",
                      expected=f"status='rolled-back' after check {expected_checks}, the first stage whose "
                               "canary error rate was above 1 %",
                      why="each stage must be judged on the canary's requests of that stage only; a stage "
                          "judged on the whole service dilutes the canary's errors in the baseline's answers")


@level(2)
def rollback_sets_the_canary_weight_to_zero(ctx: Context) -> None:
    """A rollback leaves the weights at baseline 100, canary 0, and no request reaches the canary after it."""
    with Shop(ctx, bug_rate=0.3) as shop:
        shop.install_split()
        shop.load(rate=5, until=120)
        report = shop.rollout("await rollout.run()", interval=60.0)
        shop.world.run(until=max(120, shop.world.now()))
        weights = shop._weights_now()
        shop.note(f"t={shop.world.now():g}  split.weights -> {weights!r}")
        if report.status != "rolled-back":
            shop.fail(got=f"status={report.status!r}", expected="'rolled-back': 30 % of the canary's answers are 500s")
        if weights != {"v1": 100, "v2": 0}:
            why = "rollback must set the canary's weight to 0 and the baseline's to 100"
            if isinstance(weights, dict) and "v2" not in weights:
                why = "keep the canary in the weights at 0 (App Mesh sets its weightedTarget to 0): " \
                      "set_weights({'v1': 100, 'v2': 0})"
            shop.fail(got=f"split.weights is {weights!r}", expected="{'v1': 100, 'v2': 0}", why=why)
        decided = report.checks[-1].end if report.checks else 0.0
        late = [x for x in shop.world.recorder.select(service="catalog", since=decided + 0.01)
                if x.instance in shop.canary_addresses]
        if late:
            shop.fail(got=f"{len(late)} requests reached the canary after the rollback at t={decided:g}, "
                          f"the first at t={late[0].start:g}",
                      expected="none: the rollback routes everything to the baseline")
