"""Saga invariants: what must hold over a whole history, however the faults fell.

A saga has no transaction to keep the shop consistent, so we judge the
outcome instead, by reading every service's own database (and the bus) once
the sagas are over:

- **stock conserved**: per SKU, available + reserved + shipped equals the
  initial stock; the reserved and shipped counts match the reservations;
  every unit held belongs to a confirmed (or still running) order, a
  confirmed order holds exactly one reservation, a cancelled one none;
- **money conserved**: every captured charge is matched by a confirmed order
  of the same amount, or refunded; a confirmed order is paid exactly once;
- **sagas end in time**: every order ends confirmed or cancelled, within
  ``bound`` virtual seconds of its creation;
- **nothing pending**: no order still pending, no stock held for an order
  that is not confirmed, no saga event dead-lettered on the bus;
- **no compensation twice**: no charge refunded twice, no refund larger than
  its charge. (Inventory's release and orders' cancel are idempotent in this
  shop, so a second release or cancel changes nothing; a release that did
  change something twice would break the stock count above.)

Each ``*_violations`` function returns a list of :class:`Violation` (empty:
the invariant holds); each plain-named function raises
:class:`~harness.checkers.CheckFailed` with the first one, in the checkers'
style (what, got, expected, at t=…, seed=…).

>>> from harness import World
>>> world = World(seed=4)
>>> for name in ("orders", "inventory", "payments"):
...     _ = world.add_service(name)
>>> client = world.client()
>>> async def forgetful_saga():
...     order = (await client.post("orders", "/orders", json={"user_id": "user-1", "amount": 30})).json()
...     await client.post("payments", "/charges", json={"order_id": order["id"], "amount": 30})
...     await client.post("orders", f"/orders/{order['id']}/cancel")  # ... and no refund
>>> world.run(forgetful_saga())
>>> money_conserved(world)
Traceback (most recent call last):
...
harness.checkers.CheckFailed: money: order ord-1 (cancelled) has 30 captured (ch-1), expected 0: a cancelled order keeps no money (at t=0 s, seed=4): the compensation never refunded the charge (POST /refunds)
>>> [name for name, found in invariant_report(world, bound=60).items() if found]
['money conserved']
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .checkers import CheckFailed, explain

if TYPE_CHECKING:
    from .world import World

__all__ = [
    "INVARIANTS",
    "Violation",
    "check_invariants",
    "compensation_violations",
    "ending_violations",
    "invariant_report",
    "money_conserved",
    "money_violations",
    "no_compensation_twice",
    "nothing_pending",
    "pending_violations",
    "sagas_end_within",
    "stock_conserved",
    "stock_violations",
]

LIVE = ("reserved", "committed")  # reservation states that hold stock


@dataclass(frozen=True)
class Violation:
    """One broken rule: which invariant, what was seen, what was expected, when, and the likely cause."""

    invariant: str
    what: str
    got: str
    expected: str
    at: float | None = None
    why: str | None = None

    def message(self, *, seed: int | None = None, replay: str | None = None) -> str:
        """The learner's message: ``invariant: what got, expected … (at t=…, seed=…): why``."""
        return explain(f"{self.invariant}: {self.what}", self.got, self.expected, at=self.at, seed=seed,
                       replay=replay, why=self.why)

    def __str__(self) -> str:
        return self.message()


# -- reading the shop --------------------------------------------------------------------
def _orders(world: World) -> dict[str, dict[str, Any]]:
    return world.db("orders").get("orders", {})


def _amount(value: float) -> str:
    return f"{value:g}"


def _ids(records: list[dict[str, Any]]) -> str:
    return ", ".join(r["id"] for r in records)


