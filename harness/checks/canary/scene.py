"""Scenes for canary checks: a story for the message, and the shop with a canary in it.

A scene keeps the story of what it did, so that a failed check tells the
learner what was done, what came back and what was expected, at which virtual
time and seed (Exercism's style). Three kinds:

- :class:`Scene`: the story alone, for checks of pure functions (made-up
  exchanges from :func:`exchanges`);
- :class:`Upstream`: a scripted dependency for a retry policy, on a virtual loop;
- :class:`Shop`: a world with catalog v1 on two instances and a v2 canary,
  the learner's :class:`TrafficSplit` as the network's balancer, and load.

>>> from harness.checks import Context
>>> from harness.toolchain.loader import kata_dir, load_kata
>>> scene = Scene(Context(load_kata("canary", kata_dir("solutions"))))
>>> scene.module.error_rate(exchanges(ok=3, errors=1))
0.25
"""

from __future__ import annotations

import asyncio
import math
import traceback
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from harness.http import ConnectError, ConnectionReset, RequestTimeout, Response
from harness.recorder import Exchange

from .. import CheckFailed, Context, failure_message

__all__ = ["STORY_LINES", "Scene", "ScriptedAnalysis", "Shop", "SpyAnalysis", "Upstream", "describe", "exchanges",
           "latencies", "where"]

STORY_LINES = 14  # the last steps shown in a failure message


def where(error: BaseException, module: Any) -> str:
    """`` at canary.py:42`` for the learner's innermost frame in a traceback, else ''."""
    path = getattr(module, "__file__", None)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    if not frames:
        return ""
    return f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}"


