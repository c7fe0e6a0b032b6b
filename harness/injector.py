"""Switching faults on and off in a running world, by hand or by schedule.

>>> from harness import World
>>> world = World(seed=3)
>>> _ = world.add_service("payments", instances=2)
>>> handle = world.faults.inject({"fault": "error", "target": "payments", "status": 503})
>>> world.run(world.client().post("payments", "/charges", json={"order_id": "o1", "amount": 5})).status
503
>>> handle.clear()
>>> world.run(world.client().post("payments", "/charges", json={"order_id": "o1", "amount": 5})).status
201

Every switch is recorded as an event (``fault-on`` / ``fault-off``, ``crash`` /
``restart``), so plots can shade the periods when a fault was active.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Collection
from typing import TYPE_CHECKING

from .faults import (
    BUS_FAULTS,
    INSTANCE_FAULTS,
    Fault,
    ScheduledFault,
    parse_fault,
    parse_schedule,
    sample_latency,
)
from .http import Response

if TYPE_CHECKING:
    from .network import Instance
    from .world import World

__all__ = ["FaultHandle", "FaultInjector"]


class FaultHandle:
    """A fault that is switched on; ``clear()`` switches it off."""

    def __init__(self, injector: FaultInjector, key: int, fault: Fault):
        self._injector = injector
        self.key = key
        self.fault = fault

    @property
    def active(self) -> bool:
        return self.key in self._injector._handles

    def clear(self) -> None:
        self._injector.clear(self)

    def __repr__(self) -> str:
        return f"<FaultHandle {self.fault.describe()} {'on' if self.active else 'off'}>"


class FaultInjector:
    """Holds the faults that are on, and applies them on each request."""

    def __init__(self, world: World):
        self.world = world
        self._handles: dict[int, FaultHandle] = {}
        self._request_faults: list[Fault] = []
        self.bus_faults: list[Fault] = []
        self._keys = itertools.count(1)
        self._tasks: dict[int, asyncio.Task] = {}
        self._restore: dict[str, tuple[int, int]] = {}  # address -> limits before capacity faults
        self._lose_state: set[str] = set()  # down instances that come back without their memory
        # Faults on the request path, by where they act; empty lists cost nothing per request.
        self.link_faults: list[Fault] = []
        self.worker_faults: list[Fault] = []
        self.corrupt_faults: list[Fault] = []
        self.response_faults: list[Fault] = []
        self._rng = world.rng("faults")

    # -- switching -------------------------------------------------------------
    def inject(self, fault: Fault | dict) -> FaultHandle:
        """Switch a fault on now; returns a handle to clear it."""
        if isinstance(fault, dict):
            fault = parse_fault(fault)
        if fault.kind in INSTANCE_FAULTS:
            self._check_target(fault.target)  # before anything is switched on or recorded
        key = next(self._keys)
        handle = FaultHandle(self, key, fault)
        self._handles[key] = handle
        now = self.world.loop.time()
        self.world.recorder.event(now, "fault-on", fault.describe(), fault=fault.kind, key=key)
        kind = fault.kind
        if kind == "crash":
            for instance in self._instances(fault):
                instance.crash()
        elif kind == "flap":
            self._tasks[key] = self.world.spawn(self._flap(fault))
        elif kind == "capacity":
            self._apply_capacity(fault)
        elif kind == "unhealthy":
            # The service's database stops answering: deep /health checks fail.
            for service in {i.service for i in self._instances(fault)}:
                self.world.db(service)["_broken"] = True
        elif kind in BUS_FAULTS:
            self.bus_faults.append(fault)
        else:
            self._request_faults.append(fault)
        self._sort_request_faults()
        return handle

    def clear(self, handle: FaultHandle | int | str) -> None:
        """Switch a fault off (by handle, key, or the ``id`` given in the schedule)."""
        handle = self._find(handle)
        if handle is None:
            return
        fault = handle.fault
        del self._handles[handle.key]
        kind = fault.kind
        if kind == "crash":
            keep_state = bool(fault.params.get("keep_state", True))
            for instance in self._instances(fault):
                self._bring_back(instance, keep_state=keep_state)
        elif kind == "flap":
            task = self._tasks.pop(handle.key, None)
            if task is not None:
                task.cancel()
            for instance in self._instances(fault):
                self._bring_back(instance)
        elif kind == "capacity":
            self._apply_capacity(fault)
        elif kind == "unhealthy":
            for service in {i.service for i in self._instances(fault)}:
                self.world.db(service)["_broken"] = False
        elif kind in BUS_FAULTS:
            self.bus_faults.remove(fault)
        else:
            self._request_faults.remove(fault)
        self._sort_request_faults()
        self.world.recorder.event(self.world.loop.time(), "fault-off", fault.describe(), fault=kind, key=handle.key)

    def _held_down(self, instance: Instance) -> bool:
        """Is a crash fault that is still on covering ``instance``?"""
        return any(h.fault.kind == "crash" and h.fault.matches_target(instance.service, instance.address)
                   for h in self._handles.values())

    def _bring_back(self, instance: Instance, *, keep_state: bool = True) -> None:
        """Restart ``instance`` unless another crash fault still holds it down.

        Crash faults compose like capacity faults: with a crash of ``payments-2``
        from 10 s to 40 s and a crash of all of ``payments`` from 20 s to 30 s,
        payments-2 stays down until 40 s. Memory lost by any of the overlapping
        crashes stays lost.
        """
        if not keep_state:
            self._lose_state.add(instance.address)
        if self._held_down(instance):
            return
        lost = instance.address in self._lose_state
        self._lose_state.discard(instance.address)
        instance.restart(keep_state=not lost)

    def _apply_capacity(self, changed: Fault) -> None:
        """Give each instance ``changed`` touches the tightest limits of the capacity faults still on.

        Overlapping faults may be cleared in any order: an instance gets its own
        limits back only when no capacity fault covers it any more.
        """
        active = [h.fault for h in self._handles.values() if h.fault.kind == "capacity"]
        for instance in self._instances(changed):
            covering = [f for f in active if f.matches_target(instance.service, instance.address)]
            if covering:
                self._restore.setdefault(instance.address, (instance.capacity.workers, instance.capacity.queue))
                instance.capacity.resize(min(f.params["workers"] for f in covering),
                                         min(f.params["queue"] for f in covering))
            elif instance.address in self._restore:
                instance.capacity.resize(*self._restore.pop(instance.address))

    def _sort_request_faults(self) -> None:
        faults = self._request_faults
        self.link_faults = [f for f in faults if f.kind in ("partition", "link-latency", "hang")]
        self.worker_faults = [f for f in faults if f.kind in ("latency", "error")]
        self.corrupt_faults = [f for f in faults if f.kind == "malformed"]
        self.response_faults = [f for f in faults if f.kind == "partition" and f.params["direction"] != "request"]

    @property
    def active(self) -> bool:
        """Is any fault on the request path switched on?"""
        return bool(self._request_faults)

    def clear_all(self) -> None:
        for handle in list(self._handles.values()):
            self.clear(handle)

    @property
    def handles(self) -> list[FaultHandle]:
        return list(self._handles.values())

    def _find(self, ref) -> FaultHandle | None:
        if isinstance(ref, FaultHandle):
            return self._handles.get(ref.key)
        if isinstance(ref, int):
            return self._handles.get(ref)
        for handle in self._handles.values():
            if handle.fault.id == ref:
                return handle
        return None

    def _instances(self, fault: Fault) -> list[Instance]:
        net = self.world.net
        if fault.target in net.instances:
            return [net.instances[fault.target]]
        if fault.target in net.services:
            return list(net.services[fault.target])
        if fault.target == "*":
            return list(net.instances.values())
        raise KeyError(f"fault target {fault.target!r} is neither a service nor an instance")

    async def _flap(self, fault: Fault) -> None:
        down, up = fault.params["down"], fault.params["up"]
        instances = self._instances(fault)
        while True:
            for instance in instances:
                instance.crash()
            await asyncio.sleep(down)
            for instance in instances:
                self._bring_back(instance)  # not while a crash fault holds it down
            await asyncio.sleep(up)

    # -- schedules ---------------------------------------------------------------
    def schedule(self, schedule: list[ScheduledFault] | list[dict], *, callers: Collection[str] = ()) -> asyncio.Task:
        """Run a fault schedule in the background (times are absolute virtual seconds).

        ``callers``: more names a fault may aim at (see :meth:`check_schedule`).
        """
        if not (isinstance(schedule, list) and schedule and all(isinstance(e, ScheduledFault) for e in schedule)):
            schedule = parse_schedule(schedule)
        self.check_schedule(schedule, callers=callers)
        return self.world.spawn(self._run_schedule(schedule))

    def check_schedule(self, schedule: list[ScheduledFault], *, callers: Collection[str] = ()) -> None:
        """Refuse now, not at t=40, a fault aimed at nobody: its target and source must be ``"*"``,
        a service or an instance of this world, or one of its clients (``"customer"``); ``callers``
        names more (a scenario's own callers, such as ``"step-functions"``).

        Raises :class:`~harness.faults.FaultError` with a one-line reason.
        """
        for entry in schedule:
            f = entry.fault
            if f.kind not in BUS_FAULTS and f.target != "*":
                self._check_target(f.target, callers)
            if f.source and f.source != "*":
                # A scenario with callers of its own names them when a source is wrong; the plain
                # schedule keeps its one message for both ends.
                self._check_target(f.source, callers, role="source" if callers else "target")

    def _check_target(self, name: str, callers: Collection[str] = (), role: str = "target") -> None:
        net = self.world.net
        if (name in net.instances or name in net.services or name == "client"
                or name in self.world.client_names or name in callers):
            return
        from .faults import FaultError

        known = ", ".join(sorted(net.services))
        if role == "source":
            raise FaultError(f"fault source {name!r} is neither a service, an instance nor a caller "
                             f"(services: {known}; callers: {', '.join(callers)})")
        raise FaultError(f"fault target {name!r} is neither a service nor an instance (services: {known})")

    async def _run_schedule(self, schedule: list[ScheduledFault]) -> None:
        loop = self.world.loop
        timeline: list[tuple[float, int, str, ScheduledFault]] = []
        for order, entry in enumerate(schedule):
            timeline.append((entry.at, order, "on", entry))
            if entry.until is not None:
                timeline.append((entry.until, order, "off", entry))
        timeline.sort(key=lambda item: (item[0], item[2] == "on", item[1]))  # offs before ons at a tie
        handles: dict[int, FaultHandle] = {}
        for when, order, action, entry in timeline:
            delay = when - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if action == "on":
                handles[order] = self.inject(entry.fault)
            elif order in handles:
                handles.pop(order).clear()

    # -- on the request path -------------------------------------------------------
    def _caller_service(self, caller: str) -> str:
        instance = self.world.net.instances.get(caller)
        return instance.service if instance is not None else caller

    def _link_matches(self, fault: Fault, caller: str, instance: Instance) -> bool:
        source = fault.source
        if source is None:
            return fault.matches_target(instance.service, instance.address)
        caller_service = self._caller_service(caller)
        forward = source in ("*", caller, caller_service) and fault.matches_target(instance.service, instance.address)
        if forward or fault.kind != "partition" or fault.params["direction"] != "both":
            return forward
        # Both ways: traffic from the target side to the source side is cut too.
        return fault.target in ("*", caller, caller_service) and source in ("*", instance.service, instance.address)

    def _applies(self, fault: Fault) -> bool:
        p = fault.params.get("probability", 1.0)
        return p >= 1.0 or self._rng.random() < p

    async def before_delivery(self, caller: str, instance: Instance, method: str, path: str) -> None:
        for fault in self.link_faults:
            kind = fault.kind
            if kind == "partition":
                if fault.params["direction"] in ("both", "request") and self._link_matches(fault, caller, instance):
                    await _black_hole()
            elif kind == "link-latency":
                if self._link_matches(fault, caller, instance) and fault.matches_route(method, path) and self._applies(fault):
                    await asyncio.sleep(sample_latency(fault.params, self._rng))
            elif (kind == "hang" and fault.matches_target(instance.service, instance.address)
                    and fault.matches_route(method, path) and self._applies(fault)):
                await _black_hole()

    async def in_worker(self, instance: Instance, method: str, path: str) -> Response | None:
        for fault in self.worker_faults:
            kind = fault.kind
            if not (fault.matches_target(instance.service, instance.address) and fault.matches_route(method, path)):
                continue
            if not self._applies(fault):
                continue
            if kind == "latency":
                await instance.hold(sample_latency(fault.params, self._rng))
            else:
                status = fault.params["status"]
                return Response(status, {"content-type": "application/json"},
                                b'{"detail":"injected fault"}', instance=instance.address,
                                error=f"injected {status}")
        return None

    def corrupt(self, instance: Instance, method: str, path: str, payload: bytes) -> bytes:
        for fault in self.corrupt_faults:
            if (fault.matches_target(instance.service, instance.address)
                    and fault.matches_route(method, path) and self._applies(fault)):
                return payload[: len(payload) // 2] + b"\x00<garbled"
        return payload

    async def before_response(self, caller: str, instance: Instance, method: str, path: str) -> None:
        for fault in self.response_faults:
            # The response travels back from the callee to the caller.
            if self._link_matches(fault, caller, instance):
                await _black_hole()


async def _black_hole() -> None:
    """Nothing ever comes back: the caller waits until it gives up."""
    await asyncio.get_running_loop().create_future()
