"""A scene for breaker checks: a learner's breaker, a fake dependency, a virtual clock.

The scene keeps a story of what it did, so that a failed check can tell the
learner exactly what was done, what came back and what was expected, at which
virtual time and seed (Exercism's style).

>>> from harness.checks import Context
>>> import solutions.breaker as reference
>>> scene = Scene(Context(reference), fail_max=2)
>>> [scene.call("fail").error.__class__.__name__ for _ in range(2)]
['Outage', 'CircuitBreakerError']
>>> scene.call("ok").reached, scene.state
(False, 'open')
"""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass
from typing import Any, NoReturn

from harness.clock import Clock

from .. import CheckFailed, Context, failure_message

__all__ = ["CardDeclined", "Outage", "Outcome", "Scene", "where"]

STORY_LINES = 12  # the last steps shown in a failure message


class Outage(ConnectionError):
    """The dependency failed: a system error the breaker must count."""


class CardDeclined(ValueError):
    """A business error: the dependency worked, the request was refused."""


@dataclass
class Outcome:
    """What one call through the breaker did."""

    reached: bool  # did the call reach the dependency?
    at: float
    value: Any = None
    error: BaseException | None = None

    def describe(self, module: Any = None) -> str:
        if self.error is None:
            text = f"returned {self.value!r}"
        else:
            text = f"raised {type(self.error).__name__}"
            if str(self.error):
                text += f"({str(self.error)[:60]!r})"
            if module is not None and not isinstance(self.error, (Outage, CardDeclined)):
                text += where(self.error, module)
        return text + ("" if self.reached else ", function not called")


def where(error: BaseException, module: Any) -> str:
    """`` at breaker.py:42`` for the learner's innermost frame in a traceback, else ''."""
    path = getattr(module, "__file__", None)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    if not frames:
        return ""
    last = frames[-1]
    return f" at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


