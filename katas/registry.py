"""Service registry kata: which instances may take traffic, and how callers find them.

Implement :class:`Registry` (levels 1 to 3) and :class:`DiscoveryClient`
(levels 4 and 5) level by level; check your work with::

    kata check registry          # every level
    kata check registry --level 1
    kata hint registry           # the hint of the first level that fails

Look for ``# TODO (level N):`` below. Replace each ``raise
NotImplementedError`` with your code; keep the names and signatures (the
checks and the chapter use them).

>>> from harness.clock import Clock
>>> clock = Clock.manual()
>>> registry = Registry(lease=30, clock=clock)
>>> registry.register("payments", "payments-1")
>>> registry.register("payments", "payments-2")
>>> registry.resolve("payments")
['payments-1', 'payments-2']
>>> clock.advance(20); registry.renew("payments", "payments-1")
True
>>> clock.advance(10); registry.resolve("payments")  # t=30: payments-2's lease ran out
['payments-1']

The rules, and whom we follow where trusted systems differ:

- Level 1: ``resolve`` raises :class:`UnknownService` for a service that was
  never registered (a typo is a bug; AWS Cloud Map answers
  ``ServiceNotFound``), and returns ``[]`` for a known service with nothing
  to serve right now. Answers list addresses in registration order.
- Level 2: an instance is served while ``now < last_renewal + lease``: up to
  but *not including* that instant. Registering counts as the first renewal.
  Not like Eureka, whose renewed leases really last two leases (a bug its
  source admits and keeps). A lapsed lease is gone: renewing it returns
  False, and the instance must register again.
- Level 3 (only with a ``client``): a new instance is not served before
  ``healthy_threshold`` passing checks in a row (Consul starts checks
  critical); a healthy one is dropped after ``unhealthy_threshold`` failures
  in a row. A pass is a 2xx from ``GET /health`` within ``health_timeout``;
  any other status, a refused or reset connection and a timeout are
  failures. Failures whose outcome arrives before ``registered_at +
  grace_period`` do not count (ECS's ``healthCheckGracePeriodSeconds``).
- Level 4: the registry's answer is cached for ``ttl`` seconds (fetched at
  ``t``: used up to but not including ``t + ttl``); picks take the cached
  instances in turn; a request that cannot reach an instance is retried on
  another: always after a refused connection, and after a timeout or a reset
  only for idempotent methods (:data:`IDEMPOTENT_METHODS`).
- Level 5: Envoy's panic threshold, on the caller's side: when a fresh answer
  keeps *fewer* than ``panic_threshold`` of the instances the client last
  knew, keep the last known set (plus any newcomers) instead.

Read time only from ``self.clock.now()``: never ``time.time()``. The checks
drive a virtual clock, so a 30 s lease takes no time at all.

Plugging it into the harness: ``world.net.balancer = discovery.balancer``
sends every call by service name where the registry says; ``await
discovery.request("GET", "catalog", "/products")`` is client-side discovery
with retries.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from harness.clock import Clock
from harness.http import ConnectError, ConnectionReset, NetworkError, RequestTimeout  # noqa: F401  (yours to use)

if TYPE_CHECKING:
    from harness.http import Response
    from harness.network import Client, Instance

__all__ = ["IDEMPOTENT_METHODS", "DiscoveryClient", "Registry", "SupportsNow", "SupportsResolve", "UnknownService"]

# RFC 9110 section 9.2.2: sending these twice has the effect of sending them once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class UnknownService(LookupError):
    """``resolve`` was asked for a service nobody ever registered (a typo?)."""


class SupportsNow(Protocol):
    """A clock: ``now()`` in seconds (``harness.clock.Clock`` is one)."""

    def now(self) -> float: ...


class SupportsResolve(Protocol):
    """What a :class:`DiscoveryClient` needs from a registry: ``resolve(service)``."""

    def resolve(self, service: str) -> list[str]: ...


class Registry:
    """Which instances of each service may take traffic, with leases and health checks.

    >>> from harness.clock import Clock
    >>> registry = Registry(clock=Clock.manual())
    >>> registry.register("users", "users-1")
    >>> registry.resolve("users")
    ['users-1']

    Level 1: :meth:`register`, :meth:`deregister`, :meth:`resolve`. Level 2:
    ``lease`` and :meth:`renew`. Level 3: give a ``client`` (a harness
    ``Client``, e.g. ``world.client("registry")``) and :meth:`check_health`
    probes every instance; ``health_timeout``, ``healthy_threshold``,
    ``unhealthy_threshold``, ``grace_period`` tune it. Without a client, the
    registry trusts leases alone (Eureka's model).

    ``clock`` is any object with ``now()``; by default the clock of the
    client's world, or else the running event loop's.
    """

    def __init__(
        self,
        lease: float = 30.0,
        *,
        client: Client | None = None,
        health_timeout: float = 2.0,
        healthy_threshold: int = 1,
        unhealthy_threshold: int = 3,
        grace_period: float = 0.0,
        clock: SupportsNow | None = None,
    ) -> None:
        self.lease = lease
        self.client = client
        self.health_timeout = health_timeout
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self.grace_period = grace_period
        if clock is None:
            clock = client.net.world.clock if client is not None else Clock.of_running_loop()
        self.clock = clock
        # TODO (level 1): where the instances of each service are kept, in
        #   registration order (a dict per service keeps its insertion order).
        # TODO (level 2): per instance, when its lease runs out.
        # TODO (level 3): per instance, when it registered, whether it is
        #   healthy, and its passing and failing checks in a row.

    def register(self, service: str, address: str) -> None:
        """Add ``address`` to ``service``; registering again renews its lease.

        >>> from harness.clock import Clock
        >>> registry = Registry(clock=Clock.manual())
        >>> registry.register("users", "users-1"); registry.register("users", "users-1")
        >>> registry.resolve("users")
        ['users-1']
        """
        # TODO (level 1): remember the instance (once, however often it registers).
        # TODO (level 2): its lease runs until now + lease; a lapsed one starts afresh.
        # TODO (level 3): with a client, a newcomer is not healthy yet.
        raise NotImplementedError

    def deregister(self, service: str, address: str) -> bool:
        """Remove ``address`` from ``service`` (a graceful shutdown); False if it was not there.

        >>> from harness.clock import Clock
        >>> registry = Registry(clock=Clock.manual())
        >>> registry.register("users", "users-1")
        >>> registry.deregister("users", "users-1"), registry.deregister("users", "users-1")
        (True, False)
        >>> registry.resolve("users")
        []
        """
        # TODO (level 1): forget the instance; the service stays known.
        raise NotImplementedError

    def renew(self, service: str, address: str) -> bool:
        """Extend the lease of a registered instance to ``now + lease``; False if it has none.

        False means: never registered, deregistered, or its lease already ran
        out. Then the instance must :meth:`register` again.

        >>> from harness.clock import Clock
        >>> clock = Clock.manual()
        >>> registry = Registry(lease=30, clock=clock)
        >>> registry.register("users", "users-1")
        >>> clock.advance(30); registry.renew("users", "users-1")
        False
        """
        # TODO (level 2): a new lease from now (not from the old expiry), for
        #   instances whose lease has not run out yet.
        raise NotImplementedError

    def resolve(self, service: str) -> list[str]:
        """The addresses that may take traffic now, in registration order.

        Raises :class:`UnknownService` for a service never registered; a
        known service with nothing to serve gives ``[]``.

        >>> from harness.clock import Clock
        >>> registry = Registry(clock=Clock.manual())
        >>> registry.register("users", "users-1")
        >>> registry.resolve("users")
        ['users-1']
        """
        # TODO (level 1): the service's addresses (a new list), or UnknownService.
        # TODO (level 2): only those whose lease has not run out (now < expiry).
        # TODO (level 3): only the healthy ones.
        raise NotImplementedError

    async def check_health(self) -> None:
        """Probe every registered instance once, all at the same time, and count the outcomes.

        Each probe is ``GET /health`` on the instance's address with
        ``health_timeout``; a 2xx passes, anything else fails. The round
        ends when the last probe has: at most ``health_timeout`` after it began.

        >>> from harness import World
        >>> world = World(seed=1)
        >>> _ = world.add_service("users")
        >>> registry = Registry(client=world.client("registry"))
        >>> registry.register("users", "users-1")
        >>> registry.resolve("users"), world.run(registry.check_health()), registry.resolve("users")
        ([], None, ['users-1'])
        """
        # TODO (level 3): `await self.client.get(address, "/health", timeout=...)`
        #   for every instance at once (asyncio.gather); a NetworkError is a
        #   failure. Count passes and failures in a row; thresholds flip health;
        #   failures during the grace period are ignored.
        raise NotImplementedError

    async def run_health_checks(self, interval: float = 10.0) -> None:
        """Run :meth:`check_health` every ``interval`` virtual seconds, forever.

        Start it in the background: ``world.spawn(registry.run_health_checks(5))``.
        Rounds start at fixed times (0, interval, 2 × interval, ...), however
        long each one takes.
        """
        next_round = self.clock.now()
        while True:
            await self.check_health()
            next_round += interval
            await asyncio.sleep(max(0.0, next_round - self.clock.now()))


class DiscoveryClient:
    """Client-side discovery: a TTL cache of the registry's answer, round-robin, retries.

    >>> from harness import World
    >>> world = World(seed=1)
    >>> _ = world.add_service("catalog", instances=2)
    >>> registry = Registry(clock=world.clock)
    >>> for address in ("catalog-1", "catalog-2"):
    ...     registry.register("catalog", address)
    >>> discovery = DiscoveryClient(registry, world.client("shop"), ttl=10)
    >>> [discovery.pick("catalog") for _ in range(3)]
    ['catalog-1', 'catalog-2', 'catalog-1']
    >>> world.run(discovery.request("GET", "catalog", "/products")).instance
    'catalog-2'

    Level 4: :meth:`pick`, :meth:`request`, :meth:`balancer`, ``ttl``,
    ``attempts``. Level 5: ``panic_threshold`` (None: never panic).
    ``registry`` is anything with ``resolve(service) -> list[str]``.
    """

    def __init__(
        self,
        registry: SupportsResolve,
        client: Client,
        *,
        ttl: float = 10.0,
        attempts: int = 2,
        panic_threshold: float | None = None,
        clock: SupportsNow | None = None,
    ) -> None:
        self.registry = registry
        self.client = client
        self.ttl = ttl
        self.attempts = attempts
        self.panic_threshold = panic_threshold
        self.clock = clock if clock is not None else client.net.world.clock
        # TODO (level 4): per service, the cached answer and when it was
        #   fetched; per service, how many picks so far (the round-robin turn).

    def pick(self, service: str) -> str:
        """The next instance of ``service``, in turn over the (cached) registry answer.

        Raises :class:`~harness.http.ConnectError` when the answer is empty.

        >>> from harness import World
        >>> world = World(seed=1)
        >>> registry = Registry(clock=world.clock)
        >>> registry.register("users", "users-1"); registry.register("users", "users-2")
        >>> discovery = DiscoveryClient(registry, world.client())
        >>> discovery.pick("users"), discovery.pick("users")
        ('users-1', 'users-2')
        """
        # TODO (level 4): ask the registry only when the cached answer is
        #   missing or ttl old; the n-th pick (from 0) gets answer[n % len(answer)];
        #   an empty answer raises ConnectError.
        # TODO (level 5): when a fresh answer keeps fewer than panic_threshold
        #   of the instances last known, keep those (and add newcomers).
        raise NotImplementedError

    async def request(self, method: str, service: str, path: str, **kwargs: Any) -> Response:
        """Send one request to an instance of ``service``; retry on another one if unreachable.

        ``kwargs`` go to the harness client (``json=``, ``params=``,
        ``timeout=`` per attempt, ...). At most ``attempts`` tries, each on
        an instance this request has not tried yet. Any HTTP response, 5xx
        included, is returned as it is.
        """
        # TODO (level 4): `await self.client.request(method, address, path, **kwargs)`
        #   on picked instances; retry on ConnectError, and on RequestTimeout or
        #   ConnectionReset when the method is idempotent; never the same
        #   instance twice; when out of tries, raise the last error.
        raise NotImplementedError

    def balancer(self, service: str, instances: list[Instance]) -> Instance:
        """The harness hook: ``world.net.balancer = discovery.balancer``.

        The network asks it which of ``instances`` takes a call to
        ``service``; raises :class:`~harness.http.ConnectError` when the
        registry names none of them.
        """
        # TODO (level 4): the instance whose address pick(service) gives.
        raise NotImplementedError
