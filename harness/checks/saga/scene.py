"""A scene for saga checks: a fresh shop, the learner's saga, a client that keeps a story and can die.

The orchestrator talks to the shop through a :class:`SagaClient`: a harness
client that writes down every call (when, what, with which
``Idempotency-Key``, what came back) and that can *crash*: at a chosen call
it stops for good, before sending it or after the service has done the work
but before the answer is seen, like a process that dies. Another
orchestrator then starts from the saga log alone.

A failed check tells the learner what was done (faults and calls), what came
back, what was expected, the likely cause, the virtual time and the seed.

>>> from harness.checks import Context
>>> import solutions.saga as reference
>>> scene = Scene(Context(reference, seed=2))
>>> result = scene.run(scene.saga(), ORDER, "saga-1")
>>> result.status, [call.step for call in scene.client.calls]
('confirmed', ['create', 'reserve', 'charge', 'confirm', 'notify'])
>>> scene.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from harness.http import NetworkError, Response
from harness.invariants import Violation, invariant_report
from harness.network import Client

from .. import CheckFailed, Context, failure_message
from .shop import SERVICES, fresh_world, orders_replay_keys, release

__all__ = ["BOUND", "COMPENSATIONS", "DECLINED", "ORDER", "OUT_OF_STOCK", "Call", "SagaClient", "Scene",
           "step_of"]

STORY_LINES = 14
BOUND = 120.0  # virtual seconds: every saga must end within this, whatever the faults (they last far less)
CALL_BUDGET = 1000  # more calls than this in one case is a retry loop without a pause (a busy case makes ~200)

ORDER = {"user_id": "user-1", "items": [{"sku": "sku-1", "qty": 2}], "amount": 30.0}
DECLINED = {"user_id": "user-2", "items": [{"sku": "sku-2", "qty": 1}], "amount": 6000.0}  # payments: 402 above 5000
OUT_OF_STOCK = {"user_id": "user-3", "items": [{"sku": "sku-3", "qty": 500}], "amount": 30.0}  # 100 in stock

# The compensation of each forward step, and the forward step each one undoes.
COMPENSATIONS = {"charge": "refund", "reserve": "release", "create": "cancel"}

_STEPS = [
    ("POST", re.compile(r"^/orders$"), "create"),
    ("POST", re.compile(r"^/orders/[^/]+/confirm$"), "confirm"),
    ("POST", re.compile(r"^/orders/[^/]+/cancel$"), "cancel"),
    ("POST", re.compile(r"^/reservations$"), "reserve"),
    ("DELETE", re.compile(r"^/reservations/[^/]+$"), "release"),
    ("POST", re.compile(r"^/charges$"), "charge"),
    ("POST", re.compile(r"^/refunds$"), "refund"),
    ("POST", re.compile(r"^/notifications$"), "notify"),
]


def step_of(method: str, path: str) -> str:
    """Which saga step a call is: ``create``, ``reserve``, ... ``refund``; ``look-up`` for reads.

    >>> step_of("DELETE", "/reservations/res-1"), step_of("GET", "/charges")
    ('release', 'look-up')
    """
    for want, pattern, step in _STEPS:
        if method == want and pattern.match(path):
            return step
    return "look-up" if method == "GET" else "other"


class Runaway(BaseException):
    """Too many calls: a retry loop without a pause."""


@dataclass
class Call:
    """One call the orchestrator made, as it saw it."""

    number: int
    by: str
    start: float
    method: str
    target: str
    path: str
    key: str | None
    body: Any = None
    end: float | None = None
    status: int | None = None
    outcome: str = "in flight"  # a status, or timeout / refused / reset / crashed
    response: Response | None = None

    @property
    def detail(self) -> str:
        """``(res-1, reserved)`` or ``(not enough sku-3)``: read from the answer only when a story is told."""
        return _detail(self.response) if self.response is not None else ""

    @property
    def step(self) -> str:
        return step_of(self.method, self.path)

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400

    def describe(self) -> str:
        key = f" [Idempotency-Key {self.key}]" if self.key else " [no Idempotency-Key]" if self.step in (
            "create", "reserve", "charge", "refund") else ""
        who = "" if self.by == "orchestrator" else f"{self.by}: "
        outcome = self.outcome + (f" {self.detail}" if self.detail else "")
        return f"t={self.start:g}  {who}{self.method} {self.target} {self.path}{key} -> {outcome}"


class SagaClient(Client):
    """The client a learner's saga gets: records its calls; ``crash_at`` makes it die at one of them.

    It speaks like :class:`harness.network.Client` (``request``, ``get``,
    ``post``, ``delete``...). ``calls`` is shared with the clients made by
    :meth:`successor`, so the story of a crash and its recovery reads in order.
    """

    def __init__(self, world: Any, *, by: str = "orchestrator", calls: list[Call] | None = None,
                 caller: str = "client", timeline: list[Any] | None = None) -> None:
        self.world = world
        self.by = by
        self.caller = caller
        self._client = Client(world.net, caller=caller)
        self.calls: list[Call] = calls if calls is not None else []
        self.timeline: list[Any] = timeline if timeline is not None else []  # calls and story lines, in order
        self.crash_on: tuple[int, str] | None = None  # (call number of this client, "before" | "after")
        self.dead = False
        self.died_at: Call | None = None
        self.crashed: asyncio.Future | None = None
        self.frozen: set[asyncio.Task] = set()  # the coroutines of the dead process, stopped where they were
        self._wake: asyncio.Future | None = None
        self._made = 0

    def crash_at(self, number: int, when: str) -> None:
        """Die at this client's ``number``-th call: ``"before"`` it is sent, or ``"after"`` the service answered."""
        self.crash_on = (number, when)

    def successor(self, by: str = "new orchestrator") -> SagaClient:
        return SagaClient(self.world, by=by, calls=self.calls, caller=self.caller, timeline=self.timeline)

    def _died(self) -> asyncio.Future:
        if self.crashed is None:
            self.crashed = self.world.loop.create_future()
        return self.crashed

    async def _freeze(self) -> NoReturn:
        """A dead process does nothing more, ever."""
        self.dead = True
        if not self._died().done():
            self._died().set_result(None)
        task = asyncio.current_task()
        if task is not None:
            self.frozen.add(task)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        await self.world.loop.create_future()  # never resolved: the world cancels it when it closes
        raise AssertionError("unreachable")

    async def settled(self, runs: list[asyncio.Task], *, within: float = 60.0) -> None:
        """After the crash: wait until each run has ended or is stopped at a call (at most ``within`` s).

        A crash stops a coroutine at its next call: what it had already been answered it may still
        write to its log, like a process that dies a moment later. Only then does a new orchestrator start.
        """
        deadline = self.world.now() + within
        while any(not r.done() and r not in self.frozen for r in runs) and self.world.now() < deadline:
            self._wake = self.world.loop.create_future()
            waiting = {self._wake, *(r for r in runs if not r.done() and r not in self.frozen)}
            await asyncio.wait(waiting, timeout=deadline - self.world.now(), return_when=asyncio.FIRST_COMPLETED)

    async def request(self, method: str, target: str, path: str, **kwargs: Any) -> Response:
        if self.dead:  # every coroutine of a dead process stops where it is
            await self._freeze()
        if len(self.calls) >= CALL_BUDGET:
            raise Runaway
        self._made += 1
        headers = kwargs.get("headers") or {}
        key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
        call = Call(len(self.calls) + 1, self.by, self.world.now(), method.upper(), target, path,
                    None if key is None else str(key), kwargs.get("json"))
        self.calls.append(call)
        self.timeline.append(call)
        crash = self.crash_on is not None and self.crash_on[0] == self._made
        when = self.crash_on[1] if crash else ""
        if crash and when == "after" and call.step == "create" and not orders_replay_keys():
            when = "before"  # orders cannot replay a create yet: its lost answer could not be recovered by anyone
        if crash and when == "before":
            call.outcome = "never sent: the orchestrator crashed"
            self.died_at = call
            await self._freeze()
        try:
            response = await self._client.request(method, target, path, **kwargs)
        except NetworkError as error:
            call.end, call.outcome = self.world.now(), error.outcome
            if crash:
                call.outcome += ", and the orchestrator crashed"
                self.died_at = call
                await self._freeze()
            raise
        call.end, call.status, call.outcome = self.world.now(), response.status, str(response.status)
        if crash:
            call.outcome = f"{response.status} (done by {target}, but the orchestrator crashed before reading it)"
            self.died_at = call
            await self._freeze()
        call.response = response
        return response



