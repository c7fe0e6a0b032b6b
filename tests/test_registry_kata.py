"""The registry kata's checks bite: the solution passes, the stub fails, each plausible mistake is named.

Each wrong variant is the reference solution with one mistake a learner might
make, written as a subclass in a temporary ``registry.py`` and checked the way
a learner's file is. It must fail the level that teaches the rule it breaks,
with a message that names the mistake (and where the mistake breaks a later
rule too, that level as well: ``levels`` says which).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.toolchain import catalogue
from harness.toolchain.reset import ResetError, starting_version
from harness.toolchain.runner import check_kata

PRELUDE = """\
import asyncio
import random

from harness.http import ConnectError, RequestTimeout, Response
from solutions.registry import *  # noqa: F403
from solutions.registry import DiscoveryClient as ReferenceClient, Registry as ReferenceRegistry


class _Wrapped:
    \"\"\"A harness client whose get() a variant bends (what a learner's probe code would do).\"\"\"

    def __init__(self, client, bend):
        self.client, self.bend, self.net = client, bend, client.net

    async def get(self, target, path, **kwargs):
        return await self.bend(self.client, target, path, **kwargs)


"""

BOTH = "class Registry(ReferenceRegistry):\n    pass\n\n\nclass DiscoveryClient(ReferenceClient):\n    pass\n"


def variant(tmp_path: Path, cls: str, body: str) -> str:
    """A folder holding registry.py = the prelude + ``class <cls>(Reference...): body`` (+ the other class)."""
    base = "ReferenceRegistry" if cls == "Registry" else "ReferenceClient"
    other = "DiscoveryClient(ReferenceClient)" if cls == "Registry" else "Registry(ReferenceRegistry)"
    source = (PRELUDE + f"class {cls}({base}):\n" + textwrap.indent(textwrap.dedent(body), "    ")
              + f"\n\nclass {other}:\n    pass\n")
    (tmp_path / "registry.py").write_text(source)
    return str(tmp_path)


# name: (the levels it fails, a phrase a failure message of its first level must contain, class, the mistake)
VARIANTS: dict[str, tuple[set[int], str, str, str]] = {
    # -- level 1 -------------------------------------------------------------------------
    "unknown_service_gives_an_empty_list": ({1}, "raise UnknownService for names never registered", "Registry", """
        def resolve(self, service):
            try:
                return super().resolve(service)
            except UnknownService:
                return []
    """),
    "forgets_a_service_when_its_last_instance_leaves": ({1}, "keep the service known", "Registry", """
        def deregister(self, service, address):
            removed = super().deregister(service, address)
            if not self._services.get(service):
                self._services.pop(service, None)
            return removed
    """),
    "lists_an_instance_twice": ({1, 2}, "listed twice", "Registry", """
        def register(self, service, address):
            super().register(service, address)
            self.__dict__.setdefault("_log", {}).setdefault(service, []).append(address)

        def resolve(self, service):
            alive = super().resolve(service)
            return [a for a in self.__dict__.get("_log", {}).get(service, []) if a in alive]
    """),
    "hands_out_its_own_list": ({1}, "return a new list each time", "Registry", """
        def resolve(self, service):
            fresh = super().resolve(service)
            kept, seen = self.__dict__.setdefault("_kept", {}), self.__dict__.setdefault("_seen", {})
            if seen.get(service) != fresh:
                kept[service], seen[service] = fresh, list(fresh)
            return kept[service]
    """),
    "deregister_raises_when_not_there": ({1}, "make it idempotent", "Registry", """
        def deregister(self, service, address):
            if not super().deregister(service, address):
                raise KeyError(address)
            return True
    """),
    "sorts_the_answer": ({1}, "do not sort them", "Registry", """
        def resolve(self, service):
            return sorted(super().resolve(service))
    """),
    # -- level 2 -------------------------------------------------------------------------
    "serves_one_lease_too_long": ({2, 3}, "one lease too long", "Registry", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.lease = 2 * self.lease
    """),
    "expires_at_twice_the_lease": ({2}, "Eureka", "Registry", """
        def renew(self, service, address):  # Eureka's Lease.renew(): last_update = now + duration
            renewed = super().renew(service, address)
            if renewed:
                self._services[service][address].expires_at += self.lease
            return renewed
    """),
    "lease_includes_its_end": ({2, 3}, "up to but not including", "Registry", """
        @staticmethod
        def _forget_lapsed(leases, now):
            for address in [a for a, lease in leases.items() if now > lease.expires_at]:
                del leases[address]
    """),
    "renew_extends_the_old_expiry": ({2}, "old expiry", "Registry", """
        def renew(self, service, address):
            lease = self._services.get(service, {}).get(address)
            before = lease.expires_at if lease is not None else None
            renewed = super().renew(service, address)
            if renewed:
                lease.expires_at = before + self.lease
            return renewed
    """),
    "renewals_do_not_extend": ({2, 3}, "renewals do not extend", "Registry", """
        def renew(self, service, address):
            leases = self._services.get(service, {})
            self._forget_lapsed(leases, self.clock.now())
            return address in leases
    """),
    "lapsed_lease_can_be_renewed": ({2}, "cannot be renewed", "Registry", """
        def register(self, service, address):
            self.__dict__.setdefault("_lapsed_ok", set()).add((service, address))
            super().register(service, address)

        def deregister(self, service, address):
            self.__dict__.setdefault("_lapsed_ok", set()).discard((service, address))
            return super().deregister(service, address)

        def renew(self, service, address):
            if super().renew(service, address):
                return True
            if (service, address) in self.__dict__.get("_lapsed_ok", set()):
                self.register(service, address)  # revives it
                return True
            return False
    """),
    "renew_registers_an_unknown_instance": ({2}, "must not register it", "Registry", """
        def renew(self, service, address):
            if not super().renew(service, address):
                self.register(service, address)
            return True
    """),
    # -- level 3 -------------------------------------------------------------------------
    "serves_before_its_first_passing_check": ({3}, "before its first passing check", "Registry", """
        def register(self, service, address):
            super().register(service, address)
            self._services[service][address].healthy = True
    """),
    "treats_a_timeout_as_a_pass": ({3}, "treats a timeout as a pass", "Registry", """
        def __init__(self, *args, client=None, **kwargs):
            async def lenient(client, target, path, **kw):
                try:
                    return await client.get(target, path, **kw)
                except RequestTimeout:
                    return Response(200)
            super().__init__(*args, client=None if client is None else _Wrapped(client, lenient), **kwargs)
    """),
    "probes_without_a_timeout": ({3}, "waits forever", "Registry", """
        def __init__(self, *args, client=None, **kwargs):
            async def patient(client, target, path, timeout=None, **kw):
                return await client.get(target, path, **kw)
            super().__init__(*args, client=None if client is None else _Wrapped(client, patient), **kwargs)
    """),
    "a_503_passes_like_a_tcp_check": ({3}, "a 503 from /health is a failed check", "Registry", """
        def __init__(self, *args, client=None, **kwargs):
            async def port_open(client, target, path, **kw):
                response = await client.get(target, path, **kw)
                return Response(200) if response.status >= 500 else response
            super().__init__(*args, client=None if client is None else _Wrapped(client, port_open), **kwargs)
    """),
    "raises_when_a_probe_is_refused": ({3}, "catch harness.NetworkError", "Registry", """
        def __init__(self, *args, client=None, **kwargs):
            async def raw(client, target, path, **kw):
                response = await client.get(target, path, **kw)
                return response

            async def strict(client, target, path, **kw):
                try:
                    return await client.get(target, path, **kw)
                except ConnectError as error:
                    raise RuntimeError(f"probe failed: {error}") from error  # escapes the probe
            super().__init__(*args, client=None if client is None else _Wrapped(client, strict), **kwargs)

        async def _probe(self, leases, lease):
            try:
                await super()._probe(leases, lease)
            except RuntimeError as error:
                raise error.__cause__ from None
    """),
    "probes_one_after_another": ({3}, "one after another", "Registry", """
        async def check_health(self):
            for leases in list(self._services.values()):
                self._forget_lapsed(leases, self.clock.now())
                for lease in list(leases.values()):
                    await self._probe(leases, lease)
    """),
    "counts_failures_during_the_grace_period": ({3}, "failures during the grace period were counted",
                                                "Registry", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.grace_period = 0.0
    """),
    "ignores_unhealthy_threshold": ({3}, "unhealthy_threshold=3", "Registry", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.unhealthy_threshold = 1
    """),
    "ignores_healthy_threshold": ({3}, "healthy_threshold", "Registry", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.healthy_threshold = 1
    """),
    "counts_passes_in_total": ({3}, "in a row", "Registry", """
        async def _probe(self, leases, lease):
            passes = lease.passes
            await super()._probe(leases, lease)
            if lease.passes == 0 and not lease.healthy:
                lease.passes = passes  # a failure does not reset the passes
    """),
    "health_checks_renew_the_lease": ({3}, "do not renew a lease", "Registry", """
        async def _probe(self, leases, lease):
            await super()._probe(leases, lease)
            if lease.passes:
                lease.expires_at = self.clock.now() + self.lease
    """),
    # -- level 4 -------------------------------------------------------------------------
    "picks_at_random": ({4, 5}, "round-robin", "DiscoveryClient", """
        def pick(self, service):
            answer = self._answer(service)
            if not answer:
                raise ConnectError("no instance", target=service)
            return self.__dict__.setdefault("_rng", random.Random(7)).choice(answer)
    """),
    "one_turn_for_all_services": ({4}, "one round-robin turn per service", "DiscoveryClient", """
        def pick(self, service):
            self._turns[service] = sum(self._turns.values())
            return super().pick(service)
    """),
    "no_cache": ({4}, "no cache", "DiscoveryClient", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.ttl = 0.0
    """),
    "cache_never_expires": ({4, 5}, "a load balancer that keeps picking a dead instance", "DiscoveryClient", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.ttl = float("inf")
    """),
    "cache_expires_one_instant_late": ({4, 5}, "up to but not including that instant", "DiscoveryClient", """
        def _answer(self, service):
            cached = self._cache.get(service)
            if cached is not None and self.clock.now() == cached[1] + self.ttl:
                return cached[0]
            return super()._answer(service)
    """),
    "balancer_keeps_picking_a_dead_instance": ({4}, "a load balancer that keeps picking a dead instance",
                                               "DiscoveryClient", """
        def balancer(self, service, instances):  # round-robin over every instance, as the network does
            turn = self.__dict__.setdefault("_plain", {}).get(service, 0)
            self._plain[service] = turn + 1
            return instances[turn % len(instances)]
    """),
    "no_retry_on_another_instance": ({4}, "no retry on another instance", "DiscoveryClient", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.attempts = 1
    """),
    "retries_a_post_after_a_timeout": ({4}, "may have been processed", "DiscoveryClient", """
        async def request(self, method, service, path, **kwargs):
            tried, last = [], None
            for _ in range(self.attempts):
                address = self._untried(service, tried)
                if address is None:
                    break
                tried.append(address)
                try:
                    return await self.client.request(method, address, path, **kwargs)
                except (ConnectError, RequestTimeout) as error:  # whatever the method
                    last = error
            raise last
    """),
    "does_not_retry_a_timed_out_get": ({4}, "GET is idempotent", "DiscoveryClient", """
        async def request(self, method, service, path, **kwargs):
            tried, last = [], None
            for _ in range(self.attempts):
                address = self._untried(service, tried)
                if address is None:
                    break
                tried.append(address)
                try:
                    return await self.client.request(method, address, path, **kwargs)
                except ConnectError as error:  # timeouts are final
                    last = error
            raise last
    """),
    "retries_the_same_instance": ({4}, "already tried", "DiscoveryClient", """
        def _untried(self, service, tried):
            return self.pick(service)
    """),
    "no_check_for_an_empty_answer": ({4}, "check for an empty answer", "DiscoveryClient", """
        def pick(self, service):
            answer = self._answer(service)
            turn = self._turns.get(service, 0)
            self._turns[service] = turn + 1
            return answer[turn % len(answer)]
    """),
    # -- level 5 -------------------------------------------------------------------------
    "panics_on_a_single_loss": ({5}, "panics on a single loss", "DiscoveryClient", """
        def _judge(self, service, *, known, fresh):
            if self.panic_threshold is not None and any(a not in fresh for a in known):
                return known + [a for a in fresh if a not in known]
            return fresh
    """),
    "never_panics": ({5}, "never triggers", "DiscoveryClient", """
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.panic_threshold = None
    """),
    "panics_at_exactly_the_threshold": ({5}, "exactly the threshold", "DiscoveryClient", """
        def _judge(self, service, *, known, fresh):
            staying = sum(1 for a in known if a in fresh)
            if self.panic_threshold is not None and staying == self.panic_threshold * len(known):
                return known
            return super()._judge(service, known=known, fresh=fresh)
    """),
    "panic_never_ends": ({5}, "never leaves panic", "DiscoveryClient", """
        def _judge(self, service, *, known, fresh):
            stuck = self.__dict__.setdefault("_stuck", set())
            if service in stuck:
                return known
            judged = super()._judge(service, known=known, fresh=fresh)
            if judged is not fresh:
                stuck.add(service)
            return judged
    """),
    "drops_newcomers_in_a_panic": ({5}, "newcomers", "DiscoveryClient", """
        def _judge(self, service, *, known, fresh):
            judged = super()._judge(service, known=known, fresh=fresh)
            return known if judged is not fresh else fresh
    """),
    "panics_without_a_threshold": ({5}, "panic_threshold=None turns panic off", "DiscoveryClient", """
        def __init__(self, *args, panic_threshold=None, **kwargs):
            super().__init__(*args, panic_threshold=0.5 if panic_threshold is None else panic_threshold, **kwargs)
    """),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_mistake_fails_its_level_and_is_named(tmp_path: Path, name: str) -> None:
    levels, phrase, cls, body = VARIANTS[name]
    report = check_kata("registry", variant(tmp_path, cls, body))
    failing = {level.level for level in report.levels if level.status != "pass"}
    surprises = [(lv.level, t.name, t.status, (t.message or "")[-300:]) for lv in report.levels
                 if lv.level in failing ^ levels for t in lv.failures]
    assert failing == levels, f"{name} fails levels {sorted(failing)}, expected {sorted(levels)}: {surprises}"
    first = report.levels[min(levels) - 1]
    messages = [test.message or "" for test in first.failures]
    assert all(test.status == "fail" for test in first.failures), [(t.status, t.message) for t in first.failures]
    assert any(phrase in message for message in messages), "\n\n".join(messages)


