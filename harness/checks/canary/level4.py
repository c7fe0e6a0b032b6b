"""Level 4: retries inside one overall timeout; outlier ejection that backs off and leaves hosts in the pool.

Retry checks run the learner's policy on a fresh virtual-time loop against a
scripted dependency (:class:`~.scene.Upstream`), so every time is exact.
Ejection checks drive a manual clock, then the shop for the wiring.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from harness.clock import Clock, run
from harness.http import NetworkError, RequestTimeout, Response

from .. import CheckFailed, Context, level
from .scene import Scene, Shop, Upstream, exchanges, where


def _policy(scene: Scene, **options: Any) -> Any:
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return scene.call(f"policy = RetryPolicy({shown})", scene.module.RetryPolicy,
                      clock=Clock.of_running_loop(), **options)


def _call(scene: Scene, script: list, **options: Any) -> tuple[Upstream, Any, float]:
    """Run policy.call against the script on a virtual loop: (upstream, outcome, time it ended)."""
    upstream = Upstream(scene, script)
    ended = [0.0]
    scene._now = lambda: ended[0]

    async def main() -> Any:
        import asyncio

        policy = _policy(scene, **options)
        try:
            return await policy.call(upstream)
        finally:
            ended[0] = asyncio.get_running_loop().time()

    try:
        outcome: Any = run(main())
    except (NotImplementedError, CheckFailed):
        raise
    except Exception as error:  # a network error is a legitimate outcome: keep it
        outcome = error
    if isinstance(outcome, Response):
        scene.note(f"t={ended[0]:g}  policy.call(attempt) returned {outcome.status}")
    else:
        scene.note(f"t={ended[0]:g}  policy.call(attempt) raised {type(outcome).__name__}{where(outcome, scene.module)}")
    return upstream, outcome, ended[0]


def _describe(outcome: Any) -> str:
    if isinstance(outcome, Response):
        return f"an answer {outcome.status}"
    return f"{type(outcome).__name__}" if isinstance(outcome, BaseException) else repr(outcome)


@level(4)
def server_errors_are_retried_up_to_max_retries(ctx: Context) -> None:
    """5xx answers are retried; the first success is returned; after max_retries, the last 5xx answer."""
    scene = Scene(ctx)
    upstream, outcome, _ = _call(scene, [503, 500, 200], max_retries=3)
    if not isinstance(outcome, Response) or outcome.status != 200 or len(upstream.tries) != 3:
        scene.fail(got=f"{_describe(outcome)} after {len(upstream.tries)} tries",
                   expected="the 200 of the 3rd try: 503 and 500 are retried")
    scene = Scene(ctx)
    upstream, outcome, _ = _call(scene, [503], max_retries=3)
    if len(upstream.tries) != 4 or not isinstance(outcome, Response) or outcome.status != 503:
        why = None
        if len(upstream.tries) == 3:
            why = "max_retries counts the retries, not the tries: 1 try + 3 retries = 4"
        elif len(upstream.tries) > 4:
            why = "it retries more than max_retries times"
        elif isinstance(outcome, BaseException):
            why = "out of retries with a 5xx answer: return that answer, do not raise"
        scene.fail(got=f"{_describe(outcome)} after {len(upstream.tries)} tries",
                   expected="4 tries (1 + max_retries=3), then the last answer, 503, returned", why=why)


@level(4)
def client_errors_are_never_retried(ctx: Context) -> None:
    """A 4xx answer comes back at once: the same request would get the same 4xx."""
    for status in (404, 409, 429):
        scene = Scene(ctx)
        upstream, outcome, _ = _call(scene, [status, 200], max_retries=3)
        if len(upstream.tries) != 1 or not isinstance(outcome, Response) or outcome.status != status:
            scene.fail(got=f"{_describe(outcome)} after {len(upstream.tries)} tries",
                       expected=f"the {status} of the first try, returned at once",
                       why="it retries 4xx answers: a 4xx is the caller's mistake (App Mesh retries "
                           "server-error, gateway-error and connection errors; 4xx only if you opt in)")


@level(4)
def connection_errors_and_timeouts_are_retried(ctx: Context) -> None:
    """Refused, reset and per-try timeouts are retried; an error that is not the network's is not."""
    scene = Scene(ctx)
    upstream, outcome, ended = _call(scene, ["refused", "reset", "hang", 200], max_retries=3,
                                     per_try_timeout=2.0, timeout=15.0)
    if not isinstance(outcome, Response) or outcome.status != 200 or upstream.starts() != [0, 0, 0, 2]:
        scene.fail(got=f"{_describe(outcome)} at t={ended:g}, tries started at {upstream.starts()}",
                   expected="tries at t=[0, 0, 0, 2] (the 3rd hangs until its 2 s per-try timeout) and the "
                            "200 of the 4th",
                   why="a refused or reset connection and a per-try timeout are retried: they are the "
                       "failures retries are for")
    scene = Scene(ctx)
    upstream, outcome, _ = _call(scene, ["bug", 200], max_retries=3)
    if not isinstance(outcome, ValueError) or len(upstream.tries) != 1:
        scene.fail(got=f"{_describe(outcome)} after {len(upstream.tries)} tries",
                   expected="the ValueError, raised after the first try: only network errors "
                            "(harness.http.NetworkError) and 5xx answers are retried")


