"""Scenes for registry checks: a learner's registry or discovery client, a clock, maybe a shop.

Each scene keeps a story of what it did, so that a failed check can tell the
learner exactly what was done, what came back and what was expected, at which
virtual time and seed (Exercism's style).

- :class:`LeaseScene`: a registry on a manual clock (levels 1 and 2);
- :class:`HealthScene`: a registry with a client, in a world of real services,
  whose health-check rounds the check starts at exact virtual times (level 3);
- :class:`ClientScene`: a discovery client in a world, asking a
  :class:`ScriptedRegistry` whose answers the check sets (levels 4 and 5), so
  that those levels do not depend on the learner's registry.

>>> from harness.checks import Context
>>> import solutions.registry as reference
>>> scene = LeaseScene(Context(reference), lease=30)
>>> scene.register("users", "users-1"); scene.at(30); scene.resolve("users")
[]
>>> scene.story[-1]
"t=30  registry.resolve('users') -> []"
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from harness.clock import Clock
from harness.http import NetworkError

from .. import CheckFailed, Context, failure_message

__all__ = ["ClientScene", "HealthScene", "LeaseScene", "ScriptedRegistry", "Story", "release", "show"]

STORY_LINES = 14  # the last steps shown in a failure message
ROUND_LIMIT = 60.0  # virtual seconds a health-check round may take before we call it stuck


def show(value: Any) -> str:
    """A short repr for the story: lists of addresses stay readable."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def release(world: Any) -> None:
    """Close a world and let the garbage collector have it.

    FastAPI (0.165) keeps up to 4096 endpoint functions in lru_caches of
    ``fastapi.dependencies.models``; each endpoint's closure holds its
    InstanceContext, hence the whole world. Hundreds of closed worlds then stay
    alive, and the full collections that walk them take over a second: long
    enough to hit a check's time limit. Emptying the contexts frees the world.
    """
    world.close()
    for instance in world.net.instances.values():
        instance.ctx.__dict__.clear()


class Story:
    """What a scene did, step by step, and how to fail a check with it."""

    def __init__(self, ctx: Context, first: str):
        self.ctx = ctx
        self.module = ctx.module
        self.story: list[str] = [first]

    def now(self) -> float:
        raise NotImplementedError  # each scene has its own clock

    def note(self, text: str) -> None:
        self.story.append(text)

    def fail(self, *, got: str, expected: str, why: str | None = None) -> NoReturn:
        """Stop the check with a message: what was done, got, expected, when, seed."""
        raise CheckFailed(failure_message(self.story, got=got, expected=expected, why=why,
                                          at=self.now(), seed=self.ctx.seed, keep=STORY_LINES))


# -- levels 1 and 2: a registry on a manual clock ---------------------------------------


class LeaseScene(Story):
    """One registry under test on a manual clock; every call is logged with its time."""

    def __init__(self, ctx: Context, *, clock: Any = None, **config: Any):
        settings = ", ".join(f"{k}={v!r}" for k, v in config.items())
        super().__init__(ctx, f"registry = Registry({settings}{', ' if settings else ''}clock=<virtual clock>)")
        self.clock = clock if clock is not None else Clock.manual()
        self.registry = self.module.Registry(clock=self.clock, **config)

    def now(self) -> float:
        return self.clock.now()

    def at(self, when: float) -> None:
        """Move the virtual clock to ``when`` (never backwards)."""
        self.clock.set(when)

    def _call(self, name: str, *args: str) -> Any:
        shown = ", ".join(repr(a) for a in args)
        try:
            value = getattr(self.registry, name)(*args)
        except NotImplementedError:
            raise
        except Exception as error:
            self.note(f"t={self.now():g}  registry.{name}({shown}) -> raised {type(error).__name__}: {error}")
            raise
        self.note(f"t={self.now():g}  registry.{name}({shown}) -> {show(value)}")
        return value

    def register(self, service: str, address: str) -> None:
        self._call("register", service, address)

    def deregister(self, service: str, address: str) -> Any:
        return self._call("deregister", service, address)

    def renew(self, service: str, address: str) -> Any:
        return self._call("renew", service, address)

    def resolve(self, service: str) -> list[str]:
        value = self._call("resolve", service)
        if not isinstance(value, list):
            self.fail(got=f"resolve({service!r}) returned {show(value)} ({type(value).__name__})",
                      expected="a list of addresses")
        return value

    def expect_served(self, service: str, expected: list[str], *, why: str | None = None) -> list[str]:
        got = self.resolve(service)
        if got != expected:
            self.fail(got=f"resolve({service!r}) -> {show(got)}", expected=show(expected), why=why)
        return got


