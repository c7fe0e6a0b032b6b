"""Level 5: panic. When most of a service vanishes from one answer to the next, keep the last known set.

Envoy's panic threshold, on the caller's side: a fresh answer that keeps fewer
than ``panic_threshold`` of the instances last known is more likely a broken
view (a registry cut off from the heartbeats, a shared dependency failing
every deep health check) than a broken fleet.
"""

from __future__ import annotations

from collections import Counter

from harness.http import ConnectError

from .. import Context, level
from .scene import ClientScene, show

CATALOG4 = ["catalog-1", "catalog-2", "catalog-3", "catalog-4"]


def picks_after_refresh(scene: ClientScene, count: int, *, at: float = 10) -> list[str]:
    """Picks at t=0 (the first answer), then ``count`` picks at ``at`` (a fresh answer)."""
    scene.picks("catalog", 4)
    scene.wait_until(at)
    return scene.picks("catalog", count)


@level(5)
def a_single_loss_is_believed(ctx: Context) -> None:
    """4 instances, then 3: one instance gone is no reason to panic."""
    with ClientScene(ctx, {"catalog": 4}, ttl=10, panic_threshold=0.5) as scene:
        scene.answer("catalog", ["catalog-1", "catalog-2", "catalog-4"], at=5)
        got = picks_after_refresh(scene, 6)
        if "catalog-3" in got:
            scene.fail(got=f"after the refresh at t=10, picks {show(got)}",
                       expected="only catalog-1, catalog-2 and catalog-4: 3 of 4 is above the 0.5 threshold",
                       why="it panics on a single loss: panic only when the instances that stay are fewer than "
                           "panic_threshold × the instances last known")


@level(5)
def a_mass_loss_keeps_the_last_known_set(ctx: Context) -> None:
    """4 instances, then only catalog-2: keep picking all four."""
    with ClientScene(ctx, {"catalog": 4}, ttl=10, panic_threshold=0.5) as scene:
        scene.answer("catalog", ["catalog-2"], at=5)
        got = picks_after_refresh(scene, 8)
        if Counter(got) != Counter(CATALOG4 * 2):
            scene.fail(got=f"after the refresh at t=10, picks {show(got)}",
                       expected="each of the 4 last known instances twice: 1 of 4 left is below the 0.5 "
                                "threshold, so the client panics and keeps its last known set",
                       why="the panic threshold never triggers: when a fresh answer keeps fewer than "
                           "panic_threshold of the instances last known, keep those instead of sending "
                           "everything to the survivor")


@level(5)
def exactly_the_threshold_is_no_panic(ctx: Context) -> None:
    """4 instances, then 2: half of them stayed, which is not *fewer* than 0.5."""
    with ClientScene(ctx, {"catalog": 4}, ttl=10, panic_threshold=0.5) as scene:
        scene.answer("catalog", ["catalog-1", "catalog-2"], at=5)
        got = picks_after_refresh(scene, 4)
        if set(got) != {"catalog-1", "catalog-2"}:
            scene.fail(got=f"after the refresh at t=10, picks {show(got)}",
                       expected="only catalog-1 and catalog-2: 2 of 4 stayed, exactly the threshold",
                       why="it panicked at exactly the threshold: panic when fewer than panic_threshold stay "
                           "(staying < threshold × known), as Envoy does below its panic threshold")


@level(5)
def panic_ends_when_the_registry_recovers(ctx: Context) -> None:
    """After a panic, an answer with 3 of the 4 is believed again."""
    with ClientScene(ctx, {"catalog": 4}, ttl=10, panic_threshold=0.5) as scene:
        scene.answer("catalog", ["catalog-2"], at=5)
        scene.answer("catalog", ["catalog-1", "catalog-2", "catalog-3"], at=15)
        picks_after_refresh(scene, 4)
        scene.wait_until(20)
        got = scene.picks("catalog", 6)
        if "catalog-4" in got:
            scene.fail(got=f"after the refresh at t=20, picks {show(got)}",
                       expected="only catalog-1, catalog-2 and catalog-3: 3 of the 4 known stayed",
                       why="it never leaves panic: judge every fresh answer against the set the client holds, "
                           "and believe it again as soon as enough of that set is back")


@level(5)
def newcomers_join_a_panicking_set(ctx: Context) -> None:
    """During a panic, a new instance in the fresh answer is added to the kept set."""
    with ClientScene(ctx, {"catalog": 4}, ttl=10, panic_threshold=0.5) as scene:
        scene.answer("catalog", ["catalog-2", "catalog-5"], at=5)
        got = picks_after_refresh(scene, 10)
        if Counter(got) != Counter([*CATALOG4, "catalog-5"] * 2):
            scene.fail(got=f"after the refresh at t=10, picks {show(got)}",
                       expected="the 4 last known instances and the newcomer catalog-5, each twice",
                       why="the newcomers were dropped (or the panic did not trigger): keep the last known "
                           "set and add the instances of the fresh answer that are new")


@level(5)
def no_threshold_no_panic(ctx: Context) -> None:
    """Without panic_threshold (None, the default) the fresh answer is always believed."""
    with ClientScene(ctx, {"catalog": 4}, ttl=10) as scene:
        scene.answer("catalog", ["catalog-2"], at=5)
        got = picks_after_refresh(scene, 3)
        if got != ["catalog-2"] * 3:
            scene.fail(got=f"after the refresh at t=10, picks {show(got)}", expected="catalog-2 three times",
                       why="panic_threshold=None turns panic off: level 4's behaviour, unchanged")


@level(5)
def requests_keep_flowing_through_a_registry_blackout(ctx: Context) -> None:
    """The registry loses every catalog instance at t=5 (cut off from their heartbeats); they are fine."""
    with ClientScene(ctx, {"catalog": 3}, ttl=10, panic_threshold=0.5) as scene:
        scene.answer("catalog", [], at=5)
        for at in (0, 12, 25):
            scene.wait_until(at)
            response, error = scene.request("GET", "catalog", "/products", timeout=1)
            if error is not None or response.status != 200:
                got = f"raised {type(error).__name__}: {error}" if error is not None else str(response.status)
                scene.fail(got=f"the request at t={at} {got}",
                           expected="200: the instances are up; only the registry's view is empty",
                           why="the panic threshold never triggers on an empty answer: 0 of 3 stayed, which is "
                               "fewer than panic_threshold × 3, so keep the last known set"
                               if isinstance(error, ConnectError) else None)
