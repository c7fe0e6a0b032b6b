"""Service registry and client-side discovery: the reference solution of the registry kata.

Same public API as ``katas/registry.py``; the comments explain why each rule is
there. A :class:`Registry` knows which instances of each service may take
traffic: instances register, keep a *lease* alive by renewing it, and (when the
registry has a client to call them with) pass active health checks. A
:class:`DiscoveryClient` asks the registry, caches the answer for a TTL, takes
the instances in turn, retries on another instance when one is unreachable,
and panics (keeps its last known set) when the registry suddenly loses most of
a service.

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

Semantics, and whom we follow where trusted systems differ:

- Unknown service: :meth:`Registry.resolve` raises :class:`UnknownService` for
  a name that was never registered (a typo is a bug: AWS Cloud Map's
  ``DiscoverInstances`` answers ``ServiceNotFound``), and returns ``[]`` for a
  known service with nothing to serve right now (an outage is not a typo).
- Leases: an instance is served while ``now < last_renewal + lease``, so up to
  but not including that instant, and registering counts as the first renewal.
  Eureka's ``Lease.renew()`` stores ``now + duration`` and then checks
  ``last_update + duration``, so a renewed lease really lasts two leases (its
  source says so, and says it will not be fixed). A lapsed lease is gone: a
  renewal at or after ``last_renewal + lease`` returns False, and the instance
  must register again (Eureka answers 404 and its client re-registers).
- Health checks (level 3): a new instance starts unhealthy and is served only
  after ``healthy_threshold`` passing checks in a row (Consul starts checks
  critical); a healthy one is dropped after ``unhealthy_threshold`` failures in
  a row (ALB target groups count both ways). A pass is a 2xx from ``GET
  /health`` within ``health_timeout``; anything else fails: another status, a
  refused or reset connection, a timeout. Failures whose outcome arrives before
  ``registered_at + grace_period`` are ignored (ECS's
  ``healthCheckGracePeriodSeconds``); passes always count.
- Client-side discovery (level 4): the registry's answer is cached for ``ttl``
  seconds (a DNS TTL): fetched at ``t``, it is used up to but not including
  ``t + ttl``. Picks take the cached instances in turn. A request that could
  not reach an instance is retried on another one: always after a refused
  connection (the request never arrived), and after a timeout or a reset
  only for idempotent methods (a timed-out POST may have charged the card).
- Panic (level 5) follows Envoy's panic threshold, applied where Envoy applies
  it, on the caller's side: when a fresh answer keeps fewer than
  ``panic_threshold`` of the instances the client last knew (strictly fewer),
  the client keeps its last known set (plus any newcomers) instead of piling
  all traffic on the few survivors. Envoy then balances over every host;
  Eureka's server reacts to the same symptom (renewals under 85 % of those
  expected) by no longer expiring leases ("self-preservation"). Both assume a
  mass disappearance is more likely a broken view than a broken fleet.

The harness plugs: ``world.net.balancer = discovery.balancer`` makes every
call by service name (``client.get("catalog", ...)``) go where the registry
says (server-side discovery, the network as the load balancer), and
``await discovery.request("GET", "catalog", "/products")`` is client-side
discovery with retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from harness.clock import Clock
from harness.http import ConnectError, ConnectionReset, NetworkError, RequestTimeout

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


@dataclass(slots=True)
class _Lease:
    """What the registry knows about one registered instance."""

    address: str
    registered_at: float  # the start of its grace period
    expires_at: float  # last renewal + lease: served strictly before this instant
    healthy: bool
    passes: int = 0  # passing checks in a row
    failures: int = 0  # failed checks in a row (grace-period failures excluded)


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
        # service -> address -> lease; dicts keep registration order, which is
        # the order resolve() answers in (deterministic, and easy to read).
        self._services: dict[str, dict[str, _Lease]] = {}

    # -- level 1 and 2 -------------------------------------------------------------------
    def register(self, service: str, address: str) -> None:
        """Add ``address`` to ``service``; registering again renews its lease.

        >>> from harness.clock import Clock
        >>> registry = Registry(clock=Clock.manual())
        >>> registry.register("users", "users-1"); registry.register("users", "users-1")
        >>> registry.resolve("users")
        ['users-1']
        """
        now = self.clock.now()
        leases = self._services.setdefault(service, {})
        self._forget_lapsed(leases, now)
        known = leases.get(address)
        if known is not None:
            # A second registration is a heartbeat: same instance, same health,
            # same place in the answer.
            known.expires_at = now + self.lease
            return
        # With health checks, a newcomer waits for its first passing check
        # (Consul's checks start critical); without, the lease is all we know.
        leases[address] = _Lease(address, now, now + self.lease, healthy=self.client is None)

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
        leases = self._services.get(service)
        if leases is None:
            return False
        self._forget_lapsed(leases, self.clock.now())
        return leases.pop(address, None) is not None

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
        leases = self._services.get(service)
        if leases is None:
            return False
        now = self.clock.now()
        self._forget_lapsed(leases, now)
        known = leases.get(address)
        if known is None:
            return False
        known.expires_at = now + self.lease  # a new lease from now, not from the old expiry
        return True

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
        leases = self._services.get(service)
        if leases is None:
            known = ", ".join(sorted(self._services)) or "none yet"
            raise UnknownService(f"no service {service!r} was ever registered (known: {known})")
        now = self.clock.now()
        self._forget_lapsed(leases, now)
        # A new list each time: a caller that edits its answer must not edit the registry.
        return [lease.address for lease in leases.values() if lease.healthy]

    @staticmethod
    def _forget_lapsed(leases: dict[str, _Lease], now: float) -> None:
        # Lazily, on every touch: the answer is then exact at any instant,
        # with no sweeper task whose period would keep dead instances around.
        for address in [a for a, lease in leases.items() if now >= lease.expires_at]:
            del leases[address]

    # -- level 3 -----------------------------------------------------------------------
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
        if self.client is None:
            raise RuntimeError("this registry has no client to send health checks with: Registry(client=...)")
        probes = []
        for leases in self._services.values():
            self._forget_lapsed(leases, self.clock.now())
            probes.extend(self._probe(leases, lease) for lease in list(leases.values()))
        # Concurrently: one hung instance must not delay the verdict on the others.
        await asyncio.gather(*probes)

    async def _probe(self, leases: dict[str, _Lease], lease: _Lease) -> None:
        try:
            response = await self.client.get(lease.address, "/health", timeout=self.health_timeout)
            passed = 200 <= response.status < 300
        except NetworkError:  # refused, reset, or no answer in time: all failures
            passed = False
        if leases.get(lease.address) is not lease:
            return  # deregistered (or re-registered anew) while the probe was out
        if passed:
            lease.failures = 0
            lease.passes += 1
            if not lease.healthy and lease.passes >= self.healthy_threshold:
                lease.healthy = True
            return
        if self.clock.now() < lease.registered_at + self.grace_period:
            return  # still starting up: ECS ignores failing checks during the grace period
        lease.passes = 0
        lease.failures += 1
        if lease.healthy and lease.failures >= self.unhealthy_threshold:
            lease.healthy = False

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
        self._cache: dict[str, tuple[list[str], float]] = {}  # service -> (answer, fetched_at)
        self._turns: dict[str, int] = {}  # service -> picks so far (round-robin position)

    def _answer(self, service: str) -> list[str]:
        now = self.clock.now()
        cached = self._cache.get(service)
        if cached is not None and now < cached[1] + self.ttl:
            return cached[0]
        fresh = list(self.registry.resolve(service))
        if cached is not None:
            fresh = self._judge(service, known=cached[0], fresh=fresh)
        self._cache[service] = (fresh, now)
        return fresh

    def _judge(self, service: str, *, known: list[str], fresh: list[str]) -> list[str]:
        """Level 5: accept the fresh answer, or keep the last known set (panic)."""
        if self.panic_threshold is None or not known:
            return fresh
        staying = sum(1 for address in known if address in fresh)
        if staying < self.panic_threshold * len(known):
            # Most of the fleet vanished between two answers. Believe the fleet,
            # not the view: keep what we knew, and welcome newcomers.
            return known + [address for address in fresh if address not in known]
        return fresh

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
        answer = self._answer(service)
        if not answer:
            raise ConnectError(f"no instance of {service!r} is served by the registry", target=service)
        turn = self._turns.get(service, 0)
        self._turns[service] = turn + 1
        return answer[turn % len(answer)]

    async def request(self, method: str, service: str, path: str, **kwargs: Any) -> Response:
        """Send one request to an instance of ``service``; retry on another one if unreachable.

        ``kwargs`` go to the harness client (``json=``, ``params=``,
        ``timeout=`` per attempt, ...). At most ``attempts`` tries, each on
        an instance this request has not tried yet. Any HTTP response, 5xx
        included, is returned as it is.
        """
        method = method.upper()
        tried: list[str] = []
        last_error: NetworkError | None = None
        for _ in range(self.attempts):
            address = self._untried(service, tried)
            if address is None:
                break
            tried.append(address)
            try:
                return await self.client.request(method, address, path, **kwargs)
            except ConnectError as error:
                last_error = error  # never reached the instance: always safe to retry
            except (RequestTimeout, ConnectionReset) as error:
                if method not in IDEMPOTENT_METHODS:
                    raise  # the instance may have done the work: only the caller may decide
                last_error = error
        assert last_error is not None  # the first pick raises ConnectError on an empty answer
        raise last_error

    def _untried(self, service: str, tried: Sequence[str]) -> str | None:
        # At most one lap of the rotation: concurrent requests move the same
        # counter, so the next pick is not always a new instance for this one.
        for _ in range(max(1, len(self._answer(service)))):
            address = self.pick(service)
            if address not in tried:
                return address
        return None

    def balancer(self, service: str, instances: list[Instance]) -> Instance:
        """The harness hook: ``world.net.balancer = discovery.balancer``.

        The network asks it which of ``instances`` takes a call to
        ``service``; raises :class:`~harness.http.ConnectError` when the
        registry names none of them.
        """
        by_address = {instance.address: instance for instance in instances}
        address = self.pick(service)
        instance = by_address.get(address)
        if instance is None:
            raise ConnectError(f"the registry names {address!r}, which is not an instance of {service}",
                               target=address)
        return instance
