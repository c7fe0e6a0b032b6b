"""Level 5: a backend for frontend per client (mobile: minimal; web: rich) and no N+1 product lookups."""

from __future__ import annotations

from typing import Any

from .. import Context, level
from .scene import WITH_CATALOG, Outcome, Shop, first_difference, same_time

USER = "user-7"


def _shop(ctx: Context) -> tuple[Shop, dict[str, int]]:
    """The shop with user-7's orders: several order lines share products (seeded)."""
    rng = ctx.rng
    shop = Shop(ctx, instances=WITH_CATALOG)
    products = [f"sku-{n}" for n in rng.sample(range(1, 10), rng.randint(3, 5))]
    baskets: list[list[tuple[str, int]]] = []
    lines = 0
    while lines < len(products) + 3 or {sku for basket in baskets for sku, _ in basket} != set(products):
        basket = [(sku, rng.randint(1, 3)) for sku in rng.sample(products, rng.randint(1, min(3, len(products))))]
        baskets.append(basket)
        lines += len(basket)
    shop.seed_orders(USER, baskets)
    shop.seed_orders("user-8", [[("sku-10", 1)]])
    return shop, {"lines": lines, "products": len(products)}


async def _page(shop: Shop, kind: str) -> Outcome:
    composer = shop.composer()
    return await shop.attempt(shop.module.profile_page(composer, USER, kind),
                              f"profile_page(composer, {USER!r}, {kind!r})")


def _page_now(shop: Shop, kind: str) -> Outcome:
    return shop.run(_page(shop, kind))


def _expected(shop: Shop, kind: str) -> dict[str, Any]:
    user = shop.expected("users", f"/users/{USER}")
    orders = shop.expected("orders", "/orders", {"user_id": USER})
    methods = shop.expected("payments", "/payment-methods", {"user_id": USER})
    if kind == "mobile":
        return {"user": {"id": user["id"], "name": user["name"]},
                "orders": [{"id": o["id"], "status": o["status"], "amount": o["amount"]} for o in orders],
                "payment_methods": [{"brand": m["brand"], "last4": m["last4"]} for m in methods],
                "errors": {}}
    details = {}
    for order in orders:
        for item in order["items"]:
            details.setdefault(item["sku"], shop.expected("catalog", f"/products/{item['sku']}"))
    rich = [{**o, "items": [{"sku": i["sku"], "qty": i["qty"], "name": details[i["sku"]]["name"],
                             "price": details[i["sku"]]["price"]} for i in o["items"]]} for o in orders]
    return {"user": user, "orders": rich, "payment_methods": methods, "errors": {}}


def _expect_page(shop: Shop, outcome: Outcome) -> dict:
    if outcome.error is not None or outcome.stuck or not isinstance(outcome.value, dict):
        shop.fail(got=f"profile_page {outcome.describe(shop.module)}", expected="the page, a dict")
    return outcome.value


def _catalog_calls(shop: Shop) -> list:
    return [call for call in shop.calls if call.target == "catalog"]


@level(5)
def mobile_gets_only_the_minimal_fields(ctx: Context) -> None:
    """The mobile page has exactly the fields in MOBILE_FIELDS, nothing else."""
    shop, _ = _shop(ctx)
    with shop:
        page = _expect_page(shop, _page_now(shop, "mobile"))
        difference = first_difference(page, _expected(shop, "mobile"))
        if difference:
            why = None
            if "unexpected field" in difference:
                why = ("it sends web fields to mobile: every extra byte crosses a slow, metered radio link "
                       "for a screen that does not show it. Pick MOBILE_FIELDS and nothing else")
            shop.fail(got=f"the mobile page differs {difference}",
                      expected="user {id, name}; orders [{id, status, amount}]; payment_methods [{brand, last4}]; "
                               "errors {}", why=why)


@level(5)
def web_gets_orders_with_product_details(ctx: Context) -> None:
    """The web page has everything, and each order line carries its product's name and price."""
    shop, _ = _shop(ctx)
    with shop:
        page = _expect_page(shop, _page_now(shop, "web"))
        difference = first_difference(page, _expected(shop, "web"))
        if difference:
            shop.fail(got=f"the web page differs {difference}",
                      expected="user, orders and payment methods as the services sent them, each order line "
                               "as {sku, qty, name, price} with the catalog's name and price; errors {}")