@level(4)
def every_try_fits_in_the_overall_timeout(ctx: Context) -> None:
    """Each try gets min(per_try_timeout, time left): the seed's 3 retries x 5 s end at its 15 s timeout."""
    for per_try, starts, timeouts in ((5.0, [0, 5, 10], [5, 5, 5]), (4.0, [0, 4, 8, 12], [4, 4, 4, 3])):
        scene = Scene(ctx)
        upstream, outcome, ended = _call(scene, ["hang"], max_retries=3, per_try_timeout=per_try, timeout=15.0)
        if upstream.timeouts() != timeouts or upstream.starts() != starts:
            why = None
            given = upstream.timeouts()
            after = [start for start in upstream.starts() if start >= 15]
            late = next((i for i, (s, t) in enumerate(upstream.tries) if s + t > 15 + 1e-9), None)
            if after:
                why = (f"it retries after the overall deadline: a try started at t={after[0]:g}, when the 15 s "
                       "budget was used up. No try may start at or after the deadline")
            elif late is not None:
                why = (f"try {late + 1} started at t={upstream.tries[late][0]:g} and was given {given[late]:g} s "
                       f"although only {15 - upstream.tries[late][0]:g} s of the 15 s budget were left: per-try "
                       "timeouts must not exceed the overall budget (the seed's route: 4 tries x 5 s = 20 s "
                       "against a 15 s timeout)")
            elif len(given) < len(timeouts):
                why = "it stops retrying while time is left: a try may start whenever the deadline is not reached"
            scene.fail(got=f"tries started at {upstream.starts()} with timeouts {given}",
                       expected=f"tries at {starts} with timeouts {timeouts} (per_try_timeout={per_try:g}, "
                                "timeout=15)", why=why)
        if not isinstance(outcome, RequestTimeout) or ended != 15:
            scene.fail(got=f"{_describe(outcome)} at t={ended:g}",
                       expected="RequestTimeout, raised at t=15 exactly: out of time, the last error is raised")


@level(4)
def no_retry_starts_after_the_deadline(ctx: Context) -> None:
    """With a 1 s backoff and a 2.5 s timeout, tries go at 0, 1, 2 and the last 500 comes back at t=2."""
    scene = Scene(ctx)
    upstream, outcome, ended = _call(scene, [500], max_retries=5, backoff=1.0, timeout=2.5)
    if upstream.starts() != [0, 1, 2] or ended != 2 or not isinstance(outcome, Response):
        why = None
        if any(start >= 2.5 for start in upstream.starts()):
            why = (f"it retries after the overall deadline: a try started at t={max(upstream.starts()):g}, "
                   "after t=2.5. Before sleeping the backoff, check that the retry can start before the deadline")
        elif ended > 2:
            why = "it waits for a retry that cannot happen: give up at once when now + backoff >= deadline"
        scene.fail(got=f"tries at {upstream.starts()}, {_describe(outcome)} at t={ended:g}",
                   expected="tries at [0, 1, 2], then the last 500 returned at t=2 (a 4th try would start at "
                            "t=3, after the deadline t=2.5)", why=why)
    scene = Scene(ctx)
    upstream, outcome, ended = _call(scene, [(500, 2.0)], max_retries=5, per_try_timeout=5.0, timeout=5.0)
    if upstream.timeouts() != [5, 3, 1] or not isinstance(outcome, NetworkError) or ended != 5:
        scene.fail(got=f"tries at {upstream.starts()} with timeouts {upstream.timeouts()}, {_describe(outcome)} "
                       f"at t={ended:g}",
                   expected="tries at [0, 2, 4] with timeouts [5, 3, 1]; the 3rd times out at the deadline: "
                            "RequestTimeout at t=5")


# -- outlier ejection ------------------------------------------------------------------------------