def test_the_solution_passes_every_level_for_many_seeds() -> None:
    for seed in range(12):
        report = check_kata("registry", "solutions", seed=seed)
        assert report.status == "pass", (seed, [t.message for lv in report.levels for t in lv.failures])


def starting_stub(folder: Path) -> str:
    """A folder holding the stub as git has it (a learner's progress in katas/ never fails this)."""
    stub = Path(__file__).resolve().parents[1] / "katas" / "registry.py"
    try:
        source, _ = starting_version(stub)
    except ResetError:  # not committed yet, or no git: the working copy is the stub
        source = stub.read_bytes()
    (folder / "registry.py").write_bytes(source)
    return str(folder)


def test_the_stub_fails_every_level_as_not_implemented(tmp_path: Path) -> None:
    report = check_kata("registry", starting_stub(tmp_path))
    assert [level.status for level in report.levels] == ["fail"] * len(catalogue.kata("registry").levels)
    for level in report.levels:
        for test in level.tests:
            assert test.status == "fail", (test.name, test.status, test.message)
            assert test.message.startswith("not implemented yet: "), test.message
            assert test.message.endswith(f"(level {level.level})")


def test_an_unchanged_subclass_passes_so_the_variants_are_fair(tmp_path: Path) -> None:
    """The control for the variants above: the prelude alone changes nothing."""
    (tmp_path / "registry.py").write_text(PRELUDE + BOTH)
    assert check_kata("registry", str(tmp_path)).status == "pass"


