"""The in-process network: addresses, instances, and the path of one request.

A request from a caller to an address goes through, in order:

1. the link (partitions drop it, link latency delays it, a hang swallows it);
2. the instance (down: connection refused);
3. its capacity (no worker and a full queue: 503);
4. service faults inside the worker slot (latency, injected errors, malformed
   bodies);
5. the real FastAPI app, called in-process (see :mod:`harness.asgi`).

The caller sees a :class:`~harness.http.Response` or a
:class:`~harness.http.NetworkError`, and the recorder keeps the exchange as the
caller saw it. A caller that gives up (its ``timeout`` expires) does not stop
the callee: the server keeps working, as real servers do, which is how a
timed-out payment can still charge the card.

>>> from harness import World
>>> world = World(seed=1)
>>> _ = world.add_service("users", instances=2)
>>> client = world.client()
>>> world.run(client.get("users", "/users/user-1")).json()["id"]
'user-1'
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlencode

from fastapi import FastAPI

from .asgi import AppCaller, check_async_endpoints
from .capacity import Capacity, Overloaded
from .http import ConnectError, ConnectionReset, NetworkError, RequestTimeout, Response
from .wirejson import JSON_CONTENT_TYPE, dumps

if TYPE_CHECKING:
    from .world import World

__all__ = ["Client", "Instance", "InstanceContext", "Network"]

JSON_HEADERS = [JSON_CONTENT_TYPE]


class InstanceContext:
    """What a service's code sees: its identity, its stores, and a way to call others.

    Service factories receive one of these: ``create_app(ctx) -> FastAPI``.
    ``ctx.db`` is the service's database (shared by its instances: database
    per service), ``ctx.local`` the instance's own memory (lost when it
    crashes without keeping state).
    """

    def __init__(self, world: World, address: str, service: str, release: str,
                 db: dict, options: dict[str, Any]):
        self.world = world
        self.address = address
        self.service = service
        self.release = release
        self.db = db
        self.local: dict[str, Any] = {}
        self.options = options
        self.client: Client = Client(world.net, caller=address)
        self.clock = world.loop.time  # real mode swaps in the running loop's clock

    def now(self) -> float:
        return self.clock()

    def rng(self, purpose: str):
        return self.world.rng(f"{self.address}:{purpose}")

    async def call(self, target: str, method: str, path: str, **kwargs: Any) -> Response:
        """Call another service as this instance (see :meth:`Network.request`)."""
        return await self.client.request(method, target, path, **kwargs)

    def publish(self, topic: str, event: dict) -> None:
        self.world.bus.publish(topic, event, source=self.address)


class Instance:
    """One running copy of a service at an address like ``payments-2``."""

    def __init__(self, world: World, address: str, service: str, factory: Callable[[InstanceContext], FastAPI],
                 *, release: str, db: dict, workers: int, queue: int, options: dict[str, Any]):
        self.world = world
        self.address = address
        self.service = service
        self.release = release
        self.factory = factory
        self.options = options
        self.workers = workers
        self.queue = queue
        self.ctx = InstanceContext(world, address, service, release, db, options)
        self.app = factory(self.ctx)
        check_async_endpoints(self.app, address)
        self.caller = AppCaller(self.app, fast=world.fast_path)
        self.capacity = Capacity(workers, queue)
        self.up = True
        self.started_at = world.loop.time()
        self.generation = 0
        self._down = world.loop.create_future()
        self._holding: set[asyncio.Future] = set()

    def __repr__(self) -> str:
        return f"<Instance {self.address} {'up' if self.up else 'down'} {self.release}>"

    def crash(self) -> None:
        """Stop answering: in-flight work is lost, new connections are refused."""
        if not self.up:
            return
        self.up = False
        self.generation += 1
        if not self._down.done():
            self._down.set_result(None)
        for waiter in list(self._holding):
            if not waiter.done():
                waiter.set_exception(ConnectionReset(f"{self.address} crashed during the request",
                                                     target=self.address))
        old = self.capacity
        self.capacity = Capacity(old.workers, old.queue)
        for waiter in old._waiting:
            if not waiter.done():
                waiter.set_exception(ConnectionReset(f"{self.address} crashed", target=self.address))
        self.world.recorder.event(self.world.loop.time(), "crash", self.address)

    def restart(self, keep_state: bool = True) -> None:
        """Start again; without ``keep_state`` the instance's own memory is lost."""
        if self.up:
            return
        if not keep_state:
            self.ctx.local = {}
            self.app = self.factory(self.ctx)
            self.caller = AppCaller(self.app, fast=self.world.fast_path)
        self.up = True
        self.started_at = self.world.loop.time()
        self._down = self.world.loop.create_future()
        self.world.recorder.event(self.world.loop.time(), "restart", self.address, keep_state=keep_state)

    async def hold(self, seconds: float) -> None:
        """Spend service time in a worker slot; a crash meanwhile resets the connection."""
        if seconds <= 0:
            return
        loop = self.world.loop
        waiter = loop.create_future()
        # One timer and one future: much cheaper than asyncio.wait, and hot.
        timer = loop.call_at(loop.time() + seconds, _wake, waiter, context=_BARE)
        self._holding.add(waiter)
        try:
            await waiter
        finally:
            self._holding.discard(waiter)
            timer.cancel()


