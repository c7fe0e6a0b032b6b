"""API composition: the reference solution of the composer kata.

Same public API as ``katas/composer.py``; the comments explain why each rule
is there. A composer builds one answer (a customer's profile page) out of
several services' answers: it calls them all at once, keeps what came back
when some of them fail, gives up on the slow ones at one overall deadline,
caches whole answers, and shapes them for each kind of client.

>>> from harness import World
>>> world = World(seed=1)
>>> for service in ("users", "orders", "payments"):
...     _ = world.add_service(service)
>>> composer = Composer(world.client(), deadline=0.5)
>>> profile = world.run(composer.compose(profile_parts("user-123")))
>>> profile.data["user"]["name"], profile.data["orders"], profile.errors
('Customer 123', [], {})

Semantics, and whom we follow where trusted systems differ:

- One overall deadline per composition, retries included, like gRPC's
  deadline and Envoy's route ``timeout``; ``attempt_timeout`` is Envoy's
  ``per_try_timeout``: each attempt gets ``min(attempt_timeout, time left)``.
  Only 5xx answers and network errors (refused, reset, timed out) are
  retried: a 4xx will not change on a second try.
- The cache follows RFC 9111 for age (it counts from when the request was
  sent, so an answer's own delay makes it older, never younger) and RFC 5861
  for ``stale-if-error``. Request coalescing is Go's ``singleflight``: one
  load per key at a time, shared by every caller who asks meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from harness.clock import Clock
from harness.http import MalformedResponse, NetworkError, RequestTimeout

if TYPE_CHECKING:
    from harness.network import Client

__all__ = [
    "MOBILE",
    "WEB",
    "Composer",
    "Composition",
    "CompositionFailed",
    "Part",
    "ResponseCache",
    "SupportsNow",
    "load_products",
    "profile_page",
    "profile_parts",
    "shape_profile",
]

T = TypeVar("T")

MOBILE = "mobile"
WEB = "web"


class SupportsNow(Protocol):
    """A clock: ``now()`` in seconds (``harness.clock.Clock`` is one)."""

    def now(self) -> float: ...


@dataclass(frozen=True)
class Part:
    """One piece of a composed answer: where to fetch it, and what to do when that fails.

    >>> Part("orders", "orders", "/orders", {"user_id": "user-7"}, default=[]).required
    False
    """

    name: str
    service: str
    path: str
    params: Mapping[str, Any] | None = None
    required: bool = False
    default: Any = None


@dataclass
class Composition:
    """A composed answer: each part's value by name, and why the failed ones failed."""

    data: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)


class CompositionFailed(Exception):
    """A required part failed: there is no useful answer (a gateway would say 502).

    >>> CompositionFailed({"user": "users: HTTP 503"}).errors
    {'user': 'users: HTTP 503'}
    """

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("required part failed: " + "; ".join(f"{k} ({v})" for k, v in self.errors.items()))