def test_a_failure_message_tells_what_was_done_and_how_to_replay(tmp_path: Path) -> None:
    """What a learner reads: the steps with their virtual times, got, expected, the seed, a replay."""
    _, _, cls, body = VARIANTS["expires_at_twice_the_lease"]
    report = check_kata("registry", variant(tmp_path, cls, body), level=2, seed=5)
    failed = next(t for t in report.levels[0].tests if t.name == "renewal_starts_a_new_lease_from_now")
    assert failed.message.splitlines()[0] == "What was done:"
    assert "t=20  registry.renew('users', 'users-1') -> True" in failed.message
    assert "What came back: users-1 was first missing at t=80" in failed.message
    assert "Expected: t=50 (last renewal at t=20, lease 30 s)" in failed.message
    assert failed.message.endswith("seed 5)")
    assert failed.replay.startswith("kata check registry --level 2 --seed 5 --against ")


# -- the flapping scenario, and the learner's registry plugged into it -------------------------


def learners_discovery(world):
    """What chapter 01 does: the reference registry and client in the scenario's place."""
    from solutions.registry import DiscoveryClient, Registry

    registry = Registry(lease=3600, client=world.client("registry"), health_timeout=0.5,
                        healthy_threshold=2, unhealthy_threshold=2)
    for instance in world.instances("catalog"):
        registry.register("catalog", instance.address)
    world.spawn(registry.run_health_checks(interval=1.0))
    return DiscoveryClient(registry, world.client("customer"), ttl=1.0)


