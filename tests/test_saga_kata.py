"""The saga kata's checks bite: the solution passes, the stub fails, each plausible mistake is named.

Each wrong variant is the reference solution with one mistake a learner
might make, written as a subclass in a temporary ``saga.py`` and checked the
way a learner's file is. It must fail the level that teaches the rule it
breaks, with a message that names the mistake, and pass every level before
it (the mistake is not blamed on an earlier lesson). Most mistakes break
later levels too (level 5 runs everything under chaos); the comments say
which, as measured with the full 200 cases per property check.

The whole check suite is slow-ish by the standards of this project (a
property check runs 200 fault schedules), so each variant runs only the
levels it needs; the levels before the one it fails run with fewer cases.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.checks.saga import explore, saga_check_timing
from harness.toolchain import catalogue
from harness.toolchain.reset import ResetError, starting_version
from harness.toolchain.runner import check_kata

PRELUDE = """\
import asyncio

from harness.http import Response
from solutions.saga import *  # noqa: F403
from solutions.saga import OrderChoreography as ReferenceFlow, OrderSaga as Reference, _Answer, _Progress


"""

SAGA, FLOW = "class OrderSaga(Reference):\n", "class OrderChoreography(ReferenceFlow):\n"


def variant(tmp_path: Path, header: str, body: str) -> str:
    """A folder holding saga.py = the prelude + ``class ...(Reference): body``."""
    (tmp_path / "saga.py").write_text(PRELUDE + header + textwrap.indent(textwrap.dedent(body), "    "))
    return str(tmp_path)


# name: (the level it fails, a phrase its failure message must contain, which class, the mistake)
VARIANTS: dict[str, tuple[int, str, str, str]] = {
    # -- level 1 (also fails 3) --------------------------------------------------------------
    "compensates_in_forward_order": (1, "compensations ran in forward order", SAGA, """
        async def _compensate(self, saga_id, state):
            started = {step for step, phase in state.steps.items() if phase != "failed"}
            if "create" in started and state.order_id is not None:
                await self._until_answered("POST", "orders", f"/orders/{state.order_id}/cancel")
            if "reserve" in started:
                await self._release(saga_id, state)
            if "charge" in started:
                await self._refund(saga_id, state)
    """),
    # also fails 3 and 5: a charge whose answer was lost is "refunded" with charge_id None
    "compensates_the_step_that_failed": (1, "undid the step that failed", SAGA, """
        def _failed(self, saga_id, state, step, answer, what):
            reason = super()._failed(saga_id, state, step, answer, what)
            state.steps[step] = "done"  # as if the failed step had completed
            return reason

        async def _refund(self, saga_id, state):
            await self._until_answered("POST", "payments", "/refunds", key=f"{saga_id}:refund",
                                       json={"charge_id": state.charge_id})

        async def _release(self, saga_id, state):
            await self._until_answered("DELETE", "inventory", f"/reservations/{state.reservation_id}")
    """),
    # also fails 2, 3 and 5: a declined card leaves a confirmed, unpaid order
    "confirms_before_charging": (1, "confirmed before it was paid", SAGA, """
        async def _drive(self, saga_id):
            state = _Progress(self.log.records(saga_id))
            if state.compensating is None:
                for step in ("create", "reserve", "confirm", "charge"):
                    if state.steps.get(step) == "done":
                        continue
                    reason = await self._forward(saga_id, state, step)
                    if reason is not None:
                        self.log.append(saga_id, "compensating", reason=reason)
                        state.compensating = reason
                        break
            if state.compensating is not None:
                await self._compensate(saga_id, state)
                self.log.append(saga_id, "ended", status=CANCELLED)
                return SagaResult(saga_id, CANCELLED, state.order_id, state.compensating)
            await self._notify(saga_id, state)
            self.log.append(saga_id, "ended", status=CONFIRMED)
            return SagaResult(saga_id, CONFIRMED, state.order_id)
    """),
    # -- level 2 ---------------------------------------------------------------------------------
    # also fails 3 and 5
    "retries_the_charge_without_a_key": (2, "carried no Idempotency-Key", SAGA, """
        async def _once(self, method, target, path, key, **kwargs):
            return await super()._once(method, target, path, None if path == "/charges" else key, **kwargs)
    """),
    # also fails 3 and 5
    "new_key_on_every_try": (2, "a retry must send the same key", SAGA, """
        async def _once(self, method, target, path, key, **kwargs):
            self._tries = getattr(self, "_tries", 0) + 1
            return await super()._once(method, target, path, key and f"{key}:{self._tries}", **kwargs)
    """),
    "one_key_for_every_saga": (2, "Derive each key from the saga id", SAGA, """
        async def _once(self, method, target, path, key, **kwargs):
            return await super()._once(method, target, path, key and key.split(":", 1)[1], **kwargs)
    """),
    "never_retries_a_step": (2, "a timed-out charge is not a failure", SAGA, """
        async def _call(self, method, target, path, *, key=None, **kwargs):
            return await self._once(method, target, path, key, **kwargs)
    """),
    "compensates_a_lost_confirmation": (2, "the confirm timed out but had happened", SAGA, """
        async def _forward(self, saga_id, state, step):
            if step != "confirm":
                return await super()._forward(saga_id, state, step)
            self.log.append(saga_id, "step", step=step, phase="started")
            answer = await self._once("POST", "orders", f"/orders/{state.order_id}/confirm", None)
            if answer.ok:
                self.log.append(saga_id, "step", step=step, phase="done")
                return None
            return self._failed(saga_id, state, step, answer, "not confirmed")
    """),
    # also fails 3 and 5
    "retries_without_pausing": (2, "a pause before each retry", SAGA, """
        def _delay(self, attempt):
            return 0.0
    """),
    # -- level 3 -----------------------------------------------------------------------------------
    # also fails 5
    "gives_up_on_a_failed_compensation": (3, "gave up on a failed compensation", SAGA, """
        async def _until_answered(self, method, target, path, *, key=None, **kwargs):
            answer = await self._once(method, target, path, key, **kwargs)
            if answer.unknown:  # one try, then it moves on as if the answer had been "nothing there"
                return _Answer(Response(200, {"content-type": "application/json"}, b"[]"))
            return answer
    """),
    "retries_compensations_without_backoff": (3, "double the pause after each failure", SAGA, """
        def _delay(self, attempt):
            return self.retry_delay
    """),
    # also fails 5
    "no_saga_log": (3, "recover() did nothing", SAGA, """
        def __init__(self, client, *, log=None, **kwargs):
            super().__init__(client, **kwargs)  # a log of its own: the next orchestrator never sees it
    """),
    "refund_without_a_key_until_201": (3, "409", SAGA, """
        async def _refund(self, saga_id, state):
            charge_ids = [state.charge_id] if state.charge_id else []
            if not charge_ids:
                found = await self._until_answered("GET", "payments", "/charges", params={"order_id": state.order_id})
                charge_ids = [c["id"] for c in found.response.json() if c["status"] == "captured"]
            for charge_id in charge_ids:
                attempt = 0
                while True:  # no key, and only a 201 will do
                    answer = await self._once("POST", "payments", "/refunds", None, json={"charge_id": charge_id})
                    if answer.response is not None and answer.response.status == 201:
                        break
                    await asyncio.sleep(self._delay(attempt))
                    attempt += 1
    """),
    # also fails 5
    "trusts_a_charge_it_never_heard_from": (3, "never refunded the charge", SAGA, """
        async def _refund(self, saga_id, state):
            if state.charge_id:  # no answer, no charge: it assumes
                await super()._refund(saga_id, state)
    """),
    # -- level 4 (each also fails 5) -----------------------------------------------------------------
    "consumer_charges_without_a_key": (4, "the payments consumer charged again: it is not idempotent", FLOW, """
        async def _call(self, method, target, path, *, key=None, **kwargs):
            return await super()._call(method, target, path, key=None if path == "/charges" else key, **kwargs)
    """),
    "notifies_on_every_delivery": (4, "ask notifications first", FLOW, """
        async def _notify(self, message):
            event = message.payload
            await self._call("POST", "notifications", "/notifications",
                             json={"user_id": event["user_id"], "order_id": event["order_id"], "message": "ok"})
    """),
    "consumer_swallows_failures": (4, "raise, so that the bus delivers the event again", FLOW, """
        async def _call(self, method, target, path, *, key=None, **kwargs):
            try:
                return await super()._call(method, target, path, key=key, **kwargs)
            except Exception:
                raise asyncio.CancelledError from None  # ... no: pretend it went fine
    """),
    # -- level 5 ---------------------------------------------------------------------------------------
    # Dedupes duplicates and lost acks (same message id), not a retry after a lost answer.
    "dedupes_by_message_id_without_keys": (5, "not idempotent", FLOW, """
        def install(self):
            self._seen = set()
            super().install()

        async def _call(self, method, target, path, *, key=None, **kwargs):
            return await super()._call(method, target, path, key=None, **kwargs)

        async def _charge(self, message):
            if message.id in self._seen:
                return
            await super()._charge(message)
            self._seen.add(message.id)

        async def _reserve(self, message):
            if message.id in self._seen:
                return
            await super()._reserve(message)
            self._seen.add(message.id)
    """),
    "default_redelivery": (5, "max_attempts", FLOW, """
        def install(self):
            subscribe = self.bus.subscribe
            self.bus.subscribe = lambda topic, handler, **kw: subscribe(topic, handler, name=kw.get("name"))
            try:
                super().install()
            finally:
                del self.bus.subscribe
    """),
    "keeps_the_order_on_self": (5, "never on the OrderSaga object", SAGA, """
        async def run(self, order, saga_id):
            self._current = order
            return await super().run(order, saga_id)

        async def _forward(self, saga_id, state, step):
            state.order = getattr(self, "_current", state.order)  # the order of the saga that started last
            return await super()._forward(saga_id, state, step)
    """),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_mistake_fails_its_level_and_is_named(tmp_path: Path, name: str) -> None:
    number, phrase, header, body = VARIANTS[name]
    report = check_kata("saga", variant(tmp_path, header, body), level=number)
    level = report.levels[0]
    assert level.status == "fail", f"{name} passes level {number}"
    assert all(test.status == "fail" for test in level.failures), [(t.name, t.status, t.message) for t in
                                                                   level.failures]
    messages = [test.message or "" for test in level.failures]
    assert any(phrase in message for message in messages), "\n\n".join(messages)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_mistake_passes_the_levels_before(tmp_path: Path, name: str, monkeypatch) -> None:
    number, _, header, body = VARIANTS[name]
    # The levels before do not touch what the variant changed when it is the other kind of saga.
    before = [n for n in range(1, number) if header == SAGA or n >= 4]
    if not before:
        pytest.skip("no earlier level exercises this code")
    monkeypatch.setattr(explore, "EXAMPLES", 40)  # these levels must pass; fewer cases keep it quick
    folder = variant(tmp_path, header, body)
    for n in before:
        report = check_kata("saga", folder, level=n)
        failing = [(t.name, (t.message or "")[:400]) for t in report.levels[0].failures]
        assert not failing, f"{name} fails level {n} although its mistake is taught at level {number}: {failing}"


def test_an_unchanged_subclass_passes_and_every_property_check_bites(tmp_path: Path) -> None:
    """The control for the variants above (the prelude alone changes nothing), with every case of every
    level; and the bar of the issue: each property check runs 200 schedules, and most of them touch a saga."""
    explore.RUNS.clear()
    report = check_kata("saga", variant(tmp_path, SAGA, "pass\n"), seed=5)
    assert report.status == "pass", [t.message for lv in report.levels for t in lv.failures]
    assert len(explore.RUNS) == 6, sorted(explore.RUNS)
    assert {int(name.split(":")[0].split()[1]) for name in explore.RUNS} == {1, 2, 3, 4, 5}
    for name, run in explore.RUNS.items():
        assert run["examples"] >= 200, (name, run)
        # A schedule that never touches a saga proves nothing: most of them must.
        assert run["bitten"] >= 70, (name, run)


def starting_stub(folder: Path) -> str:
    stub = Path(__file__).resolve().parents[1] / "katas" / "saga.py"
    try:
        source, _ = starting_version(stub)
    except ResetError:  # not committed yet: the working copy is the stub
        source = stub.read_bytes()
    (folder / "saga.py").write_bytes(source)
    return str(folder)


def test_the_stub_fails_every_level_as_not_implemented(tmp_path: Path) -> None:
    report = check_kata("saga", starting_stub(tmp_path))
    assert [level.status for level in report.levels] == ["fail"] * len(catalogue.kata("saga").levels)
    for level in report.levels:
        for test in level.tests:
            assert test.status == "fail", (test.name, test.status, test.message)
            assert test.message.startswith("not implemented yet: "), test.message
            assert test.message.endswith(f"(level {level.level})")


def test_a_property_failure_shows_the_smallest_schedule_the_seed_and_the_replay(tmp_path: Path) -> None:
    number, _, header, body = VARIANTS["retries_the_charge_without_a_key"]
    folder = variant(tmp_path, header, body)
    first = check_kata("saga", folder, level=number, seed=3)
    again = check_kata("saga", folder, level=number, seed=3)
    found = [t for t in first.levels[0].failures if t.name == "lost_answers_and_errors_never_do_anything_twice"]
    assert found, [t.name for t in first.levels[0].failures]
    message = found[0].message
    assert message.startswith("The smallest failing case of those generated (seed 3): ")
    assert "answers lost between client and payments" in message  # the fault that makes the retry happen
    assert "carried no Idempotency-Key" in message and "seed 3" in message
    assert found[0].replay == f"kata check saga --level {number} --seed 3 --against {folder}"
    assert [t.message for t in first.levels[0].failures] == [t.message for t in again.levels[0].failures]


def test_saga_check_timing_reports_one_figure() -> None:
    figures = saga_check_timing(repeat=1, command=["python", "-c", "pass"])
    assert list(figures) == ["kata_check_saga_wall_s"] and 0 < figures["kata_check_saga_wall_s"] < 10
