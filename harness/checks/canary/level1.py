"""Level 1: weighted routing between two releases, within a stated tolerance, the same per seed.

The tolerance: over 40,000 picks a release's share is within ±1 percentage
point of its weight's share. That is 4 standard deviations of a fair draw at
50 % (sd = 0.25 point), so a correct split fails it for about 6 seeds in
100,000; in the shop, over 1,000 requests, ±4 points (4.2 sd at 10 %).
"""

from __future__ import annotations

import random

from .. import Context, level
from .scene import Scene, Shop

PICKS = 40_000
TOLERANCE = 0.01


def _split(scene: Scene, weights: dict[str, int], seed: int) -> object:
    return scene.call(f"split = TrafficSplit('catalog', {weights}, rng=random.Random({seed}))",
                      scene.module.TrafficSplit, "catalog", weights, rng=random.Random(seed))


def _picks(scene: Scene, split: object, n: int) -> list[str]:
    try:
        return [split.pick_release() for _ in range(n)]
    except NotImplementedError:
        raise
    except Exception as error:
        scene.crashed(f"{n:,} x split.pick_release()", error)


@level(1)
def weights_are_kept_and_validated(ctx: Context) -> None:
    """set_weights replaces every weight; negative or all-zero weights raise ValueError; weights is a copy."""
    scene = Scene(ctx)
    split = _split(scene, {"v1": 90, "v2": 10}, ctx.seed)
    if scene.call("split.weights", lambda: split.weights) != {"v1": 90, "v2": 10}:
        scene.fail(got=f"split.weights is {split.weights!r}", expected="{'v1': 90, 'v2': 10}")
    scene.call("split.set_weights({'v1': 75, 'v2': 25})", split.set_weights, {"v1": 75, "v2": 25})
    scene.call("split.set_weights({'v2': 100})", split.set_weights, {"v2": 100})
    if split.weights != {"v2": 100}:
        scene.fail(got=f"split.weights is {split.weights!r}", expected="{'v2': 100}",
                   why="set_weights must replace every weight, not merge them into the old ones "
                       "(App Mesh's UpdateRoute overwrites the whole route)")
    copy = split.weights
    copy["v1"] = 50
    scene.note("copy = split.weights; copy['v1'] = 50")
    if split.weights != {"v2": 100}:
        scene.fail(got=f"split.weights is now {split.weights!r}", expected="{'v2': 100}: unchanged",
                   why="`weights` hands out the split's own dict: return a copy")
    for bad, why in (({"v1": -10, "v2": 110}, "a negative weight"), ({"v1": 0, "v2": 0}, "no positive weight")):
        try:
            split.set_weights(bad)
        except ValueError:
            scene.note(f"split.set_weights({bad}) -> ValueError")
            continue
        except NotImplementedError:
            raise
        except Exception as error:
            scene.fail(got=f"set_weights({bad}) raised {type(error).__name__}: {error}",
                       expected=f"ValueError: {why}")
        scene.fail(got=f"set_weights({bad}) was accepted", expected=f"ValueError: {why}",
                   why="weights are non-negative integers and at least one is positive; "
                       "with a total of 0 there is no share to draw from")


@level(1)
def shares_follow_the_weights(ctx: Context) -> None:
    """Over 40,000 picks each release's share is its weight over the total, within ±1 percentage point."""
    scene = Scene(ctx)
    for n, weights in enumerate(({"v1": 90, "v2": 10}, {"v1": 75, "v2": 25}, {"v1": 50, "v2": 50},
                                 {"v1": 3, "v2": 1})):
        split = _split(scene, weights, ctx.seed * 10 + n)
        picks = _picks(scene, split, PICKS)
        total = sum(weights.values())
        for release, weight in weights.items():
            share, expected = picks.count(release) / PICKS, weight / total
            if abs(share - expected) > TOLERANCE:
                why = None
                if weights == {"v1": 3, "v2": 1}:
                    why = ("the weights do not add up to 100 here: a release's share is its weight over the "
                           "total of the weights (3 + 1), not its weight in percent")
                elif release == "v2" and abs(share - (1 - expected)) <= TOLERANCE:
                    why = "the shares are swapped: each release must get its own weight's share"
                scene.note(f"{PICKS:,} x split.pick_release() -> {release} picked {picks.count(release):,} times")
                scene.fail(got=f"{release} got {share:.2%} of the picks",
                           expected=f"{expected:.2%} ± {TOLERANCE:.0%} (weight {weight} of {total}; "
                                    f"a fair draw stays within ±1 point in all but 6 seeds in 100,000)",
                           why=why)
        scene.note(f"{PICKS:,} x split.pick_release() -> shares within ±1 point")


