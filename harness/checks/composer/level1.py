"""Level 1: parallel fan-out: the latency of the slowest call, not the sum."""

from __future__ import annotations

from .. import Context, level
from .scene import Shop, first_difference, same_time

SEQUENTIAL_WHY = ("it calls the parts one after another (sequential): each await waits for the previous "
                  "answer before the next call even starts. Start every call first, then wait for all of "
                  "them (asyncio.gather or asyncio.TaskGroup)")


@level(1)
def returns_every_part_by_name(ctx: Context) -> None:
    """compose returns each part's JSON under the part's name, and no errors."""
    with Shop(ctx) as shop:
        shop.seed_orders("user-7", [[("sku-1", 2)], [("sku-3", 1), ("sku-4", 1)]])
        shop.seed_orders("user-8", [[("sku-2", 1)]])  # someone else's: the params pick user-7's
        parts = shop.profile("user-7")
        outcome = shop.run(shop.compose(shop.composer(), parts))
        composition = shop.expect_composition(outcome)
        expected = {part.name: shop.expected(part.service, part.path, part.params) for part in parts}
        difference = first_difference(composition.data, expected)
        if difference:
            shop.fail(got=f"composition.data differs {difference}",
                      expected="data maps each part's name to the JSON its service answered "
                               "(GET service path, with the part's params as the query)")
        if composition.errors:
            shop.fail(got=f"composition.errors is {composition.errors!r}",
                      expected="{} : every service answered 200")


@level(1)
def fans_out_in_parallel(ctx: Context) -> None:
    """With the seed's times (100, 150, 120 ms) the composition takes 150 ms, not 370 ms."""
    with Shop(ctx) as shop:
        outcome = shop.run(shop.compose(shop.composer(), shop.profile("user-123")))
        shop.expect_composition(outcome)
        if same_time(outcome.end, 0.370):
            shop.fail(got=f"compose took {outcome.end * 1000:g} ms = 100 + 150 + 120 ms",
                      expected="150 ms, the slowest of the three calls", why=SEQUENTIAL_WHY)
        shop.expect_end(outcome, 0.150, what="the slowest part (orders, 150 ms), all three called at once",
                        why=None if outcome.end < 0.370 else SEQUENTIAL_WHY)


@level(1)
def starts_every_call_at_once(ctx: Context) -> None:
    """Each part is called exactly once, and every call starts at t=0."""
    with Shop(ctx) as shop:
        parts = shop.profile("user-123")
        outcome = shop.run(shop.compose(shop.composer(), parts))
        shop.expect_composition(outcome)
        called = sorted(call.target for call in shop.calls)
        if called != sorted(part.service for part in parts):
            shop.fail(got=f"calls to {called}", expected="one call to each of users, orders, payments")
        late = [call for call in shop.calls if call.start > 0]
        if late:
            shop.fail(got=f"the call to {late[0].target} started at t={late[0].start:g}",
                      expected="all three calls start at t=0", why=SEQUENTIAL_WHY)


@level(1)
def takes_the_slowest_of_many_parts(ctx: Context) -> None:
    """Parts with random latencies (seeded): the composition ends with the slowest one."""
    rng = ctx.rng
    latencies = {f"user-{n}": rng.randint(10, 400) / 1000 for n in rng.sample(range(1, 51), rng.randint(3, 6))}
    with Shop(ctx, times={}, instances={"users": 1}) as shop:
        for user_id, seconds in latencies.items():
            shop.fault({"fault": "latency", "target": "users", "route": f"GET /users/{user_id}",
                        "dist": "constant", "value": seconds},
                       note=f"GET /users/{user_id} takes {seconds * 1000:g} ms")
        parts = [ctx.module.Part(user_id, "users", f"/users/{user_id}") for user_id in latencies]
        outcome = shop.run(shop.compose(shop.composer(), parts))
        composition = shop.expect_composition(outcome)
        slowest, total = max(latencies.values()), sum(latencies.values())
        if same_time(outcome.end, total):
            shop.fail(got=f"compose took {outcome.end * 1000:g} ms, the sum of the parts' latencies",
                      expected=f"{slowest * 1000:g} ms, the slowest part", why=SEQUENTIAL_WHY)
        one_after_another = len({call.start for call in shop.calls}) > 1
        shop.expect_end(outcome, slowest, what=f"the slowest of the {len(parts)} parts",
                        why=SEQUENTIAL_WHY if one_after_another else None)
        missing = [name for name in latencies if (composition.data.get(name) or {}).get("id") != name]
        if missing:
            shop.fail(got=f"data[{missing[0]!r}] is {composition.data.get(missing[0])!r}",
                      expected=f"the user {missing[0]} as users answered")
