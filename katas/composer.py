"""API composition kata: build one answer out of several services' answers.

Implement the composer level by level; check your work with::

    kata check composer          # every level
    kata check composer --level 1
    kata hint composer           # the hint of the first level that fails

Look for ``# TODO (level N):`` below. Replace each ``raise
NotImplementedError`` with your code; keep the names and signatures (the
checks and the chapters use them).

The story: a customer's profile page needs their account (users, 100 ms),
their orders (orders, 150 ms) and their payment methods (payments, 120 ms).

- Level 1, :meth:`Composer.compose`: call the three at once. The page then
  takes as long as the slowest call (150 ms), not the sum (370 ms).
- Level 2: when a part fails, keep the others, put the part's default in its
  place and say why in ``errors``; when a *required* part fails, there is no
  page: raise :class:`CompositionFailed`.
- Level 3: one overall deadline for the whole composition, retries included;
  give up on late calls (cancel them: no task may outlive ``compose``).
- Level 4, :class:`ResponseCache`: a TTL cache of whole answers that serves a
  stale answer when the backend fails (RFC 5861 ``stale-if-error``) and makes
  one backend call for many concurrent misses of the same key.
- Level 5, the backend for frontend: :func:`shape_profile` cuts the page to
  what a phone shows or enriches it for the web, and :func:`load_products`
  looks up product details without one call per order line (N+1).

>>> from harness import World
>>> world = World(seed=1)
>>> for service in ("users", "orders", "payments"):
...     _ = world.add_service(service)
>>> composer = Composer(world.client(), deadline=0.5)
>>> profile = world.run(composer.compose(profile_parts("user-123")))
>>> profile.data["user"]["name"], profile.data["orders"], profile.errors
('Customer 123', [], {})

Semantics, and whom we follow where trusted systems differ:

- One overall deadline per composition, retries included (gRPC's deadline,
  Envoy's route ``timeout``); ``attempt_timeout`` is Envoy's
  ``per_try_timeout``: each attempt gets ``min(attempt_timeout, time left)``.
- The cache counts an entry's age from when its load *started* (RFC 9111
  §4.2.3: the answer's own delay makes it older), and serves a stale entry
  on error for at most ``stale_if_error`` seconds past its freshness
  (RFC 5861). Coalescing is Go's ``singleflight``.

Read time only from ``self.clock.now()`` (or ``asyncio.sleep``): never
``time.time()``. The checks run on virtual time, where a 150 ms call takes
exactly 0.150 s and no real time at all.

Calling a service: ``await self.client.get(service, path, params=...,
timeout=seconds)`` returns a :class:`harness.http.Response` (any status:
``response.status``, ``response.json()``, which raises
:class:`~harness.http.MalformedResponse` on a garbled body) or raises a
:class:`~harness.http.NetworkError` (``RequestTimeout``, ``ConnectError``,
``ConnectionReset``; each has ``.outcome``: ``"timeout"``, ``"refused"``,
``"reset"``).
"""

from __future__ import annotations

import asyncio  # noqa: F401  (you will need it)
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from harness.clock import Clock
from harness.http import MalformedResponse, NetworkError, RequestTimeout  # noqa: F401  (you will need them)

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

    ``GET service path?params``; its JSON becomes ``Composition.data[name]``.
    When it fails, ``default`` takes its place, unless it is ``required``.

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