class Scene:
    """One breaker under test, built with ``config`` and a virtual clock."""

    def __init__(self, ctx: Context, *, clock: Clock | None = None, **config: Any):
        self.ctx = ctx
        self.module = ctx.module
        self.clock = clock if clock is not None else Clock.manual()
        self.story: list[str] = []
        self.reached = 0  # calls that reached the dependency
        settings = ", ".join(f"{k}={_show(v)}" for k, v in config.items())
        self.story.append(f"breaker = CircuitBreaker({settings}{', ' if settings else ''}clock=<virtual clock>)")
        self.breaker = self.module.CircuitBreaker(clock=self.clock, **config)

    # -- acting --------------------------------------------------------------------
    def at(self, when: float) -> None:
        """Move the virtual clock to ``when`` (never backwards)."""
        self.clock.set(when)

    def dependency(self, behaviour: str, takes: float = 0.0):
        """A function that counts its calls, takes ``takes`` seconds, then behaves."""

        def payments(*args: Any, **kwargs: Any) -> Any:
            self.reached += 1
            if takes:
                self.clock.advance(takes)
            return _behave(behaviour)

        return payments

    def call(self, behaviour: str = "ok", *, takes: float = 0.0) -> Outcome:
        """``breaker.call(fn)`` where fn succeeds ("ok"), fails ("fail") or refuses ("business")."""
        before, start = self.reached, self.clock.now()
        try:
            value = self.breaker.call(self.dependency(behaviour, takes))
            outcome = Outcome(self.reached > before, start, value=value)
        except NotImplementedError:
            raise
        except Exception as error:
            outcome = Outcome(self.reached > before, start, error=error)
        self.log(f"t={start:g}  breaker.call({_label(behaviour, takes)})", outcome)
        return outcome

    def calls(self, behaviour: str, times: int, *, takes: float = 0.0) -> list[Outcome]:
        return [self.call(behaviour, takes=takes) for _ in range(times)]

    async def call_async(self, behaviour: str = "ok", *, takes: float = 0.0) -> Outcome:
        """``await breaker.call_async(fn)`` with an ``async def`` dependency (clock: the loop's)."""
        before = self.reached
        start = self.clock.now()
        entered = []

        async def payments() -> Any:
            self.reached += 1
            entered.append(True)
            if takes:
                await asyncio.sleep(takes)
            return _behave(behaviour)

        try:
            value = await self.breaker.call_async(payments)
            outcome = Outcome(bool(entered), start, value=value)
        except NotImplementedError:
            raise
        except Exception as error:
            outcome = Outcome(self.reached > before, start, error=error)
        if asyncio.iscoroutine(outcome.value):
            outcome.value.close()  # a breaker that did not await it: don't leak a warning
        self.log(f"t={start:g}  await breaker.call_async({_label(behaviour, takes)})", outcome)
        return outcome

    def trip(self) -> None:
        """Open the breaker with fail_max failures in a row (a level 1 skill)."""
        fail_max = self.breaker.fail_max
        outcomes = self.calls("fail", fail_max)
        if self.state != "open":
            self.fail(got=f"after {fail_max} failures in a row the state is {self.state!r}",
                      expected="'open' (level 1: fail_max failures in a row open the breaker)")
        if outcomes[-1].error is None:
            self.fail(got="the failing call returned normally", expected="an exception")

    def log(self, action: str, outcome: Outcome) -> None:
        self.story.append(f"{action} -> {outcome.describe(self.module)}")

    def note(self, text: str) -> None:
        self.story.append(text)

    @property
    def state(self) -> str:
        return self.breaker.state

    # -- judging -------------------------------------------------------------------
    def fail(self, *, got: str, expected: str, why: str | None = None) -> NoReturn:
        """Stop the check with a message: what was done, got, expected, when, seed."""
        raise CheckFailed(failure_message(self.story, got=got, expected=expected, why=why,
                                          at=self.clock.now(), seed=self.ctx.seed, keep=STORY_LINES))

    def expect_value(self, outcome: Outcome, value: Any, *, why: str | None = None) -> None:
        if outcome.error is not None or outcome.value != value:
            self.fail(got=f"the call {outcome.describe(self.module)}", expected=f"it returns {value!r}",
                      why=why or self.why_refused(outcome))

    def why_refused(self, outcome: Outcome) -> str | None:
        """Explain a call refused in half-open although the previous probe had ended."""
        if outcome.reached or self.state != "half-open":
            return None
        return ("a call was refused in half-open while no probe was in flight: a probe frees its slot "
                "when it ends (half_open_max_calls is 1 by default, so probes one after the other "
                "must each get the slot)")

    def expect_rejected(self, outcome: Outcome, *, why: str | None = None, expected: str | None = None) -> None:
        """Refused without calling: CircuitBreakerError and the function not called."""
        if outcome.reached or not isinstance(outcome.error, self.module.CircuitBreakerError):
            self.fail(got=f"the call {outcome.describe(self.module)}",
                      expected=expected or "CircuitBreakerError, without calling the function", why=why)

    def expect_reached(self, outcome: Outcome, *, why: str | None = None, expected: str | None = None) -> None:
        if not outcome.reached:
            self.fail(got=f"the call {outcome.describe(self.module)}",
                      expected=expected or "the call reaches the function", why=why or self.why_refused(outcome))

    def expect_tripped(self, outcome: Outcome, *, why: str | None = None) -> None:
        """The failure that opens the breaker: CircuitBreakerError chained from it."""
        error = outcome.error
        chained = error is not None and isinstance(error.__cause__ or error.__context__, Outage)
        if not outcome.reached or not isinstance(error, self.module.CircuitBreakerError) or not chained:
            self.fail(got=f"the call {outcome.describe(self.module)}",
                      expected="it reaches the function, and its failure opens the breaker: "
                               "CircuitBreakerError raised from the Outage (`raise CircuitBreakerError(...) from error`)",
                      why=why)

    def expect_error(self, outcome: Outcome, kind: type[BaseException], *, why: str | None = None) -> None:
        """The dependency's own error, re-raised unchanged."""
        if not outcome.reached or type(outcome.error) is not kind:
            self.fail(got=f"the call {outcome.describe(self.module)}",
                      expected=f"it reaches the function, which raises {kind.__name__}, re-raised unchanged", why=why)

    def expect_state(self, state: str, *, why: str | None = None, after: str = "") -> None:
        actual = self.state
        if actual != state:
            self.fail(got=f"breaker.state is {actual!r}{after}", expected=f"{state!r}", why=why)


def _behave(behaviour: str) -> Any:
    if behaviour == "fail":
        raise Outage("payments is down")
    if behaviour == "business":
        raise CardDeclined("card declined")
    return "ok"


def _label(behaviour: str, takes: float) -> str:
    name = {"ok": "succeeds", "fail": "fails", "business": "raises CardDeclined"}[behaviour]
    return f"{name}, takes {takes:g} s" if takes else name


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, type):
        return value.__name__
    if callable(value):
        return getattr(value, "__name__", "<function>")
    return repr(value)
