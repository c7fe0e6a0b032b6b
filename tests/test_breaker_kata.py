"""The breaker kata's checks bite: the solution passes, the stub fails, each plausible mistake is named.

Each wrong variant is the reference solution with one mistake a learner might
make, written as a subclass in a temporary ``breaker.py`` and checked the way
a learner's file is. It must fail the level that teaches the rule it breaks,
with a message that names the mistake (and where the mistake breaks a later
rule too, that level as well: ``levels`` says which).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.toolchain import catalogue
from harness.toolchain.reset import ResetError, starting_version
from harness.toolchain.runner import check_kata

PRELUDE = """\
import functools
from collections import deque

from solutions.breaker import *  # noqa: F403
from solutions.breaker import CircuitBreaker as Reference, _Ticket


"""


def variant(tmp_path: Path, body: str) -> str:
    """A folder holding breaker.py = the prelude + ``class CircuitBreaker(Reference): body``."""
    source = PRELUDE + "class CircuitBreaker(Reference):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    (tmp_path / "breaker.py").write_text(source)
    return str(tmp_path)


# name: (the levels it fails, a phrase the failure message of its first level must contain, the mistake)
VARIANTS: dict[str, tuple[set[int], str, str]] = {
    # -- level 1 ---------------------------------------------------------------------
    "counts_total_failures": ({1, 2}, "in total instead of in a row", """
        def _settle_success(self, ticket):
            failures = self._failures
            super()._settle_success(ticket)
            if self._state == CLOSED and ticket.generation == self._generation:
                self._failures = failures  # a success does not reset the count
    """),
    "calls_while_open": ({1, 2, 3, 5}, "calls the function while open", """
        def _admit(self):
            if self._state == OPEN and self.clock.now() < self._opened_at + self._open_for:
                return _Ticket(self.clock.now(), self._generation, probe=False)  # calls anyway
            return super()._admit()
    """),
    "trips_one_failure_late": ({1, 2, 3, 5}, ">=, not >", """
        def _settle_error(self, ticket, error):
            if (self._state == CLOSED and isinstance(error, Exception) and not self._is_excluded(error)
                    and self._failures + 1 == self.fail_max):
                self._release(ticket)
                self._failures += 1  # compares with > instead of >=
                return None
            return super()._settle_error(ticket, error)
    """),
    "reraises_the_original_on_trip": ({1, 2, 4, 5}, "raises CircuitBreakerError, like pybreaker", """
        def call(self, fn, /, *args, **kwargs):
            try:
                return super().call(fn, *args, **kwargs)
            except CircuitBreakerError as error:
                if error.__cause__ is not None:
                    raise error.__cause__ from None
                raise
    """),
    # -- level 2 ---------------------------------------------------------------------
    "restarts_the_timer_on_every_rejection": ({2, 5}, "restarts the timer on every rejected call", """
        def _admit(self):
            try:
                return super()._admit()
            except CircuitBreakerError:
                if self._state == OPEN:
                    self._opened_at = self.clock.now()
                raise
    """),
    "stays_half_open_after_success_then_failure": ({2}, "stays half-open after a success followed by failures", """
        def _settle_error(self, ticket, error):
            if (self._state == HALF_OPEN and self._successes > 0 and isinstance(error, Exception)
                    and not self._is_excluded(error)):
                self._release(ticket)
                return None  # only the first probe may re-open
            return super()._settle_error(ticket, error)
    """),
    "keeps_the_old_timer_on_reopen": ({2, 5}, "re-opening keeps the old timer", """
        def _trip(self, now):
            opened_at, was = self._opened_at, self._state
            super()._trip(now)
            if was == HALF_OPEN:
                self._opened_at = opened_at
    """),
    "counts_excluded_errors_as_failures": ({2}, "counts excluded errors as failures", """
        def _is_excluded(self, error):
            return False
    """),
    "ignores_success_threshold": ({2, 3}, "closes before success_threshold", """
        def _settle_success(self, ticket):
            if self._state == HALF_OPEN and ticket.generation == self._generation:
                self._successes = self.success_threshold - 1
            super()._settle_success(ticket)
    """),
    "keeps_the_failure_count_when_closing": ({2}, "closing does not reset the failure count", """
        def _move(self, new, now):
            failures = self._failures
            super()._move(new, now)
            if new == CLOSED:
                self._failures = failures
    """),
    # -- level 3 ---------------------------------------------------------------------
    "wraps_coroutines_without_awaiting": ({3}, "pybreaker issue #7", """
        def call(self, fn, /, *args, **kwargs):  # the plain path, used for everything
            ticket = self._admit()
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                reason = self._settle_error(ticket, error)
                if reason is not None:
                    raise CircuitBreakerError(reason) from error
                raise
            self._settle_success(ticket)
            return result

        def __call__(self, fn):
            @functools.wraps(fn)
            def guarded(*args, **kwargs):
                return self.call(fn, *args, **kwargs)
            return guarded
    """),
    "call_async_without_await": ({3}, "without awaiting it", """
        async def call_async(self, fn, /, *args, **kwargs):
            ticket = self._admit()
            result = fn(*args, **kwargs)  # a coroutine, never awaited here
            self._settle_success(ticket)
            return result
    """),
    "lets_unlimited_probes_through": ({3}, "lets unlimited probes through in half-open", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.half_open_max_calls = 10**9
    """),
    "never_frees_a_probe_slot": ({2, 3}, "frees its slot when it ends", """
        def _release(self, ticket):
            pass
    """),
    "leaks_the_slot_of_a_cancelled_probe": ({3}, "`except Exception` misses it", """
        def _settle_error(self, ticket, error):
            if not isinstance(error, Exception):
                return None  # forgets the probe slot
            return super()._settle_error(ticket, error)
    """),
    # -- level 4 ---------------------------------------------------------------------
    "window_without_minimum_calls": ({4}, "without a minimum number of calls", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._minimum_calls = 1
    """),
    "window_never_slides": ({4}, "Counting every call since the start", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._window = deque()
    """),
    "rate_must_exceed_threshold": ({4}, ">=, not >", """
        def _record(self, *, failed, duration):
            verdict = super()._record(failed=failed, duration=duration)
            calls = len(self._window)
            if verdict is None or not calls:
                return verdict
            failure_rate = sum(f for f, _ in self._window) / calls
            slow_rate = sum(s for _, s in self._window) / calls
            over = [(self.failure_rate_threshold, failure_rate), (self.slow_call_rate_threshold, slow_rate)]
            return verdict if any(t is not None and rate > t for t, rate in over) else None
    """),
    "ignores_call_durations": ({4}, "slow calls are not counted", """
        def _record(self, *, failed, duration):
            return super()._record(failed=failed, duration=0.0)
    """),
    "slow_at_exactly_the_threshold": ({4}, "strictly longer than the threshold", """
        def _record(self, *, failed, duration):
            return super()._record(failed=failed, duration=duration + 1e-9)
    """),
    "slow_failures_are_not_slow": ({4}, "slow failures are not counted as slow", """
        def _record(self, *, failed, duration):
            return super()._record(failed=failed, duration=0.0 if failed else duration)
    """),
    "keeps_the_window_when_closing": ({4}, "keeps the outcomes from before it opened", """
        def _move(self, new, now):
            kept = list(self._window)
            super()._move(new, now)
            if new == CLOSED:
                self._window.extend(kept)
    """),
    # -- level 5 ---------------------------------------------------------------------
    "no_backoff": ({5}, "does not back off", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.backoff_multiplier = 1.0
    """),
    "backs_off_on_the_first_trip": ({5}, "backoff applies only to the trips that follow", """
        def _trip(self, now):
            self._trips_in_a_row += 1
            super()._trip(now)
    """),
    "no_cap_on_the_open_period": ({5}, "max_reset_timeout caps it", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.max_reset_timeout = None
    """),
    "backoff_never_resets": ({5}, "Reset the backoff when the breaker closes", """
        def _move(self, new, now):
            trips = self._trips_in_a_row
            super()._move(new, now)
            self._trips_in_a_row = trips
    """),
    "listeners_never_called": ({5}, "listeners are never called", """
        def _move(self, new, now):
            listeners, self.listeners = self.listeners, []
            try:
                super()._move(new, now)
            finally:
                self.listeners = listeners
    """),
    "listener_arguments_swapped": ({5}, "the old state comes first", """
        def _move(self, new, now):
            old, listeners, self.listeners = self._state, self.listeners, []
            try:
                super()._move(new, now)
            finally:
                self.listeners = listeners
            for listener in listeners:
                listener(new, old, now)
    """),
    "listeners_told_before_the_change": ({5}, "listeners run before the state has changed", """
        def _move(self, new, now):
            for listener in self.listeners:
                listener(self._state, new, now)
            listeners, self.listeners = self.listeners, []
            try:
                super()._move(new, now)
            finally:
                self.listeners = listeners
    """),
    "half_open_never_announced": ({5}, "open -> half-open", """
        def _move(self, new, now):
            listeners = self.listeners
            if new == HALF_OPEN:
                self.listeners = []
            try:
                super()._move(new, now)
            finally:
                self.listeners = listeners
    """),
    "listener_gets_the_opening_time": ({5}, "the times are wrong", """
        def _move(self, new, now):
            super()._move(new, self._opened_at if new == HALF_OPEN else now)
    """),
    "announces_rejected_calls": ({5}, "calls that do not change the state", """
        def _admit(self):
            try:
                return super()._admit()
            except CircuitBreakerError:
                for listener in self.listeners:
                    listener(self._state, self._state, self.clock.now())
                raise
    """),
    "add_listener_forgets": ({5}, "added with add_listener are not called", """
        def add_listener(self, listener):
            pass
    """),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_mistake_fails_its_level_and_is_named(tmp_path: Path, name: str) -> None:
    levels, phrase, body = VARIANTS[name]
    report = check_kata("breaker", variant(tmp_path, body))
    failing = {level.level for level in report.levels if level.status != "pass"}
    assert failing == levels, f"{name} fails levels {sorted(failing)}, expected {sorted(levels)}"
    first = report.levels[min(levels) - 1]
    messages = [test.message or "" for test in first.failures]
    assert all(test.status == "fail" for test in first.failures), [t.status for t in first.failures]
    assert any(phrase in message for message in messages), "\n\n".join(messages)


