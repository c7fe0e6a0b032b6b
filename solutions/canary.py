"""Canary releases and the mesh: the reference solution of the canary kata.

Same public API as ``katas/canary.py``; the comments explain why each rule is
there. A canary release sends a small, growing share of the traffic to the new
release of a service, judges it at every stage on what *its own* requests did,
and either promotes it or rolls it back. The mesh (App Mesh, Envoy) does the
splitting, and it also retries failed attempts and ejects hosts that keep
failing.

>>> import random
>>> split = TrafficSplit("catalog", {"v1": 90, "v2": 10}, rng=random.Random(7))
>>> picks = [split.pick_release() for _ in range(10_000)]
>>> round(picks.count("v2") / len(picks), 2)
0.1

Semantics, and whom we follow where trusted systems differ:

- Weights are App Mesh's ``weightedTargets``: non-negative integers whose
  share of the total is each release's share of the requests. One draw from
  the given random stream per request, so a seed gives the same routing.
- A stage is judged on the canary's requests that *started* in the stage's
  window; the error rate is errors over those requests (the seed divides by
  100). No request at all is a failed check, and a value equal to its
  threshold passes (Flagger: "no values found" halts advancement; a value
  outside the threshold range fails).
- Failed checks are counted in total over the whole rollout, never reset by a
  passing one, and a failed check holds the weight instead of advancing
  (Flagger's ``threshold``). We roll back at the check that reaches
  ``max_failed_checks``; Flagger notices it at its next tick.
- Retries follow Envoy's route retry policy: the overall timeout includes
  every attempt and backoff; each attempt gets ``per_try_timeout`` but never
  more than the time left; 5xx answers, connection errors and per-try
  timeouts are retried, 4xx answers never.
- Outlier ejection follows Envoy: ``max_server_errors`` consecutive failures
  eject a host for ``base_ejection_time`` times the number of times it has
  been ejected, capped at ``max_ejection_time``. Since 2023 (Envoy issue
  #26877) an ejection is refused when it would take the share of ejected
  hosts above ``max_ejection_percent``; older Envoy, and App Mesh's
  documentation, "eject at least one host regardless of the value".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from harness.clock import Clock
from harness.http import ConnectError, NetworkError, Response
from harness.recorder import Exchange, quantile

if TYPE_CHECKING:
    from harness.network import Instance
    from harness.world import World

__all__ = [
    "Analysis",
    "BaselineComparison",
    "Ejection",
    "ErrorRateAnalysis",
    "OutlierDetector",
    "RetryPolicy",
    "Rollout",
    "RolloutReport",
    "StageCheck",
    "SupportsNow",
    "TrafficSplit",
    "error_rate",
    "mann_whitney_u",
]


class SupportsNow(Protocol):
    """A clock: ``now()`` in seconds (``harness.clock.Clock`` and ``world.clock`` are)."""

    def now(self) -> float: ...


# -- level 1: weighted routing ------------------------------------------------------------------


class TrafficSplit:
    """A mesh route for one service: each request goes to a release drawn by weight.

    Install it as the network's balancer; other services keep plain
    round-robin.

    >>> import random
    >>> split = TrafficSplit("catalog", {"v1": 100, "v2": 0}, rng=random.Random(1))
    >>> {split.pick_release() for _ in range(1000)}
    {'v1'}
    """

    def __init__(self, service: str, weights: Mapping[str, int], *, rng: random.Random) -> None:
        self.service = service
        self.rng = rng
        self._weights: dict[str, int] = {}
        self._turn: dict[object, int] = {}  # round-robin position per (service, release)
        self.set_weights(weights)

    @property
    def weights(self) -> dict[str, int]:
        """The current weights, release -> weight (a copy: change them with set_weights)."""
        return dict(self._weights)

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Replace every weight at once (App Mesh's UpdateRoute replaces the whole route)."""
        checked = {}
        for release, weight in weights.items():
            # bool is an int to Python, but True is not a weight anyone means.
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise ValueError(f"weight of {release!r} must be a non-negative integer, got {weight!r}")
            checked[release] = weight
        if sum(checked.values()) <= 0:
            raise ValueError("at least one release needs a positive weight")
        self._weights = checked

    def pick_release(self) -> str:
        """Draw one release: each with probability weight / total, one draw from ``rng``."""
        total = sum(self._weights.values())
        point = self.rng.random() * total  # in [0, total)
        for release, weight in self._weights.items():
            if point < weight:  # strict: a weight of 0 owns an empty interval, never picked
                return release
            point -= weight
        # Float rounding can leave point a hair above the last interval: the last
        # release with a positive weight owns that edge.
        return next(r for r, w in reversed(self._weights.items()) if w > 0)

    def __call__(self, service: str, instances: Sequence[Instance]) -> Instance:
        """The balancer hook: ``world.net.balancer = split``."""
        if service != self.service:
            return self._round_robin(("other", service), list(instances))
        release = self.pick_release()
        candidates = [i for i in instances if i.release == release]
        if not candidates:
            # Envoy answers 503 "no healthy upstream" here; the harness network
            # records a refused call, which is what the caller sees.
            raise ConnectError(f"no instance of {service} release {release!r}", target=service)
        return self._round_robin((service, release), candidates)

    def _round_robin(self, key: object, pool: list[Instance]) -> Instance:
        turn = self._turn.get(key, 0)
        self._turn[key] = turn + 1
        return pool[turn % len(pool)]


