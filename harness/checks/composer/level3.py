"""Level 3: one overall deadline that includes retries; late calls cancelled; no task left running."""

from __future__ import annotations

from .. import Context, level
from .scene import PROFILE, SEED_TIMES, Shop, same_time

ADDS_UP_WHY = ("per-attempt timeouts add up beyond the deadline: each attempt got its full timeout however "
               "little time was left. Give each attempt min(attempt_timeout, deadline_at - now)")
PAST_DEADLINE_WHY = ("it waited past the deadline: a per-call timeout (the seed's 5 s) is not a deadline for the "
                     "page. Fix deadline_at = now + deadline once, and give each call the time left")
AFTER_WHY = ("retried after the deadline: once the time is up no attempt may start (check the time left "
             "before every attempt, and stop retrying when compose returns)")


@level(3)
def deadline_cuts_a_hanging_part(ctx: Context) -> None:
    """payments hangs: with deadline=0.5 compose returns at exactly t=0.5, without payment methods."""
    with Shop(ctx) as shop:
        shop.fault({"fault": "hang", "target": "payments"})
        outcome = shop.run(shop.compose(shop.composer(deadline=0.5), shop.profile("user-7")))
        composition = shop.expect_composition(outcome)
        if outcome.end > 0.5 + 1e-9:
            shop.fail(got=f"compose {outcome.describe(shop.module)}",
                      expected="it returns at t=0.5: deadline=0.5 bounds the whole composition",
                      why=PAST_DEADLINE_WHY)
        shop.expect_end(outcome, 0.5, what="the deadline; payments never answers, so compose waits for it "
                                           "until the time is up")
        reason = composition.errors.get("payment_methods", "")
        if not any(word in str(reason) for word in ("deadline", "timeout", "timed out")):
            shop.fail(got=f"composition.errors is {composition.errors!r}",
                      expected="errors['payment_methods'] saying it ran out of time, e.g. "
                               "'payments: deadline exceeded (0.5 s)'")
        if composition.data.get("payment_methods") != [] or not composition.data.get("user"):
            shop.fail(got=f"composition.data is {composition.data!r}"[:200],
                      expected="the user and orders as answered, payment_methods [] (its default)")
        shop.expect_no_leftovers()


@level(3)
def no_task_left_running_after_the_deadline(ctx: Context) -> None:
    """orders takes 2 s: at the 0.3 s deadline its call is cancelled, and nothing of compose keeps running."""
    times = dict(SEED_TIMES, orders=("GET /orders", 2.0))
    with Shop(ctx, times=times) as shop:
        composer = shop.composer(deadline=0.3)

        async def scenario() -> None:
            outcome = await shop.compose(composer, shop.profile("user-7"))
            shop.expect_composition(outcome)
            shop.expect_end(outcome, 0.3, what="the deadline",
                            why=PAST_DEADLINE_WHY if outcome.end > 0.3 + 1e-9 else None)
            shop.expect_no_leftovers()
            await shop.at(5.0)
            late = [call for call in shop.calls if call.start >= 0.3 - 1e-9]
            if late:
                shop.fail(got=f"a call started after compose had returned: {late[0].describe()}",
                          expected="no call after t=0.3", why=AFTER_WHY)

        shop.run(scenario())


@level(3)
def retries_a_failed_part_after_its_backoff(ctx: Context) -> None:
    """orders-1 answers 503, orders-2 works: with retries=2, backoff=0.05 the retry at t=0.2 gets the orders."""
    with Shop(ctx, instances={**PROFILE, "orders": 2}) as shop:
        shop.fault({"fault": "error", "target": "orders-1", "status": 503})
        shop.note("(the network takes turns: the 1st call to orders goes to orders-1, the 2nd to orders-2)")
        composer = shop.composer(deadline=1.0, retries=2, backoff=0.05)
        outcome = shop.run(shop.compose(composer, shop.profile("user-7")))
        composition = shop.expect_composition(outcome)
        starts = [call.start for call in shop.calls if call.target == "orders"]
        if len(starts) == 1:
            shop.fail(got=f"one call to orders; errors {composition.errors!r}",
                      expected="a retry after the 503, which orders-2 answers",
                      why="it did not retry: a 5xx may be one bad instance, and retries=2 allows two more attempts")
        if len(starts) != 2 or not same_time(starts[1], 0.2):
            shop.fail(got=f"calls to orders started at t={', '.join(f'{s:g}' for s in starts)}",
                      expected="two: t=0, and t=0.2 (the 503 came at t=0.15, then the 0.05 s backoff)",
                      why="the retry must wait `backoff` seconds after the failed attempt")
        if "orders" in composition.errors or composition.data.get("orders") is None:
            shop.fail(got=f"errors {composition.errors!r}", expected="no error: the retry succeeded")
        shop.expect_end(outcome, 0.35, what="the retry answers 150 ms after it started at t=0.2")