# -- level 3: a registry with a client, in a shop ----------------------------------------


class HealthScene(Story):
    """A registry that probes real instances over the harness network.

    The check starts each health-check round itself, at an exact virtual time,
    and looks at the answer after it. Leases are long (an hour) unless given:
    level 3 is about health, not leases.
    """

    def __init__(self, ctx: Context, *, service: str = "catalog", instances: int = 3, lease: float = 3600.0,
                 **config: Any):
        from harness import World  # FastAPI is imported only by the checks that need a shop

        settings = ", ".join(f"{k}={v!r}" for k, v in config.items())
        super().__init__(ctx, f"world with {instances} {service} instances; registry = Registry(lease={lease:g}, "
                              f"client=world.client('registry'){', ' if settings else ''}{settings})")
        self.world = World(seed=ctx.seed, record_headers=False)
        self.service = service
        self.addresses = [i.address for i in self.world.add_service(service, instances=instances)]
        self.registry = self.module.Registry(lease=lease, client=self.world.client("registry"),
                                             clock=self.world.clock, **config)

    def now(self) -> float:
        return self.world.now()

    def close(self) -> None:
        release(self.world)

    def __enter__(self) -> HealthScene:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def register_all(self) -> None:
        for address in self.addresses:
            self.registry.register(self.service, address)
        self.note(f"t={self.now():g}  registry.register({self.service!r}, ...) for {', '.join(self.addresses)}")

    def fault(self, spec: dict[str, Any], *, at: float | None = None) -> None:
        """Switch a fault on now, or schedule it (``at``, and ``until`` in spec)."""
        shown = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k not in ("at", "until"))
        if at is None and "until" not in spec:
            self.world.faults.inject(spec)
            self.note(f"t={self.now():g}  fault on: {shown}")
            return
        start = self.now() if at is None else at
        self.world.faults.schedule([{**spec, "at": start}])
        until = f" until t={spec['until']:g}" if "until" in spec else ""
        self.note(f"scheduled: from t={start:g}{until}, fault {shown}")

    def wait_until(self, when: float) -> None:
        self.world.run(until=when)

    def round(self, at: float) -> float:
        """Start ``check_health()`` at virtual time ``at``; returns when it ended."""
        world = self.world

        async def one_round() -> float:
            await asyncio.sleep(max(0.0, at - world.now()))
            try:
                await asyncio.wait_for(self.registry.check_health(), ROUND_LIMIT)
            except NetworkError as error:
                self.note(f"t={at:g}  await registry.check_health() -> raised {type(error).__name__}: {error}")
                self.fail(got=f"check_health() raised {type(error).__name__}",
                          expected="a round that counts the unreachable instance as a failed check, and goes on",
                          why="a refused connection, a reset or a timeout *is* a failed health check: catch "
                              "harness.NetworkError around each probe")
            except TimeoutError:
                self.note(f"t={at:g}  await registry.check_health() -> still running at t={world.now():g}")
                self.fail(got=f"check_health() started at t={at:g} had not finished {ROUND_LIMIT:g} s later",
                          expected=f"every probe gives up after health_timeout={self.registry.health_timeout:g} s",
                          why="a probe without a timeout waits forever for a hung instance: pass "
                              "timeout=self.health_timeout to client.get")
            return world.now()

        ended = world.run(one_round())
        self.note(f"t={at:g}  await registry.check_health() -> ended at t={ended:g}")
        return ended

    def served(self) -> list[str]:
        value = self.registry.resolve(self.service)
        self.note(f"t={self.now():g}  registry.resolve({self.service!r}) -> {show(value)}")
        return list(value)

    def expect_served(self, expected: list[str], *, why: str | None = None) -> None:
        got = self.served()
        if got != expected:
            self.fail(got=f"resolve({self.service!r}) -> {show(got)}", expected=show(expected), why=why)

    def rounds(self, times: Iterable[float], expected: Callable[[float], list[str]], *,
               why: Callable[[float, list[str]], str | None]) -> None:
        """A round at each time; after each, the answer must be ``expected(t)``."""
        for t in times:
            self.round(t)
            got = self.served()
            want = expected(t)
            if got != want:
                self.fail(got=f"after the round at t={t:g}, resolve({self.service!r}) -> {show(got)}",
                          expected=show(want), why=why(t, got))

    def probes_of(self, address: str) -> list[Any]:
        """The health checks the registry sent to ``address`` (recorded exchanges)."""
        return [x for x in self.world.recorder.select(caller="registry", instance=address) if x.path == "/health"]