class Scene:
    """What a check did, step by step, and a way to fail with all of it."""

    def __init__(self, ctx: Context, *, now: Callable[[], float] | None = None):
        self.ctx = ctx
        self.module = ctx.module
        self.story: list[str] = []
        self._now = now

    def note(self, text: str) -> None:
        self.story.append(text)

    def now(self) -> float | None:
        return self._now() if self._now is not None else None

    def fail(self, *, got: str, expected: str, why: str | None = None) -> NoReturn:
        """Stop the check with a message: what was done, got, expected, when, seed."""
        raise CheckFailed(failure_message(self.story, got=got, expected=expected, why=why,
                                          at=self.now(), seed=self.ctx.seed, keep=STORY_LINES))

    def call(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the learner's code, note it, and turn a crash into a failure that says where."""
        try:
            value = fn(*args, **kwargs)
        except (NotImplementedError, CheckFailed):
            raise
        except Exception as error:
            self.crashed(label, error)
        shown = _short(value)
        self.note(f"{label} -> {shown}" if shown else label)
        return value

    def crashed(self, label: str, error: BaseException, expected: str = "it runs without raising") -> NoReturn:
        """Fail because the learner's code raised: say what, and where in their file."""
        place = where(error, self.module)
        self.note(f"{label} -> raised {type(error).__name__}: {str(error)[:80]}{place}")
        self.fail(got=f"{type(error).__name__}: {error}{place}", expected=expected)


def _short(value: Any) -> str:
    """A value as the story shows it; '' for objects whose repr says nothing (``<X object at 0x...>``)."""
    text = repr(value)
    if " object at 0x" in text:
        return ""
    return text if len(text) <= 90 else text[:87] + "..."


# -- made-up exchanges -----------------------------------------------------------------------


def exchanges(*, ok: int = 0, errors: int = 0, client_errors: int = 0, timeouts: int = 0, refused: int = 0,
              instance: str = "catalog-3", latency: float = 0.0, start: float = 0.0) -> list[Exchange]:
    """Finished requests to catalog: ``ok`` 200s, ``errors`` 500s, ``client_errors`` 404s, and no-answers."""
    out: list[Exchange] = []

    def add(status: int | None, outcome: str) -> None:
        out.append(Exchange(start, start + latency, "customer", "catalog", instance, "GET",
                            "/products/sku-1", status, outcome))

    for _ in range(ok):
        add(200, "ok")
    for _ in range(errors):
        add(500, "error")
    for _ in range(client_errors):
        add(404, "client-error")
    for _ in range(timeouts):
        add(None, "timeout")
    for _ in range(refused):
        add(None, "refused")
    return out


def latencies(values: Iterable[float], *, instance: str = "catalog-3") -> list[Exchange]:
    """One successful request per latency."""
    return [Exchange(0.0, float(v), "customer", "catalog", instance, "GET", "/products/sku-1", 200, "ok")
            for v in values]


def describe(xs: list[Exchange]) -> str:
    """``50 requests: 45 x 200, 5 x 500``."""
    counts: dict[str, int] = {}
    for x in xs:
        key = str(x.status) if x.status is not None else x.outcome
        counts[key] = counts.get(key, 0) + 1
    parts = ", ".join(f"{n} x {k}" for k, n in counts.items())
    return f"{len(xs)} requests" + (f" ({parts})" if parts else "")


# -- a scripted dependency for retry policies ----------------------------------------------------


class Upstream:
    """``attempt(timeout)`` for a retry policy: each try does the next thing in the script.

    Script items: an HTTP status (``503``), ``(status, seconds)``, ``"hang"``
    (never answers: the try times out), ``"refused"``, ``"reset"``, or
    ``"bug"`` (a ValueError: not a network failure). The last item repeats.
    Every try is noted with the virtual time it started and the timeout it got.
    """

    def __init__(self, scene: Scene, script: list[Any]):
        self.scene = scene
        self.script = script
        self.tries: list[tuple[float, float]] = []  # (started at, timeout given)

    async def __call__(self, timeout: float) -> Response:
        loop = asyncio.get_running_loop()
        now = loop.time()
        item = self.script[min(len(self.tries), len(self.script) - 1)]
        self.tries.append((now, timeout))
        status, takes = (item if isinstance(item, tuple) else (item, 0.0))
        if status == "hang":
            takes = math.inf
        label = f"t={now:g}  try {len(self.tries)}, timeout={_secs(timeout)}: {_label(status, takes)}"
        if takes > timeout:
            await asyncio.sleep(max(0.0, timeout))
            self.scene.note(f"{label} -> timed out at t={loop.time():g}")
            raise RequestTimeout(f"gave up after {timeout:g} s", target="catalog-1", at=loop.time())
        if takes:
            await asyncio.sleep(takes)
        if status == "refused":
            self.scene.note(f"{label} -> connection refused")
            raise ConnectError("connection refused by catalog-1 (down)", target="catalog-1")
        if status == "reset":
            self.scene.note(f"{label} -> connection reset")
            raise ConnectionReset("catalog-1 crashed during the request", target="catalog-1")
        if status == "bug":
            self.scene.note(f"{label} -> raised ValueError")
            raise ValueError("a bug in the caller's code, not a network failure")
        self.scene.note(f"{label} -> {status} at t={loop.time():g}")
        return Response(status, {"content-type": "application/json"}, b"{}", instance="catalog-1")

    def starts(self) -> list[float]:
        return [start for start, _ in self.tries]

    def timeouts(self) -> list[float]:
        return [timeout for _, timeout in self.tries]


def _secs(value: float) -> str:
    return f"{value:g} s" if isinstance(value, (int, float)) else repr(value)


def _label(status: Any, takes: float) -> str:
    what = {"hang": "never answers", "refused": "refuses", "reset": "resets", "bug": "raises ValueError"}
    text = what.get(status, f"answers {status}") if isinstance(status, str) else f"answers {status}"
    if takes and takes != math.inf:
        text += f" after {takes:g} s"
    return text


# -- the shop: catalog v1 x2 and a v2 canary behind the learner's split ---------------------------


class Shop(Scene):
    """A world with catalog v1 on ``baseline`` instances (``catalog-1``, ...) and ``canaries`` v2 ones.

    The learner's ``TrafficSplit("catalog", {"v1": 100}, rng=world.rng("mesh"))``
    is the balancer. Use as a context manager: the world is closed at the end.
    """

    def __init__(self, ctx: Context, *, bug_rate: float = 0.0, canaries: int = 1, baseline: int = 2,
                 users: bool = False):
        from harness.world import World  # FastAPI: only the checks that need a shop pay for it

        self.world = World(seed=ctx.seed)
        super().__init__(ctx, now=self.world.now)
        world = self.world
        world.add_service("catalog", instances=baseline)
        self.canaries = [world.add_instance("catalog", release="v2", options={"bug_rate": bug_rate})
                         for _ in range(canaries)]
        if users:
            world.add_service("users", instances=2)
        v1 = ", ".join(f"catalog-{n + 1}" for n in range(baseline))
        v2 = f"; {', '.join(i.address for i in self.canaries)} release v2" if canaries else ""
        self.note(f"world = World(seed={ctx.seed}): {v1} release v1{v2}"
                  + (f" with bug_rate={bug_rate:g}" if bug_rate else ""))
        self.split = None

    def __enter__(self) -> Shop:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.world.close()

    def install_split(self, weights: dict[str, int] | None = None) -> Any:
        weights = weights if weights is not None else {"v1": 100}
        self.split = self.call(f"split = TrafficSplit('catalog', {weights}, rng=world.rng('mesh'))",
                               self.module.TrafficSplit, "catalog", weights, rng=self.world.rng("mesh"))
        self.world.net.balancer = self.split
        self.note("world.net.balancer = split")
        return self.split

    @property
    def canary_addresses(self) -> set[str]:
        return {i.address for i in self.canaries}

    def load(self, rate: float, until: float, *, start: float = 0.05, path: str = "/products/sku-1") -> None:
        """Open-loop customers: GET catalog ``path`` at ``rate`` per second (recorded, 10 s timeout)."""
        from harness.load import open_loop

        net = self.world.net

        def customer(i: int) -> None:
            net.fire("GET", "catalog", path, caller="customer", timeout=10.0)

        open_loop(self.world, rate, until=until, start=start, fire=customer)
        self.note(f"customers: GET catalog {path}, {rate:g} per second from t={start:g} to t={until:g}")

    def sample_weights(self, times: Iterable[float]) -> list[tuple[float, Any]]:
        """Read ``split.weights`` at each of ``times`` while the world runs."""
        samples: list[tuple[float, Any]] = []
        for t in times:
            self.world.loop.call_at(t, lambda t=t: samples.append((t, self._weights_now())))
        return samples

    def _weights_now(self) -> Any:
        try:
            return self.split.weights
        except Exception as error:  # noqa: BLE001 (reported by the check that reads the sample)
            return error

    def rollout(self, label: str, **options: Any) -> Any:
        """Run the learner's Rollout to the end; return its report (a crash fails the check)."""
        shown = ", ".join(f"{k}={_option(v)}" for k, v in options.items())
        rollout = self.call(f"rollout = Rollout(world, split{', ' if shown else ''}{shown})",
                            self.module.Rollout, self.world, self.split, **options)
        try:
            report = self.world.run(rollout.run())
        except (NotImplementedError, CheckFailed):
            raise
        except Exception as error:
            self.crashed(label, error, "the rollout runs to the end and returns a RolloutReport")
        if report is None or not hasattr(report, "status"):
            self.fail(got=f"rollout.run() returned {report!r}", expected="a RolloutReport")
        checks = ", ".join(f"{c.weight}%:{'pass' if c.analysis.passed else 'FAIL'}" for c in report.checks)
        self.note(f"t={self.world.now():g}  {label} -> status={report.status!r}, "
                  f"finished_at={report.finished_at:g}, checks [{checks}]")
        return report

    def window(self, start: float, end: float, release: str = "v2") -> list[Exchange]:
        """What the rollout should judge: requests to catalog that started in [start, end), by release."""
        addresses = {i.address for i in self.world.instances("catalog") if i.release == release}
        return [x for x in self.world.recorder.select(service="catalog", since=start, until=end)
                if x.instance in addresses]

    def stopped_at(self, address: str) -> float | None:
        """When the instance was stopped (its first crash event), or None."""
        for event in self.world.recorder.events_of("crash", address):
            return event.t
        return None


def _option(value: Any) -> str:
    if callable(value) and not isinstance(value, type):
        return getattr(value, "label", None) or type(value).__name__
    return repr(value)


class ScriptedAnalysis:
    """An analysis that ignores the data and answers pass/fail from a script (the last repeats)."""

    def __init__(self, module: Any, script: list[bool]):
        self.module = module
        self.script = script
        self.calls = 0
        self.label = "<scripted analysis: " + ", ".join("pass" if v else "fail" for v in script) + ">"

    def __call__(self, canary: Any, baseline: Any) -> Any:
        verdict = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return self.module.Analysis(verdict, "scripted pass" if verdict else "scripted failure")


class SpyAnalysis:
    """An analysis that always passes and keeps what it was given."""

    label = "<analysis that keeps what it is given and passes>"

    def __init__(self, module: Any):
        self.module = module
        self.given: list[tuple[list[Exchange], list[Exchange]]] = []

    def __call__(self, canary: Any, baseline: Any) -> Any:
        self.given.append((list(canary), list(baseline)))
        return self.module.Analysis(True, "spy")