def test_flapping_same_seed_same_history_other_seed_other_history() -> None:
    from harness.scenarios import run_scenario

    first = run_scenario("flapping", seed=7, duration=20).digest
    assert run_scenario("flapping", seed=7, duration=20).digest == first
    assert run_scenario("flapping", seed=8, duration=20).digest != first


def test_flapping_tells_its_story() -> None:
    """Static round-robin keeps sending to dead instances; health checks stop most of it; retries the rest."""
    from harness.scenarios import run_scenario

    summary = {v.name: v.summary for v in run_scenario("flapping", seed=7, duration=30).variants}
    static, checked, retried = (summary[n]["availability_during_faults"]
                                for n in ("static-round-robin", "registry", "registry+retry"))
    assert static < 0.75 < checked < 0.95 < retried
    assert summary["static-round-robin"]["refused_attempts"] == summary["static-round-robin"]["failed_requests"]
    assert summary["registry"]["registry_changes"] > 0


def test_learner_registry_plugs_into_the_flapping_scenario() -> None:
    """The kata's Registry and DiscoveryClient, configured like the textbook ones, tell the same story."""
    from harness.scenarios.flapping import run_variant

    for name in ("registry", "registry+retry"):
        learners = run_variant(name, 7, duration=30, discovery_factory=learners_discovery).summary
        textbook = run_variant(name, 7, duration=30).summary
        for key in ("requests", "failed_requests", "availability_during_faults", "refused_attempts"):
            assert learners[key] == textbook[key], (name, key, learners[key], textbook[key])
