"""Differential test: the reference breaker behaves exactly like pybreaker 1.4.1.

For every configuration pybreaker supports (fail_max, reset_timeout,
success_threshold, exclude), both breakers get the same seeded sequence of
calls (successes, failures, excluded business errors) with the same virtual
time between them, and must agree on every observable: which calls reach the
function, what each call raises, the state after each call, and every change
of state with its time.

pybreaker reads the wall clock as ``datetime.now(UTC)``; the tests swap its
module's ``datetime`` for one that reads the virtual clock. Times are
multiples of 0.25 s so that float seconds and pybreaker's microsecond
``timedelta`` agree exactly.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from unittest import mock

import pybreaker
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.clock import Clock
from solutions.breaker import CircuitBreaker, CircuitBreakerError

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class Outage(ConnectionError):
    """A failure of the dependency."""


class CardDeclined(ValueError):
    """A business error, excluded by class."""


def is_lookup(error: BaseException) -> bool:
    """An exclusion predicate (pybreaker accepts callables too)."""
    return isinstance(error, LookupError)


KINDS = ("ok", "fail", "declined", "missing")
EXCLUDES: dict[str, list] = {"none": [], "class": [CardDeclined], "predicate": [is_lookup],
                             "both": [ValueError, is_lookup]}


def behave(kind: str) -> str:
    if kind == "fail":
        raise Outage("payments is down")
    if kind == "declined":
        raise CardDeclined("card declined")
    if kind == "missing":
        raise KeyError("no such order")
    return "paid"


def virtual_datetime(clock: Clock) -> type[datetime]:
    """pybreaker's ``datetime``, reading the virtual clock instead of the wall clock."""

    class VirtualDatetime(datetime):
        @classmethod
        def now(cls, tz=None):  # noqa: ARG003  (pybreaker always asks for UTC)
            return EPOCH + timedelta(seconds=clock.now())

    return VirtualDatetime


Step = tuple[float, str]  # (seconds to wait before the call, what the call does)


def drive(call: Callable, state: Callable[[], str], clock: Clock, steps: list[Step]) -> list[tuple]:
    """Run the steps through one breaker; what an observer sees after each call."""
    seen = []
    for wait, kind in steps:
        clock.advance(wait)
        reached = []

        def dependency(kind: str = kind, reached: list = reached) -> str:
            reached.append(True)
            return behave(kind)

        try:
            outcome = call(dependency)
        except (CircuitBreakerError, pybreaker.CircuitBreakerError) as error:
            outcome = f"breaker error (from {type(error.__cause__ or error.__context__).__name__})"
        except (Outage, CardDeclined, KeyError) as error:
            outcome = f"raised {type(error).__name__}"
        seen.append((clock.now(), kind, bool(reached), outcome, state()))
    return seen


def run_pybreaker(config: dict, steps: list[Step]) -> tuple[list[tuple], list[tuple]]:
    clock = Clock.manual()
    changes: list[tuple] = []

    class Listener(pybreaker.CircuitBreakerListener):
        def state_change(self, cb, old_state, new_state):
            changes.append((old_state.name, new_state.name, clock.now()))

    with mock.patch.object(pybreaker, "datetime", virtual_datetime(clock)):
        breaker = pybreaker.CircuitBreaker(listeners=[Listener()], **config)
        seen = drive(breaker.call, lambda: breaker.current_state, clock, steps)
    return seen, changes


def run_solution(config: dict, steps: list[Step]) -> tuple[list[tuple], list[tuple]]:
    clock = Clock.manual()
    changes: list[tuple] = []
    breaker = CircuitBreaker(clock=clock, listeners=[lambda old, new, at: changes.append((old, new, at))], **config)
    return drive(breaker.call, lambda: breaker.state, clock, steps), changes


def random_steps(rng: random.Random, reset_timeout: float, count: int) -> list[Step]:
    waits = [0.0, 0.0, 0.25, 0.5, 1.0, reset_timeout, reset_timeout + 0.25]
    return [(rng.choice(waits), rng.choice(("ok", "fail", "fail", "declined", "missing"))) for _ in range(count)]


def assert_same(config: dict, steps: list[Step]) -> None:
    expected, expected_changes = run_pybreaker(config, steps)
    actual, actual_changes = run_solution(config, steps)
    for n, (want, got) in enumerate(zip(expected, actual, strict=True)):
        assert got == want, f"step {n} with {config}: pybreaker {want}, solution {got}"
    assert actual_changes == expected_changes


GRID = list(itertools.product([1, 2, 3, 5], [0.0, 0.5, 1.0, 2.5, 30.0], [1, 2, 3], sorted(EXCLUDES)))


@pytest.mark.parametrize(("fail_max", "reset_timeout", "success_threshold", "exclude"), GRID)
def test_same_behaviour_as_pybreaker_on_seeded_sequences(fail_max, reset_timeout, success_threshold, exclude):
    config = {"fail_max": fail_max, "reset_timeout": reset_timeout, "success_threshold": success_threshold,
              "exclude": EXCLUDES[exclude]}
    rng = random.Random(f"{fail_max}-{reset_timeout}-{success_threshold}-{exclude}")
    for _ in range(2):
        assert_same(config, random_steps(rng, reset_timeout, 60))


quarter_seconds = st.integers(min_value=0, max_value=160).map(lambda n: n / 4)


@settings(derandomize=True, max_examples=150, deadline=None, database=None)
@given(
    fail_max=st.integers(min_value=1, max_value=6),
    reset_timeout=quarter_seconds,
    success_threshold=st.integers(min_value=1, max_value=4),
    exclude=st.sampled_from(sorted(EXCLUDES)),
    steps=st.lists(st.tuples(quarter_seconds, st.sampled_from(KINDS)), max_size=80),
)
def test_same_behaviour_as_pybreaker_property(fail_max, reset_timeout, success_threshold, exclude, steps):
    config = {"fail_max": fail_max, "reset_timeout": reset_timeout, "success_threshold": success_threshold,
              "exclude": EXCLUDES[exclude]}
    assert_same(config, steps)


def test_the_virtual_clock_drives_pybreaker():
    """The patch works: pybreaker stays open until exactly reset_timeout of virtual time."""
    steps = [(0.0, "fail"), (29.75, "ok"), (0.25, "ok")]
    seen, _ = run_pybreaker({"fail_max": 1, "reset_timeout": 30}, steps)
    assert [(t, reached, state) for t, _, reached, _, state in seen] == [
        (0.0, True, "open"), (29.75, False, "open"), (30.0, True, "closed")]


def test_timeout_duration_is_not_a_parameter():
    """The seed chapter's ``timeout_duration`` does not exist: pybreaker's name is reset_timeout."""
    with pytest.raises(TypeError, match="timeout_duration"):
        pybreaker.CircuitBreaker(fail_max=5, timeout_duration=30)
    with pytest.raises(TypeError, match="timeout_duration"):
        CircuitBreaker(fail_max=5, timeout_duration=30, clock=Clock.manual())
    assert pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30).reset_timeout == 30
