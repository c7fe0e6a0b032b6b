"""A scene for composer checks: the shop, a learner's composer, and a client that watches every call.

The shop runs the seed's example: users answers in 100 ms, orders in 150 ms,
payments in 120 ms (the catalog in 50 ms), two instances each, in virtual
time. The composer gets a :class:`WatchedClient`, which notes when each of
its calls starts and how it ends (cancelled calls too, which the recorder
never sees), so that a failed check can tell the learner exactly what was
done, what came back and what was expected, at which virtual time and seed.

>>> from harness.checks import Context
>>> import solutions.composer as reference
>>> with Shop(Context(reference, seed=3)) as shop:
...     composer = shop.composer()
...     outcome = shop.run(shop.compose(composer, shop.profile("user-7")))
>>> outcome.end, sorted(outcome.value.data), [c.start for c in shop.calls]
(0.15, ['orders', 'payment_methods', 'user'], [0.0, 0.0, 0.0])
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from harness.checkers import leftover_tasks, task_name
from harness.http import NetworkError
from harness.network import Client
from harness.world import World

from .. import CheckFailed, Context, failure_message

__all__ = ["PROFILE", "SEED_TIMES", "WITH_CATALOG", "Call", "Outcome", "Shop", "WatchedClient", "first_difference", "leftover_tasks",
           "same_time", "where"]

T = TypeVar("T")

STORY_LINES = 14  # the last steps shown in a failure message
LIMIT = 30.0  # virtual seconds a check waits for the learner's code before calling it stuck

# The seed's service times, seconds: GET route -> latency.
SEED_TIMES = {
    "users": ("GET /users", 0.100),
    "orders": ("GET /orders", 0.150),
    "payments": ("GET /payment-methods", 0.120),
    "catalog": ("GET /products", 0.050),
}


# Which services a scene starts, and how many instances of each.
PROFILE = {"users": 1, "orders": 1, "payments": 1}
WITH_CATALOG = {**PROFILE, "catalog": 1}


def same_time(a: float | None, b: float) -> bool:
    """Equal virtual times (up to float rounding of sums like 0.1 + 0.05)."""
    return a is not None and abs(a - b) < 1e-9


def where(error: BaseException, module: Any) -> str:
    """`` at composer.py:42`` for the learner's innermost frame in a traceback, else ''."""
    path = getattr(module, "__file__", None)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    if not frames:
        return ""
    return f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}"


@dataclass
class Call:
    """One call the composer made, as the watched client saw it."""

    start: float
    target: str
    path: str
    params: Mapping[str, Any] | None
    timeout: float | None
    end: float | None = None
    outcome: str | None = None  # "200", "503", "timeout", "refused", "cancelled", ...

    def describe(self) -> str:
        query = "?" + "&".join(f"{k}={v}" for k, v in self.params.items()) if self.params else ""
        limit = "no timeout" if self.timeout is None else f"timeout {self.timeout:g} s"
        result = "still waiting" if self.outcome is None else f"{self.outcome} at t={self.end:g}"
        return f"t={self.start:g}  GET {self.target} {self.path}{query} ({limit}) -> {result}"


class WatchedClient(Client):
    """A ``world.client("composer")`` that notes each call's start and end in the shop."""

    def __init__(self, shop: Shop):
        super().__init__(shop.world.net, caller="composer")
        self.shop = shop

    async def request(self, method: str, target: str, path: str, **kwargs: Any) -> Any:
        world = self.shop.world
        call = Call(world.now(), target, path, kwargs.get("params"), kwargs.get("timeout"))
        self.shop.calls.append(call)
        try:
            response = await super().request(method, target, path, **kwargs)
        except asyncio.CancelledError:
            call.end, call.outcome = world.now(), "cancelled"
            raise
        except NetworkError as error:
            call.end, call.outcome = world.now(), error.outcome
            raise
        call.end, call.outcome = world.now(), str(response.status)
        return response


@dataclass
class Outcome:
    """What one awaited call of the learner's code did."""

    start: float
    end: float
    value: Any = None
    error: BaseException | None = None
    stuck: bool = False  # still running when the check's limit ran out

    def describe(self, module: Any = None) -> str:
        if self.stuck:
            return f"was still running at t={self.end:g} (the check gave up waiting)"
        if self.error is not None:
            error, wrapped = self.error, ""
            while isinstance(error, BaseExceptionGroup) and error.exceptions:
                error, wrapped = error.exceptions[0], " (in an ExceptionGroup: a task of a TaskGroup raised it)"
            text = f"raised {type(error).__name__}"
            if str(error):
                text += f"({str(error)[:80]!r})"
            if module is not None:
                text += where(error, module)
            return f"{text}{wrapped} at t={self.end:g}"
        return f"returned at t={self.end:g}: {_short(self.value)}"