class Pool(Scene):
    """A learner's OutlierDetector over made-up hosts, on a manual clock."""

    def __init__(self, ctx: Context, hosts: list[str], **options: Any):
        self.clock = Clock.manual()
        super().__init__(ctx, now=self.clock.now)
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
        self.detector = self.call(f"detector = OutlierDetector({hosts}, {shown})", self.module.OutlierDetector,
                                  hosts, clock=self.clock, **options)

    def at(self, when: float) -> None:
        self.clock.set(when)

    def observe(self, host: str, outcomes: str) -> None:
        """``outcomes``: F = a 500, S = a 200, 4 = a 404, T = a timeout."""
        for code in outcomes:
            x = {"F": lambda: exchanges(errors=1, instance=host), "S": lambda: exchanges(ok=1, instance=host),
                 "4": lambda: exchanges(client_errors=1, instance=host),
                 "T": lambda: exchanges(timeouts=1, instance=host)}[code]()[0]
            try:
                self.detector.observe(x)
            except NotImplementedError:
                raise
            except Exception as error:
                self.crashed(f"detector.observe(<{x.status or x.outcome} from {host}>)", error)
        names = {"F": "500", "S": "200", "4": "404", "T": "timeout"}
        self.note(f"t={self.clock.now():g}  observe {host}: {' '.join(names[c] for c in outcomes)}")

    def ejected(self, host: str) -> bool:
        try:
            value = self.detector.is_ejected(host)
        except NotImplementedError:
            raise
        except Exception as error:
            self.crashed(f"detector.is_ejected({host!r})", error)
        self.note(f"t={self.clock.now():g}  detector.is_ejected({host!r}) -> {value!r}")
        return value

    def expect(self, host: str, ejected: bool, why: str | None = None) -> None:
        if self.ejected(host) != ejected:
            self.fail(got=f"is_ejected({host!r}) is {not ejected}", expected=f"{ejected}", why=why)


@level(4)
def ejects_after_consecutive_server_errors_only(ctx: Context) -> None:
    """max_server_errors failures in a row eject a host; a 200 or a 4xx in between resets the count."""
    pool = Pool(ctx, ["a", "b", "c", "d"], max_server_errors=3)
    pool.observe("a", "FFSFF")
    pool.expect("a", False, why="it counts failures in total: a success sets the count back to 0")
    pool.observe("a", "S4FF")
    pool.expect("a", False, why="it counts 4xx answers as server errors: the host answered, the caller was "
                                "wrong; any answer that is not a failure resets the count")
    pool.observe("a", "T")
    pool.expect("a", True, why="3 failures in a row (500, 500, timeout) must eject the host; a request that got "
                               "no answer is a failure too (Exchange.failed)")
    pool.expect("b", False)


@level(4)
def ejection_time_grows_with_each_ejection_up_to_the_cap(ctx: Context) -> None:
    """The k-th ejection lasts min(base * k, max_ejection_time): 10 s, 20 s, then 25 s (capped)."""
    pool = Pool(ctx, ["a", "b", "c", "d"], max_server_errors=3, base_ejection_time=10.0, max_ejection_time=25.0)
    plan = [(1, 11, 1), (12, 32, 2), (40, 65, 3), (70, 95, 4)]
    for at, until, number in plan:
        pool.at(at)
        pool.observe("a", "FFF")
        pool.expect("a", True)
        pool.at(until - 0.5)
        pool.expect("a", True, why=f"ejection {number} must last {until - at:g} s (from t={at:g} to t={until:g})"
                                   + (": the ejection time does not grow. Envoy ejects a host for "
                                      "base_ejection_time times the number of times it has been ejected"
                                      if number == 2 else ": the ejection time is not growing as it should"))
        pool.at(until)
        pool.expect("a", False, why=f"back at exactly t={until:g} = {at:g} + "
                                    f"min({10 * number:g}, max_ejection_time=25)"
                                    + (": max_ejection_time caps it" if number >= 3 else ""))
    log = [(e.host, e.at, e.until, e.number) for e in pool.detector.log]
    want = [("a", at, until, number) for at, until, number in plan]
    if log != want:
        pool.fail(got=f"detector.log is {log}", expected=f"{want}: one Ejection(host, at, until, number) each")


