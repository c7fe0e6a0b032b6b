"""Level 3: active health checks over the harness network.

Each check builds a small shop, registers its instances, and starts the
registry's health-check rounds itself at exact virtual times (``scene.round(t)``),
then looks at what ``resolve`` answers after each round.
"""

from __future__ import annotations

from .. import Context, level
from .scene import HealthScene

ALL3 = ["catalog-1", "catalog-2", "catalog-3"]


@level(3)
def new_instances_wait_for_their_first_passing_check(ctx: Context) -> None:
    """A newly registered instance is not served before a health check has passed."""
    with HealthScene(ctx, healthy_threshold=1) as scene:
        scene.register_all()
        why = ("an instance was served before its first passing check: with health checks, a newcomer "
               "starts unhealthy (Consul starts checks critical), or traffic reaches instances still booting")
        scene.expect_served([], why=why)
        scene.round(0)
        scene.expect_served(ALL3, why="after a passing check (healthy_threshold=1) every instance is served")
        scene.wait_until(5)
        scene.world.add_instance("catalog")
        scene.registry.register("catalog", "catalog-4")
        scene.note("t=5  catalog-4 starts; registry.register('catalog', 'catalog-4')")
        scene.expect_served(ALL3, why=why)
        scene.round(10)
        scene.expect_served([*ALL3, "catalog-4"])


@level(3)
def healthy_threshold_passes_in_a_row_make_a_newcomer_healthy(ctx: Context) -> None:
    """With healthy_threshold=2 a new instance is served after its 2nd passing check."""
    with HealthScene(ctx, healthy_threshold=2) as scene:
        scene.register_all()
        scene.round(0)
        scene.expect_served([], why="healthy_threshold=2: one passing check is not enough yet")
        scene.round(10)
        scene.expect_served(ALL3, why="two passing checks in a row (healthy_threshold=2) make an instance healthy")


@level(3)
def crashed_instance_goes_after_unhealthy_threshold_failures(ctx: Context) -> None:
    """catalog-2 crashes at t=15; with unhealthy_threshold=3 it is dropped by the round at t=40."""
    with HealthScene(ctx, unhealthy_threshold=3) as scene:
        scene.register_all()
        scene.round(0)
        scene.fault({"fault": "crash", "target": "catalog-2"}, at=15)

        def expected(t: float) -> list[str]:
            return ALL3 if t < 40 else ["catalog-1", "catalog-3"]

        def why(t: float, got: list[str]) -> str:
            if "catalog-2" in got:
                return ("catalog-2 refused the checks at t=20, 30 and 40: three failures in a row reach "
                        "unhealthy_threshold=3 (a refused connection is a failed check)")
            return (f"catalog-2 was dropped after {int((t - 10) // 10)} failure(s): it takes "
                    f"unhealthy_threshold=3 failures in a row, so that one lost probe does not remove an instance")

        scene.rounds([10, 20, 30, 40, 50], expected, why=why)


@level(3)
def a_503_from_the_deep_health_check_is_a_failure(ctx: Context) -> None:
    """The users database breaks (deep /health answers 503): both instances go, and come back."""
    with HealthScene(ctx, service="users", instances=2, unhealthy_threshold=2, healthy_threshold=2) as scene:
        both = ["users-1", "users-2"]
        scene.register_all()
        scene.round(0)
        scene.round(1)
        scene.expect_served(both)
        scene.fault({"fault": "unhealthy", "target": "users", "until": 25}, at=5)

        def expected(t: float) -> list[str]:
            return both if t < 20 or t >= 40 else []

        def why(t: float, got: list[str]) -> str:
            if 20 <= t < 25:
                return ("/health answered 503 at t=10 and t=20: a 503 from /health is a failed check. The "
                        "process still answers (a TCP check would pass), but its database does not, and that "
                        "is what a deep health check is for")
            if 25 <= t < 40:
                return ("the database is back at t=25; the check at t=30 is the first pass, and "
                        "healthy_threshold=2 asks for two in a row before serving again")
            return "two passing checks in a row (t=30, t=40) make the instances healthy again"

        scene.rounds([10, 20, 30, 40], expected, why=why)


@level(3)
def a_timeout_is_a_failure_and_ends_the_round_on_time(ctx: Context) -> None:
    """catalog-2 hangs: its probe gives up after health_timeout (2 s) and counts as a failure."""
    with HealthScene(ctx, instances=2, health_timeout=2, unhealthy_threshold=1) as scene:
        scene.register_all()
        scene.round(0)
        scene.fault({"fault": "hang", "target": "catalog-2"}, at=5)
        ended = scene.round(10)
        if ended != 12:
            scene.fail(got=f"the round started at t=10 ended at t={ended:g}",
                       expected="t=12: the probe of the hung instance gives up after health_timeout=2 s",
                       why="pass timeout=self.health_timeout to client.get for every probe")
        scene.expect_served(["catalog-1"],
                            why="the registry treats a timeout as a pass: an instance that does not answer within "
                                "health_timeout has failed its check (RequestTimeout is a NetworkError)")