# -- levels 4 and 5: a discovery client and a registry the check controls ----------------


class ScriptedRegistry:
    """A registry whose answers the check sets; it remembers when it was asked.

    >>> registry = ScriptedRegistry(Clock.manual(), {"users": ["users-1"]})
    >>> registry.resolve("users"), registry.asked
    (['users-1'], [(0.0, 'users')])
    """

    def __init__(self, clock: Any, answers: dict[str, list[str]]):
        self.clock = clock
        self.answers = {service: list(addresses) for service, addresses in answers.items()}
        self.asked: list[tuple[float, str]] = []

    def resolve(self, service: str) -> list[str]:
        self.asked.append((self.clock.now(), service))
        return list(self.answers[service])

    def times_asked(self, service: str) -> list[float]:
        return [t for t, s in self.asked if s == service]


class ClientScene(Story):
    """A learner's DiscoveryClient in a world, asking a ScriptedRegistry."""

    def __init__(self, ctx: Context, services: dict[str, int], *, answers: dict[str, list[str]] | None = None,
                 **config: Any):
        from harness import World

        self.world = World(seed=ctx.seed, record_headers=False)
        for service, count in services.items():
            self.world.add_service(service, instances=count)
        if answers is None:
            answers = {s: [i.address for i in self.world.instances(s)] for s in services}
        self.registry = ScriptedRegistry(self.world.clock, answers)
        settings = ", ".join(f"{k}={v!r}" for k, v in config.items())
        super().__init__(ctx, f"discovery = DiscoveryClient(registry, world.client('shop'){', ' if settings else ''}"
                              f"{settings}); the registry answers {show(answers)}")
        self.discovery = self.module.DiscoveryClient(self.registry, self.world.client("shop"),
                                                     clock=self.world.clock, **config)

    def now(self) -> float:
        return self.world.now()

    def close(self) -> None:
        release(self.world)

    def __enter__(self) -> ClientScene:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def wait_until(self, when: float) -> None:
        self.world.run(until=when)

    def answer(self, service: str, addresses: list[str], *, at: float | None = None) -> None:
        """From now (or from ``at``) the registry answers ``addresses`` for ``service``."""
        def change() -> None:
            self.registry.answers[service] = list(addresses)

        if at is None or at <= self.now():
            change()
            self.note(f"t={self.now():g}  the registry now answers {show(addresses)} for {service!r}")
        else:
            self.world.loop.call_at(at, change)
            self.note(f"scheduled: from t={at:g}, the registry answers {show(addresses)} for {service!r}")

    def pick(self, service: str) -> str:
        try:
            address = self.discovery.pick(service)
        except NotImplementedError:
            raise
        except Exception as error:
            self.note(f"t={self.now():g}  discovery.pick({service!r}) -> raised {type(error).__name__}: {error}")
            raise
        self.note(f"t={self.now():g}  discovery.pick({service!r}) -> {address!r}")
        return address

    def picks(self, service: str, count: int) -> list[str]:
        """``count`` picks at this instant, logged as one line."""
        got = []
        for _ in range(count):
            got.append(self.discovery.pick(service))
        self.note(f"t={self.now():g}  {count} × discovery.pick({service!r}) -> {show(got)}")
        return got

    def request(self, method: str, service: str, path: str, **kwargs: Any) -> tuple[Any, BaseException | None]:
        """``await discovery.request(...)``: (response, None) or (None, the error it raised)."""
        start = self.now()
        before = len(self.world.recorder.exchanges)

        async def call() -> Any:
            return await self.discovery.request(method, service, path, **kwargs)

        try:
            response, error = self.world.run(call()), None
        except NotImplementedError:
            raise
        except Exception as raised:
            response, error = None, raised
        attempts = [f"{x.instance or x.service} {x.status or x.outcome}"
                    for x in self.world.recorder.exchanges[before:] if x.caller == "shop"]
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        outcome = (f"{response.status} from {response.instance}" if error is None
                   else f"raised {type(error).__name__}")
        self.note(f"t={start:g}  await discovery.request({method!r}, {service!r}, {path!r}"
                  f"{', ' if args else ''}{args}) -> {outcome} at t={self.now():g}; "
                  f"attempts: {', '.join(attempts) or 'none'}")
        return response, error