@level(4)
def never_ejects_more_than_max_ejection_percent(ctx: Context) -> None:
    """An ejection that would leave more than max_ejection_percent of the pool out does not happen."""
    alone = Pool(ctx, ["only"], max_server_errors=3, max_ejection_percent=50)
    alone.observe("only", "FFFFFF")
    alone.expect("only", False, why="it ejected every instance: with one host, ejecting it empties the pool "
                                    "(100 % > 50 %). Count the host you are about to eject: eject only if "
                                    "100 * (ejected + 1) / hosts <= max_ejection_percent. (The seed promises "
                                    "'max 50 % of instances ejected'; App Mesh's docs say it 'will eject at "
                                    "least one host regardless', and Envoy did until issue #26877)")
    pool = Pool(ctx, ["a", "b", "c"], max_server_errors=3, max_ejection_percent=50)
    pool.observe("a", "FFF")
    pool.expect("a", True)
    pool.observe("b", "FFF")
    if pool.ejected("b"):
        pool.fail(got="b is ejected too: 2 of 3 hosts (67 %) out of the pool",
                  expected="b stays: ejecting it would leave 67 % ejected, above max_ejection_percent=50",
                  why="count the host you are about to eject: check 100 * (ejected + 1) / hosts <= max "
                      "(older Envoy checked the share *before* ejecting and went one host over, issue #26877)")
    available = pool.call("detector.available([a, b, c])", pool.detector.available,
                          [SimpleNamespace(address=h) for h in ("a", "b", "c")])
    if [getattr(i, "address", i) for i in available] != ["b", "c"]:
        pool.fail(got=f"{[getattr(i, 'address', i) for i in available]}", expected="['b', 'c']: the instances "
                                                                                   "not ejected, in order")
    four = Pool(ctx, ["a", "b", "c", "d"], max_server_errors=3, max_ejection_percent=50)
    for host in ("a", "b", "c"):
        four.observe(host, "FFF")
    flags = [four.ejected(h) for h in ("a", "b", "c")]
    if flags != [True, True, False]:
        four.fail(got=f"a, b, c ejected: {flags}", expected="[True, True, False]: 2 of 4 is 50 %, a 3rd would be 75 %",
                  why="it ejected every failing instance" if all(flags) else None)


@level(4)
def a_failing_instance_is_ejected_in_the_shop(ctx: Context) -> None:
    """Wired into the shop, catalog-3 answering 503s is ejected after 5 in a row, for 30 s, then 60 s, ..."""
    with Shop(ctx, canaries=0, baseline=3) as shop:
        world = shop.world
        split = shop.install_split({"v1": 100})
        detector = shop.call("detector = OutlierDetector(['catalog-1', 'catalog-2', 'catalog-3'], "
                             "max_server_errors=5, base_ejection_time=30, clock=world.clock)",
                             shop.module.OutlierDetector, ["catalog-1", "catalog-2", "catalog-3"],
                             max_server_errors=5, base_ejection_time=30.0, clock=world.clock)
        from harness.recorder import Exchange

        world.recorder.listeners.append(lambda r: detector.observe(r) if isinstance(r, Exchange) else None)
        world.net.balancer = lambda service, pool: split(service, detector.available(pool))
        shop.note("world.recorder.listeners.append(detector.observe); "
                  "world.net.balancer = lambda s, pool: split(s, detector.available(pool))")
        world.faults.inject({"fault": "error", "target": "catalog-3", "status": 503})
        shop.note("catalog-3 answers 503 to everything")
        shop.load(rate=1, until=150)
        try:
            world.run(until=160)
        except NotImplementedError:
            raise
        except Exception as error:
            shop.crashed("world.run(until=160)", error)
        log = [(e.at, round(e.until - e.at, 6), e.number) for e in detector.log]
        shop.note(f"detector.log: {[(e.host, e.at, e.until, e.number) for e in detector.log]}")
        hits = world.recorder.select(instance="catalog-3")
        durations = [d for _, d, _ in log]
        if len(log) < 2 or durations != [30.0 * (n + 1) for n in range(len(log))] \
                or any(e.host != "catalog-3" for e in detector.log):
            shop.fail(got=f"ejections (at, duration, number): {log}",
                      expected="catalog-3 ejected again and again, for 30 s, then 60 s, then 90 s ...")
        for e in detector.log:
            during = [x for x in hits if e.at < x.start < e.until]
            if during:
                shop.fail(got=f"{len(during)} requests reached catalog-3 while it was ejected "
                              f"({e.at:g} to {e.until:g}), the first at t={during[0].start:g}",
                          expected="none: an ejected host gets no request")
        before = [x for x in hits if x.start <= detector.log[0].at]
        if len(before) != 5:
            shop.fail(got=f"{len(before)} requests reached catalog-3 before its first ejection",
                      expected="exactly 5: the 5th failure in a row ejects it at once")