@level(3)
def probes_run_at_the_same_time(ctx: Context) -> None:
    """Two hung instances cost one health_timeout, not two: the probes run concurrently."""
    with HealthScene(ctx, health_timeout=2, unhealthy_threshold=1) as scene:
        scene.register_all()
        scene.round(0)
        for address in ("catalog-1", "catalog-3"):
            scene.fault({"fault": "hang", "target": address}, at=5)
        ended = scene.round(10)
        if ended != 12:
            scene.fail(got=f"the round started at t=10 ended at t={ended:g}",
                       expected="t=12: every probe runs at the same time, so the round takes one health_timeout",
                       why=("it probes one after another: each hung instance adds a whole health_timeout, and "
                            "with many instances the round outlasts its interval. Start every probe, then "
                            "`await asyncio.gather(...)`") if ended > 12 else None)
        scene.expect_served(["catalog-2"])


@level(3)
def failures_during_the_grace_period_do_not_count(ctx: Context) -> None:
    """grace_period=30: catalog-1's failing checks count from t=30 on, so it goes at t=35."""
    with HealthScene(ctx, instances=2, grace_period=30, unhealthy_threshold=2) as scene:
        scene.register_all()
        scene.round(0)
        scene.fault({"fault": "error", "target": "catalog-1", "route": "GET /health", "status": 503})
        both = ["catalog-1", "catalog-2"]

        def expected(t: float) -> list[str]:
            return both if t < 35 else ["catalog-2"]

        def why(t: float, got: list[str]) -> str:
            if "catalog-1" not in got and t < 30:
                return ("failures during the grace period were counted: for grace_period seconds after it "
                        "registered (t=0 to t=30), an instance's failing checks are ignored, like ECS's "
                        "healthCheckGracePeriodSeconds, so a slow start does not get it thrown out")
            if "catalog-1" not in got:
                return ("catalog-1 went before two failures *after* the grace period: a failure during the grace "
                        "period was counted (t=25?)")
            return ("the grace period covers t=0 up to but not including t=30: the failures at t=30 and t=35 count, "
                    "and two in a row reach unhealthy_threshold=2")

        scene.rounds([5, 10, 15, 20, 25, 30, 35, 40], expected, why=why)


@level(3)
def a_flapping_instance_must_pass_healthy_threshold_in_a_row(ctx: Context) -> None:
    """catalog-3 flaps (down 2 s, up 3 s): never 4 passes in a row, so it stays out until it is stable."""
    with HealthScene(ctx, health_timeout=0.5, healthy_threshold=4, unhealthy_threshold=1) as scene:
        scene.register_all()
        for t in range(4):
            scene.round(t)
        scene.expect_served(ALL3, why="four passing checks in a row (t=0 to t=3) make every instance healthy")
        scene.fault({"fault": "flap", "target": "catalog-3", "down": 2, "up": 3, "until": 30.5}, at=9.5)

        def expected(t: float) -> list[str]:
            return ALL3 if t < 10 or t >= 34 else ["catalog-1", "catalog-2"]

        def why(t: float, got: list[str]) -> str:
            if "catalog-3" in got and t < 34:
                return ("catalog-3 came back after fewer than 4 passing checks *in a row*: while it flaps it "
                        "passes at most 3 in a row (it is up 3 s at a time), so with healthy_threshold=4 it must "
                        "stay out. A failure sets the passes in a row back to 0")
            return "from t=30.5 catalog-3 is stable: the checks at t=31, 32, 33 and 34 make 4 passes in a row"

        scene.rounds(range(4, 36), expected, why=why)


@level(3)
def an_instance_whose_lease_ran_out_is_not_served(ctx: Context) -> None:
    """Health checks add to leases: a healthy instance whose lease ran out is not served."""
    with HealthScene(ctx, instances=2, lease=30) as scene:
        scene.register_all()
        for t in (0, 10, 20):
            scene.round(t)
        scene.wait_until(25)
        scene.registry.renew("catalog", "catalog-1")
        scene.note("t=25  registry.renew('catalog', 'catalog-1')")
        scene.round(29)
        scene.expect_served(["catalog-1", "catalog-2"])
        scene.wait_until(30)
        scene.expect_served(["catalog-1"], why="catalog-2's lease ran out at t=30 (registered at t=0, lease 30 s): "
                                               "passing health checks do not renew a lease")
