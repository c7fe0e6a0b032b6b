"""Level 4: client-side discovery. A TTL cache, round-robin, and a retry on another instance.

The registry here is scripted by the check (see :class:`~.scene.ScriptedRegistry`),
so that this level does not depend on levels 1 to 3.
"""

from __future__ import annotations

import asyncio
import contextlib

from harness.http import ConnectError, NetworkError, RequestTimeout

from .. import Context, level
from .scene import ClientScene, show

CATALOG3 = ["catalog-1", "catalog-2", "catalog-3"]


@level(4)
def picks_take_the_instances_in_turn(ctx: Context) -> None:
    """pick() goes round the registry's answer in order, starting with the first."""
    with ClientScene(ctx, {"catalog": 3}, ttl=10) as scene:
        got = scene.picks("catalog", 7)
        want = [*CATALOG3, *CATALOG3, "catalog-1"]
        if got != want:
            scene.fail(got=show(got), expected=show(want),
                       why="round-robin: the n-th pick (counting from 0) gets answer[n % len(answer)], so every "
                           "instance gets the same share, in a predictable order")


@level(4)
def each_service_has_its_own_turn(ctx: Context) -> None:
    """Picks of one service do not move the turn of another."""
    with ClientScene(ctx, {"catalog": 3, "users": 2}, ttl=10) as scene:
        got = [scene.discovery.pick(service) for service in ("catalog", "users") * 3]
        scene.note(f"t=0  pick('catalog'), pick('users'), ... three times each -> {show(got)}")
        want = ["catalog-1", "users-1", "catalog-2", "users-2", "catalog-3", "users-1"]
        if got != want:
            scene.fail(got=show(got), expected=show(want),
                       why="keep one round-robin turn per service: a shared counter skips instances")


@level(4)
def the_answer_is_cached_for_ttl(ctx: Context) -> None:
    """With ttl=10, a pick every second asks the registry at t=0, 10 and 20 only."""
    with ClientScene(ctx, {"catalog": 3}, ttl=10) as scene:
        scene.answer("catalog", ["catalog-1", "catalog-3"], at=5)
        stale: list[int] = []  # times a pick still gave catalog-2 after the answer fetched at t=0 expired
        for t in range(26):
            scene.wait_until(t)
            if scene.discovery.pick("catalog") == "catalog-2" and t >= 10:
                stale.append(t)
        asked = scene.registry.times_asked("catalog")
        scene.note(f"t=0 to t=25, one pick per second; the registry was asked at t={show(asked)}"
                   + (f"; picks gave catalog-2 at t={show(stale)}" if stale else ""))
        if asked == [0.0, 10.0, 20.0] and not stale:
            return
        if len(asked) >= 20:
            why = (f"no cache: it asks the registry on every pick ({len(asked)} times in 26 s). Keep the answer "
                   f"for ttl seconds: that spares the registry, and is what a DNS TTL does")
        elif len(asked) == 1:
            why = "the cache never expires: an answer fetched at t is used only until t + ttl"
        elif asked[:2] == [0.0, 11.0]:
            why = ("the answer was still used at exactly t=10 = fetched_at + ttl: it is good up to but not "
                   "including that instant")
        else:
            why = "fetched at t, an answer is used up to but not including t + ttl; the next pick refreshes it"
        scene.fail(got=f"the registry was asked at t={show(asked)}"
                       + (f", and picks still gave catalog-2 (dropped at t=5) at t={show(stale)}" if stale else ""),
                   expected="asked at t=[0, 10, 20]; no catalog-2 from t=10", why=why)


@level(4)
def the_balancer_stops_picking_an_instance_the_registry_dropped(ctx: Context) -> None:
    """As world.net.balancer: catalog-2 dies at t=3; once the cache expires (t=10) no call goes to it."""
    with ClientScene(ctx, {"catalog": 3}, ttl=10) as scene:
        world = scene.world
        world.net.balancer = scene.discovery.balancer
        scene.note("world.net.balancer = discovery.balancer")
        world.faults.schedule([{"at": 3, "fault": "crash", "target": "catalog-2"}])
        scene.note("scheduled: at t=3, catalog-2 crashes")
        scene.answer("catalog", ["catalog-1", "catalog-3"], at=3)
        customer = world.client("customer")

        async def browse() -> None:
            for k in range(60):
                await asyncio.sleep(0.25 + 0.5 * k - world.now())
                with contextlib.suppress(NetworkError):  # the recorder keeps what happened
                    await customer.get("catalog", "/products", timeout=1)

        world.run(browse())
        scene.note("t=0.25 to t=29.75: a customer GET catalog /products every 0.5 s, through the network")
        calls = world.recorder.select(caller="customer")
        late = [x for x in calls if x.start >= 10]
        dead = [x for x in late if x.instance == "catalog-2" or x.failed]
        if dead:
            asked = scene.registry.times_asked("catalog")
            if not asked:
                cause = "the balancer never asked the registry: it picks among all the network's instances"
            elif len(asked) == 1:
                cause = f"the registry was asked once, at t={asked[0]:g}: the cache never expires"
            else:
                cause = f"the registry was asked at t={show(asked)}"
            scene.fail(got=f"from t=10 on, {len(dead)} of {len(late)} calls still went to catalog-2 and were "
                           f"refused (first at t={dead[0].start:g})",
                       expected="no call to catalog-2 once the answer cached at t=0.25 has expired (t=10.25)",
                       why=f"a load balancer that keeps picking a dead instance: {cause}. (Between t=3 and "
                           f"t=10 the stale cache still names catalog-2: that is the price of a 10 s TTL.)")
        others = {x.instance for x in late}
        if others != {"catalog-1", "catalog-3"}:
            scene.fail(got=f"from t=10 on, calls went to {sorted(i or '?' for i in others)}",
                       expected="catalog-1 and catalog-3 in turn")