@level(5)
def one_catalog_call_per_distinct_product(ctx: Context) -> None:
    """The web page asks the catalog once per distinct product, not once per order line (N+1)."""
    shop, counts = _shop(ctx)
    with shop:
        _expect_page(shop, _page_now(shop, "web"))
        calls = _catalog_calls(shop)
        if len(calls) > counts["products"]:
            per_line = len(calls) >= counts["lines"]
            shop.fail(got=f"{len(calls)} catalog calls for {counts['lines']} order lines of "
                          f"{counts['products']} distinct products",
                      expected=f"at most {counts['products']}: one per distinct product (or one batch call)",
                      why=("one catalog call per order line: the N+1 problem (one call for the orders, then one "
                           "more per line). Collect every SKU first, drop the repeats, then look them up"
                           if per_line else "some products were looked up twice: drop the repeats across "
                                            "all orders, not order by order"))
        if not calls:
            shop.fail(got="no catalog call", expected="the products' details come from the catalog")


@level(5)
def product_lookups_run_side_by_side(ctx: Context) -> None:
    """The lookups start together after the composition: the web page takes 150 + 50 = 200 ms."""
    shop, _ = _shop(ctx)
    with shop:
        outcome = _page_now(shop, "web")
        _expect_page(shop, outcome)
        if not same_time(outcome.end, 0.2):
            starts = sorted({round(call.start, 9) for call in _catalog_calls(shop)})
            why = None
            if len(starts) > 1:
                why = ("it looked the products up one after another: each lookup waits for the previous one. "
                       "Start them all, then wait (asyncio.gather)")
            elif len({call.start for call in shop.calls if call.target != "catalog"}) > 1:
                why = "the composition itself calls its parts one after another (level 1)"
            shop.fail(got=f"the web page took {outcome.end * 1000:g} ms; catalog calls started at "
                          f"t={', '.join(f'{s:g}' for s in starts)}",
                      expected="200 ms: the composition (150 ms), then every product lookup at once (50 ms)",
                      why=why)


@level(5)
def mobile_makes_no_catalog_call(ctx: Context) -> None:
    """The mobile page shows no order lines, so it asks the catalog nothing."""
    shop, _ = _shop(ctx)
    with shop:
        _expect_page(shop, _page_now(shop, "mobile"))
        calls = _catalog_calls(shop)
        if calls:
            shop.fail(got=f"{len(calls)} catalog call(s) for the mobile page", expected="none",
                      why="it fetched product details the mobile page never shows: a BFF fetches what its "
                          "client needs, and nothing more")


@level(5)
def errors_survive_shaping(ctx: Context) -> None:
    """orders answers 503: both pages say so in errors, with orders [] and no catalog call."""
    for kind in ("mobile", "web"):
        shop, _ = _shop(ctx)
        with shop:
            shop.fault({"fault": "error", "target": "orders", "status": 503})
            page = _expect_page(shop, _page_now(shop, kind))
            errors = page.get("errors")
            if not isinstance(errors, dict) or "503" not in str(errors.get("orders", "")):
                shop.fail(got=f"the {kind} page's errors are {errors!r}",
                          expected="errors['orders'] from the composition, e.g. 'orders: HTTP 503'",
                          why="the BFF dropped the composition's errors: a client that cannot see them shows "
                              "'no orders' when orders is down")
            if page.get("orders") != []:
                shop.fail(got=f"the {kind} page's orders are {page.get('orders')!r}", expected="[] (the default)")
            if _catalog_calls(shop):
                shop.fail(got="catalog calls without any order line", expected="none")


@level(5)
def failed_product_lookup_degrades_its_lines(ctx: Context) -> None:
    """catalog answers 503: the web page still comes, its lines without name and price, each SKU named."""
    shop, _ = _shop(ctx)
    with shop:
        shop.fault({"fault": "error", "target": "catalog", "status": 503})
        page = _expect_page(shop, _page_now(shop, "web"))
        lines = [item for order in page.get("orders", []) for item in order.get("items", [])]
        bad = [item for item in lines if item.get("name") is not None or item.get("price") is not None
               or set(item) != {"sku", "qty", "name", "price"}]
        if not lines or bad:
            shop.fail(got=f"order lines {(bad or lines)[:2]!r}",
                      expected="every line as {sku, qty, name: None, price: None}")
        skus = sorted({item["sku"] for item in lines})
        reason = str((page.get("errors") or {}).get("products", ""))
        missing = [sku for sku in skus if sku not in reason]
        if missing:
            shop.fail(got=f"errors are {page.get('errors')!r}",
                      expected=f"errors['products'] naming every SKU without details: {', '.join(skus)}")


@level(5)
def unknown_client_kind_is_refused(ctx: Context) -> None:
    """A kind of client the BFF does not know ('tv') is a ValueError, not a guess."""
    shop, _ = _shop(ctx)
    with shop:
        outcome = _page_now(shop, "tv")
        if not isinstance(outcome.error, ValueError):
            shop.fail(got=f"profile_page {outcome.describe(shop.module)}",
                      expected="ValueError: there is a backend per kind of client, mobile and web")