class _PartFailed(Exception):
    """One part gave up; ``reason`` becomes its entry in ``Composition.errors``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Composer:
    """Builds one answer out of several services' answers.

    >>> from harness import World
    >>> world = World(seed=1)
    >>> _ = world.add_service("users")
    >>> composer = Composer(world.client())
    >>> world.run(composer.compose([Part("user", "users", "/users/user-1")])).data["user"]["tier"]
    'gold'
    """

    def __init__(
        self,
        client: Client,
        *,
        deadline: float = 1.0,
        retries: int = 0,
        attempt_timeout: float | None = None,
        backoff: float = 0.0,
        clock: SupportsNow | None = None,
    ) -> None:
        self.client = client
        self.deadline = deadline
        self.retries = retries
        self.attempt_timeout = attempt_timeout
        self.backoff = backoff
        self.clock = clock if clock is not None else Clock.of_running_loop()

    async def compose(self, parts: Iterable[Part]) -> Composition:
        """Fetch every part at once; see the stub's docstring for the rules."""
        parts = list(parts)
        # One deadline for the whole composition, fixed when it starts: every
        # attempt and every backoff of every part spends from the same budget.
        deadline_at = self.clock.now() + self.deadline
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}

        async def one(part: Part) -> None:
            try:
                values[part.name] = await self._fetch(part, deadline_at)
            except _PartFailed as failure:
                errors[part.name] = failure.reason
                if part.required:
                    raise  # ends the task group: the others are cancelled, and awaited
                values[part.name] = part.default

        try:
            # A TaskGroup starts every part at once (latency of the slowest,
            # not the sum) and, when one task raises, cancels the rest and
            # waits until they have really stopped: no task outlives compose.
            async with asyncio.TaskGroup() as group:
                for part in parts:
                    group.create_task(one(part))
        except* _PartFailed:
            raise CompositionFailed(errors) from None
        return Composition({part.name: values[part.name] for part in parts}, errors)

    async def _fetch(self, part: Part, deadline_at: float) -> Any:
        """One part: attempts within the deadline; its JSON, or _PartFailed with a reason."""
        attempt = 0
        while True:
            left = deadline_at - self.clock.now()
            if left <= 0:  # never start an attempt the deadline would cut at once
                raise _PartFailed(f"{part.service}: deadline exceeded ({self.deadline:g} s)")
            timeout = left if self.attempt_timeout is None else min(self.attempt_timeout, left)
            params = dict(part.params) if part.params else None
            try:
                response = await self.client.get(part.service, part.path, params=params, timeout=timeout)
            except RequestTimeout:
                reason = (f"{part.service}: deadline exceeded ({self.deadline:g} s)" if timeout >= left
                          else f"{part.service}: timeout after {timeout:g} s")
                retryable = True
            except NetworkError as error:  # refused or reset: another instance may answer
                reason, retryable = f"{part.service}: {error.outcome}", True
            else:
                if response.status < 400:
                    try:
                        return response.json()
                    except MalformedResponse:  # a garbled body is this part's failure, not the page's
                        raise _PartFailed(f"{part.service}: malformed response") from None
                reason = f"{part.service}: HTTP {response.status}"
                retryable = response.status >= 500  # a 4xx says the request is wrong: it stays wrong
            if not retryable or attempt >= self.retries:
                raise _PartFailed(reason)
            attempt += 1
            if self.backoff > 0:
                # A retry that could only start at or after the deadline would be
                # cut before it began: give the time back to the caller instead.
                if self.clock.now() + self.backoff >= deadline_at:
                    raise _PartFailed(reason)
                await asyncio.sleep(self.backoff)


@dataclass(slots=True)
class _Entry:
    value: Any
    requested_at: float  # RFC 9111: age counts from the request, not the answer


class ResponseCache:
    """A TTL cache of whole answers with stale-if-error and request coalescing.

    >>> import asyncio
    >>> from harness.clock import Clock, run
    >>> async def demo():
    ...     cache = ResponseCache(ttl=60, clock=Clock.of_running_loop())
    ...     calls = []
    ...     async def load():
    ...         calls.append(1)
    ...         await asyncio.sleep(0.17)
    ...         return {"name": "Customer 123"}
    ...     first = await cache.get("user-123", load)
    ...     await asyncio.sleep(10)
    ...     second = await cache.get("user-123", load)
    ...     return first == second, len(calls)
    >>> run(demo())
    (True, 1)
    """

    def __init__(self, ttl: float, *, stale_if_error: float = 0.0, clock: SupportsNow | None = None) -> None:
        self.ttl = ttl
        self.stale_if_error = stale_if_error
        self.clock = clock if clock is not None else Clock.of_running_loop()
        self._entries: dict[Hashable, _Entry] = {}
        self._loading: dict[Hashable, asyncio.Task] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The value for ``key``: cached while fresh, else loaded (once, for every caller)."""
        entry = self._entries.get(key)
        if entry is not None and self.clock.now() - entry.requested_at < self.ttl:
            return entry.value
        task = self._loading.get(key)
        if task is None:
            # The load runs in a task of its own, not in the first caller's:
            # if that caller is cancelled (its own deadline), everyone else
            # still gets the answer. shield() keeps a cancelled waiter from
            # cancelling the shared task.
            task = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = task
            task.add_done_callback(_retrieve)
        try:
            return await asyncio.shield(task)
        except Exception:
            entry = self._entries.get(key)
            # RFC 5861: a stale entry may stand in for a failed refresh for at
            # most stale_if_error seconds past the end of its freshness.
            if entry is not None and self.clock.now() - entry.requested_at < self.ttl + self.stale_if_error:
                return entry.value
            raise

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        requested_at = self.clock.now()
        try:
            value = await load()
        finally:
            # Success or failure, the next miss starts a new load: a failure is
            # never cached (no negative caching), so a recovered backend is
            # asked again straight away.
            del self._loading[key]
        self._entries[key] = _Entry(value, requested_at)
        return value


def _retrieve(task: asyncio.Task) -> None:
    """Mark a shared load's failure as seen, even if every waiter was cancelled."""
    if not task.cancelled():
        task.exception()