# -- level 2: judging a stage on the canary's own requests ------------------------------------


def error_rate(exchanges: Sequence[Exchange]) -> float | None:
    """Errors over requests: a 5xx answer or no answer is an error, a 4xx is not.

    None when there were no requests: no data is not a 0 % error rate.

    >>> from harness.recorder import Exchange
    >>> ok = Exchange(0, 0.1, "client", "catalog", "catalog-3", "GET", "/products", 200, "ok")
    >>> bad = Exchange(0, 0.1, "client", "catalog", "catalog-3", "GET", "/products", 500, "error")
    >>> error_rate([ok, ok, ok, bad]), error_rate([])
    (0.25, None)
    """
    if not exchanges:
        return None
    # Exchange.failed already encodes the rule: 5xx or no response; 4xx is the caller's fault.
    return sum(1 for x in exchanges if x.failed) / len(exchanges)


@dataclass(frozen=True)
class Analysis:
    """The verdict of one check, with the figures it was based on (None: not measured)."""

    passed: bool
    reason: str
    canary_requests: int = 0
    canary_error_rate: float | None = None
    baseline_requests: int = 0
    baseline_error_rate: float | None = None
    canary_p99: float | None = None
    baseline_p99: float | None = None
    p_value: float | None = None


class ErrorRateAnalysis:
    """The seed's check, done right: the canary's error rate against a fixed limit.

    >>> analysis = ErrorRateAnalysis(max_error_rate=0.01)
    >>> analysis([], []).passed
    False
    """

    def __init__(self, max_error_rate: float = 0.01, *, min_requests: int = 1) -> None:
        self.max_error_rate = max_error_rate
        self.min_requests = min_requests

    def __call__(self, canary: Sequence[Exchange], baseline: Sequence[Exchange]) -> Analysis:
        needed = max(1, self.min_requests)
        if len(canary) < needed:
            # The seed's check_error_rate returns 0.0 when CloudWatch has no
            # datapoints: a canary that receives nothing (wrong weights, a
            # routing typo) would sail through every stage.
            return Analysis(False, f"no data: {len(canary)} canary requests (need {needed})",
                            canary_requests=len(canary))
        rate = error_rate(canary)
        assert rate is not None
        passed = rate <= self.max_error_rate  # equal passes, as in Flagger's threshold range
        verdict = "<=" if passed else ">"
        return Analysis(passed, f"error rate {rate:.2%} {verdict} {self.max_error_rate:.2%}",
                        canary_requests=len(canary), canary_error_rate=rate)