@level(3)
def attempt_timeouts_never_add_up_past_the_deadline(ctx: Context) -> None:
    """orders hangs; deadline 0.5, retries 3, attempt_timeout 0.3: attempts at t=0 and t=0.3, done at t=0.5."""
    with Shop(ctx) as shop:
        shop.fault({"fault": "hang", "target": "orders"})
        composer = shop.composer(deadline=0.5, retries=3, attempt_timeout=0.3)
        outcome = shop.run(shop.compose(composer, shop.profile("user-7")))
        composition = shop.expect_composition(outcome)
        over = [call for call in shop.calls
                if call.timeout is None or call.start + call.timeout > 0.5 + 1e-9]
        if outcome.end > 0.5 + 1e-9:
            shop.fail(got=f"compose {outcome.describe(shop.module)}",
                      expected="it returns at t=0.5, the deadline, retries included", why=ADDS_UP_WHY)
        if over:
            shop.fail(got=f"an attempt could outlive the deadline: {over[0].describe()}",
                      expected="every attempt's timeout ends by t=0.5", why=ADDS_UP_WHY)
        starts = [call.start for call in shop.calls if call.target == "orders"]
        if len(starts) < 2 or not (same_time(starts[0], 0.0) and same_time(starts[1], 0.3)):
            shop.fail(got=f"calls to orders started at t={', '.join(f'{s:g}' for s in starts)}",
                      expected="t=0 (timed out at t=0.3, its attempt_timeout) and t=0.3 (cut at t=0.5)",
                      why="an attempt may take at most attempt_timeout; a timed-out attempt is retried")
        shop.expect_end(outcome, 0.5, what="the deadline")
        if "orders" not in composition.errors:
            shop.fail(got=f"errors {composition.errors!r}", expected="an entry for 'orders': it never answered")


@level(3)
def no_attempt_starts_once_the_time_is_up(ctx: Context) -> None:
    """orders hangs, retries=5: no attempt starts at or after the deadline, then or later."""
    with Shop(ctx) as shop:
        shop.fault({"fault": "hang", "target": "orders"})
        composer = shop.composer(deadline=0.5, retries=5, attempt_timeout=0.25)

        async def scenario() -> None:
            outcome = await shop.compose(composer, shop.profile("user-7"))
            shop.expect_composition(outcome)
            await shop.at(3.0)
            shop.note("t=3  (the check waited on, watching for late calls)")
            late = [call for call in shop.calls if call.start >= 0.5 - 1e-9]
            if late:
                shop.fail(got=f"a call started at t={late[0].start:g}: {late[0].describe()}",
                          expected="every attempt starts before t=0.5, the deadline", why=AFTER_WHY)

        shop.run(scenario())


@level(3)
def backoff_that_reaches_the_deadline_is_not_taken(ctx: Context) -> None:
    """orders fails at t=0; a 0.4 s backoff would end after the 0.3 s deadline: give up at once."""
    times = {"users": SEED_TIMES["users"], "payments": SEED_TIMES["payments"]}
    with Shop(ctx, times=times) as shop:
        shop.fault({"fault": "error", "target": "orders", "status": 503})
        composer = shop.composer(deadline=0.3, retries=2, backoff=0.4)
        outcome = shop.run(shop.compose(composer, shop.profile("user-7")))
        composition = shop.expect_composition(outcome)
        if outcome.end > 0.12 + 1e-9:
            shop.fail(got=f"compose {outcome.describe(shop.module)}",
                      expected="it returns at t=0.12 (payments, the slowest answer): the retry of orders "
                               "could only start at t=0.4, after the deadline",
                      why="it slept into the deadline: a backoff that ends at or after the deadline can never "
                          "lead to a retry, so it only makes the customer wait. Fail the part at once with "
                          "its last error")
        shop.expect_end(outcome, 0.12, what="payments, the slowest answer")
        if "503" not in str(composition.errors.get("orders", "")):
            shop.fail(got=f"errors {composition.errors!r}",
                      expected="errors['orders'] with its last error (HTTP 503)")


@level(3)
def client_errors_are_not_retried(ctx: Context) -> None:
    """A 404 will not change on a second try: with retries=3 it is asked once."""
    with Shop(ctx) as shop:
        parts = [*shop.profile("user-7"), ctx.module.Part("referrer", "users", "/users/nobody", default={})]
        outcome = shop.run(shop.compose(shop.composer(retries=3), parts))
        shop.expect_composition(outcome)
        asked = [call for call in shop.calls if call.path == "/users/nobody"]
        if len(asked) != 1:
            shop.fail(got=f"GET /users/nobody was asked {len(asked)} times",
                      expected="once: a 404 is an answer, not a failure of the network",
                      why="it retried a 404: retry 5xx and network errors only; a 4xx says the request is "
                          "wrong, and it stays wrong")


@level(3)
def required_failure_stops_the_rest_at_once(ctx: Context) -> None:
    """users answers 503 at t=0 while orders hangs: CompositionFailed at t=0, and nothing left running."""
    times = {"orders": SEED_TIMES["orders"], "payments": SEED_TIMES["payments"]}
    with Shop(ctx, times=times) as shop:
        shop.fault({"fault": "error", "target": "users", "status": 503})
        shop.fault({"fault": "hang", "target": "orders"})
        outcome = shop.run(shop.compose(shop.composer(deadline=1.0), shop.profile("user-7")))
        if not isinstance(outcome.error, shop.module.CompositionFailed):
            shop.fail(got=f"compose {outcome.describe(shop.module)}",
                      expected="CompositionFailed: the required user failed")
        if outcome.end > 1e-9:
            shop.fail(got=f"compose {outcome.describe(shop.module)}",
                      expected="CompositionFailed at t=0, as soon as the required part failed",
                      why="it waited for the other parts after the required part 'user' had failed: nothing "
                          "they return can make a page now. Cancel them (an asyncio.TaskGroup does it when "
                          "a task raises)")
        shop.expect_no_leftovers(after="compose raised")
