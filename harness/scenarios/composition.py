"""A backend for frontend for the composition scenarios: deadline, partial answers, a cache.

``GET /profile/{user_id}`` on the ``bff`` service composes users, orders and
payments in parallel, like the shop's gateway, with three knobs the gateway
lacks (its ``options``):

- ``deadline``: one overall deadline for the composition (None: only the
  seed's 5 s per call);
- ``cache``: an object with ``async get(key, load)`` (the composer kata's
  ``ResponseCache``, or :class:`TextbookCache`); None: no cache;
- the response header ``x-cache`` says what happened: ``hit`` (served from
  the cache at once), ``miss`` (composed for this request), ``joined``
  (waited for a composition another request had started: coalescing),
  ``stale`` (the refresh failed, a stale answer was served), ``partial`` (a
  part is missing: served, never cached), ``error`` (502: no user),
  ``off`` (no cache).

Service times follow the seed: the bff's own work is 10 ms on every request
(a latency fault on its route, set by the scenario), and assembling a freshly
composed answer costs another 10 ms, so a miss takes 10 + 150 + 10 = 170 ms
and a hit 10 ms.

>>> from harness import World
>>> world = World(seed=1)
>>> for service in ("users", "orders", "payments"):
...     _ = world.add_service(service)
>>> _ = world.add_service("bff", create_app, options={"cache": TextbookCache(world.clock, ttl=60)})
>>> client = world.client()
>>> [world.run(client.get("bff", "/profile/user-123")).headers["x-cache"] for _ in range(2)]
['miss', 'hit']
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from fastapi.responses import JSONResponse

from ..clock import Clock
from ..http import MalformedResponse, NetworkError
from ..network import InstanceContext
from ..services.base import new_app

__all__ = ["ASSEMBLY", "OWN_WORK", "PART_TIMEOUT", "TextbookCache", "create_app"]

PART_TIMEOUT = 5.0  # the seed's per-call timeout
OWN_WORK = 0.010  # the bff's own time on every request (set as a latency fault by the scenarios)
ASSEMBLY = 0.010  # merging three answers into one: the rest of the seed's 20 ms gateway overhead


class Unavailable(Exception):
    """The required part (the user) failed: no page can be made."""

    def __init__(self, body: dict):
        super().__init__(body["errors"].get("user", "user unavailable"))
        self.body = body


class Partial(Exception):
    """An optional part failed: the page can be served, but must not be cached."""

    def __init__(self, body: dict):
        super().__init__(", ".join(body["errors"]))
        self.body = body


class TextbookCache:
    """A TTL cache with stale-if-error (RFC 5861) and, unless ``coalesce=False``, request coalescing.

    The composer kata builds the same thing (``ResponseCache``); the scenarios
    use this one unless a chapter plugs the learner's in. Age counts from when
    the load started (RFC 9111).
    """

    def __init__(self, clock: Clock, ttl: float, *, stale_if_error: float = 0.0, coalesce: bool = True):
        self.clock = clock
        self.ttl = ttl
        self.stale_if_error = stale_if_error
        self.coalesce = coalesce
        self._entries: dict[Hashable, tuple[Any, float]] = {}
        self._loading: dict[Hashable, asyncio.Task] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        entry = self._entries.get(key)
        if entry is not None and self.clock.now() - entry[1] < self.ttl:
            return entry[0]
        try:
            if not self.coalesce:
                return await self._load(key, load)
            task = self._loading.get(key)
            if task is None:
                task = self._loading[key] = asyncio.ensure_future(self._load(key, load))
                task.add_done_callback(self._settled(key))
            return await asyncio.shield(task)
        except Exception:
            entry = self._entries.get(key)
            if entry is not None and self.clock.now() - entry[1] < self.ttl + self.stale_if_error:
                return entry[0]
            raise

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        requested_at = self.clock.now()
        value = await load()
        self._entries[key] = (value, requested_at)
        return value

    def _settled(self, key: Hashable) -> Callable[[asyncio.Task], None]:
        def done(task: asyncio.Task) -> None:
            self._loading.pop(key, None)
            if not task.cancelled():
                task.exception()  # seen, even if every waiter gave up

        return done


async def compose_profile(ctx: InstanceContext, user_id: str, deadline: float | None) -> dict:
    """users, orders and payments at once; raises Unavailable or Partial when a part fails."""
    # All three start together and nothing is retried, so a per-call timeout
    # of min(5 s, deadline) is exactly one overall deadline.
    timeout = PART_TIMEOUT if deadline is None else min(PART_TIMEOUT, deadline)
    body: dict[str, Any] = {"user": None, "orders": [], "payment_methods": [], "errors": {}}

    async def part(name: str, service: str, path: str, params: dict | None = None) -> None:
        try:
            r = await ctx.call(service, "GET", path, params=params, timeout=timeout)
            if r.status >= 400:
                body["errors"][name] = f"{service}: HTTP {r.status}"
            else:
                body[name] = r.json()
        except NetworkError as exc:
            body["errors"][name] = f"{service}: {'deadline exceeded' if exc.outcome == 'timeout' else exc.outcome}"
        except MalformedResponse:
            body["errors"][name] = f"{service}: malformed response"

    await asyncio.gather(
        part("user", "users", f"/users/{user_id}"),
        part("orders", "orders", "/orders", {"user_id": user_id}),
        part("payment_methods", "payments", "/payment-methods", {"user_id": user_id}),
    )
    if body["user"] is None:
        raise Unavailable(body)
    await asyncio.sleep(ASSEMBLY)
    if body["errors"]:
        raise Partial(body)
    return body


def create_app(ctx: InstanceContext):
    """The bff service: ``options`` ``deadline`` (seconds or None) and ``cache`` (or None)."""
    app = new_app(ctx, "bff", "Backend for frontend: the profile page, with a deadline and a cache.")
    deadline = ctx.options.get("deadline")
    cache = ctx.options.get("cache")
    stats = ctx.local.setdefault("stats", {"compositions": 0})

    def answer(body: dict, how: str, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers={"x-cache": how})

    @app.get("/profile/{user_id}")
    async def profile(user_id: str):
        composed: list[bool] = []  # [True] once this request's own composition succeeded

        async def load() -> dict:
            stats["compositions"] += 1
            body = await compose_profile(ctx, user_id, deadline)
            composed.append(True)
            return body

        started = ctx.now()
        try:
            if cache is None:
                return answer(await load(), "off")
            body = await cache.get(("profile", user_id), load)
        except Partial as partial:  # served as it is, never cached
            return answer(partial.body, "partial")
        except Unavailable as failed:
            return answer(failed.body, "error", status=502)
        if composed:
            return answer(body, "miss")
        # Not composed for this request: an instant hit, a wait for a
        # composition another request started (coalescing), or a stale
        # answer standing in for a refresh that failed.
        if not _fresh(cache, user_id, ctx):
            return answer(body, "stale")
        return answer(body, "hit" if ctx.now() == started else "joined")

    return app


def _fresh(cache: Any, user_id: str, ctx: InstanceContext) -> bool:
    """Whether the cache's entry is fresh (TextbookCache only; others are taken at their word)."""
    entries = getattr(cache, "_entries", None)
    if not isinstance(entries, dict):
        return True
    entry = entries.get(("profile", user_id))
    if entry is None:
        return True
    requested_at = entry[1] if isinstance(entry, tuple) else getattr(entry, "requested_at", None)
    return requested_at is None or ctx.now() - requested_at < cache.ttl