# -- stock ---------------------------------------------------------------------------------
def stock_violations(world: World, *, initial: int | dict[str, int] | None = None) -> list[Violation]:
    """Stock conserved per SKU, and held only for orders that are (or may still be) confirmed.

    ``initial`` is the starting stock of every SKU (an int) or per SKU (a
    dict); by default inventory's own ``INITIAL_STOCK``.
    """
    from .services.inventory import INITIAL_STOCK

    inventory = world.db("inventory")
    stock = inventory.get("stock", {})
    reservations = list(inventory.get("reservations", {}).values())
    found: list[Violation] = []
    held: dict[str, Counter] = {"reserved": Counter(), "committed": Counter()}
    for res in reservations:
        if res["status"] in held:
            for item in res["items"]:
                held[res["status"]][item["sku"]] += item["qty"]
    for sku, counts in stock.items():
        start = initial.get(sku, INITIAL_STOCK) if isinstance(initial, dict) else (
            INITIAL_STOCK if initial is None else initial)
        total = counts["available"] + counts["reserved"] + counts["shipped"]
        if total != start:
            found.append(Violation(
                "stock", f"{sku}: available + reserved + shipped =",
                f"{counts['available']} + {counts['reserved']} + {counts['shipped']} = {total}", f"{start}",
                why="units appeared or vanished: something was released or reserved outside a reservation"))
        for state, field in (("reserved", "reserved"), ("committed", "shipped")):
            if counts[field] != held[state][sku]:
                found.append(Violation(
                    "stock", f"{sku}: {field} count is", f"{counts[field]}",
                    f"{held[state][sku]}, the sum of the {state} reservations",
                    why="the stock counts and the reservations disagree"))
    orders = _orders(world)
    live_by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for res in reservations:
        if res["status"] in LIVE:
            live_by_order[res["order_id"]].append(res)
    for order_id, live in live_by_order.items():
        order = orders.get(order_id)
        first = min(r["at"] for r in live)
        if order is None:
            found.append(Violation(
                "stock", f"reservation {_ids(live)} holds stock for order {order_id}, which", "does not exist",
                "an order for every reservation", at=first))
        elif order["status"] == "cancelled":
            found.append(Violation(
                "stock", f"order {order_id} (cancelled) still holds", f"{_ids(live)}",
                "no reservation: a cancelled order holds no stock", at=first,
                why="the compensation never released the reservation (DELETE /reservations/{id})"))
        elif len(live) > 1:
            found.append(Violation(
                "stock", f"order {order_id} ({order['status']}) holds {len(live)} reservations:", _ids(live),
                "exactly one", at=max(r["at"] for r in live),
                why="the stock was reserved twice: a retried reservation without its Idempotency-Key "
                    "(or with a new one) reserves again"))
    for order_id, order in orders.items():
        if order["status"] == "confirmed" and not live_by_order.get(order_id) and order.get("items"):
            found.append(Violation(
                "stock", f"order {order_id} is confirmed and holds", "no reservation", "exactly one",
                at=order.get("confirmed_at"), why="it was confirmed without stock, or its reservation was released"))
    return found


# -- money -----------------------------------------------------------------------------------
def money_violations(world: World) -> list[Violation]:
    """Every captured charge matched by a confirmed order of that amount, or refunded."""
    charges = list(world.db("payments").get("charges", {}).values())
    orders = _orders(world)
    captured: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for charge in charges:
        if charge["status"] == "captured":
            captured[charge["order_id"]].append(charge)
    found: list[Violation] = []
    for order_id, taken in captured.items():
        if order_id not in orders:
            found.append(Violation(
                "money", f"{_ids(taken)} captured money for order {order_id}, which", "does not exist",
                "an order for every charge", at=taken[0]["at"]))
    for order_id, order in orders.items():
        taken = captured.get(order_id, [])
        total = sum(c["amount"] for c in taken)
        status = order["status"]
        if status == "confirmed":
            if len(taken) > 1:
                found.append(Violation(
                    "money", f"order {order_id} (confirmed, {_amount(order['amount'])}) was charged",
                    f"{len(taken)} times ({_ids(taken)}: {_amount(total)} in all)", "once",
                    at=taken[1]["at"],
                    why="a retried charge without its Idempotency-Key (or with a new one) charges again"))
            elif total != order["amount"]:
                got = f"{_amount(total)} captured" + (f" ({_ids(taken)})" if taken else "")
                found.append(Violation(
                    "money", f"order {order_id} (confirmed) has", got,
                    f"{_amount(order['amount'])}, its amount", at=order.get("confirmed_at"),
                    why="it was confirmed without being paid, or its charge was refunded"))
        elif taken:
            found.append(Violation(
                "money", f"order {order_id} ({status}) has",
                f"{_amount(total)} captured ({_ids(taken)})",
                f"0: a {status} order keeps no money", at=taken[0]["at"],
                why=("the compensation never refunded the charge (POST /refunds)" if status == "cancelled"
                     else "the saga took the money and never finished")))
    return found