@dataclass(frozen=True)
class StageCheck:
    """One check of a rollout: the canary's weight over [start, end) and the verdict."""

    weight: int
    start: float
    end: float
    analysis: Analysis


@dataclass
class RolloutReport:
    """How a rollout ended: ``"promoted"`` or ``"rolled-back"``, and every check it made."""

    status: str
    checks: list[StageCheck] = field(default_factory=list)
    failed_checks: int = 0
    finished_at: float = 0.0


AnalysisFn = Callable[[Sequence[Exchange], Sequence[Exchange]], Analysis]

DRAIN_POLL = 0.1  # seconds between looks at what is still in flight on the canary


class Rollout:
    """Move traffic to the canary stage by stage, judging each stage; promote or roll back.

    >>> from harness import World
    >>> world = World(seed=3)
    >>> _ = world.add_service("catalog", instances=2)
    >>> canary = world.add_instance("catalog", release="v2")
    >>> split = TrafficSplit("catalog", {"v1": 100}, rng=world.rng("mesh"))
    >>> world.net.balancer = split
    >>> report = world.run(Rollout(world, split).run())  # nobody sends a request
    >>> report.status, report.finished_at, report.checks[0].analysis.passed  # no data fails
    ('rolled-back', 60.0, False)
    >>> split.weights, canary.up
    ({'v1': 100, 'v2': 0}, False)
    """

    def __init__(
        self,
        world: World,
        split: TrafficSplit,
        *,
        baseline: str = "v1",
        canary: str = "v2",
        stages: Sequence[int] = (10, 25, 50, 75, 100),
        interval: float = 60.0,
        analysis: AnalysisFn | None = None,
        max_failed_checks: int = 1,
        drain_timeout: float = 30.0,
    ) -> None:
        self.world = world
        self.split = split
        self.baseline = baseline
        self.canary = canary
        self.stages = tuple(stages)
        self.interval = interval
        self.analysis = analysis if analysis is not None else ErrorRateAnalysis()
        self.max_failed_checks = max_failed_checks
        self.drain_timeout = drain_timeout

    async def run(self) -> RolloutReport:
        """Run every stage; return when promoted or rolled back."""
        report = RolloutReport("running")
        stage = 0
        while True:
            weight = self.stages[stage]
            self.split.set_weights({self.baseline: 100 - weight, self.canary: weight})
            start = self.world.now()
            # A fixed wait is fine in virtual time; the seed's time.sleep(300)
            # blocks a real process for five minutes per stage.
            await asyncio.sleep(self.interval)
            end = self.world.now()
            canary, baseline = self._window(start, end)
            verdict = self.analysis(canary, baseline)
            report.checks.append(StageCheck(weight, start, end, verdict))
            if not verdict.passed:
                # Counted in total, never reset by a pass: a canary that fails
                # every other check is not healthy (Flagger's threshold).
                report.failed_checks += 1
                if report.failed_checks >= self.max_failed_checks:
                    await self.rollback()
                    report.status, report.finished_at = "rolled-back", self.world.now()
                    return report
                continue  # hold the weight and look again next interval
            stage += 1
            if stage == len(self.stages):
                # Stages may stop below 100 (Flagger's maxWeight, which leaves
                # the baseline traffic a comparison needs); promotion is the last step.
                self.split.set_weights({self.baseline: 0, self.canary: 100})
                report.status, report.finished_at = "promoted", self.world.now()
                return report

    def _window(self, start: float, end: float) -> tuple[list[Exchange], list[Exchange]]:
        """The canary's and the baseline's requests that started in [start, end)."""
        service = self.split.service
        release_of = {i.address: i.release for i in self.world.instances(service)}
        canary: list[Exchange] = []
        baseline: list[Exchange] = []
        for x in self.world.recorder.select(service=service, since=start, until=end):
            release = release_of.get(x.instance or "")
            if release == self.canary:
                canary.append(x)
            elif release == self.baseline:
                baseline.append(x)
        return canary, baseline

    async def rollback(self) -> None:
        """Weight 0 for the canary, let what is in flight on it finish, then stop it."""
        # First the route: no new request may reach the canary from now on.
        self.split.set_weights({self.baseline: 100, self.canary: 0})
        canaries = [i for i in self.world.instances(self.split.service) if i.release == self.canary and i.up]

        async def drained() -> None:
            while any(_in_flight(i) for i in canaries):
                await asyncio.sleep(DRAIN_POLL)

        # Bounded: a request that never ends must not keep a bad release
        # running forever. What is cut at the deadline is reset, and the
        # callers' retry policies send it again, now to the baseline.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained(), timeout=self.drain_timeout)
        for instance in canaries:
            instance.crash()  # the harness's way to stop a process