class _Flight:
    """Where one request is, so a caller that gives up can drop a swallowed one."""

    __slots__ = ("phase", "abandoned", "timer")

    def __init__(self):
        self.phase = "network"
        self.abandoned = False
        self.timer: asyncio.TimerHandle | None = None


class Network:
    """Addresses, a default load balancer, and the request path."""

    def __init__(self, world: World):
        self.world = world
        self.instances: dict[str, Instance] = {}
        self.services: dict[str, list[Instance]] = {}
        self._rr: dict[str, int] = {}
        self.balancer: Callable[[str, list[Instance]], Instance] | None = None

    # -- addresses ---------------------------------------------------------------
    def add(self, instance: Instance) -> None:
        if instance.address in self.instances:
            raise ValueError(f"address {instance.address!r} is taken")
        self.instances[instance.address] = instance
        self.services.setdefault(instance.service, []).append(instance)

    def remove(self, address: str) -> None:
        instance = self.instances.pop(address)
        self.services[instance.service].remove(instance)

    def resolve(self, target: str) -> Instance:
        """An address resolves to itself; a service name to one of its instances.

        The default balancer is plain round-robin over every instance of the
        service, up or down, like a static DNS list with no health checks: the
        registry kata builds something better.
        """
        instance = self.instances.get(target)
        if instance is not None:
            return instance
        pool = self.services.get(target)
        if not pool:
            known = ", ".join(sorted(self.services)) or "none"
            raise ConnectError(f"unknown address {target!r} (services: {known})", target=target)
        if self.balancer is not None:
            return self.balancer(target, pool)
        index = self._rr.get(target, 0)
        self._rr[target] = index + 1
        return pool[index % len(pool)]

    # -- the request path ----------------------------------------------------------
    async def request(
        self,
        method: str,
        target: str,
        path: str,
        *,
        caller: str = "client",
        json: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request and wait for the answer.

        ``timeout`` is in virtual seconds; ``None`` waits forever, like the
        ``requests`` library's default (set one: that is the lesson of the
        circuit-breaker chapter). Raises :class:`RequestTimeout`,
        :class:`ConnectError` or :class:`ConnectionReset` when no response
        arrives.
        """
        loop = self.world.loop
        start = loop.time()
        method = method.upper()
        instance = self._resolve_or_record(target, start, caller, method, path, headers)
        query, raw_headers, body = _encode(headers, json, body, params)
        flight = _Flight()
        delivery = (caller, instance, method, path, query, raw_headers, body, flight)
        try:
            if timeout is None:
                response = await self._deliver(*delivery)
            else:
                response = await self._within(loop, delivery, flight, timeout)
                if response is None:
                    raise _gave_up(caller, method, instance, path, timeout, loop.time())
        except NetworkError as exc:
            if exc.at is None:
                exc.at = loop.time()
            self._record(start, caller, instance, method, path, headers, failure=exc)
            raise
        self._record(start, caller, instance, method, path, headers, response=response)
        return response

    def fire(
        self,
        method: str,
        target: str,
        path: str,
        *,
        caller: str = "client",
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float,
    ) -> None:
        """Send a request nobody waits for (open-loop load): recorded exactly like :meth:`request`.

        A load generator's customer does nothing with the answer, so no task
        needs to wait for it: the delivery is the only task, and a timer
        records the timeout if the answer is late. Same history as
        ``request``, for about two thirds of the cost.
        """
        loop = self.world.loop
        start = loop.time()
        method = method.upper()
        try:
            instance = self._resolve_or_record(target, start, caller, method, path, headers)
        except ConnectError:
            return  # recorded: nobody is waiting to hear it
        query, raw_headers, body = _encode(headers, json, None, params)
        flight = _Flight()
        task = loop.create_task(self._fired(start, caller, instance, method, path, headers, query, raw_headers,
                                            body, flight))

        def give_up() -> None:
            if task.done():
                return
            flight.abandoned = True
            _abandon(task, flight)
            failure = _gave_up(caller, method, instance, path, timeout, loop.time())
            self._record(start, caller, instance, method, path, headers, failure=failure)

        flight.timer = loop.call_later(timeout, give_up)

    async def _fired(self, start, caller, instance, method, path, headers, query, raw_headers, body, flight) -> None:
        """A fired request's delivery, recorded by itself when it ends (unless the customer gave up):
        no done-callback, so one step of the loop fewer per request."""
        failure = None
        try:
            response = await self._deliver(caller, instance, method, path, query, raw_headers, body, flight)
        except NetworkError as exc:
            response, failure = None, exc
        except Exception as exc:
            flight.timer.cancel()
            self.world.loop.call_exception_handler({"message": "unexpected error in a fired request",
                                                    "exception": exc})
            return
        if flight.abandoned:  # the customer gave up first: recorded then, as a timeout
            return
        flight.timer.cancel()
        if failure is not None and failure.at is None:
            failure.at = self.world.loop.time()
        self._record(start, caller, instance, method, path, headers, response=response, failure=failure)

    async def _within(self, loop, delivery: tuple, flight: _Flight, timeout: float) -> Response | None:
        """Run the delivery as its own task and wait at most ``timeout`` for it, without cancelling it.

        Returns the response, None if the time ran out (the server keeps working), or raises the
        delivery's network error. The delivery hands its outcome straight to the waiting future,
        with no done-callback in between: one step of the loop fewer per timed call.
        """
        waiter = loop.create_future()
        task = loop.create_task(self._hand_over(delivery, waiter))
        timer = loop.call_at(loop.time() + timeout, _wake, waiter, context=_BARE) if timeout > 0 else None
        if timer is None:
            _wake(waiter)  # no time at all: given up before it starts
        try:
            response = await waiter
        except asyncio.CancelledError:  # the caller itself was cancelled (a deadline above it)
            _abandon(task, flight)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if response is None:
            _abandon(task, flight)
        return response

    async def _hand_over(self, delivery: tuple, waiter: asyncio.Future) -> None:
        """Deliver, and put the outcome in ``waiter`` unless the caller stopped waiting.

        The delivery's coroutine is made here, in the task: a task cancelled before it
        starts (a world closed) then leaves no coroutine that was never awaited.
        """
        try:
            response = await self._deliver(*delivery)
        except Exception as exc:  # a network error, or a bug, which the caller must hear too
            if not waiter.done():
                waiter.set_exception(exc)
            return
        if not waiter.done():
            waiter.set_result(response)

    def _resolve_or_record(self, target, start, caller, method, path, headers) -> Instance:
        """Resolve ``target``; an unknown one is recorded as refused, then raised."""
        try:
            return self.resolve(target)
        except ConnectError as exc:
            exc.at = start
            self.world.recorder.exchange(start, start, caller, target, None, method, path, None, "refused",
                                         request_headers=headers, error=str(exc))
            raise

    def _record(self, start, caller, instance: Instance, method, path, headers, *,
                response: Response | None = None, failure: NetworkError | None = None) -> None:
        """The exchange as the caller saw it: an answer, or how it failed."""
        if failure is not None:
            self.world.recorder.exchange(start, self.world.loop.time(), caller, instance.service, instance.address,
                                         method, path, None, failure.outcome, request_headers=headers,
                                         error=str(failure))
        else:
            self.world.recorder.exchange(start, self.world.loop.time(), caller, instance.service, instance.address,
                                         method, path, response.status, request_headers=headers,
                                         response_headers=response.headers if self.world.recorder.keep_headers
                                         else None, error=response.error)

    async def _deliver(self, caller, instance: Instance, method, path, query, raw_headers, body, flight) -> Response:
        injector = self.world.faults
        if injector.link_faults:
            await injector.before_delivery(caller, instance, method, path)
        if not instance.up:
            raise ConnectError(f"connection refused by {instance.address} (down)", target=instance.address)
        generation = instance.generation
        capacity = instance.capacity
        flight.phase = "queued"
        try:
            if not capacity.try_acquire():
                await capacity.acquire()
        except Overloaded as exc:
            return Response(503, {"content-type": "text/plain"}, b"Service Unavailable (overloaded)",
                            instance=instance.address, error=f"overloaded: {exc}")
        flight.phase = "working"
        try:
            if injector.worker_faults:
                early = await injector.in_worker(instance, method, path)
                if early is not None:
                    return early
            status, headers, payload, error = await instance.caller(method, path, query, raw_headers, body)
            if injector.corrupt_faults:
                payload = injector.corrupt(instance, method, path, payload)
        finally:
            if instance.generation == generation:
                capacity.release()
        if instance.generation != generation:
            raise ConnectionReset(f"{instance.address} crashed before answering", target=instance.address)
        if injector.response_faults:
            flight.phase = "network"  # the answer is on the wire: a partition can swallow it
            await injector.before_response(caller, instance, method, path)
        return Response(status, headers, payload, instance=instance.address, error=error)


def _encode(headers, json, body, params) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """Query string, raw ASGI headers and body of a request."""
    raw_headers = [(k.lower().encode(), str(v).encode()) for k, v in headers.items()] if headers else []
    if json is not None:
        body = dumps(json)  # the bytes httpx writes
        raw_headers = raw_headers + JSON_HEADERS
    query = _query(params).encode() if params else b""
    return query, raw_headers, body or b""


def _query(params: dict[str, Any]) -> str:
    """``urlencode(params, doseq=True)``; plain strings and numbers without its
    per-value probing (which costs it an exception for every number)."""
    if all(type(v) in _PLAIN for v in params.values()):
        return "&".join(f"{quote_plus(str(k))}={quote_plus(str(v))}" for k, v in params.items())
    return urlencode(params, doseq=True)


_PLAIN = (str, int, float)


def _abandon(task: asyncio.Task, flight: _Flight) -> None:
    """The caller stopped waiting: a request still on the wire goes nowhere (a hang or
    partition swallowed it); one being served finishes, its answer unread."""
    if flight.phase == "network":
        task.cancel()


def _gave_up(caller, method, instance: Instance, path, timeout: float, at: float) -> RequestTimeout:
    return RequestTimeout(f"{caller} gave up on {method} {instance.address}{path} after {timeout:g} s",
                          target=instance.address, at=at)


# The context of timers that only settle a future (the future's waiter resumes in
# its own context): one shared, so no copy of the context per timer.
_BARE = contextvars.Context()


def _wake(waiter: asyncio.Future) -> None:
    """A service time is over, or a caller's patience: settle ``waiter`` with None."""
    if not waiter.done():
        waiter.set_result(None)


