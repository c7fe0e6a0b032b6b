"""The world: one seed, one virtual clock, the network, the recorder, faults and the bus.

>>> world = World(seed=7)
>>> _ = world.add_service("catalog", instances=2)
>>> async def browse():
...     r = await world.client().get("catalog", "/products")
...     return r.status, world.now()
>>> world.run(browse())
(200, 0.0)
>>> world.run(until=30.0); world.now()
30.0

Same seed, same code: the same history, byte for byte (``world.digest()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import random
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import FastAPI

from .bus import EventBus
from .clock import Clock, VirtualTimeLoop, _cancel_leftovers
from .injector import FaultInjector
from .network import Client, Instance, InstanceContext, Network
from .recorder import Recorder

T = TypeVar("T")

__all__ = ["World"]


class World:
    """A deterministic simulated shop: build it, run it, read what happened."""

    def __init__(self, seed: int = 0, *, fast_path: bool = True, record_headers: bool = True):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        self.fast_path = fast_path
        self.loop = VirtualTimeLoop()
        self.clock = Clock.of_loop(self.loop)
        self._rngs: dict[str, random.Random] = {}
        self.recorder = Recorder(keep_headers=record_headers)
        self.net = Network(self)
        self.faults = FaultInjector(self)
        self.bus = EventBus(self)
        self._dbs: dict[str, dict] = {}
        self._tasks: set[asyncio.Task] = set()
        self.client_names: set[str] = set()  # callers outside the shop, for fault targets
        self.closed = False

    # -- randomness ----------------------------------------------------------------
    def rng(self, purpose: str) -> random.Random:
        """A random stream for one purpose, derived from the seed.

        Separate streams keep results stable: adding a latency fault does not
        change which coin flips the load balancer sees.
        """
        stream = self._rngs.get(purpose)
        if stream is None:
            digest = hashlib.sha256(f"{self.seed}:{purpose}".encode()).digest()
            stream = self._rngs[purpose] = random.Random(int.from_bytes(digest[:8], "big"))
        return stream

    # -- time --------------------------------------------------------------------------
    def now(self) -> float:
        """Virtual seconds since the world started."""
        return self.loop.time()

    def run(self, main: Coroutine[Any, Any, T] | None = None, *, until: float | None = None) -> T | None:
        """Run a coroutine to completion, or the whole world until virtual time ``until``.

        Background tasks (load, fault schedules, the bus) keep running in both.
        """
        if self.closed:
            raise RuntimeError("this world is closed")
        if main is not None and until is not None:
            raise TypeError("give either a coroutine or until=, not both")
        if main is None:
            if until is None:
                raise TypeError("give a coroutine to run, or until=<virtual seconds>")
            return self.loop.run_until_complete(asyncio.sleep(max(0.0, until - self.now())))
        return self.loop.run_until_complete(main)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Start a background task in this world (kept until it finishes)."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """Cancel what is still running and close the loop."""
        if self.closed:
            return
        self.closed = True
        _cancel_leftovers(self.loop)
        self.loop.close()
        # FastAPI keeps endpoint functions in lru_caches; their closures hold each
        # instance's context and, through it, this whole world. Cut those links so
        # a closed world can be freed (the recorder stays readable).
        for instance in self.net.instances.values():
            instance.ctx.__dict__.clear()
            instance.app = None
            instance.caller = None
        _forget_endpoints()

    def __del__(self) -> None:
        # Dropped without close() (a notebook cell that raised half-way, say): tasks
        # it spawned may never have started. Close those, so that Python does not
        # warn on stderr that they were "never awaited" when the world is collected.
        if getattr(self, "closed", True):
            return
        for task in list(getattr(self, "_tasks", ())):
            coro = task.get_coro()
            with contextlib.suppress(TypeError, AttributeError):
                if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                    coro.close()
        loop = getattr(self, "loop", None)
        if loop is not None and not loop.is_running() and not loop.is_closed():
            loop.close()  # its self-pipe sockets, which would warn as unclosed

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- building the shop ------------------------------------------------------------
    def add_service(
        self,
        name: str,
        factory: Callable[[InstanceContext], FastAPI] | None = None,
        *,
        instances: int = 1,
        workers: int = 16,
        queue: int = 32,
        release: str = "v1",
        options: dict[str, Any] | None = None,
    ) -> list[Instance]:
        """Start ``instances`` copies of a service at ``name-1``, ``name-2``, …

        Without a factory, the shop's own service of that name is used
        (see :mod:`harness.services`).
        """
        return [
            self.add_instance(name, factory, workers=workers, queue=queue, release=release, options=options)
            for _ in range(instances)
        ]

    def add_instance(
        self,
        service: str,
        factory: Callable[[InstanceContext], FastAPI] | None = None,
        *,
        address: str | None = None,
        workers: int = 16,
        queue: int = 32,
        release: str = "v1",
        options: dict[str, Any] | None = None,
    ) -> Instance:
        """Start one more instance of a service (a canary is one with ``release="v2"``)."""
        if factory is None:
            from .services import SHOP

            if service not in SHOP:
                raise KeyError(f"no shop service named {service!r} (shop: {', '.join(SHOP)}); pass a factory")
            factory = SHOP[service]
        if address is None:
            taken = {i.address for i in self.net.services.get(service, [])}
            n = len(taken) + 1
            while f"{service}-{n}" in taken or f"{service}-{n}" in self.net.instances:
                n += 1
            address = f"{service}-{n}"
        db = self._dbs.setdefault(service, {})
        instance = Instance(self, address, service, factory, release=release, db=db,
                            workers=workers, queue=queue, options=dict(options or {}))
        self.net.add(instance)
        return instance

    def instances(self, service: str) -> list[Instance]:
        return list(self.net.services.get(service, []))

    def db(self, service: str) -> dict:
        """A service's database (for checkers and invariants; services use ``ctx.db``)."""
        return self._dbs.setdefault(service, {})

    def client(self, name: str = "client") -> Client:
        """A named caller outside the shop (a browser, a load generator, a test)."""
        self.client_names.add(name)
        return Client(self.net, caller=name)

    def digest(self) -> str:
        return self.recorder.digest()


def _forget_endpoints() -> None:
    """Empty FastAPI's memo of endpoint functions (``fastapi.dependencies.models``).

    Those lru_caches are keyed by the endpoint functions themselves, so they keep
    a closed world's endpoints alive, and with them whatever the closures hold: a
    circuit breaker, and through it the whole world with its history. A notebook
    that runs the cascade a few times then carried every past world, and each run
    got slower as the garbage collector walked them. Emptying a memo only costs a
    recomputation for the worlds still open.
    """
    try:
        from fastapi.dependencies import models
    except ImportError:  # a FastAPI without that module has no such memo
        return
    for name in dir(models):
        memo = getattr(models, name)
        if name.endswith("_cached") and callable(getattr(memo, "cache_clear", None)):
            memo.cache_clear()
