"""Canary kata: release a new version to a few customers first, and take it back if it hurts.

Implement the pieces level by level; check your work with::

    kata check canary          # every level
    kata check canary --level 1
    kata hint canary           # the hint of the first level that fails

Look for ``# TODO (level N):`` below. Replace each ``raise
NotImplementedError`` with your code; keep the names and signatures (the
checks and the chapter use them).

The pieces, one per level:

1. :class:`TrafficSplit`, the mesh's weighted route: each request to a service
   goes to a release (``"v1"``, ``"v2"``) drawn by weight, like App Mesh's
   ``weightedTargets``.
2. :func:`error_rate`, :class:`ErrorRateAnalysis` and :class:`Rollout`: move
   the weight 10 -> 25 -> 50 -> 75 -> 100 %, judge every stage on the canary's
   own requests, promote or roll back.
3. :func:`mann_whitney_u` and :class:`BaselineComparison`: judge the canary
   against the baseline of the same window; count failed checks in total.
4. :class:`RetryPolicy` and :class:`OutlierDetector`: what the mesh does for
   every request (retries inside one overall timeout) and for every host
   (ejection of hosts that keep failing).
5. :meth:`Rollout.rollback` that loses no request in flight on the canary.

>>> import random
>>> split = TrafficSplit("catalog", {"v1": 90, "v2": 10}, rng=random.Random(7))
>>> picks = [split.pick_release() for _ in range(10_000)]
>>> round(picks.count("v2") / len(picks), 2)
0.1

Plugging the pieces into the harness (a canary is an instance with
``release="v2"``; ``options={"bug_rate": 0.2}`` makes a fifth of its answers
500s)::

    world.add_service("catalog", instances=2)
    world.add_instance("catalog", release="v2", options={"bug_rate": 0.2})
    split = TrafficSplit("catalog", {"v1": 100}, rng=world.rng("mesh"))
    world.net.balancer = split                      # the mesh routes every request
    report = world.run(Rollout(world, split).run())

Semantics, and whom we follow where trusted systems differ:

- Error rates and thresholds are fractions (0.01 is 1 %). An *error* is a
  5xx answer or no answer at all (refused, reset, timed out); a 4xx answer is
  the caller's mistake and is not an error (``Exchange.failed`` says which).
- A stage is judged on the canary's requests that *started* in the stage's
  window ``[start, end)``. No request at all is a failed check, and a value
  equal to its threshold passes (Flagger).
- Failed checks are counted in total over the rollout, never reset by a
  passing check; a failed check holds the weight instead of advancing
  (Flagger's ``threshold``).
- Retries follow Envoy: the overall timeout includes every attempt and
  backoff, and each attempt gets ``per_try_timeout`` but never more than the
  time left. 5xx answers, connection errors and timeouts are retried; 4xx
  answers never are.
- Ejection follows Envoy: ``base_ejection_time`` times the number of times the
  host has been ejected, capped at ``max_ejection_time``; an ejection that
  would take the share of ejected hosts above ``max_ejection_percent`` does
  not happen (Envoy since 2023, issue #26877).

Read time only from the injected clock (``self.clock.now()``, or
``world.now()`` in a :class:`Rollout`) and draw randomness only from the
``rng`` you are given: the checks run in virtual time, with seeds.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from harness.clock import Clock
from harness.http import Response
from harness.recorder import Exchange

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

    Install it as the network's balancer (``world.net.balancer = split``):
    the network then asks it which instance gets each request. Requests to
    other services keep plain round-robin over their instances.

    >>> import random
    >>> split = TrafficSplit("catalog", {"v1": 100, "v2": 0}, rng=random.Random(1))
    >>> {split.pick_release() for _ in range(1000)}
    {'v1'}
    """

    def __init__(self, service: str, weights: Mapping[str, int], *, rng: random.Random) -> None:
        self.service = service
        self.rng = rng
        # TODO (level 1): the state you need: the weights, and where each
        #   round-robin stands.
        self.set_weights(weights)

    @property
    def weights(self) -> dict[str, int]:
        """The current weights, release -> weight (a copy: change them with :meth:`set_weights`).

        >>> import random
        >>> TrafficSplit("catalog", {"v1": 90, "v2": 10}, rng=random.Random(1)).weights
        {'v1': 90, 'v2': 10}
        """
        # TODO (level 1): return a copy of the weights.
        raise NotImplementedError

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Replace every weight at once, like App Mesh's UpdateRoute replaces the whole route.

        Each weight is a non-negative ``int``, and at least one is positive;
        anything else raises ``ValueError``. A release's share of the requests
        is its weight over the total (``{"v1": 90, "v2": 10}``: 10 %).

        >>> import random
        >>> split = TrafficSplit("catalog", {"v1": 100}, rng=random.Random(1))
        >>> split.set_weights({"v1": 75, "v2": 25}); split.weights
        {'v1': 75, 'v2': 25}
        """
        # TODO (level 1): validate, then keep the new weights.
        raise NotImplementedError

    def pick_release(self) -> str:
        """Draw one release, each with probability weight / total.

        Use ``self.rng`` and nothing else (one draw per call is enough), so
        that the same seed routes the same requests the same way. A release
        with weight 0 is never picked.

        >>> import random
        >>> TrafficSplit("catalog", {"v1": 0, "v2": 100}, rng=random.Random(1)).pick_release()
        'v2'
        """
        # TODO (level 1): draw a point in [0, total) and find whose share it falls in.
        raise NotImplementedError

    def __call__(self, service: str, instances: Sequence[Instance]) -> Instance:
        """The balancer hook: pick the instance that gets one request to ``service``.

        For this split's service: pick a release, then take turns among that
        release's instances (``instance.release``); if the release has no
        instance, raise ``harness.http.ConnectError`` (Envoy's "no healthy
        upstream"). For any other service: take turns among all of
        ``instances``.
        """
        # TODO (level 1): route by release for self.service, round-robin otherwise.
        raise NotImplementedError


# -- level 2: judging a stage on the canary's own requests ------------------------------------


def error_rate(exchanges: Sequence[Exchange]) -> float | None:
    """Errors over requests: a 5xx answer or no answer is an error, a 4xx is not.

    ``None`` when there were no requests: no data is not a 0 % error rate.

    >>> from harness.recorder import Exchange
    >>> ok = Exchange(0, 0.1, "client", "catalog", "catalog-3", "GET", "/products", 200, "ok")
    >>> bad = Exchange(0, 0.1, "client", "catalog", "catalog-3", "GET", "/products", 500, "error")
    >>> error_rate([ok, ok, ok, bad]), error_rate([])
    (0.25, None)
    """
    # TODO (level 2): count the failed exchanges (Exchange.failed), divide by
    #   how many there were.
    raise NotImplementedError


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

    Called as ``analysis(canary_exchanges, baseline_exchanges)`` (this one
    looks at the canary's only) and returns an :class:`Analysis`:

    - fewer than ``min_requests`` canary requests (at least 1): failed, no data;
    - otherwise passed when the canary's error rate <= ``max_error_rate``.

    >>> analysis = ErrorRateAnalysis(max_error_rate=0.01)
    >>> analysis([], []).passed
    False
    """

    def __init__(self, max_error_rate: float = 0.01, *, min_requests: int = 1) -> None:
        self.max_error_rate = max_error_rate
        self.min_requests = min_requests

    def __call__(self, canary: Sequence[Exchange], baseline: Sequence[Exchange]) -> Analysis:
        # TODO (level 2): no data fails; equal to the threshold passes. Fill in
        #   canary_requests and canary_error_rate, and say why in `reason`.
        raise NotImplementedError


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


class Rollout:
    """Move traffic to the canary stage by stage, judging each stage; promote or roll back.

    At each stage: set the weights (canary = the stage's weight, baseline =
    100 - it), wait ``interval`` virtual seconds (``await asyncio.sleep``),
    then call ``analysis(canary, baseline)`` with the requests to the split's
    service that started in the stage's window, split by the release of the
    instance that answered (``world.recorder.select(service=..., since=start,
    until=end)``; ``world.instances(service)`` tells each address's
    ``release``). Record a :class:`StageCheck` for every check.

    - passed: go to the next stage; after the last one, promote (canary 100,
      baseline 0): status ``"promoted"``.
    - failed: one more failed check in total (level 3: never reset by a
      pass). At ``max_failed_checks`` failed checks, :meth:`rollback`: status
      ``"rolled-back"``. Below it (level 3), keep the same weight and check
      again after another ``interval``.

    ``finished_at`` is ``world.now()`` when :meth:`run` returns.

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
        # TODO (level 2): the stages, each judged on the canary's requests of
        #   its window only; promote after the last, roll back on a failure.
        # TODO (level 3): hand the baseline's requests of the same window to
        #   the analysis; count failed checks in total; below
        #   max_failed_checks, hold the weight and check again.
        raise NotImplementedError

    async def rollback(self) -> None:
        """Take the canary out: weight 0, and (level 5) stop it without losing a request.

        Level 2: set the weights to baseline 100, canary 0 (keep the canary
        in the weights, at 0).

        Level 5: then wait while requests are still in flight on the canary's
        instances (``instance.capacity.busy + instance.capacity.queued``),
        looking at least every 0.1 s, but at most ``drain_timeout`` seconds;
        then stop each canary instance that is up with ``instance.crash()``.
        What is still running at the deadline is reset: the callers' retry
        policies send it again, to the baseline now.
        """
        # TODO (level 2): weight 0 for the canary.
        # TODO (level 5): drain (bounded by drain_timeout), then stop the canary.
        raise NotImplementedError


# -- level 3: comparing with the baseline -------------------------------------------------------


def mann_whitney_u(canary: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """Mann-Whitney U of the canary, and the one-sided p-value that the canary is larger.

    - U: the number of pairs (c, b) with c > b, a tie counting 1/2; with
      ranks (1 = smallest, tied values share the average of their ranks):
      U = (sum of the canary's ranks) - n1 (n1 + 1) / 2.
    - p: the normal approximation, mean n1 n2 / 2 and variance
      n1 n2 / 12 * ((n + 1) - T / (n (n - 1))) where n = n1 + n2 and T sums
      t^3 - t over each group of t equal values; z = (U - mean - 0.5) /
      sqrt(variance) (continuity correction), p = P(Z >= z) =
      ``0.5 * math.erfc(z / math.sqrt(2))``. This is what
      ``scipy.stats.mannwhitneyu(canary, baseline, alternative="greater",
      method="asymptotic")`` computes.
    - every value equal (variance 0): no evidence either way, p = 1.0.
    - an empty sample: ``ValueError``.

    >>> u, p = mann_whitney_u([4, 5, 6], [1, 2, 3])
    >>> u, round(p, 4)
    (9.0, 0.0404)
    """
    # TODO (level 3): average ranks, U, tie-corrected variance, continuity correction.
    raise NotImplementedError


class BaselineComparison:
    """Judge the canary against the baseline of the same window (Kayenta-style).

    - fewer than ``min_requests`` (at least 1) on either side: failed, no data;
    - error rate: failed when the canary's is more than
      ``max_error_rate_increase`` above the baseline's (equal passes);
    - latency: failed when the canary is significantly slower (one-sided
      :func:`mann_whitney_u` p < ``alpha`` on the latencies) *and* its p99
      is more than ``max_p99_ratio`` times the baseline's (nearest-rank p99:
      ``harness.recorder.quantile(latencies, 0.99)``);
    - otherwise passed. Fill in every figure of the :class:`Analysis`.

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
        # TODO (level 3): no data on either side fails; error rate relative to
        #   the baseline; latency fails only when significant *and* p99 is worse.
        raise NotImplementedError


# -- level 4: retries and outlier ejection ------------------------------------------------------


class RetryPolicy:
    """Retry an attempt the way Envoy's route retry policy does.

    The defaults are the seed's route: 3 retries, 5 s per try, 15 s in all.

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
        """``await attempt(timeout)`` until an answer that is not retried, or out of retries or time.

        ``attempt(timeout)`` makes one try that gives up after ``timeout``
        seconds, e.g. ``lambda t: client.get("catalog", "/products", timeout=t)``.

        - A 2xx/3xx/4xx answer is returned at once (a 4xx would come back the
          same). A 5xx answer, or a ``harness.http.NetworkError`` (refused,
          reset, ``RequestTimeout``), is retried, at most ``max_retries``
          times, each after ``backoff`` seconds.
        - One overall budget: ``timeout`` seconds from the call, for every
          attempt and backoff. Each attempt gets ``min(per_try_timeout, time
          left)``; no retry starts unless it can start (after its backoff)
          before the deadline.
        - Out of retries or time: return the last answer (a 5xx), or raise
          the last error.
        - Any other exception (not a ``NetworkError``) is a bug, not an
          outage: let it propagate at once, without retrying.
        """
        # TODO (level 4): the loop of attempts within one deadline.
        raise NotImplementedError


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
        # TODO (level 4): per host: failures in a row, times ejected, ejected until when.

    def observe(self, exchange: Exchange) -> None:
        """Count one finished request (``exchange.instance`` is the host; others are ignored)."""
        # TODO (level 4): count failures in a row; eject at max_server_errors
        #   if the pool allows it.
        raise NotImplementedError

    def is_ejected(self, host: str) -> bool:
        """Out of the pool right now (``self.clock.now()``)?"""
        # TODO (level 4): ejected until a time still in the future.
        raise NotImplementedError

    def available(self, instances: Sequence[Instance]) -> list[Instance]:
        """The instances that are not ejected, in their order."""
        # TODO (level 4): filter by is_ejected(instance.address).
        raise NotImplementedError