def is_delivery(task: asyncio.Task) -> bool:
    """Is ``task`` the network carrying a request (its server's work), not a caller's task?"""
    return getattr(task.get_coro(), "cr_code", None) in _DELIVERY_CODES


_DELIVERY_CODES = (Network._deliver.__code__, Network._hand_over.__code__, Network._fired.__code__)


class Client:
    """A caller with a name: ``await client.get("users", "/users/user-1")``.

    >>> # client = world.client("checkout-page"); await client.post("orders", "/orders", json={...})
    """

    def __init__(self, net: Network, caller: str = "client"):
        self.net = net
        self.caller = caller

    async def request(self, method: str, target: str, path: str, **kwargs: Any) -> Response:
        return await self.net.request(method, target, path, caller=self.caller, **kwargs)

    async def get(self, target: str, path: str, **kwargs: Any) -> Response:
        return await self.request("GET", target, path, **kwargs)

    async def post(self, target: str, path: str, **kwargs: Any) -> Response:
        return await self.request("POST", target, path, **kwargs)

    async def put(self, target: str, path: str, **kwargs: Any) -> Response:
        return await self.request("PUT", target, path, **kwargs)

    async def delete(self, target: str, path: str, **kwargs: Any) -> Response:
        return await self.request("DELETE", target, path, **kwargs)

