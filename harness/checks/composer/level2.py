"""Level 2: partial responses: a failed part is named and replaced by its default; a required one fails all."""

from __future__ import annotations

from typing import Any

from .. import Context, level
from .scene import Outcome, Shop

GATHER_WHY = ("one failure lost every part: asyncio.gather without return_exceptions=True re-raises the first "
              "error and throws away the answers that did arrive. Catch each part's failure inside that "
              "part's own coroutine")


def _expect_partial(shop: Shop, outcome: Outcome, failed: str, default: Any, mentions: str | None = None) -> Any:
    """The composition keeps every other part, gives ``failed`` its default and an error entry."""
    if outcome.error is not None and not isinstance(outcome.error, shop.module.CompositionFailed):
        shop.fail(got=f"compose {outcome.describe(shop.module)}",
                  expected=f"a Composition with the other parts, {failed!r} replaced by its default "
                           f"and named in errors", why=GATHER_WHY)
    if isinstance(outcome.error, shop.module.CompositionFailed):
        shop.fail(got=f"compose {outcome.describe(shop.module)}",
                  expected=f"a Composition: {failed!r} is not required, so the page goes on without it",
                  why="an optional part's failure must not fail the whole composition")
    composition = shop.expect_composition(outcome)
    reason = composition.errors.get(failed)
    if failed not in composition.errors:
        shop.fail(got=f"composition.errors is {composition.errors!r}",
                  expected=f"an entry for {failed!r} saying why it failed",
                  why="the failure is swallowed: a page that shows no orders cannot tell 'no orders' from "
                      "'orders is down' unless the error is reported (the seed's code returns [] for both)")
    if not isinstance(reason, str) or not reason.strip():
        shop.fail(got=f"errors[{failed!r}] is {reason!r}",
                  expected="a short reason, such as 'orders: HTTP 503'")
    if mentions and mentions not in reason:
        shop.fail(got=f"errors[{failed!r}] is {reason!r}", expected=f"a reason that says what happened ({mentions})")
    if failed not in composition.data or composition.data[failed] != default:
        shop.fail(got=f"data[{failed!r}] is {composition.data.get(failed, '<missing>')!r}",
                  expected=f"the part's default, {default!r}")
    return composition


@level(2)
def failed_part_gets_its_default_and_an_error(ctx: Context) -> None:
    """orders answers 503: the page keeps user and payment methods, orders is [] and named in errors."""
    with Shop(ctx) as shop:
        shop.fault({"fault": "error", "target": "orders", "status": 503})
        outcome = shop.run(shop.compose(shop.composer(), shop.profile("user-7")))
        composition = _expect_partial(shop, outcome, "orders", [], mentions="503")
        for kept in ("user", "payment_methods"):
            if kept in composition.errors or not composition.data.get(kept):
                shop.fail(got=f"data[{kept!r}] is {composition.data.get(kept)!r}, errors {composition.errors!r}",
                          expected=f"{kept!r} as its service answered: it did not fail")
        if set(composition.errors) != {"orders"}:
            shop.fail(got=f"errors is {composition.errors!r}", expected="one entry, for 'orders'")


@level(2)
def empty_answer_is_not_an_error(ctx: Context) -> None:
    """A customer with no orders gets [] and no error; orders being down gets [] *and* an error."""
    with Shop(ctx) as shop:
        healthy = shop.run(shop.compose(shop.composer(), shop.profile("user-9")))
        composition = shop.expect_composition(healthy)
        if composition.errors or composition.data.get("orders") != []:
            shop.fail(got=f"data['orders'] is {composition.data.get('orders')!r}, errors {composition.errors!r}",
                      expected="[] and no errors: user-9 has no orders, and orders said so with a 200")
        shop.fault({"fault": "error", "target": "orders", "status": 500})
        down = shop.run(shop.compose(shop.composer(), shop.profile("user-9")))
        _expect_partial(shop, down, "orders", [], mentions="500")


@level(2)
def every_kind_of_failure_is_a_partial_answer(ctx: Context) -> None:
    """Refused, garbled, 404: each failed part is named in errors; the composition still answers."""
    with Shop(ctx) as shop:
        for instance in shop.world.instances("payments"):
            instance.crash()
        shop.note("payments-1 and payments-2 crashed: connections are refused")
        outcome = shop.run(shop.compose(shop.composer(), shop.profile("user-7")))
        _expect_partial(shop, outcome, "payment_methods", [])
    with Shop(ctx) as shop:
        shop.fault({"fault": "malformed", "target": "orders"})
        outcome = shop.run(shop.compose(shop.composer(), shop.profile("user-7")))
        _expect_partial(shop, outcome, "orders", [])
    with Shop(ctx) as shop:
        Part = ctx.module.Part
        parts = [*shop.profile("user-7"), Part("referrer", "users", "/users/nobody", default={})]
        outcome = shop.run(shop.compose(shop.composer(), parts))
        _expect_partial(shop, outcome, "referrer", {}, mentions="404")


@level(2)
def several_failures_are_each_named(ctx: Context) -> None:
    """orders and payments both fail: both are named, each with its own default."""
    with Shop(ctx) as shop:
        shop.fault({"fault": "error", "target": "orders", "status": 503})
        shop.fault({"fault": "error", "target": "payments", "status": 502})
        outcome = shop.run(shop.compose(shop.composer(), shop.profile("user-7")))
        composition = _expect_partial(shop, outcome, "orders", [], mentions="503")
        _expect_partial(shop, outcome, "payment_methods", [], mentions="502")
        if not composition.data.get("user"):
            shop.fail(got=f"data['user'] is {composition.data.get('user')!r}", expected="the user: users answered")


@level(2)
def required_part_failure_fails_the_composition(ctx: Context) -> None:
    """users answers 503 for the required user: compose raises CompositionFailed naming 'user'."""
    with Shop(ctx) as shop:
        shop.fault({"fault": "error", "target": "users", "status": 503})
        outcome = shop.run(shop.compose(shop.composer(), shop.profile("user-7")))
        failed = shop.module.CompositionFailed
        if not isinstance(outcome.error, failed):
            shop.fail(got=f"compose {outcome.describe(shop.module)}",
                      expected="CompositionFailed: the user is required, so there is no profile page "
                               "without it (a gateway answers 502)",
                      why="a required part is treated like an optional one: a profile without its user "
                          "is not an answer" if outcome.error is None else None)
        errors = getattr(outcome.error, "errors", None)
        if not isinstance(errors, dict) or "503" not in str(errors.get("user", "")):
            shop.fail(got=f"CompositionFailed.errors is {errors!r}",
                      expected="errors naming 'user' with its reason, e.g. {'user': 'users: HTTP 503'}")


@level(2)
def optional_user_is_just_another_part(ctx: Context) -> None:
    """The same failure on a part that is not required gives its default: 'required' decides."""
    with Shop(ctx) as shop:
        shop.fault({"fault": "error", "target": "users", "status": 503})
        outcome = shop.run(shop.compose(shop.composer(), shop.profile("user-7", required_user=False)))
        _expect_partial(shop, outcome, "user", None, mentions="503")