def test_the_solution_passes_every_level_for_many_seeds() -> None:
    for seed in range(25):
        report = check_kata("breaker", "solutions", seed=seed)
        assert report.status == "pass", (seed, [t.message for lv in report.levels for t in lv.failures])


def starting_stub(folder: Path) -> str:
    """A folder holding the stub as git has it, so that a learner's progress in katas/
    never fails the project's own tests (CI, on a fresh clone, checks the same file)."""
    stub = Path(__file__).resolve().parents[1] / "katas" / "breaker.py"
    try:
        source, _ = starting_version(stub)
    except ResetError:  # not committed yet, or no git: the working copy is the stub
        source = stub.read_bytes()
    (folder / "breaker.py").write_bytes(source)
    return str(folder)


def test_the_stub_fails_every_level_as_not_implemented(tmp_path: Path) -> None:
    report = check_kata("breaker", starting_stub(tmp_path))
    assert [level.status for level in report.levels] == ["fail"] * len(catalogue.kata("breaker").levels)
    for level in report.levels:
        for test in level.tests:
            assert test.status == "fail", (test.name, test.status, test.message)
            assert test.message.startswith("not implemented yet: CircuitBreaker."), test.message
            assert test.message.endswith(f"(level {level.level})")


def test_an_unchanged_subclass_passes_so_the_variants_are_fair(tmp_path: Path) -> None:
    """The control for the variants above: the prelude alone changes nothing."""
    report = check_kata("breaker", variant(tmp_path, "pass\n"))
    assert report.status == "pass"


