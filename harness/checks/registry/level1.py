"""Level 1: register, resolve, deregister; an unknown service is an error, an empty one is not."""

from __future__ import annotations

from .. import Context, level
from .scene import LeaseScene


@level(1)
def resolves_registered_addresses_in_order(ctx: Context) -> None:
    """``resolve`` lists a service's addresses in the order they registered."""
    scene = LeaseScene(ctx)
    for address in ("payments-2", "payments-1", "payments-3"):
        scene.register("payments", address)
    scene.expect_served("payments", ["payments-2", "payments-1", "payments-3"],
                        why="keep the instances in registration order (a dict keeps insertion order); "
                            "do not sort them: the answer's order is what round-robin will follow")


@level(1)
def services_are_kept_apart(ctx: Context) -> None:
    """Each service has its own instances."""
    scene = LeaseScene(ctx)
    scene.register("users", "users-1")
    scene.register("catalog", "catalog-1")
    scene.register("users", "users-2")
    scene.expect_served("users", ["users-1", "users-2"], why="instances of another service leaked into 'users'")
    scene.expect_served("catalog", ["catalog-1"])


@level(1)
def registering_twice_keeps_one_entry(ctx: Context) -> None:
    """Registering an address that is already there does not add it a second time."""
    scene = LeaseScene(ctx)
    for address in ("users-1", "users-2", "users-1"):
        scene.register("users", address)
    scene.expect_served("users", ["users-1", "users-2"],
                        why="an instance that registers twice (a restart, a retried call) is listed twice, "
                            "so it would get twice its share of traffic: keep one entry per address")


@level(1)
def deregister_removes_one_instance(ctx: Context) -> None:
    """``deregister`` removes that instance only and says whether it was there."""
    scene = LeaseScene(ctx)
    for address in ("users-1", "users-2", "users-3"):
        scene.register("users", address)
    removed = scene.deregister("users", "users-2")
    if removed is not True:
        scene.fail(got=f"deregister('users', 'users-2') returned {removed!r}", expected="True: it was registered")
    scene.expect_served("users", ["users-1", "users-3"])
    try:
        again = scene.deregister("users", "users-2")
    except NotImplementedError:
        raise
    except Exception as error:
        scene.fail(got=f"deregistering it a second time raised {type(error).__name__}",
                   expected="False, and no error",
                   why="deregister runs in shutdown hooks, which may run twice: make it idempotent")
    if again is not False:
        scene.fail(got=f"deregistering it a second time returned {again!r}", expected="False: it was not there")
    scene.expect_served("users", ["users-1", "users-3"])


@level(1)
def unknown_service_is_a_clear_error(ctx: Context) -> None:
    """A service nobody ever registered raises UnknownService, naming it."""
    scene = LeaseScene(ctx)
    scene.register("payments", "payments-1")
    try:
        got = scene.resolve("paymnets")
    except scene.module.UnknownService as error:
        if "paymnets" not in str(error):
            scene.fail(got=f"UnknownService({str(error)!r})",
                       expected="a message that names the service asked for, 'paymnets'",
                       why="the learner (or the on-call engineer) must see the typo in the message")
        return
    scene.fail(got=f"resolve('paymnets') returned {got!r}",
               expected="UnknownService: nobody ever registered 'paymnets' (a typo of 'payments')",
               why="an unknown service answered with an empty list looks like an outage, not a typo: "
                   "raise UnknownService for names never registered")


@level(1)
def known_service_without_instances_is_empty(ctx: Context) -> None:
    """A known service whose instances all left answers ``[]``, not an error."""
    scene = LeaseScene(ctx)
    scene.register("payments", "payments-1")
    scene.deregister("payments", "payments-1")
    try:
        got = scene.resolve("payments")
    except scene.module.UnknownService:
        scene.fail(got="resolve('payments') raised UnknownService",
                   expected="[]: 'payments' is a known service that has nothing to serve right now",
                   why="keep the service known after its last instance deregisters: an empty answer "
                       "is an outage to handle, UnknownService is a typo to fix")
    if got != []:
        scene.fail(got=f"resolve('payments') -> {got!r}", expected="[]")


@level(1)
def answers_are_copies(ctx: Context) -> None:
    """Editing the list ``resolve`` returned does not change the registry."""
    scene = LeaseScene(ctx)
    scene.register("users", "users-1")
    scene.register("users", "users-2")
    first = scene.resolve("users")
    first.clear()
    first.append("intruder-1")
    scene.note("caller: answer.clear(); answer.append('intruder-1')")
    scene.expect_served("users", ["users-1", "users-2"],
                        why="resolve hands out the registry's own list: return a new list each time")