# -- ending ------------------------------------------------------------------------------------
def ending_violations(world: World, *, bound: float, results: list[Any] | None = None) -> list[Violation]:
    """Every order confirmed or cancelled within ``bound`` virtual seconds of its creation.

    ``results`` (optional): what the sagas returned, objects with
    ``saga_id``, ``status`` and ``order_id``; each must be confirmed or
    cancelled, and agree with its order.
    """
    found: list[Violation] = []
    now = world.now()
    orders = _orders(world)
    for order_id, order in orders.items():
        status = order["status"]
        if status not in ("confirmed", "cancelled"):
            found.append(Violation(
                "ending", f"order {order_id} is", f"{status} at t={now:g} s (created at t={order['created_at']:g} s)",
                f"confirmed or cancelled within {bound:g} s", at=now,
                why="a saga stopped half-way: nobody finished or undid it"))
            continue
        took = order[f"{status}_at"] - order["created_at"]
        if took > bound:
            found.append(Violation(
                "ending", f"order {order_id} was {status} after", f"{took:g} s",
                f"at most {bound:g} s", at=order[f"{status}_at"]))
    for result in results or []:
        status = getattr(result, "status", None)
        order_id = getattr(result, "order_id", None)
        saga_id = getattr(result, "saga_id", "?")
        if status not in ("confirmed", "cancelled"):
            found.append(Violation("ending", f"saga {saga_id} ended", repr(status), "'confirmed' or 'cancelled'"))
        elif order_id is not None and order_id in orders and orders[order_id]["status"] != status:
            found.append(Violation(
                "ending", f"saga {saga_id} reported {status!r} but order {order_id} is",
                repr(orders[order_id]["status"]), f"{status!r}", why="the saga's answer and the shop disagree"))
    return found


def pending_violations(world: World) -> list[Violation]:
    """No order left pending, no stock held for an order not confirmed, no saga event dead-lettered."""
    found: list[Violation] = []
    orders = _orders(world)
    for order_id, order in orders.items():
        if order["status"] == "pending":
            found.append(Violation("pending", f"order {order_id} is", "still pending", "confirmed or cancelled",
                                   at=order["created_at"], why="a saga stopped half-way"))
    for res in world.db("inventory").get("reservations", {}).values():
        status = orders.get(res["order_id"], {}).get("status")
        if res["status"] == "reserved" and status not in ("confirmed",):
            found.append(Violation(
                "pending", f"reservation {res['id']} of order {res['order_id']} ({status or 'unknown'}) is",
                "still reserved", "released, or its order confirmed", at=res["at"]))
    for message in world.bus.dead_letters():
        found.append(Violation(
            "pending", f"event {message.id} on {message.topic!r} was", f"dead-lettered after {message.attempt} attempts",
            "handled", at=message.published_at,
            why="a consumer kept failing: the rest of that saga never happened"))
    return found