class Composer:
    """Builds one answer out of several services' answers.

    ``client`` makes the calls (``world.client()`` in the harness).
    ``deadline``: seconds the whole composition may take, retries included
    (level 3). ``retries``: extra attempts per part after a 5xx or a network
    error. ``attempt_timeout``: the longest one attempt may take (None: the
    time left). ``backoff``: seconds to wait before each retry. ``clock``:
    any object with ``now()``; by default the running loop's (virtual) time.

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
        """Fetch every part and return them as one :class:`Composition`.

        - Level 1: start every part's call at once; the composition takes as
          long as its slowest part. ``data`` maps each part's name to the
          JSON of its answer.
        - Level 2: a part fails when its answer is 4xx or 5xx, is not JSON,
          or never comes (a ``NetworkError``). A failed part gets its
          ``default`` in ``data`` and a short reason in ``errors[name]``
          that says what happened: ``"orders: HTTP 503"``, ``"payments:
          refused"``, ``"orders: malformed response"``. The other parts are
          kept. When a ``required`` part fails, raise
          ``CompositionFailed(errors)``. An empty answer (a customer with
          no orders) is not a failure.
        - Level 3: ``deadline`` seconds after ``compose`` starts, it returns
          (with ``"... deadline exceeded"`` for the parts still missing).
          A part retries a 5xx or a network error up to ``retries`` times,
          after ``backoff`` seconds, never a 4xx. Each attempt may take at
          most ``min(attempt_timeout, time left)``; no attempt starts when
          no time is left, and a backoff that would end at or after the
          deadline is not waited for (the part fails at once with its last
          error). When a required part fails, stop the other calls at once.
          Nothing ``compose`` started is still running when it returns or
          raises: cancel the calls you gave up on, and wait until they have
          stopped (``asyncio.TaskGroup`` and ``asyncio.timeout`` do both).

        >>> from harness import World
        >>> world = World(seed=1)
        >>> _ = world.add_service("users")
        >>> parts = [Part("me", "users", "/users/user-1"), Part("ghost", "users", "/users/nobody", default={})]
        >>> world.run(Composer(world.client()).compose(parts)).errors
        {'ghost': 'users: HTTP 404'}
        """
        # TODO (level 1): fix the deadline of this composition, then start one
        #   call per part at once and wait for all of them.
        # TODO (level 2): catch each part's failure inside its own call: the
        #   default and an error entry; a required part raises CompositionFailed.
        # TODO (level 3): attempts and backoffs within the deadline; cancel the
        #   rest when a required part fails or the time is up.
        raise NotImplementedError


class ResponseCache:
    """A TTL cache of whole answers with stale-if-error and request coalescing.

    ``ttl``: seconds an entry is fresh. ``stale_if_error``: seconds past its
    freshness that an entry may still stand in for a failed load (0: never).
    ``clock``: any object with ``now()``; by default the running loop's.

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
        # TODO (level 4): the entries (value, and when its load started) and
        #   the loads in flight, by key.

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The value for ``key``: the cached one while fresh, else ``await load()``.

        - An entry is fresh while its age is under ``ttl``; its age counts
          from when its load *started*. At exactly ``ttl`` it is stale.
        - A miss (no entry, or a stale one) calls ``load()``; a success
          replaces the entry, always. A failure (``load`` raises) is never
          cached: the next ``get`` calls ``load`` again.
        - stale-if-error: when the load fails and the entry's age is under
          ``ttl + stale_if_error``, return the stale value instead of raising.
          Otherwise re-raise the load's error.
        - Coalescing: while a load for ``key`` is running, other callers of
          ``get(key, ...)`` wait for that one load instead of starting their
          own, and get its value (or its error). A caller that is cancelled
          while waiting (its own deadline) does not cancel the load for the
          others.
        """
        # TODO (level 4): fresh entries; one shared load per key; failures
        #   fall back to a stale entry within stale_if_error.
        raise NotImplementedError


# -- backend for frontend (level 5) ----------------------------------------------------

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
    """Product details for every distinct SKU: ``{sku: {"sku", "name", "price"}}``.

    ``skus`` may repeat (the same product in several order lines). Ask the
    catalog (``GET /products/{sku}``) once per *distinct* SKU, all at once,
    never once per order line: that is the N+1 problem. A lookup that fails
    (non-200, network error, garbled body) is left out of the result.
    """
    # TODO (level 5): drop the repeats, then look the rest up concurrently.
    raise NotImplementedError


def shape_profile(composition: Composition, kind: str, products: Mapping[str, dict] | None = None) -> dict:
    """Cut a composed profile (see :func:`profile_parts`) to what one kind of client shows.

    Both kinds answer ``{"user", "orders", "payment_methods", "errors"}``;
    ``errors`` is the composition's, always passed on.

    - ``MOBILE``: only the fields in ``MOBILE_FIELDS``: the user's ``id``
      and ``name``; each order's ``id``, ``status`` and ``amount``; each
      payment method's ``brand`` and ``last4``. Nothing else.
    - ``WEB``: the user, orders and payment methods as the services sent
      them, except that each order's ``items`` become ``{"sku", "qty",
      "name", "price"}`` with the name and price from ``products``. An item
      whose product is missing from ``products`` gets ``None`` for both, and
      ``errors["products"]`` names every such SKU: ``"no details for sku-3"``.
    - any other kind: ``ValueError``.
    """
    # TODO (level 5): the two shapes.
    raise NotImplementedError


async def profile_page(composer: Composer, user_id: str, kind: str) -> dict:
    """The backend for frontend's profile endpoint: compose, enrich (web only), shape.

    Compose :func:`profile_parts` with ``composer``; for ``WEB`` look up the
    products of every order line with :func:`load_products` through
    ``composer.client`` (``MOBILE`` shows no items, so it makes no catalog
    call); return :func:`shape_profile`. A failed required part raises
    ``CompositionFailed`` as ``compose`` does.
    """
    # TODO (level 5): compose, look up products for the web only, shape.
    raise NotImplementedError