def _in_flight(instance: Instance) -> int:
    """Requests holding or waiting for a worker of this instance."""
    return instance.capacity.busy + instance.capacity.queued


# -- level 3: comparing with the baseline -------------------------------------------------------


def mann_whitney_u(canary: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """Mann-Whitney U of the canary, and the one-sided p-value that the canary is larger.

    U counts the pairs (c, b) with c > b, ties counting one half. The p-value
    uses the normal approximation with the tie correction of the variance and
    a continuity correction of 0.5, like
    ``scipy.stats.mannwhitneyu(canary, baseline, alternative="greater",
    method="asymptotic")``. With no spread at all (every value equal) there is
    no evidence: p = 1.0.

    >>> u, p = mann_whitney_u([4, 5, 6], [1, 2, 3])
    >>> u, round(p, 4)
    (9.0, 0.0404)
    """
    n1, n2 = len(canary), len(baseline)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    pooled = sorted([(value, 0) for value in canary] + [(value, 1) for value in baseline])
    n = n1 + n2
    rank_sum = 0.0  # of the canary's values
    ties = 0.0  # sum of t^3 - t over groups of equal values
    i = 0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        average_rank = (i + j) / 2 + 1  # ranks i+1 .. j+1, averaged
        group = j - i + 1
        ties += group**3 - group
        rank_sum += average_rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        i = j + 1
    u = rank_sum - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return u, 1.0
    z = (u - mean - 0.5) / math.sqrt(variance)
    return u, 0.5 * math.erfc(z / math.sqrt(2))  # P(Z >= z)


class BaselineComparison:
    """Judge the canary against the baseline of the same window (Kayenta-style).

    - error rate: fails when canary - baseline > ``max_error_rate_increase``;
    - latency: fails when the canary is significantly slower (one-sided
      Mann-Whitney p < ``alpha``) *and* its p99 is above
      ``max_p99_ratio`` times the baseline's (nearest-rank p99);
    - fewer than ``min_requests`` on either side: failed, no data.

    >>> BaselineComparison()([], []).passed
    False
    """

    def __init__(self, *, max_error_rate_increase: float = 0.01, max_p99_ratio: float = 1.2,
                 alpha: float = 0.05, min_requests: int = 1) -> None:
        self.max_error_rate_increase = max_error_rate_increase
        self.max_p99_ratio = max_p99_ratio
        self.alpha = alpha
        self.min_requests = min_requests

    def __call__(self, canary: Sequence[Exchange], baseline: Sequence[Exchange]) -> Analysis:
        needed = max(1, self.min_requests)
        if len(canary) < needed or len(baseline) < needed:
            # At a 100 % stage the baseline gets nothing: end the stages below
            # 100 when you compare (Flagger's maxWeight).
            return Analysis(False, f"no data: {len(canary)} canary and {len(baseline)} baseline requests "
                                   f"(need {needed} each)", canary_requests=len(canary),
                            baseline_requests=len(baseline))
        canary_rate, baseline_rate = error_rate(canary), error_rate(baseline)
        assert canary_rate is not None and baseline_rate is not None
        canary_latency = [x.latency for x in canary]
        baseline_latency = [x.latency for x in baseline]
        _, p_value = mann_whitney_u(canary_latency, baseline_latency)
        canary_p99, baseline_p99 = quantile(canary_latency, 0.99), quantile(baseline_latency, 0.99)
        figures = dict(canary_requests=len(canary), canary_error_rate=canary_rate,
                       baseline_requests=len(baseline), baseline_error_rate=baseline_rate,
                       canary_p99=canary_p99, baseline_p99=baseline_p99, p_value=p_value)
        # Relative to the baseline: an outage of a shared dependency hits both
        # releases and is no reason to roll the canary back.
        if canary_rate > baseline_rate + self.max_error_rate_increase:
            return Analysis(False, f"error rate {canary_rate:.2%} vs baseline {baseline_rate:.2%}", **figures)
        # Both conditions: significance alone flags differences too small to
        # matter on big samples; the p99 alone is noise on small ones.
        if p_value < self.alpha and canary_p99 > baseline_p99 * self.max_p99_ratio:
            return Analysis(False, f"slower: p99 {canary_p99:.3g} s vs {baseline_p99:.3g} s, "
                                   f"Mann-Whitney p = {p_value:.3g}", **figures)
        return Analysis(True, "as good as the baseline", **figures)


# -- level 4: retries and outlier ejection ------------------------------------------------------


class RetryPolicy:
    """Retry an attempt the way Envoy's route retry policy does.

    >>> policy = RetryPolicy(max_retries=3, per_try_timeout=5, timeout=15, clock=Clock.manual())
    >>> policy.max_retries, policy.per_try_timeout, policy.timeout
    (3, 5, 15)
    """

    def __init__(self, *, max_retries: int = 3, per_try_timeout: float = 5.0, timeout: float = 15.0,
                 backoff: float = 0.0, clock: SupportsNow | None = None) -> None:
        self.max_retries = max_retries
        self.per_try_timeout = per_try_timeout
        self.timeout = timeout
        self.backoff = backoff
        self.clock = clock if clock is not None else Clock.of_running_loop()

    async def call(self, attempt: Callable[[float], Awaitable[Response]]) -> Response:
        """``await attempt(timeout)`` until an answer that is not retried, or out of retries or time."""
        deadline = self.clock.now() + self.timeout  # one budget for every attempt and backoff
        retries_left = self.max_retries
        while True:
            # The seed's route: 4 tries x 5 s = 20 s > its 15 s timeout. The last
            # try only gets what is left of the budget.
            allowed = min(self.per_try_timeout, deadline - self.clock.now())
            outcome: Response | NetworkError
            try:
                outcome = await attempt(allowed)
            except NetworkError as error:  # refused, reset, or the per-try timeout
                outcome = error
            else:
                if outcome.status < 500:  # success, or a 4xx: retrying would get the same 4xx
                    return outcome
            # A retry must be able to start before the deadline, backoff included.
            if retries_left == 0 or self.clock.now() + self.backoff >= deadline:
                if isinstance(outcome, Response):
                    return outcome
                raise outcome
            retries_left -= 1
            if self.backoff > 0:
                await asyncio.sleep(self.backoff)


@dataclass(frozen=True)
class Ejection:
    """One ejection: ``host`` out of the pool from ``at`` until ``until``; its ``number``-th."""

    host: str
    at: float
    until: float
    number: int


class OutlierDetector:
    """Envoy's consecutive-5xx outlier detection over a fixed pool of hosts (addresses).

    - :meth:`observe` each finished request. A failure (``Exchange.failed``:
      5xx or no answer) adds one to its host's failures in a row; any other
      answer, 4xx included, sets them back to 0.
    - At ``max_server_errors`` failures in a row, a host that is not ejected
      is ejected, unless that would make more than ``max_ejection_percent``
      of the pool ejected at once (count the host being ejected). Its
      failures in a row go back to 0.
    - Its k-th ejection lasts ``min(base_ejection_time * k,
      max_ejection_time)``; it is back in the pool at exactly ``at +
      duration``. Append an :class:`Ejection` to ``self.log`` for each.

    A simplification of Envoy, on purpose: Envoy brings ejected hosts back
    only at its ``interval`` sweep (10 s by default, 30 s in the source
    chapter), so there a host returns at the first sweep at or after ``at +
    duration``, up to one interval late (ejected at 22.1 s for 30 s, with
    sweeps at t = 30, 60, 90 s: back at 60 s, not 52.1 s). We follow the
    exact time instead, so that a host's return depends only on its own
    ejections, not on when a sweep timer happened to start, and the checks
    can name exact instants; the two agree to within one interval.

    Wiring it into a world: ``world.recorder.listeners.append(lambda r:
    detector.observe(r) if isinstance(r, Exchange) else None)`` and
    ``world.net.balancer = lambda s, pool: split(s, detector.available(pool))``.

    >>> detector = OutlierDetector(["catalog-1", "catalog-2"], clock=Clock.manual())
    >>> detector.is_ejected("catalog-1")
    False
    """

    def __init__(self, hosts: Iterable[str], *, max_server_errors: int = 5, base_ejection_time: float = 30.0,
                 max_ejection_time: float = 300.0, max_ejection_percent: float = 50.0,
                 clock: SupportsNow | None = None) -> None:
        self.hosts = list(hosts)
        self.max_server_errors = max_server_errors
        self.base_ejection_time = base_ejection_time
        self.max_ejection_time = max_ejection_time
        self.max_ejection_percent = max_ejection_percent
        self.clock = clock if clock is not None else Clock.of_running_loop()
        self.log: list[Ejection] = []
        self._in_a_row = dict.fromkeys(self.hosts, 0)
        self._times_ejected = dict.fromkeys(self.hosts, 0)
        self._until: dict[str, float] = {}

    def observe(self, exchange: Exchange) -> None:
        """Count one finished request: a success resets the host's count, a failure adds one."""
        host = exchange.instance
        if host not in self._in_a_row:
            return  # another service's request, or a refused call with no host
        if not exchange.failed:  # 4xx included: the host answered, the caller was wrong
            self._in_a_row[host] = 0
            return
        self._in_a_row[host] += 1
        # >= rather than Envoy's ==: a host refused for lack of room is ejected
        # on its next failure once room frees up.
        if self._in_a_row[host] >= self.max_server_errors and not self.is_ejected(host):
            self._eject(host, self.clock.now())

    def _eject(self, host: str, now: float) -> None:
        ejected = sum(1 for h in self.hosts if self.is_ejected(h))
        # Count the host about to go: the share *after* ejecting must stay within
        # the limit, so a pool of one host is never emptied (Envoy #26877).
        if 100 * (ejected + 1) / len(self.hosts) > self.max_ejection_percent:
            return
        self._times_ejected[host] += 1
        number = self._times_ejected[host]
        # Longer and longer for a host that keeps failing, within the cap.
        duration = min(self.base_ejection_time * number, self.max_ejection_time)
        self._until[host] = now + duration
        self._in_a_row[host] = 0
        self.log.append(Ejection(host, now, now + duration, number))

    def is_ejected(self, host: str) -> bool:
        """Out of the pool now? A host comes back at exactly its ``until``."""
        until = self._until.get(host)
        return until is not None and self.clock.now() < until

    def available(self, instances: Sequence[Instance]) -> list[Instance]:
        """The instances not ejected, in order: ``split(service, detector.available(pool))``."""
        return [i for i in instances if not self.is_ejected(i.address)]
