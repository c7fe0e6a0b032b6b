"""A fresh saga shop per check or per generated fault schedule, in a fraction of a millisecond.

Building the four services a saga touches costs about 15 ms (FastAPI
analyses every route of every app). The property checks run hundreds of
fault schedules per level, each in a fresh world, so that would take
seconds. Instead the apps are built once per process, in a template world,
and every :func:`fresh_world` moves them into a new :class:`~harness.World`
(new seed, clock at 0, empty recorder, bus and faults) after putting their
databases back the way they were when built. The apps hold on to their
database dicts, so the databases are restored *in place*.

This reaches into a few private attributes of :class:`~harness.network.Instance`
and :class:`~harness.World`; a public ``World`` feature for it would be
better (reported to the lead).

>>> world = fresh_world(seed=3)
>>> sorted(world.net.services), world.now(), world.db("inventory")["stock"]["sku-1"]["available"]
(['inventory', 'notifications', 'orders', 'payments'], 0.0, 100)
>>> release(world)  # not world.close(): that would free the apps the next world needs
"""

from __future__ import annotations

from functools import cache
from typing import Any

from harness.capacity import Capacity
from harness.network import Client
from harness.world import World

__all__ = ["SERVICES", "fresh_world", "orders_replay_keys", "release"]

SERVICES = ("orders", "inventory", "payments", "notifications")


class _Template:
    """The services, built once, and a copy of each database as it was right after building."""

    def __init__(self) -> None:
        self.world = World(seed=0)
        for service in SERVICES:
            self.world.add_service(service)
        self.instances = [i for s in SERVICES for i in self.world.instances(s)]
        self.snapshots = {service: _clone(self.world.db(service)) for service in SERVICES}
        self.current: World | None = None
        self.orders_replay_keys = _probe_orders()


@cache
def _template() -> _Template:
    return _Template()


def _clone(value: Any) -> Any:
    """A deep copy of plain data (dicts, lists, scalars): several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _restore(db: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """Put ``db`` back to ``snapshot`` without replacing the dicts the apps hold."""
    for key in [k for k in db if k not in snapshot]:
        del db[key]
    for key, value in snapshot.items():
        held = db.get(key)
        if isinstance(held, dict) and isinstance(value, dict):
            held.clear()
            held.update(_clone(value))
        else:
            db[key] = _clone(value)


def release(world: World) -> None:
    """Close a world made by :func:`fresh_world`, keeping its instances for the next one.

    ``World.close`` frees its instances' apps (so that a closed world can be garbage collected);
    these apps are the template's, so they leave the world first.
    """
    if world.closed:
        return
    template = _template()
    for instance in template.instances:
        if world.net.instances.get(instance.address) is instance:
            world.net.remove(instance.address)
    world.close()


def fresh_world(seed: int) -> World:
    """A new world holding orders, inventory, payments and notifications, one instance each, as new.

    The previous one is released first: the instances move from world to world.
    """
    template = _template()
    previous = template.current
    if previous is not None:
        release(previous)
    if any(instance.app is None for instance in template.instances):
        # Someone closed a world with World.close() instead of release(): its apps are gone. Start over.
        _template.cache_clear()
        template = _template()
    world = World(seed=seed)
    for service in SERVICES:
        db = template.world.db(service)
        _restore(db, template.snapshots[service])
        world._dbs[service] = db
    for instance in template.instances:
        instance.world = world
        ctx = instance.ctx
        ctx.world = world
        ctx.client = Client(world.net, caller=instance.address)
        ctx.clock = world.loop.time
        ctx.local = {}
        instance.capacity = Capacity(instance.workers, instance.queue)
        instance.up = True
        instance.generation = 0
        instance.started_at = 0.0
        instance._down = world.loop.create_future()
        instance._holding = set()
        world.net.add(instance)
    template.current = world
    return world


def orders_replay_keys() -> bool:
    """Does ``POST /orders`` honour an ``Idempotency-Key``? (Then a lost create answer is safe to test.)"""
    return _template().orders_replay_keys


def _probe_orders() -> bool:
    """Create an order twice with one key, in a world of its own: the same id twice means a replay."""
    world = World(seed=0)
    world.add_service("orders")
    client = world.client()
    body = {"user_id": "user-1", "items": [], "amount": 1.0}

    async def twice() -> tuple[str, str]:
        first = await client.post("orders", "/orders", json=body, headers={"Idempotency-Key": "probe"})
        again = await client.post("orders", "/orders", json=body, headers={"Idempotency-Key": "probe"})
        return first.json()["id"], again.json()["id"]

    try:
        first, again = world.run(twice())
    finally:
        world.close()
    return first == again