# -- backend for frontend --------------------------------------------------------------

MOBILE_FIELDS = {"user": ("id", "name"), "orders": ("id", "status", "amount"),
                 "payment_methods": ("brand", "last4")}


def profile_parts(user_id: str) -> list[Part]:
    """The profile page's parts: the user (required), their orders and payment methods.

    >>> [(p.name, p.required, p.default) for p in profile_parts("user-7")]
    [('user', True, None), ('orders', False, []), ('payment_methods', False, [])]
    """
    return [
        Part("user", "users", f"/users/{user_id}", required=True),
        Part("orders", "orders", "/orders", {"user_id": user_id}, default=[]),
        Part("payment_methods", "payments", "/payment-methods", {"user_id": user_id}, default=[]),
    ]


async def load_products(client: Client, skus: Iterable[str], *, timeout: float = 1.0) -> dict[str, dict]:
    """Product details for every distinct SKU, one concurrent call each; failed lookups are left out.

    This is what a GraphQL DataLoader does for the N+1 problem: collect every
    key first, drop duplicates, then fetch them in one round. With a batch
    endpoint on the catalog this would be a single call.
    """
    distinct = list(dict.fromkeys(skus))  # keeps the first-seen order, drops repeats

    async def one(sku: str) -> tuple[str, dict | None]:
        try:
            response = await client.get("catalog", f"/products/{sku}", timeout=timeout)
            return sku, response.json() if response.status == 200 else None
        except (NetworkError, MalformedResponse):
            return sku, None  # one missing product must not cost the whole page

    found = await asyncio.gather(*(one(sku) for sku in distinct))
    return {sku: product for sku, product in found if product is not None}


def shape_profile(composition: Composition, kind: str, products: Mapping[str, dict] | None = None) -> dict:
    """Cut a composed profile to what one kind of client shows (see the stub for the fields)."""
    data = composition.data
    errors = dict(composition.errors)
    user, orders, methods = data["user"], data["orders"], data["payment_methods"]
    if kind == MOBILE:
        # Only what the phone's screen shows: every byte crosses a slow radio link.
        def pick(record: Mapping[str, Any], names: tuple[str, ...]) -> dict:
            return {name: record.get(name) for name in names}

        return {"user": pick(user, MOBILE_FIELDS["user"]),
                "orders": [pick(o, MOBILE_FIELDS["orders"]) for o in orders],
                "payment_methods": [pick(m, MOBILE_FIELDS["payment_methods"]) for m in methods],
                "errors": errors}
    if kind == WEB:
        products = products or {}

        def item(line: Mapping[str, Any]) -> dict:
            product = products.get(line["sku"])
            return {"sku": line["sku"], "qty": line.get("qty", 1),
                    "name": product["name"] if product else None,
                    "price": product["price"] if product else None}

        shaped = [{**order, "items": [item(line) for line in order.get("items", [])]} for order in orders]
        missing = sorted({line["sku"] for order in orders for line in order.get("items", [])} - set(products))
        if missing:  # a degraded item is still reported, like a degraded part
            errors["products"] = "no details for " + ", ".join(missing)
        return {"user": dict(user), "orders": shaped, "payment_methods": list(methods), "errors": errors}
    raise ValueError(f"unknown client kind {kind!r}: use {MOBILE!r} or {WEB!r}")


async def profile_page(composer: Composer, user_id: str, kind: str) -> dict:
    """The BFF's profile endpoint for one kind of client: compose, enrich (web only), shape."""
    if kind not in (MOBILE, WEB):
        raise ValueError(f"unknown client kind {kind!r}: use {MOBILE!r} or {WEB!r}")
    composition = await composer.compose(profile_parts(user_id))
    products: dict[str, dict] = {}
    if kind == WEB:  # the mobile page shows no items: it must not pay for their lookups
        skus = [line["sku"] for order in composition.data["orders"] for line in order.get("items", [])]
        if skus:
            products = await load_products(composer.client, skus, timeout=composer.deadline)
    return shape_profile(composition, kind, products)