def compensation_violations(world: World) -> list[Violation]:
    """No compensation applied twice: each charge refunded at most once, never for more than it took."""
    payments = world.db("payments")
    charges = payments.get("charges", {})
    by_charge: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for refund in payments.get("refunds", {}).values():
        by_charge[refund["charge_id"]].append(refund)
    found: list[Violation] = []
    for charge_id, refunds in by_charge.items():
        if len(refunds) > 1:
            found.append(Violation(
                "compensation", f"charge {charge_id} was refunded", f"{len(refunds)} times ({_ids(refunds)})",
                "at most once", at=refunds[1]["at"], why="a compensation ran twice"))
        charge = charges.get(charge_id)
        if charge is not None and sum(r["amount"] for r in refunds) > charge["amount"]:
            found.append(Violation(
                "compensation", f"refunds of {charge_id} add up to", _amount(sum(r["amount"] for r in refunds)),
                f"at most {_amount(charge['amount'])}", at=refunds[-1]["at"]))
    return found


# -- all together ----------------------------------------------------------------------------------
INVARIANTS = ("stock conserved", "money conserved", "sagas end in time", "nothing pending", "no compensation twice")


def invariant_report(world: World, *, bound: float, results: list[Any] | None = None,
                     initial: int | dict[str, int] | None = None) -> dict[str, list[Violation]]:
    """Every invariant by name, with what breaks it (an empty list: it holds)."""
    return {
        "stock conserved": stock_violations(world, initial=initial),
        "money conserved": money_violations(world),
        "sagas end in time": ending_violations(world, bound=bound, results=results),
        "nothing pending": pending_violations(world),
        "no compensation twice": compensation_violations(world),
    }


def _raise_first(found: list[Violation], world: World, seed: int | None, replay: str | None) -> None:
    if not found:
        return
    seed = world.seed if seed is None else seed
    text = found[0].message(seed=seed, replay=replay)
    if len(found) > 1:
        text += f"\n  (and {len(found) - 1} more: " + "; ".join(str(v) for v in found[1:3])
        text += ", ..." if len(found) > 3 else ""
        text += ")"
    raise CheckFailed(text, at=found[0].at, seed=seed, replay=replay)


def stock_conserved(world: World, *, initial: int | dict[str, int] | None = None, seed: int | None = None,
                    replay: str | None = None) -> None:
    """Raise :class:`CheckFailed` naming the first stock violation (see :func:`stock_violations`)."""
    _raise_first(stock_violations(world, initial=initial), world, seed, replay)


def money_conserved(world: World, *, seed: int | None = None, replay: str | None = None) -> None:
    """Raise :class:`CheckFailed` naming the first money violation (see :func:`money_violations`)."""
    _raise_first(money_violations(world), world, seed, replay)


def sagas_end_within(world: World, bound: float, *, results: list[Any] | None = None, seed: int | None = None,
                     replay: str | None = None) -> None:
    """Raise :class:`CheckFailed` unless every saga ended confirmed or cancelled within ``bound`` s."""
    _raise_first(ending_violations(world, bound=bound, results=results), world, seed, replay)


def nothing_pending(world: World, *, seed: int | None = None, replay: str | None = None) -> None:
    """Raise :class:`CheckFailed` naming the first thing left pending (see :func:`pending_violations`)."""
    _raise_first(pending_violations(world), world, seed, replay)


def no_compensation_twice(world: World, *, seed: int | None = None, replay: str | None = None) -> None:
    """Raise :class:`CheckFailed` if a compensation was applied twice (see :func:`compensation_violations`)."""
    _raise_first(compensation_violations(world), world, seed, replay)


def check_invariants(world: World, *, bound: float, results: list[Any] | None = None,
                     initial: int | dict[str, int] | None = None, seed: int | None = None,
                     replay: str | None = None) -> None:
    """Every invariant; raises :class:`CheckFailed` with the first violation found (stock, money, ...)."""
    found = [v for violations in invariant_report(world, bound=bound, results=results, initial=initial).values()
             for v in violations]
    _raise_first(found, world, seed, replay)
