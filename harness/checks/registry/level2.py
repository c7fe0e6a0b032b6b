"""Level 2: leases. Served while ``now < last_renewal + lease``; a lapsed lease is gone."""

from __future__ import annotations

from .. import Context, level
from .scene import LeaseScene, release


def first_time_gone(scene: LeaseScene, service: str, address: str, *, start: float, end: float,
                    step: float = 0.5) -> float | None:
    """Ask ``resolve`` every ``step`` from ``start``; the first time ``address`` is missing."""
    t = start
    while t <= end:
        scene.at(t)
        if address not in scene.registry.resolve(service):
            scene.note(f"t={start:g} to t={t:g}, every {step:g} s: registry.resolve({service!r}) -> "
                       f"{address!r} listed until t={t - step:g}, missing at t={t:g}")
            return t
        t += step
    scene.note(f"t={start:g} to t={end:g}, every {step:g} s: registry.resolve({service!r}) always lists {address!r}")
    return None


def diagnose(gone: float | None, *, last_renewal: float, lease: float) -> str:
    """Name the mistake from the first time the instance was missing."""
    expiry = last_renewal + lease
    if gone is None:
        return "the lease never runs out: compare now with last_renewal + lease on every resolve"
    if gone < expiry:
        return (f"the instance vanished {expiry - gone:g} s early: the lease runs from the *last renewal* "
                f"(t={last_renewal:g}), not from the registration")
    if gone == expiry + 0.5:
        return (f"it was still served at exactly t={expiry:g}: a lease covers last_renewal up to but not "
                f"including last_renewal + lease (use now < expiry, not <=)")
    if gone == last_renewal + 2 * lease:
        return (f"it was served one lease too long, until t={gone:g} = last renewal + 2 × lease. "
                f"Eureka's Lease.renew() has exactly this bug: it stores now + lease, and the expiry check "
                f"adds the lease again")
    return f"it was served {gone - expiry:g} s after its lease ran out at t={expiry:g}"


@level(2)
def served_up_to_but_not_including_the_end_of_its_lease(ctx: Context) -> None:
    """Registered at t=0 with a 30 s lease: served before t=30, gone at t=30 exactly."""
    scene = LeaseScene(ctx, lease=30)
    scene.register("users", "users-1")
    gone = first_time_gone(scene, "users", "users-1", start=0, end=100)
    if gone != 30:
        scene.fail(got=f"users-1 was first missing at t={gone}", expected="t=30 (registered at t=0, lease 30 s)",
                   why=diagnose(gone, last_renewal=0, lease=30))


@level(2)
def renewal_starts_a_new_lease_from_now(ctx: Context) -> None:
    """Renewed at t=10 and t=20, then silent: gone at t=50 exactly (not Eureka's t=80)."""
    scene = LeaseScene(ctx, lease=30)
    scene.register("users", "users-1")
    for when in (10, 20):
        scene.at(when)
        renewed = scene.renew("users", "users-1")
        if renewed is not True:
            scene.fail(got=f"renew returned {renewed!r}", expected="True: the lease was still running")
    gone = first_time_gone(scene, "users", "users-1", start=20, end=120)
    if gone == 30:
        why = "renewals do not extend the lease: a renewal starts a new lease of `lease` seconds from now"
    elif gone == 90:
        why = ("each renewal added a lease to the old expiry (30 -> 60 -> 90) instead of starting a new "
               "lease from now (20 + 30 = 50)")
    else:
        why = diagnose(gone, last_renewal=20, lease=30)
    if gone != 50:
        scene.fail(got=f"users-1 was first missing at t={gone}", expected="t=50 (last renewal at t=20, lease 30 s)",
                   why=why)


@level(2)
def lapsed_lease_cannot_be_renewed(ctx: Context) -> None:
    """At t=30 the 30 s lease is over: renew returns False, and registering again starts afresh."""
    scene = LeaseScene(ctx, lease=30)
    scene.register("users", "users-1")
    scene.at(30)
    renewed = scene.renew("users", "users-1")
    if renewed is not False:
        scene.fail(got=f"renew at t=30 returned {renewed!r}",
                   expected="False: the lease ran out at t=30; the instance must register again",
                   why="a lapsed lease cannot be renewed: an instance that went silent for a whole lease may "
                       "have been replaced, restarted or moved; it must register again (Eureka answers 404)")
    scene.expect_served("users", [], why="the lease ran out at t=30")
    scene.register("users", "users-1")
    gone = first_time_gone(scene, "users", "users-1", start=30, end=120)
    if gone != 60:
        scene.fail(got=f"registered again at t=30, users-1 was first missing at t={gone}",
                   expected="t=60 (registered at t=30, lease 30 s)", why=diagnose(gone, last_renewal=30, lease=30))


@level(2)
def renewing_an_unknown_instance_is_refused(ctx: Context) -> None:
    """Renewing an instance that is not registered returns False and registers nothing."""
    scene = LeaseScene(ctx, lease=30)
    scene.register("users", "users-1")
    scene.register("users", "users-2")
    scene.deregister("users", "users-2")
    for service, address, what in (("users", "users-9", "never registered"),
                                   ("users", "users-2", "deregistered"),
                                   ("nobody", "nobody-1", "of a service nobody registered")):
        try:
            renewed = scene.renew(service, address)
        except NotImplementedError:
            raise
        except Exception as error:
            scene.fail(got=f"renew({service!r}, {address!r}) raised {type(error).__name__}",
                       expected=f"False: the instance is {what}")
        if renewed is not False:
            scene.fail(got=f"renew({service!r}, {address!r}) returned {renewed!r}",
                       expected=f"False: the instance is {what}",
                       why="renew of an unknown instance must not register it: only register does, and a "
                           "renewal that says False is how the instance learns it must register again")
    scene.expect_served("users", ["users-1"], why="a renewal registered an instance that was not registered")