def _detail(response: Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        if "detail" in body:
            return f"({str(body['detail'])[:60]})"
        if "id" in body:
            return f"({body['id']}{', ' + body['status'] if 'status' in body else ''})"
    return ""


class Scene:
    """One shop under test: a fresh world, the learner's module, a story for the failure message."""

    def __init__(self, ctx: Context, *, caller: str = "client", latency: float = 0.0) -> None:
        self.ctx = ctx
        self.module = ctx.module
        self.world = fresh_world(ctx.seed)
        self.story: list[Any] = []  # story lines and the client's calls, in the order they happened
        self.client = SagaClient(self.world, caller=caller, timeline=self.story)
        self.faults: list[dict[str, Any]] = []
        if latency:
            # Every call takes a little time, so that sagas overlap each other and the faults.
            for service in SERVICES:
                self.world.faults.inject({"fault": "latency", "target": service, "dist": "constant",
                                          "value": latency})
            self.story.append(f"every service takes {latency:g} s to answer")

    # -- acting ------------------------------------------------------------------------
    def saga(self, client: SagaClient | None = None, **config: Any) -> Any:
        """The learner's ``OrderSaga(client, **config)``."""
        settings = "".join(f", {k}={'log' if k == 'log' else _show(v)}" for k, v in config.items())
        line = f"saga = OrderSaga(client{settings})"
        if line not in self.story:
            self.story.append(line)
        return self.module.OrderSaga(client or self.client, **config)

    def inject(self, *faults: dict[str, Any]) -> None:
        """Switch faults on (plain harness fault dicts; with ``at`` they form a schedule)."""
        scheduled = [f for f in faults if "at" in f]
        for fault in faults:
            self.faults.append(fault)
            self.story.append("fault: " + describe_fault(fault))
            if "at" not in fault:
                self.world.faults.inject(fault)
        if scheduled:
            self.world.faults.schedule(scheduled)

    def run(self, saga: Any, order: dict[str, Any], saga_id: str, *, start: float = 0.0,
            horizon: float = BOUND) -> Any:
        """``await saga.run(order, saga_id)`` at virtual time ``start``, stopped at ``horizon``."""

        async def later() -> Any:
            await asyncio.sleep(max(0.0, start - self.world.now()))
            self.story.append(f"t={self.world.now():g}  await saga.run({_show_order(order)}, {saga_id!r})")
            return await saga.run(order, saga_id)

        finished, result = self.drive(later(), horizon=horizon)
        if not finished:
            self.fail(got=f"saga.run(...) for {saga_id!r} had not returned at t={horizon:g} s",
                      expected=f"every saga ends within {horizon:g} virtual seconds",
                      why="a retry loop that never stops, or a call without a timeout that never returns")
        self.story.append(f"  -> {_show(result)}")
        return result

    def drive(self, coroutine: Any, *, horizon: float = BOUND) -> tuple[bool, Any]:
        """Run a coroutine of the learner's until it returns or ``horizon``; a runaway loop fails the check."""

        async def bounded() -> tuple[bool, Any]:
            task = asyncio.ensure_future(coroutine)
            done, _ = await asyncio.wait({task}, timeout=max(0.0, horizon - self.world.now()))
            if task in done:
                return True, task.result()
            task.cancel()
            return False, None

        try:
            return self.world.run(bounded())
        except Runaway:
            counts: dict[str, int] = {}
            for call in self.client.calls[-200:]:
                counts[f"{call.method} {call.path}"] = counts.get(f"{call.method} {call.path}", 0) + 1
            busiest = max(counts, key=counts.get)
            self.fail(got=f"{len(self.client.calls)} calls by t={self.world.now():g} s, {busiest} "
                          f"{counts[busiest]} times among the last 200",
                      expected="a pause between retries",
                      why="a retry loop without asyncio.sleep: back off (retry_delay, doubling up to "
                          "max_retry_delay) between attempts")

    # -- reading -------------------------------------------------------------------------
    def calls(self, step: str | None = None) -> list[Call]:
        return [c for c in self.client.calls if step is None or c.step == step]

    def steps(self) -> list[str]:
        """Each step the saga called, once, in the order it first called it (look-ups left out)."""
        seen: list[str] = []
        for call in self.client.calls:
            if call.step not in seen and call.step not in ("look-up", "other"):
                seen.append(call.step)
        return seen

    def compensations(self) -> list[str]:
        """The compensations (refund, release, cancel) in the order they were first called."""
        return [s for s in self.steps() if s in ("refund", "release", "cancel")]

    def db(self, service: str) -> dict[str, Any]:
        return self.world.db(service)

    def violations(self, *, results: list[Any] | None = None) -> list[Violation]:
        report = invariant_report(self.world, bound=BOUND, results=results)
        return [v for found in report.values() for v in found]

    def expect_invariants(self, *, results: list[Any] | None = None, why: str | None = None) -> None:
        found = self.violations(results=results)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            self.fail(got=str(found[0]) + more, expected="every saga invariant holds", why=why or found[0].why)

    # -- judging -----------------------------------------------------------------------------
    def bitten(self) -> bool:
        """Did a fault touch this run: a call without a good answer, a duplicate or redelivered event,
        or a delay or reorder fault switched on while events were still being delivered?"""
        if any(c.status is None or c.status >= 500 for c in self.client.calls):
            return True
        events = self.world.recorder.events
        if any(e.kind in ("duplicate", "ack-lost", "nack") for e in events):
            return True
        last = max((e.t for e in events if e.kind == "deliver"), default=-1.0)
        return any(e.kind == "fault-on" and e.data.get("fault") in ("delay", "reorder") and e.t <= last
                   for e in events)

    def fail(self, *, got: str, expected: str, why: str | None = None) -> NoReturn:
        """Stop the check: what was done (faults, calls), what came back, expected, likely cause, t, seed."""
        done = [f"  {item.describe()}" if isinstance(item, Call) else item for item in self.story]
        raise CheckFailed(failure_message(done, got=got, expected=expected, why=why, at=self.world.now(),
                                          seed=self.ctx.seed, keep=STORY_LINES, head=4))

    def close(self) -> None:
        # A learner's task that refuses to die must not hide the verdict.
        with contextlib.suppress(Exception):
            release(self.world)


def describe_fault(fault: dict[str, Any]) -> str:
    """A fault dict in one short line: ``t=0..20 503 on inventory DELETE /reservations``."""
    when = ""
    if "at" in fault:
        when = f"t={fault['at']:g}.." + (f"{fault['until']:g} " if fault.get("until") is not None else " ")
    kind = fault["fault"]
    if kind == "error":
        what = f"{fault.get('status', 500)}"
    elif kind == "partition":
        direction = fault.get("direction", "both")
        what = {"response": "answers lost", "request": "requests lost"}.get(direction, "partition")
        return f"{when}{what} between {fault['source']} and {fault['target']}"
    elif kind in ("latency",):
        what = f"+{fault.get('value', 0):g} s latency"
    elif kind in ("duplicate", "delay", "reorder", "drop-ack"):
        extra = {k: v for k, v in fault.items() if k not in ("fault", "topic", "at", "until", "id")}
        return f"{when}{kind} on topic {fault['topic']}" + (f" {json.dumps(extra)}" if extra else "")
    else:
        what = kind
    route = f" {fault['route']}" if fault.get("route") else ""
    return f"{when}{what} on {fault.get('target', '*')}{route}"


def _show_order(order: dict[str, Any]) -> str:
    items = ", ".join(f"{i['qty']} x {i['sku']}" for i in order["items"])
    return f"{{{order['user_id']}: {items}, amount {order['amount']:g}}}"


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if hasattr(value, "__dataclass_fields__"):
        fields = ", ".join(f"{k}={getattr(value, k)!r}" for k in value.__dataclass_fields__)
        return f"{type(value).__name__}({fields})"
    return repr(value)