class Shop:
    """A world with users, orders, payments and catalog, the seed's latencies, and a story."""

    def __init__(self, ctx: Context, *, times: Mapping[str, tuple[str, float]] = SEED_TIMES,
                 instances: Mapping[str, int] = PROFILE):
        self.ctx = ctx
        self.module = ctx.module
        self.world = World(seed=ctx.seed, record_headers=False)
        self.story: list[str] = []
        self.calls: list[Call] = []
        # Only the services a check needs: building a FastAPI app is most of a check's cost.
        for service, count in instances.items():
            self.world.add_service(service, instances=count)
        shown = []
        for service, (route, seconds) in times.items():
            if service in instances:
                self.world.faults.inject({"fault": "latency", "target": service, "route": route,
                                          "dist": "constant", "value": seconds})
                shown.append(f"{service} {seconds * 1000:g} ms")
        running = ", ".join(f"{s} x{n}" for s, n in instances.items())
        self.story.append(f"shop: {running}; latency: {', '.join(shown) or 'none'}")
        self.client = WatchedClient(self)
        self.setup = self.world.client("setup")

    def __enter__(self) -> Shop:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.world.close()

    # -- building ------------------------------------------------------------------
    def fault(self, spec: dict, *, note: str | None = None) -> Any:
        """Switch a fault on now; returns its handle (``handle.clear()``)."""
        handle = self.world.faults.inject(spec)
        when = f"t={self.world.now():g}  " if self.world.now() else ""
        self.story.append(f"{when}fault: {note or _describe_fault(spec)}")
        return handle

    def composer(self, **config: Any) -> Any:
        settings = ", ".join(f"{k}={v!r}" for k, v in config.items())
        self.story.append(f"composer = Composer(client{', ' if settings else ''}{settings}, clock=<virtual clock>)")
        return self.module.Composer(self.client, clock=self.world.clock, **config)

    def profile(self, user_id: str, *, required_user: bool = True) -> list:
        """The profile page's three parts, built with the learner's Part."""
        Part = self.module.Part
        return [
            Part("user", "users", f"/users/{user_id}", required=required_user),
            Part("orders", "orders", "/orders", {"user_id": user_id}, default=[]),
            Part("payment_methods", "payments", "/payment-methods", {"user_id": user_id}, default=[]),
        ]

    def seed_orders(self, user_id: str, baskets: list[list[tuple[str, int]]]) -> None:
        """Create one order per basket of (sku, qty), straight at orders-1 (no latency, no balancer turn)."""
        from harness.services.catalog import seed_products

        prices = {sku: p["price_cents"] / 100 for sku, p in seed_products({}).items()}

        async def create() -> None:
            for basket in baskets:
                items = [{"sku": sku, "qty": qty} for sku, qty in basket]
                amount = round(sum(prices[sku] * qty for sku, qty in basket), 2)
                r = await self.setup.post("orders-1", "/orders", json={"user_id": user_id, "items": items,
                                                                        "amount": amount})
                assert r.status == 201, r.body

        self.world.run(create())
        self.story.append(f"{user_id} has {len(baskets)} order(s)")

    def expected(self, service: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """What a healthy instance answers (asked after the fact, at the instance's address)."""
        return self.world.run(self.setup.get(f"{service}-1", path, params=dict(params or {}))).json()

    # -- running -------------------------------------------------------------------
    def run(self, main: Coroutine[Any, Any, T]) -> T:
        return self.world.run(main)

    async def at(self, when: float) -> None:
        """Wait until virtual time ``when``."""
        await asyncio.sleep(max(0.0, when - self.world.now()))

    async def compose(self, composer: Any, parts: list, *, label: str = "") -> Outcome:
        """``await composer.compose(parts)``, stopped after LIMIT virtual seconds if stuck."""
        names = ", ".join(p.name + ("*" if p.required else "") for p in parts)
        return await self.attempt(composer.compose(parts), f"composer.compose([{names}]){label}")

    async def attempt(self, awaitable: Any, action: str, *, limit: float = LIMIT) -> Outcome:
        """Await the learner's coroutine with a limit; note it and its calls in the story."""
        start = self.world.now()
        first_call = len(self.calls)
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                value = await awaitable
            outcome = Outcome(start, self.world.now(), value=value)
        except NotImplementedError:
            raise
        except TimeoutError as error:
            if scope.expired():
                outcome = Outcome(start, self.world.now(), stuck=True)
            else:
                outcome = Outcome(start, self.world.now(), error=error)
        except asyncio.CancelledError as error:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the check itself is being cancelled: not the learner's outcome
            outcome = Outcome(start, self.world.now(), error=error)  # e.g. a shared load cancelled under us
        except Exception as error:
            outcome = Outcome(start, self.world.now(), error=error)
        self.story.append(f"t={start:g}  {action}")
        self.story.extend(f"  {call.describe()}" for call in self.calls[first_call:])
        self.story.append(f"  -> {outcome.describe(self.module)}")
        return outcome

    def note(self, text: str) -> None:
        self.story.append(text)

    # -- judging -------------------------------------------------------------------
    def fail(self, *, got: str, expected: str, why: str | None = None) -> NoReturn:
        """Stop the check with a message: what was done, got, expected, when, seed."""
        raise CheckFailed(failure_message(self.story, got=got, expected=expected, why=why,
                                          at=self.world.now(), seed=self.ctx.seed, keep=STORY_LINES))

    def expect_composition(self, outcome: Outcome, *, why: str | None = None) -> Any:
        """The call returned a Composition (with data and errors); returns it."""
        value = outcome.value
        if outcome.error is not None or outcome.stuck:
            self.fail(got=f"compose {outcome.describe(self.module)}", expected="a Composition",
                      why=why or self.why_raised(outcome))
        if not isinstance(getattr(value, "data", None), dict) or not isinstance(getattr(value, "errors", None), dict):
            self.fail(got=f"compose returned {_short(value)}",
                      expected="a Composition(data={...}, errors={...})")
        return value

    def why_raised(self, outcome: Outcome) -> str | None:
        if outcome.stuck:
            return ("compose never returned: a call with no timeout waits forever for a service that "
                    "hangs; give every attempt a timeout")
        return None

    def expect_end(self, outcome: Outcome, at: float, *, what: str, why: str | None = None) -> None:
        if not same_time(outcome.end, at):
            self.fail(got=f"compose {outcome.describe(self.module)}", expected=f"it ends at t={at:g}: {what}",
                      why=why)

    def expect_no_leftovers(self, *, after: str = "compose returned") -> None:
        """Nothing the learner's code started is still running."""
        left = leftover_tasks(self.world)
        if left:
            names = sorted({task_name(t) for t in left})
            waiting = [c.describe() for c in self.calls if c.outcome is None]
            detail = f"; calls still waiting: {'; '.join(waiting[:3])}" if waiting else ""
            self.fail(got=f"{len(left)} task(s) still running after {after} ({', '.join(names[:4])}){detail}",
                      expected="no task left running",
                      why="tasks still running after compose returned: a call you stopped waiting for keeps "
                          "running (and keeps a connection and a worker busy). Cancel what you no longer wait "
                          "for, and await the cancellation (asyncio.TaskGroup or asyncio.timeout do both)")


def first_difference(got: Any, expected: Any, path: str = "") -> str | None:
    """Where two JSON-like values first differ, in words; None when equal.

    >>> first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]})
    'at a[1].b: got 2, expected 3'
    >>> first_difference({"a": 1, "x": 2}, {"a": 1})
    'at the top: unexpected field(s) x'
    """
    where_ = path or "the top"
    if isinstance(expected, dict) and isinstance(got, dict):
        extra = [k for k in got if k not in expected]
        missing = [k for k in expected if k not in got]
        if extra:
            return f"at {where_}: unexpected field(s) {', '.join(map(str, extra))}"
        if missing:
            return f"at {where_}: missing field(s) {', '.join(map(str, missing))}"
        for key in expected:
            found = first_difference(got[key], expected[key], f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(got, list):
        if len(got) != len(expected):
            return f"at {where_}: {len(got)} entries, expected {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            found = first_difference(g, e, f"{path}[{i}]")
            if found:
                return found
        return None
    if got != expected or type(got) is not type(expected) and not _both_numbers(got, expected):
        return f"at {where_}: got {_short(got, 60)}, expected {_short(expected, 60)}"
    return None


def _both_numbers(a: Any, b: Any) -> bool:
    return isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool)


def _short(value: Any, width: int = 100) -> str:
    if isinstance(getattr(value, "data", None), dict) and hasattr(value, "errors"):
        text = f"Composition(data with {', '.join(map(str, value.data)) or 'nothing'}; errors={value.errors!r})"
    else:
        text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _describe_fault(spec: dict) -> str:
    kind, target = spec["fault"], spec.get("target", "*")
    extra = {k: v for k, v in spec.items() if k not in ("fault", "target", "dist")}
    return f"{kind} on {target}" + (f" ({', '.join(f'{k}={v}' for k, v in extra.items())})" if extra else "")