@level(4)
def a_refused_call_is_retried_on_another_instance(ctx: Context) -> None:
    """catalog-2 is down but still in the (stale) answer: every request still gets a 200."""
    with ClientScene(ctx, {"catalog": 3}, ttl=10) as scene:
        scene.world.faults.inject({"fault": "crash", "target": "catalog-2"})
        scene.note("t=0  catalog-2 crashes (the registry still names it)")
        for _ in range(4):
            response, error = scene.request("GET", "catalog", "/products", timeout=1)
            if error is not None:
                scene.fail(got=f"the request raised {type(error).__name__}: {error}",
                           expected="a 200 from catalog-1 or catalog-3",
                           why="no retry on another instance: a refused connection never reached the instance, "
                               "so it is always safe to try the next one")
            if response.status != 200 or response.instance == "catalog-2":
                scene.fail(got=f"{response.status} from {response.instance}", expected="200 from another instance")
        refused = scene.world.recorder.select(caller="shop", instance="catalog-2")
        if len(refused) != 2:
            scene.fail(got=f"{len(refused)} attempts on catalog-2 in 4 requests",
                       expected="2: the rotation reaches catalog-2 at the 2nd and 5th picks (each time retried "
                                "on the next instance)",
                       why="keep taking instances in turn, retries included: the retry is the next pick")


@level(4)
def a_timed_out_get_is_retried_but_a_post_is_not(ctx: Context) -> None:
    """A GET that times out moves to another instance; a POST that times out is not sent twice."""
    with ClientScene(ctx, {"catalog": 2, "payments": 2}, ttl=10) as scene:
        for address in ("catalog-1", "payments-1"):
            scene.world.faults.inject({"fault": "hang", "target": address})
        scene.note("t=0  catalog-1 and payments-1 hang (accept calls, never answer)")
        response, error = scene.request("GET", "catalog", "/products", timeout=1)
        if error is not None:
            scene.fail(got=f"the GET raised {type(error).__name__}", expected="a 200 from catalog-2 at t=1",
                       why="a GET that timed out is safe to retry on another instance: GET is idempotent")
        if (response.status, response.instance, scene.now()) != (200, "catalog-2", 1.0):
            scene.fail(got=f"{response.status} from {response.instance} at t={scene.now():g}",
                       expected="200 from catalog-2 at t=1 (1 s timeout on catalog-1, then catalog-2 at once)")
        before = len(scene.world.recorder.select(caller="shop", service="payments"))
        response, error = scene.request("POST", "payments", "/charges", json={"order_id": "o-1", "amount": 20},
                                        timeout=1)
        attempts = len(scene.world.recorder.select(caller="shop", service="payments")) - before
        if attempts > 1 or not isinstance(error, RequestTimeout):
            scene.fail(got=f"{attempts} attempts; the request {'returned ' + str(response.status) if error is None else 'raised ' + type(error).__name__}",
                       expected="1 attempt, then RequestTimeout raised to the caller at t=2",
                       why="a POST that timed out may have been processed: the instance may have charged the "
                           "card before going quiet. Retrying it elsewhere can charge twice; only the caller "
                           "(with an idempotency key) may decide. Retry timeouts and resets only for "
                           "IDEMPOTENT_METHODS")


@level(4)
def never_the_same_instance_twice_and_the_last_error_at_the_end(ctx: Context) -> None:
    """All instances down: each try goes to a new instance, at most ``attempts``, then ConnectError."""
    with ClientScene(ctx, {"catalog": 3}, ttl=10, attempts=5) as scene:
        scene.world.faults.inject({"fault": "crash", "target": "catalog"})
        scene.note("t=0  every catalog instance crashes (the registry still names them)")
        response, error = scene.request("GET", "catalog", "/products", timeout=1)
        tried = [x.instance for x in scene.world.recorder.select(caller="shop")]
        if len(tried) != len(set(tried)):
            scene.fail(got=f"tried {tried}", expected="each of the 3 instances once, then give up",
                       why="a retry went to an instance this request had already tried: retry on *another* one")
        if len(tried) != 3:
            scene.fail(got=f"tried {tried}", expected="catalog-1, catalog-2, catalog-3: each once")
        if not isinstance(error, ConnectError):
            got = f"{response.status} from {response.instance}" if error is None else type(error).__name__
            scene.fail(got=got, expected="ConnectError, the last error, raised to the caller")


@level(4)
def an_empty_answer_raises_connect_error(ctx: Context) -> None:
    """No instance to pick: ConnectError, from pick() and through the balancer."""
    with ClientScene(ctx, {"catalog": 2}, answers={"catalog": []}, ttl=10) as scene:
        try:
            address = scene.discovery.pick("catalog")
        except ConnectError:
            scene.note("t=0  discovery.pick('catalog') -> raised ConnectError")
        except NotImplementedError:
            raise
        except Exception as error:
            scene.fail(got=f"pick() on an empty answer raised {type(error).__name__}: {error}",
                       expected="harness.ConnectError (no instance to connect to)",
                       why="check for an empty answer before answer[n % len(answer)]")
        else:
            scene.fail(got=f"pick() on an empty answer returned {address!r}", expected="ConnectError")
        scene.world.net.balancer = scene.discovery.balancer
        try:
            scene.world.run(scene.world.client().get("catalog", "/products"))
        except ConnectError:
            return
        except NotImplementedError:
            raise
        except Exception as error:
            scene.fail(got=f"a call through the balancer raised {type(error).__name__}", expected="ConnectError")
        scene.fail(got="a call through the balancer got an answer although the registry names no instance",
                   expected="ConnectError")
