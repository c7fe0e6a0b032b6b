"""Level 4: a TTL cache with stale-if-error (RFC 5861) and request coalescing.

The backend is the shop's users service, asked through the watched client:
every load the cache makes is a real call, counted and timed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .. import Context, level
from .scene import Outcome, Shop, same_time


class BackendDown(Exception):
    """users answered 5xx: the load failed."""


def _shop(ctx: Context, latency: float | None = 0.1) -> Shop:
    times = {} if latency is None else {"users": ("GET /users", latency)}
    return Shop(ctx, times=times, instances={"users": 2})


def _cache(shop: Shop, **config: Any) -> Any:
    settings = ", ".join(f"{k}={v!r}" for k, v in config.items())
    shop.note(f"cache = ResponseCache({settings}, clock=<virtual clock>); "
              "load(user) = GET users /users/<user> (a 5xx raises BackendDown)")
    return shop.module.ResponseCache(clock=shop.world.clock, **config)


def _load(shop: Shop, user_id: str):
    async def load() -> dict:
        response = await shop.client.get("users", f"/users/{user_id}", timeout=5)
        if response.status >= 500:
            raise BackendDown(f"users answered {response.status}")
        return response.json()

    return load


async def _get(shop: Shop, cache: Any, user_id: str = "user-1") -> tuple[Outcome, int]:
    """``await cache.get(user_id, load)``; returns the outcome and how many backend calls it made."""
    before = len(shop.calls)
    outcome = await shop.attempt(cache.get(user_id, _load(shop, user_id)), f"cache.get({user_id!r}, load)")
    return outcome, len(shop.calls) - before


def _name(outcome: Outcome) -> Any:
    return outcome.value.get("name") if isinstance(outcome.value, dict) else outcome.value


def _expect_value(shop: Shop, outcome: Outcome, name: str, *, why: str | None = None) -> None:
    if outcome.error is not None or outcome.stuck or _name(outcome) != name:
        shop.fail(got=f"cache.get {outcome.describe(shop.module)}",
                  expected=f"the user record named {name!r}", why=why)


@level(4)
def fresh_entry_is_served_without_a_call(ctx: Context) -> None:
    """ttl=60: a get at t=0 loads (100 ms); a get at t=30 answers at once, without a backend call."""
    with _shop(ctx) as shop:
        cache = _cache(shop, ttl=60)

        async def scenario() -> None:
            first, calls = await _get(shop, cache)
            _expect_value(shop, first, "Customer 1")
            if calls != 1 or not same_time(first.end, 0.1):
                shop.fail(got=f"{calls} backend call(s), answered at t={first.end:g}",
                          expected="one call to users, answered at t=0.1")
            await shop.at(30)
            second, calls = await _get(shop, cache)
            _expect_value(shop, second, "Customer 1")
            if calls:
                shop.fail(got=f"{calls} backend call(s) at t=30", expected="none: the entry is 30 s old, ttl is 60 s",
                          why="a fresh entry must be served from the cache")
            if not same_time(second.end, 30):
                shop.fail(got=f"the hit answered at t={second.end:g}", expected="at once, t=30")

        shop.run(scenario())


@level(4)
def entry_expires_at_exactly_ttl(ctx: Context) -> None:
    """ttl=60, instant backend: t=59.999 is a hit, t=60 is a miss (fresh means age < ttl)."""
    with _shop(ctx, latency=None) as shop:
        cache = _cache(shop, ttl=60)

        async def scenario() -> None:
            await _get(shop, cache)
            await shop.at(59.999)
            _, calls = await _get(shop, cache)
            if calls:
                shop.fail(got=f"{calls} backend call(s) at t=59.999", expected="a hit: the entry is still fresh")
            await shop.at(60)
            _, calls = await _get(shop, cache)
            if calls != 1:
                await shop.at(1000)
                _, later = await _get(shop, cache)
                never = ("it never expires: an entry older than its ttl is served as fresh, so a changed "
                         "record is never seen again")
                boundary = "at exactly ttl the entry is stale: fresh means age < ttl, not age <= ttl"
                shop.fail(got=f"no backend call at t=60 (the entry is 60 s old){', nor at t=1000' if not later else ''}",
                          expected="a miss at t=60: one call to users", why=never if not later else boundary)

        shop.run(scenario())


@level(4)
def age_counts_from_the_request(ctx: Context) -> None:
    """The load at t=0 answers at t=0.2: its age counts from t=0, so at t=60 (ttl 60) it is stale."""
    with _shop(ctx, latency=0.2) as shop:
        cache = _cache(shop, ttl=60)

        async def scenario() -> None:
            await _get(shop, cache)
            await shop.at(60)
            _, calls = await _get(shop, cache)
            if calls != 1:
                shop.fail(got="no backend call at t=60: the entry was served as fresh",
                          expected="a miss at t=60: the load started at t=0, so the entry is 60 s old",
                          why="it counts the age from when the answer arrived (t=0.2). RFC 9111 §4.2.3 counts "
                              "it from when the request was sent: the time the answer spent on the way "
                              "makes it older, never younger. Note the time before you await the load")

        shop.run(scenario())


@level(4)
def stale_entry_stands_in_when_the_backend_fails(ctx: Context) -> None:
    """ttl=10, stale_if_error=30; users fails from t=15: gets at 15 and 39.9 serve the stale entry, t=40 raises."""
    with _shop(ctx, latency=None) as shop:
        cache = _cache(shop, ttl=10, stale_if_error=30)

        async def scenario() -> None:
            await _get(shop, cache)
            await shop.at(15)
            shop.fault({"fault": "error", "target": "users", "status": 503})
            outcome, calls = await _get(shop, cache)
            if calls == 0:
                shop.fail(got=f"cache.get {outcome.describe(shop.module)} without asking the backend",
                          expected="a call to users (the entry is stale), which fails, then the stale value",
                          why="it served the stale entry without asking the backend: stale-if-error applies "
                              "only when a refresh has failed; it is not a longer ttl")
            _expect_value(shop, outcome, "Customer 1",
                          why="it did not serve the stale entry when the backend failed (stale-if-error, RFC "
                              "5861): within stale_if_error seconds past its ttl, the old value is better than "
                              "an error")
            await shop.at(39.9)
            outcome, _ = await _get(shop, cache)
            _expect_value(shop, outcome, "Customer 1",
                          why="29.9 s past its ttl, the entry is still within stale_if_error=30")
            await shop.at(40)
            outcome, _ = await _get(shop, cache)
            if outcome.error is None:
                shop.fail(got=f"cache.get {outcome.describe(shop.module)}",
                          expected="the load's error (BackendDown): the entry is 40 s old, and "
                                   "ttl + stale_if_error = 40 s",
                          why="it served an entry staler than stale_if_error allows: past ttl + stale_if_error "
                              "an error must be reported, not hidden behind ever older data")
            if not isinstance(outcome.error, BackendDown):
                shop.fail(got=f"cache.get {outcome.describe(shop.module)}", expected="the load's own BackendDown")

        shop.run(scenario())


@level(4)
def fresh_answer_replaces_the_stale_one(ctx: Context) -> None:
    """A stale entry is refreshed when the backend answers: the new value, even within stale_if_error."""
    with _shop(ctx, latency=None) as shop:
        cache = _cache(shop, ttl=10, stale_if_error=60)

        async def scenario() -> None:
            await _get(shop, cache)
            await shop.at(5)
            shop.world.db("users")["users"]["user-1"]["name"] = "Renamed 1"
            shop.note("t=5  user-1 is renamed 'Renamed 1' in the users database")
            await shop.at(12)
            outcome, calls = await _get(shop, cache)
            _expect_value(shop, outcome, "Renamed 1",
                          why="it served the stale entry although the backend answered: stale-if-error is "
                              "only for when the refresh fails; a success always replaces the entry")
            if calls != 1:
                shop.fail(got=f"{calls} backend calls at t=12", expected="one: the entry is stale")
            await shop.at(13)
            outcome, calls = await _get(shop, cache)
            _expect_value(shop, outcome, "Renamed 1", why="the refreshed entry must be stored")
            if calls:
                shop.fail(got=f"{calls} backend call(s) at t=13", expected="none: the entry was refreshed at t=12")

        shop.run(scenario())


@level(4)
def failures_are_not_cached(ctx: Context) -> None:
    """No entry and users down until t=5: each get raises and asks again; after recovery, the value."""
    with _shop(ctx, latency=None) as shop:
        cache = _cache(shop, ttl=60, stale_if_error=300)
        outage = shop.fault({"fault": "error", "target": "users", "status": 503})

        async def scenario() -> None:
            for when in (0, 1):
                await shop.at(when)
                outcome, calls = await _get(shop, cache)
                if outcome.error is None:
                    shop.fail(got=f"cache.get {outcome.describe(shop.module)}",
                              expected="the load's error: there is nothing cached to fall back on",
                              why="a failure must be raised, not turned into a value")
                if calls != 1:
                    shop.fail(got=f"{calls} backend call(s) at t={when}",
                              expected="one: a failed load is not cached, so every get asks again",
                              why="it cached the failure: the next get must call the backend again, or a "
                                  "recovered backend is not seen until the failure expires")
            await shop.at(5)
            outage.clear()
            shop.note("t=5  users recovers")
            await shop.at(6)
            outcome, _ = await _get(shop, cache)
            _expect_value(shop, outcome, "Customer 1", why="users recovered at t=5")

        shop.run(scenario())


@level(4)
def concurrent_misses_make_one_call(ctx: Context) -> None:
    """Ten gets for the same key at once: one backend call, and all ten get its answer at t=0.1."""
    with _shop(ctx) as shop:
        cache = _cache(shop, ttl=60)

        async def scenario() -> None:
            outcomes = await asyncio.gather(*(_get(shop, cache) for _ in range(10)))
            calls = len(shop.calls)
            if calls != 1:
                shop.fail(got=f"10 concurrent misses made {calls} backend calls",
                          expected="one call, shared by all ten",
                          why="no request coalescing: every miss starts its own load, so when a hot entry "
                              "expires the backend gets the whole burst at once (a cache stampede). Keep "
                              "the load in flight by key and let later callers wait for it")
            for outcome, _ in outcomes:
                _expect_value(shop, outcome, "Customer 1")
                if not same_time(outcome.end, 0.1):
                    shop.fail(got=f"a get answered at t={outcome.end:g}", expected="t=0.1, with the one load")

        shop.run(scenario())


@level(4)
def different_keys_load_side_by_side(ctx: Context) -> None:
    """Gets for user-1 and user-2 at once: one call each, both answered at t=0.1, each its own value."""
    with _shop(ctx) as shop:
        cache = _cache(shop, ttl=60)

        async def scenario() -> None:
            outcomes = await asyncio.gather(*(_get(shop, cache, user) for user in ("user-1", "user-2") * 3))
            for (outcome, _), user in zip(outcomes, ("user-1", "user-2") * 3, strict=True):
                _expect_value(shop, outcome, f"Customer {user.split('-')[1]}",
                              why="each key has its own load: coalescing joins callers of the same key only")
            ends = sorted({round(outcome.end, 9) for outcome, _ in outcomes})
            if ends != [0.1]:
                shop.fail(got=f"answers at t={', '.join(f'{e:g}' for e in ends)}",
                          expected="all at t=0.1: the two loads run side by side",
                          why="loads are serialised by one lock for all keys: a slow key holds up every other")
            if len(shop.calls) != 2:
                shop.fail(got=f"{len(shop.calls)} backend calls", expected="two: one per key")

        shop.run(scenario())


@level(4)
def callers_share_a_failure_then_try_again(ctx: Context) -> None:
    """users-1 answers 503: five coalesced callers all get the error; the next get calls again (users-2)."""
    with _shop(ctx) as shop:
        cache = _cache(shop, ttl=60)
        shop.fault({"fault": "error", "target": "users-1", "status": 503})
        shop.note("(the network takes turns: the 1st call goes to users-1, the 2nd to users-2)")

        async def scenario() -> None:
            outcomes = await asyncio.gather(*(_get(shop, cache) for _ in range(5)))
            if len(shop.calls) != 1:
                shop.fail(got=f"5 concurrent misses made {len(shop.calls)} calls", expected="one shared call")
            for outcome, _ in outcomes:
                if not isinstance(outcome.error, BackendDown):
                    shop.fail(got=f"a coalesced get {outcome.describe(shop.module)}",
                              expected="the shared load's error, BackendDown, for every caller")
            await shop.at(1)
            outcome, calls = await _get(shop, cache)
            if calls != 1:
                shop.fail(got=f"cache.get {outcome.describe(shop.module)} with {calls} backend call(s)",
                          expected="a new call (to users-2), which answers",
                          why="the failed load was kept as if still in flight: remove it when it ends, "
                              "success or failure")
            _expect_value(shop, outcome, "Customer 1")

        shop.run(scenario())


@level(4)
def cancelled_caller_does_not_cancel_the_shared_load(ctx: Context) -> None:
    """The first caller gives up at t=0.05; the second, waiting on the same load, still gets it at t=0.1."""
    with _shop(ctx) as shop:
        cache = _cache(shop, ttl=60)

        async def impatient() -> Outcome:
            return await shop.attempt(asyncio.wait_for(cache.get("user-1", _load(shop, "user-1")), 0.05),
                                      "asyncio.wait_for(cache.get('user-1', load), timeout=0.05)")

        async def scenario() -> None:
            first = asyncio.ensure_future(impatient())
            await asyncio.sleep(0.01)
            second, _ = await _get(shop, cache)
            await first
            if second.error is not None or second.stuck:
                shop.fail(got=f"the second caller's cache.get {second.describe(shop.module)}",
                          expected="the user record at t=0.1, from the load the first caller started",
                          why="the first caller's cancellation cancelled the load for everyone: run the load "
                              "in a task of its own and await it through asyncio.shield, so that a caller "
                              "who gives up stops waiting without stopping the load")
            _expect_value(shop, second, "Customer 1")
            if len(shop.calls) != 1 or not same_time(second.end, 0.1):
                shop.fail(got=f"{len(shop.calls)} backend call(s), answered at t={second.end:g}",
                          expected="one call, answered at t=0.1")

        shop.run(scenario())
