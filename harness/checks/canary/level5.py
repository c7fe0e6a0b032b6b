"""Level 5: a rollback that loses no request in flight on the canary.

In each scene 30 % of the canary's answers are 500s, so the first check (at
t=60) rolls it back. The canary is slow, so requests are still running on it
at that moment: a rollback that stops it at once resets them.
"""

from __future__ import annotations

from typing import Any

from harness.http import NetworkError, Response

from .. import CheckFailed, Context, level
from .scene import Shop, where

DROPPED = ("reset", "refused", "timeout")


def _stopped(shop: Shop) -> dict[str, float | None]:
    return {i.address: shop.stopped_at(i.address) for i in shop.canaries}


@level(5)
def rollback_drains_the_canary_before_stopping_it(ctx: Context) -> None:
    """Weight 0 first, then the requests running on the canary finish, then every canary instance stops."""
    with Shop(ctx, bug_rate=0.3, canaries=2) as shop:
        for instance in shop.canaries:
            shop.world.faults.inject({"fault": "latency", "target": instance.address, "dist": "uniform",
                                      "low": 1.0, "high": 4.0})
        shop.note("catalog-3 and catalog-4 take 1 to 4 s to answer (uniform)")
        shop.install_split()
        shop.load(rate=15, until=95)
        report = shop.rollout("await rollout.run()", interval=60.0, drain_timeout=30.0)
        shop.world.run(until=max(100, shop.world.now()))
        decided = report.checks[-1].end if report.checks else 60.0
        canary = [x for x in shop.world.recorder.select(service="catalog") if x.instance in shop.canary_addresses]
        running = [x for x in canary if x.start < decided < x.end or (x.start < decided and x.outcome in DROPPED)]
        shop.note(f"{len(running)} requests were running on the canary when it was rolled back at t={decided:g}")
        cut = [x for x in canary if x.outcome in DROPPED]
        stopped = _stopped(shop)
        shop.note(f"canary instances stopped at: {stopped}")
        if report.status != "rolled-back":
            shop.fail(got=f"status={report.status!r}", expected="'rolled-back' at t=60")
        if cut:
            first = min(cut, key=lambda x: x.end)
            why = ("it stops the canary while requests are still running on it: they are reset. Drain first: "
                   "weight 0, then wait until nothing is in flight on the canary (instance.capacity.busy + "
                   "instance.capacity.queued), at most drain_timeout, then stop it")
            if first.outcome == "refused":
                why = "requests were sent to a canary already stopped: set the weight to 0 before stopping it"
            shop.fail(got=f"{len(cut)} requests on the canary ended {first.outcome} (the first at t={first.end:g}, "
                          f"started at t={first.start:g})",
                      expected="every request running on the canary at the rollback gets its answer", why=why)
        up = [address for address, t in stopped.items() if t is None]
        if up:
            shop.fail(got=f"{', '.join(up)} still running at t={shop.world.now():g}, "
                          f"{shop.world.now() - decided:g} s after the rollback",
                      expected="every canary instance stopped (instance.crash()) once drained, within "
                               "drain_timeout=30 s",
                      why="a rolled-back release must not keep running: after the drain, stop each canary "
                          "instance that is up")
        late = {address: t for address, t in stopped.items() if t is not None and t > decided + 30.0 + 0.5}
        if late:
            shop.fail(got=f"stopped at {late}", expected=f"by t={decided + 30:g}: drain_timeout bounds the drain")


@level(5)
def the_drain_is_bounded_and_cut_requests_are_retried(ctx: Context) -> None:
    """Requests that outlive drain_timeout are cut at exactly that time, and the callers' retries answer them."""
    with Shop(ctx, bug_rate=0.3) as shop:
        world = shop.world
        world.faults.schedule([{"at": 50, "until": 60, "fault": "latency", "target": "catalog-3",
                                "dist": "constant", "value": 100.0}])
        shop.note("from t=50 to t=60 every request to catalog-3 takes 100 s")
        shop.install_split()
        client = world.client("customer")
        outcomes: list[Any] = []
        policy = shop.call("policy = RetryPolicy(max_retries=2, per_try_timeout=200, timeout=400, "
                           "clock=world.clock)", shop.module.RetryPolicy, max_retries=2, per_try_timeout=200.0,
                           timeout=400.0, clock=world.clock)

        async def customer(i: int) -> None:
            try:
                outcomes.append(await policy.call(lambda t: client.get("catalog", "/products/sku-1", timeout=t)))
            except (NotImplementedError, CheckFailed):
                raise
            except Exception as error:  # noqa: BLE001 (a dropped call: reported below)
                outcomes.append(error)

        from harness.load import open_loop

        open_loop(world, 5, until=100, start=0.05, fire=customer)
        shop.note("customers: 5 per second from t=0.05 to t=100, each through policy.call(GET catalog ...)")
        report = shop.rollout("await rollout.run()", interval=60.0, drain_timeout=30.0)
        try:
            world.run(until=700)
        except NotImplementedError:
            raise
        except Exception as error:
            shop.crashed("world.run(until=700)", error)
        stopped = shop.stopped_at("catalog-3")
        slow = [x for x in world.recorder.select(instance="catalog-3")
                if 50 <= x.start < 60 and (x.end > 60 or x.outcome in DROPPED)]
        shop.note(f"{len(slow)} requests started on catalog-3 between t=50 and t=60 had not finished by t=60; "
                  f"catalog-3 stopped at t={stopped}")
        if report.status != "rolled-back":
            shop.fail(got=f"status={report.status!r}", expected="'rolled-back' at t=60")
        if stopped is None or not 89.5 <= stopped <= 90.5:
            why = None
            if stopped is None:
                why = "the canary is never stopped: after the drain, stop it with instance.crash()"
            elif stopped > 90.5:
                why = ("it waits for every request however long it runs: the drain must end after "
                       "drain_timeout (30 s), and what is still running is cut")
            elif stopped < 89.5:
                why = (f"it stopped the canary at t={stopped:g} while {len(slow)} requests were still running on "
                       "it: wait for them, up to drain_timeout")
            shop.fail(got=f"catalog-3 stopped at t={stopped}",
                      expected="t=90: requests were running on it until t=150 and beyond, so the drain lasts "
                               "the whole drain_timeout=30 s after the rollback at t=60", why=why)
        dropped = [o for o in outcomes if not isinstance(o, Response)]
        if dropped:
            first = dropped[0]
            kind = type(first).__name__ + (where(first, shop.module) if not isinstance(first, NetworkError) else "")
            shop.fail(got=f"{len(dropped)} of {len(outcomes)} calls ended without an answer ({kind}: {first})",
                      expected="every call answered: the requests cut at t=90 are reset, and the retry policy "
                               "sends them again, to the baseline now")


@level(5)
def an_idle_canary_stops_at_once(ctx: Context) -> None:
    """With nothing in flight the canary stops right after the rollback, not drain_timeout later."""
    with Shop(ctx) as shop:
        shop.install_split()
        report = shop.rollout("await rollout.run()  # nobody sends a request", interval=60.0, drain_timeout=30.0)
        stopped = shop.stopped_at("catalog-3")
        if report.status != "rolled-back" or stopped is None or not 60 <= stopped <= 61:
            why = None
            if stopped is not None and stopped > 61:
                why = ("it waits the whole drain_timeout although nothing is in flight: a fixed wait is the "
                       "seed's time.sleep in another place. Stop as soon as the canary is idle")
            shop.fail(got=f"status={report.status!r}, catalog-3 stopped at t={stopped}",
                      expected="rolled back at t=60 (no data), catalog-3 stopped by t=61", why=why)