@level(1)
def zero_weight_never_and_all_the_weight_always(ctx: Context) -> None:
    """A release with weight 0 is never picked; a release with all the weight always is."""
    scene = Scene(ctx)
    for weights, never in (({"v1": 100, "v2": 0}, "v2"), ({"v1": 0, "v2": 100}, "v1"),
                           ({"v1": 0, "v2": 1}, "v1")):
        split = _split(scene, weights, ctx.seed)
        picks = _picks(scene, split, 2_000)
        wrong = picks.count(never)
        scene.note(f"2,000 x split.pick_release() -> {never} picked {wrong} times")
        if wrong:
            scene.fail(got=f"{never}, with weight 0, was picked {wrong} times out of 2,000",
                       expected="never: a rolled-back canary has weight 0 and must get no request at all",
                       why="the draw includes its upper end (randint(0, total), or <= instead of <): "
                           "draw a point in [0, total), e.g. rng.random() * total, and compare with <")


@level(1)
def the_same_seed_routes_the_same_way(ctx: Context) -> None:
    """Two splits with generators of the same seed pick the same releases; only ``rng`` is used."""
    scene = Scene(ctx)
    saved = random.getstate()
    try:
        runs = []
        for shift in (1, 2):
            split = _split(scene, {"v1": 50, "v2": 50}, ctx.seed)
            random.seed(ctx.seed + shift)  # the global generator in another state each time
            scene.note(f"random.seed({ctx.seed + shift})  # the global generator, not the split's")
            runs.append(_picks(scene, split, 1_000))
        other = _picks(scene, _split(scene, {"v1": 50, "v2": 50}, ctx.seed + 1), 1_000)
    finally:
        random.setstate(saved)
    first_difference = next((i for i, (a, b) in enumerate(zip(*runs, strict=True)) if a != b), None)
    if first_difference is not None:
        scene.fail(got=f"the two splits differ from pick {first_difference + 1} on",
                   expected="the same 1,000 picks: same seed, same routing",
                   why="the split draws from the global `random` module (or the wall clock) instead of "
                       "the `rng` it was given: use self.rng.random()")
    if runs[0] == other:
        scene.fail(got="a split with another seed made exactly the same 1,000 picks",
                   expected="different picks for a different seed",
                   why="the picks do not come from `rng` at all")


@level(1)
def routes_requests_by_release_in_the_shop(ctx: Context) -> None:
    """As the balancer, 10 % of 1,000 catalog requests reach v2 (±4 points), v1's instances share the rest."""
    with Shop(ctx, users=True) as shop:
        world = shop.world
        shop.install_split({"v1": 90, "v2": 10})
        client = world.client("customer")

        async def browse() -> list[int]:
            statuses = []
            for _ in range(1_000):
                statuses.append((await client.get("catalog", "/products/sku-1")).status)
            for n in range(20):
                statuses.append((await client.get("users", f"/users/user-{n + 1}")).status)
            return statuses

        try:
            statuses = world.run(browse())
        except NotImplementedError:
            raise
        except Exception as error:
            shop.crashed("1,000 x GET catalog /products/sku-1", error, "every request is routed to an instance")
        shop.note("1,000 x GET catalog /products/sku-1, then 20 x GET users /users/user-N")
        counts = {address: len(world.recorder.select(instance=address))
                  for address in ("catalog-1", "catalog-2", "catalog-3", "users-1", "users-2")}
        shop.note(f"requests per instance: {counts}")
        canary_share = counts["catalog-3"] / 1_000
        if abs(canary_share - 0.10) > 0.04:
            shop.fail(got=f"catalog-3 (v2) answered {canary_share:.1%} of the catalog requests",
                      expected="10 % ± 4 points (weight 10 of 100; 4 standard deviations over 1,000 requests)",
                      why="requests are not routed by the release's weight: pick a release, then an "
                          "instance whose `release` is that release")
        v1 = counts["catalog-1"] + counts["catalog-2"]
        if v1 and not 0.45 <= counts["catalog-1"] / v1 <= 0.55:
            shop.fail(got=f"catalog-1 answered {counts['catalog-1']} and catalog-2 {counts['catalog-2']} "
                          "of the v1 requests",
                      expected="about half each: take turns among the chosen release's instances")
        if counts["users-1"] + counts["users-2"] != 20 or not counts["users-1"] or not counts["users-2"] \
                or any(s != 200 for s in statuses[1_000:]):
            shop.fail(got=f"users-1 answered {counts['users-1']}, users-2 {counts['users-2']} of 20 "
                          f"requests to users, statuses {sorted(set(statuses[1_000:]))}",
                      expected="20 answers of 200, shared between users-1 and users-2",
                      why="the split must leave other services alone: round-robin over their instances")