def test_learner_breaker_plugs_into_the_orders_checkout() -> None:
    """``breaker.guard`` is the orders service's ``payments_guard``: it opens and orders fails fast."""
    from harness import World
    from solutions.breaker import CircuitBreaker

    world = World(seed=7)
    changes = []
    breaker = CircuitBreaker(fail_max=3, reset_timeout=30, clock=world.clock,
                             listeners=[lambda old, new, at: changes.append((new, at))])
    world.add_service("payments")
    world.add_service("orders", options={"payments_guard": breaker.guard, "payments_timeout": 1.0})
    world.faults.inject({"fault": "hang", "target": "payments"})
    client = world.client()

    async def checkouts() -> list[int]:
        statuses = []
        for _ in range(5):
            r = await client.post("orders", "/checkout", json={"user_id": "user-1", "amount": 20}, timeout=10)
            statuses.append(r.status)
        return statuses

    statuses = world.run(checkouts())
    assert statuses[:2] == [504, 504]  # payments timed out: counted as failures
    assert statuses[2:] == [202, 202, 202]  # the 3rd trips it; then payment queued, at once
    assert changes == [("open", pytest.approx(3.0, abs=0.1))]
    world.close()


def test_learner_breaker_plugs_into_the_cascade_scenario() -> None:
    """What a chapter does: the learner's breaker, one per orders instance, in the seed's cascade."""
    from harness.scenarios.cascade import run_variant
    from solutions.breaker import CircuitBreaker

    def guard_factory(ctx):
        breaker = CircuitBreaker(fail_max=5, reset_timeout=30, clock=ctx.world.clock, name=f"{ctx.address}->payments")
        breaker.add_listener(lambda old, new, at: ctx.world.recorder.event(at, "breaker", breaker.name, state=new))
        return breaker.guard

    learners = run_variant("breaker+timeout", 7, duration=20, guard_factory=guard_factory).summary
    textbook = run_variant("breaker+timeout", 7, duration=20).summary
    assert learners["breaker_first_open_at"] == textbook["breaker_first_open_at"]
    assert learners["browse_availability_during_outage"] == 1.0 and learners["queued_checkouts"] > 0