@level(2)
def each_instance_has_its_own_lease(ctx: Context) -> None:
    """users-1 renews every 10 s, users-2 never: only users-2 goes, at t=30."""
    scene = LeaseScene(ctx, lease=30)
    scene.register("users", "users-1")
    scene.register("users", "users-2")
    for when in (10, 20, 29.5, 30, 40, 50, 60, 70):
        scene.at(when)
        if when % 10 == 0:
            scene.renew("users", "users-1")
        expected = ["users-1", "users-2"] if when < 30 else ["users-1"]
        scene.expect_served("users", expected,
                            why="users-2 registered at t=0 and never renewed: it goes at t=30; users-1 renews "
                                "every 10 s and stays")


@level(2)
def heartbeats_stop_when_an_instance_crashes(ctx: Context) -> None:
    """In a shop, instances renew every 10 s; catalog-2 crashes at t=25, so it goes at t=50 exactly."""
    import asyncio

    from harness import World

    world = World(seed=ctx.seed, record_headers=False)
    try:
        instances = world.add_service("catalog", instances=3)
        scene = LeaseScene(ctx, clock=world.clock, lease=30)
        scene.note("world with 3 catalog instances; the registry reads world.clock")
        scene.note("each instance: register at t=0, then every 10 s: if up, renew (and register again "
                   "if renew returns False)")
        scene.note("t=25  catalog-2 crashes; t=62 it restarts")
        registry = scene.registry
        answers: list[tuple[float, list[str]]] = []

        async def heartbeat(instance) -> None:
            registry.register("catalog", instance.address)
            while True:
                await asyncio.sleep(10)
                if instance.up and not registry.renew("catalog", instance.address):
                    registry.register("catalog", instance.address)

        async def watch() -> None:
            await asyncio.sleep(0.25)  # between heartbeats: no ties at the same instant
            while world.now() < 90:
                answers.append((world.now(), list(registry.resolve("catalog"))))
                await asyncio.sleep(0.5)

        for instance in instances:
            world.spawn(heartbeat(instance))
        world.faults.schedule([{"at": 25, "until": 62, "fault": "crash", "target": "catalog-2"}])
        world.run(watch())
        for t, answer in answers:
            want = ["catalog-1", "catalog-3"] if 50 <= t < 70 else ["catalog-1", "catalog-2", "catalog-3"]
            if sorted(answer) != want:  # (order aside: registering again may put catalog-2 last)
                scene.note(f"t={t:g}  registry.resolve('catalog') -> {answer}")
                if 50 <= t < 70:
                    why = ("catalog-2 last renewed at t=20, so its lease ran out at t=50; it restarted at "
                           "t=62, and its first heartbeat at t=70 finds the lease lapsed and registers again")
                else:
                    why = ("catalog-2 renewed at t=20 (lease until t=50); at t=70 its renewal is refused and it "
                           "registers again")
                scene.fail(got=f"at t={t:g} resolve('catalog') -> {answer}", expected=str(want), why=why)
    finally:
        release(world)


@level(2)
def random_heartbeats_expire_exactly(ctx: Context) -> None:
    """Seeded random renewals: every answer and every renew result matches the lease rule exactly."""
    rng = ctx.rng
    lease = rng.choice([5.0, 10.0, 30.0])
    scene = LeaseScene(ctx, lease=lease)
    addresses = [f"users-{n}" for n in range(1, 5)]
    expiry: dict[str, float] = {}
    events: list[tuple[float, str, str]] = []  # (time, action, address)
    for address in addresses:
        t = 0.0
        events.append((t, "register", address))
        while t < 100:
            t += rng.choice([0.25, 1.0, 2.5, lease / 2, lease, lease, lease + 0.25, 2 * lease])
            events.append((t, "renew", address))
    probes = {0.25 * k for k in range(0, 4 * 110)}
    events += [(t, "resolve", "") for t in sorted(probes)]
    order = {"register": 0, "renew": 1, "resolve": 2}
    for t, action, address in sorted(events, key=lambda e: (e[0], order[e[1]], e[2])):
        scene.at(t)
        if action == "register":
            scene.register("users", address)
            expiry[address] = t + lease
        elif action == "renew":
            alive = t < expiry[address]
            renewed = scene.renew("users", address)
            if renewed is not alive:
                scene.fail(got=f"renew at t={t:g} returned {renewed!r}",
                           expected=f"{alive!r}: its lease {'runs' if alive else 'ran out'} at t={expiry[address]:g}",
                           why=None if alive else "a lapsed lease cannot be renewed (expiry is reached at "
                                                  "last_renewal + lease, that instant included)")
            if not alive:
                scene.register("users", address)
            expiry[address] = t + lease
        else:
            want = [a for a in addresses if t < expiry[a]]
            got = scene.registry.resolve("users")
            if sorted(got) != want:  # (order aside: one that registers again may come last)
                scene.note(f"t={t:g}  registry.resolve('users') -> {got}")
                late = [a for a in got if a not in want]
                scene.fail(got=f"resolve('users') at t={t:g} -> {got}",
                           expected=f"{want} (lease {lease:g} s; expiries: "
                                    f"{', '.join(f'{a} t={expiry[a]:g}' for a in addresses)})",
                           why=(f"{', '.join(late)} served at or after the end of its lease" if late else None))
