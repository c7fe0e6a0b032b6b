"""The composer kata's checks bite: the solution passes, the stub fails, each plausible mistake is named.

Each wrong variant is the reference solution with one mistake a learner might
make, written as a subclass or a replacement function in a temporary
``composer.py`` and checked the way a learner's file is. It must fail the
level that teaches the rule it breaks, with a message that names the mistake
(and where the mistake breaks a later rule too, that level as well:
``levels`` says which).
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from harness.toolchain import catalogue
from harness.toolchain.reset import ResetError, starting_version
from harness.toolchain.runner import check_kata

PRELUDE = """\
import asyncio

from harness.http import MalformedResponse, NetworkError, RequestTimeout
from solutions.composer import *  # noqa: F403
from solutions.composer import Composer as Reference, ResponseCache as ReferenceCache
from solutions.composer import _Entry, _PartFailed, _retrieve


"""


def variant(tmp_path: Path, body: str) -> str:
    """A folder holding composer.py = the prelude + ``body`` (classes and functions that replace the reference's)."""
    (tmp_path / "composer.py").write_text(PRELUDE + textwrap.dedent(body))
    return str(tmp_path)


# Shared pieces of the variants: a profile_page that uses this module's own functions.
PROFILE_PAGE = """
async def profile_page(composer, user_id, kind):
    if kind not in (MOBILE, WEB):
        raise ValueError(kind)
    composition = await composer.compose(profile_parts(user_id))
    products = {}
    if kind == WEB:
        skus = [line["sku"] for order in composition.data["orders"] for line in order.get("items", [])]
        if skus:
            products = await load_products(composer.client, skus)
    return shape_profile(composition, kind, products)
"""



def with_page(body: str) -> str:
    """``body``, then a profile_page that calls this module's own load_products and shape_profile."""
    return textwrap.dedent(body) + PROFILE_PAGE


# name: (the levels it fails, a phrase the failure message of its first level must contain, the mistake)
VARIANTS: dict[str, tuple[set[int], str, str]] = {
    # -- level 1 ---------------------------------------------------------------------
    "sequential": ({1, 3, 5}, "sequential", """
        class Composer(Reference):
            async def compose(self, parts):
                parts = list(parts)
                deadline_at = self.clock.now() + self.deadline
                data, errors = {}, {}
                for part in parts:  # one after another
                    try:
                        data[part.name] = await self._fetch(part, deadline_at)
                    except _PartFailed as failure:
                        errors[part.name] = failure.reason
                        if part.required:
                            raise CompositionFailed(errors) from None
                        data[part.name] = part.default
                return Composition(data, errors)
    """),
    "two_then_one": ({1, 3, 5}, "the slowest", """
        class Composer(Reference):
            async def compose(self, parts):
                parts = list(parts)
                first = await Reference.compose(self, parts[:2])  # two at once, then the rest
                rest = await Reference.compose(self, parts[2:])
                return Composition({**first.data, **rest.data}, {**first.errors, **rest.errors})
    """),
    # -- level 2 ---------------------------------------------------------------------
    "gather_without_return_exceptions": ({2, 3, 5}, "one failure lost every part", """
        class Composer(Reference):
            async def compose(self, parts):
                parts = list(parts)
                deadline_at = self.clock.now() + self.deadline
                try:
                    values = await asyncio.gather(*(self._fetch(p, deadline_at) for p in parts))
                except _PartFailed as failure:
                    raise RuntimeError(failure.reason) from None
                return Composition({p.name: v for p, v in zip(parts, values)}, {})
    """),
    "swallows_failures_into_defaults": ({2, 3, 5}, "the failure is swallowed", """
        class Composer(Reference):
            async def compose(self, parts):
                composition = await super().compose(parts)
                return Composition(composition.data, {})  # the seed's `except: return []`
    """),
    "required_treated_as_optional": ({2, 3}, "a required part is treated like an optional one", """
        import dataclasses

        class Composer(Reference):
            async def compose(self, parts):
                return await super().compose([dataclasses.replace(p, required=False) for p in parts])
    """),
    "network_errors_escape": ({2, 3}, "raised ConnectError", """
        class Composer(Reference):
            async def _fetch(self, part, deadline_at):
                left = deadline_at - self.clock.now()
                response = await self.client.get(part.service, part.path,
                                                  params=dict(part.params or {}), timeout=left)
                if response.status >= 400:  # only HTTP errors are handled
                    raise _PartFailed(f"{part.service}: HTTP {response.status}")
                try:
                    return response.json()
                except MalformedResponse:
                    raise _PartFailed("malformed") from None
    """),
    "garbled_body_escapes": ({2}, "raised MalformedResponse", """
        class Composer(Reference):
            async def _fetch(self, part, deadline_at):
                try:
                    return await super()._fetch(part, deadline_at)
                except _PartFailed as failure:
                    if "malformed" in failure.reason:
                        raise MalformedResponse(failure.reason) from None
                    raise
    """),
    # -- level 3 ---------------------------------------------------------------------
    "seed_five_second_timeouts": ({3}, "a per-call timeout (the seed's 5 s) is not a deadline", """
        class Composer(Reference):
            async def compose(self, parts):
                self.attempt_timeout, self.deadline = 5.0, 1e9  # per call 5 s, no overall deadline
                return await super().compose(parts)
    """),
    "leaks_tasks_after_the_deadline": ({3}, "tasks still running after compose returned", """
        class Composer(Reference):
            async def compose(self, parts):
                parts = list(parts)
                deadline_at = self.clock.now() + 1e9  # the calls themselves get no deadline
                tasks = {asyncio.ensure_future(self._fetch(p, deadline_at)): p for p in parts}
                done, pending = await asyncio.wait(tasks, timeout=self.deadline)  # and are left running
                data, errors = {}, {}
                for task, part in tasks.items():
                    if task in done and task.exception() is None:
                        data[part.name] = task.result()
                        continue
                    errors[part.name] = "deadline exceeded" if task in pending else task.exception().reason
                    if part.required:
                        raise CompositionFailed(errors)
                    data[part.name] = part.default
                return Composition(data, errors)
    """),
    "cancels_without_waiting": ({3}, "tasks still running after compose returned", """
        class Composer(Reference):
            async def compose(self, parts):
                parts = list(parts)
                deadline_at = self.clock.now() + 1e9
                tasks = {asyncio.ensure_future(self._fetch(p, deadline_at)): p for p in parts}
                done, pending = await asyncio.wait(tasks, timeout=self.deadline)
                for task in pending:
                    task.cancel()  # cancelled, but not awaited: still running when compose returns
                data, errors = {}, {}
                for task, part in tasks.items():
                    if task in done and task.exception() is None:
                        data[part.name] = task.result()
                        continue
                    errors[part.name] = "deadline exceeded" if task in pending else task.exception().reason
                    if part.required:
                        raise CompositionFailed(errors)
                    data[part.name] = part.default
                return Composition(data, errors)
    """),
    "attempt_timeouts_add_up": ({3}, "per-attempt timeouts add up beyond the deadline", """
        class Composer(Reference):
            async def compose(self, parts):
                # the deadline becomes each attempt's timeout instead of the whole composition's
                if self.attempt_timeout is None:
                    self.attempt_timeout = self.deadline
                self.deadline = 1e9
                return await super().compose(parts)
    """),
    "retries_after_the_deadline": ({3}, "retried after the deadline", """
        class Composer(Reference):
            async def _fetch(self, part, deadline_at):
                attempt = 0
                while True:
                    left = max(0.0, deadline_at - self.clock.now())  # starts an attempt even with no time left
                    timeout = left if self.attempt_timeout is None else min(self.attempt_timeout, left)
                    try:
                        response = await self.client.get(part.service, part.path,
                                                          params=dict(part.params or {}), timeout=timeout)
                    except NetworkError as error:
                        reason, retryable = f"{part.service}: {error.outcome}", True
                    else:
                        if response.status < 400:
                            try:
                                return response.json()
                            except MalformedResponse:
                                raise _PartFailed(f"{part.service}: malformed response") from None
                        reason, retryable = f"{part.service}: HTTP {response.status}", response.status >= 500
                    if not retryable or attempt >= self.retries:
                        raise _PartFailed(reason)
                    attempt += 1
                    await asyncio.sleep(self.backoff)
    """),
    "sleeps_into_the_deadline": ({3}, "slept into the deadline", """
        class Composer(Reference):
            async def _fetch(self, part, deadline_at):
                attempt = 0
                while True:
                    left = deadline_at - self.clock.now()
                    if left <= 0:
                        raise _PartFailed(f"{part.service}: deadline exceeded")
                    timeout = left if self.attempt_timeout is None else min(self.attempt_timeout, left)
                    try:
                        response = await self.client.get(part.service, part.path,
                                                          params=dict(part.params or {}), timeout=timeout)
                    except NetworkError as error:
                        reason, retryable = f"{part.service}: {error.outcome}", True
                    else:
                        if response.status < 400:
                            try:
                                return response.json()
                            except MalformedResponse:
                                raise _PartFailed(f"{part.service}: malformed response") from None
                        reason, retryable = f"{part.service}: HTTP {response.status}", response.status >= 500
                    if not retryable or attempt >= self.retries:
                        raise _PartFailed(reason)
                    attempt += 1
                    await asyncio.sleep(min(self.backoff, max(0.0, deadline_at - self.clock.now())))
    """),
    "never_retries": ({3}, "it did not retry", """
        class Composer(Reference):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.retries = 0
    """),
    "ignores_backoff": ({3}, "wait `backoff` seconds", """
        class Composer(Reference):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.backoff = 0.0
    """),
    "retries_client_errors": ({3}, "it retried a 404", """
        class Composer(Reference):
            async def _fetch(self, part, deadline_at):
                for _ in range(self.retries):
                    try:
                        return await super()._fetch(part, deadline_at)
                    except _PartFailed as failure:
                        if "HTTP 4" not in failure.reason:
                            raise
                return await super()._fetch(part, deadline_at)
    """),
    "waits_for_everything_before_failing": ({3}, "waited for the other parts after the required part", """
        class Composer(Reference):
            async def compose(self, parts):
                parts = list(parts)
                deadline_at = self.clock.now() + self.deadline
                results = await asyncio.gather(*(self._fetch(p, deadline_at) for p in parts),
                                               return_exceptions=True)
                data, errors = {}, {}
                for part, result in zip(parts, results):
                    if isinstance(result, _PartFailed):
                        errors[part.name] = result.reason
                        data[part.name] = part.default
                    else:
                        data[part.name] = result
                if any(p.required and p.name in errors for p in parts):
                    raise CompositionFailed(errors)
                return Composition(data, errors)
    """),
    # -- level 4 ---------------------------------------------------------------------
    "cache_never_expires": ({4}, "it never expires", """
        class ResponseCache(ReferenceCache):
            def __init__(self, ttl, **kwargs):
                super().__init__(1e12, **kwargs)
    """),
    "fresh_at_exactly_ttl": ({4}, "at exactly ttl the entry is stale", """
        class ResponseCache(ReferenceCache):
            async def get(self, key, load):
                entry = self._entries.get(key)
                if entry is not None and self.clock.now() - entry.requested_at <= self.ttl:
                    return entry.value
                return await super().get(key, load)
    """),
    "age_from_the_answer": ({4}, "counts the age from when the answer arrived", """
        class ResponseCache(ReferenceCache):
            async def _load(self, key, load):
                value = await super()._load(key, load)
                self._entries[key] = _Entry(value, self.clock.now())
                return value
    """),
    "never_serves_stale": ({4}, "did not serve the stale entry", """
        class ResponseCache(ReferenceCache):
            def __init__(self, ttl, **kwargs):
                kwargs["stale_if_error"] = 0.0
                super().__init__(ttl, **kwargs)
    """),
    "serves_stale_forever": ({4}, "staler than stale_if_error allows", """
        class ResponseCache(ReferenceCache):
            def __init__(self, ttl, **kwargs):
                super().__init__(ttl, **kwargs)
                self.stale_if_error = 1e12 if self.stale_if_error else 0.0
    """),
    "stale_if_error_as_a_longer_ttl": ({4}, "without asking the backend", """
        class ResponseCache(ReferenceCache):
            async def get(self, key, load):
                entry = self._entries.get(key)
                if entry is not None and self.clock.now() - entry.requested_at < self.ttl + self.stale_if_error:
                    return entry.value
                return await super().get(key, load)
    """),
    "serves_stale_on_success": ({4}, "although the backend answered", """
        class ResponseCache(ReferenceCache):
            async def get(self, key, load):
                old = self._entries.get(key)
                value = await super().get(key, load)
                if old is not None and self.clock.now() - old.requested_at < self.ttl + self.stale_if_error:
                    self._entries[key] = old
                    return old.value  # the stale value, though the refresh worked
                return value
    """),
    "caches_failures": ({4}, "it cached the failure", """
        class ResponseCache(ReferenceCache):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._failures = {}

            async def get(self, key, load):
                failed = self._failures.get(key)
                if failed is not None and key not in self._entries and self.clock.now() - failed[0] < self.ttl:
                    raise failed[1]
                try:
                    return await super().get(key, load)
                except Exception as error:
                    self._failures[key] = (self.clock.now(), error)
                    raise
    """),
    "no_coalescing": ({4}, "no request coalescing", """
        class ResponseCache(ReferenceCache):
            async def get(self, key, load):
                entry = self._entries.get(key)
                if entry is not None and self.clock.now() - entry.requested_at < self.ttl:
                    return entry.value
                requested_at = self.clock.now()
                try:
                    value = await load()  # every miss loads for itself
                except Exception:
                    if entry is not None and self.clock.now() - entry.requested_at < self.ttl + self.stale_if_error:
                        return entry.value
                    raise
                self._entries[key] = _Entry(value, requested_at)
                return value
    """),
    "one_lock_for_all_keys": ({4}, "serialised by one lock", """
        class ResponseCache(ReferenceCache):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._lock = asyncio.Lock()

            async def get(self, key, load):
                async with self._lock:  # coalesces, but every key waits for every other
                    return await super().get(key, load)
    """),
    "failed_load_kept_in_flight": ({4}, "the failed load was kept", """
        class ResponseCache(ReferenceCache):
            async def _load(self, key, load):
                requested_at = self.clock.now()
                value = await load()  # on failure the task stays in self._loading
                del self._loading[key]
                self._entries[key] = _Entry(value, requested_at)
                return value
    """),
    "load_runs_in_the_first_caller": ({4}, "cancelled the load for everyone", """
        class ResponseCache(ReferenceCache):
            async def get(self, key, load):
                entry = self._entries.get(key)
                if entry is not None and self.clock.now() - entry.requested_at < self.ttl:
                    return entry.value
                waiting = self._loading.get(key)
                try:
                    if waiting is not None:
                        return await waiting
                    waiting = self._loading[key] = asyncio.get_running_loop().create_future()
                    requested_at = self.clock.now()
                    try:
                        value = await load()  # in the first caller's own task
                    except BaseException as error:
                        if isinstance(error, asyncio.CancelledError):
                            waiting.cancel()
                        else:
                            waiting.set_exception(error)
                            waiting.exception()
                        raise
                    finally:
                        del self._loading[key]
                    waiting.set_result(value)
                    self._entries[key] = _Entry(value, requested_at)
                    return value
                except Exception:
                    if entry is not None and self.clock.now() - entry.requested_at < self.ttl + self.stale_if_error:
                        return entry.value
                    raise
    """),
    # -- level 5 ---------------------------------------------------------------------
    "web_fields_to_mobile": ({5}, "sends web fields to mobile", with_page("""
        def shape_profile(composition, kind, products=None):
            from solutions.composer import shape_profile as reference
            if kind == MOBILE:
                data = composition.data
                return {"user": dict(data["user"]), "orders": [dict(o) for o in data["orders"]],
                        "payment_methods": list(data["payment_methods"]), "errors": dict(composition.errors)}
            return reference(composition, kind, products)
    """)),
    "n_plus_one": ({5}, "the N+1 problem", with_page("""
        async def load_products(client, skus, *, timeout=1.0):
            found = {}
            for sku in skus:  # every order line, one after another
                response = await client.get("catalog", f"/products/{sku}", timeout=timeout)
                if response.status == 200:
                    found[sku] = response.json()
            return found
    """)),
    "lookups_per_order": ({5}, "the N+1 problem", """
        from solutions.composer import load_products as reference_lookup

        async def load_products(client, skus, *, timeout=1.0):
            return await reference_lookup(client, skus, timeout=timeout)

        async def profile_page(composer, user_id, kind):
            if kind not in (MOBILE, WEB):
                raise ValueError(kind)
            composition = await composer.compose(profile_parts(user_id))
            products = {}
            if kind == WEB:
                orders = composition.data["orders"]
                found = await asyncio.gather(*(load_products(composer.client, [i["sku"] for i in o["items"]])
                                               for o in orders))  # deduplicated order by order only
                for one in found:
                    products.update(one)
            return shape_profile(composition, kind, products)
    """),
    "lookups_one_after_another": ({5}, "looked the products up one after another", with_page("""
        async def load_products(client, skus, *, timeout=1.0):
            found = {}
            for sku in dict.fromkeys(skus):
                response = await client.get("catalog", f"/products/{sku}", timeout=timeout)
                if response.status == 200:
                    found[sku] = response.json()
            return found
    """)),
    "mobile_fetches_products": ({5}, "fetched product details the mobile page never shows", """
        async def profile_page(composer, user_id, kind):
            if kind not in (MOBILE, WEB):
                raise ValueError(kind)
            composition = await composer.compose(profile_parts(user_id))
            skus = [line["sku"] for order in composition.data["orders"] for line in order.get("items", [])]
            products = await load_products(composer.client, skus) if skus else {}
            return shape_profile(composition, kind, products)
    """),
    "drops_the_errors": ({5}, "dropped the composition's errors", with_page("""
        from solutions.composer import shape_profile as reference

        def shape_profile(composition, kind, products=None):
            page = reference(composition, kind, products)
            page["errors"] = {}
            return page
    """)),
    "failed_lookup_fails_the_page": ({5}, "raised", with_page("""
        async def load_products(client, skus, *, timeout=1.0):
            async def one(sku):
                response = await client.get("catalog", f"/products/{sku}", timeout=timeout)
                if response.status != 200:
                    raise RuntimeError(f"catalog answered {response.status} for {sku}")
                return sku, response.json()
            return dict(await asyncio.gather(*(one(sku) for sku in dict.fromkeys(skus))))
    """)),
    "unknown_kind_is_web": ({5}, "ValueError", """
        from solutions.composer import profile_page as reference

        async def profile_page(composer, user_id, kind):
            return await reference(composer, user_id, kind if kind in (MOBILE, WEB) else WEB)
    """),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_mistake_fails_its_level_and_is_named(tmp_path: Path, name: str) -> None:
    levels, phrase, body = VARIANTS[name]
    report = check_kata("composer", variant(tmp_path, body))
    failing = {level.level for level in report.levels if level.status != "pass"}
    assert failing == levels, f"{name} fails levels {sorted(failing)}, expected {sorted(levels)}"
    first = report.levels[min(levels) - 1]
    messages = [test.message or "" for test in first.failures]
    assert all(test.status == "fail" for test in first.failures), [(t.status, t.message) for t in first.failures]
    assert any(phrase in message for message in messages), "\n\n".join(messages)


def test_the_solution_passes_every_level_for_many_seeds() -> None:
    for seed in range(2, 7):  # tests/test_katas_both_directions.py runs seeds 0, 1, 7 and 2024
        report = check_kata("composer", "solutions", seed=seed)
        assert report.status == "pass", (seed, [t.message for lv in report.levels for t in lv.failures])


def starting_stub(folder: Path) -> str:
    """A folder holding the stub as git has it, so that a learner's progress in katas/
    never fails the project's own tests (CI, on a fresh clone, checks the same file)."""
    stub = Path(__file__).resolve().parents[1] / "katas" / "composer.py"
    try:
        source, _ = starting_version(stub)
    except ResetError:  # not committed yet, or no git: the working copy is the stub
        source = stub.read_bytes()
    (folder / "composer.py").write_bytes(source)
    return str(folder)


def test_the_stub_fails_every_level_as_not_implemented(tmp_path: Path) -> None:
    report = check_kata("composer", starting_stub(tmp_path))
    assert [level.status for level in report.levels] == ["fail"] * len(catalogue.kata("composer").levels)
    expected = {1: "Composer.compose", 2: "Composer.compose", 3: "Composer.compose",
                4: "ResponseCache.get", 5: "profile_page"}
    for level in report.levels:
        for test in level.tests:
            assert test.status == "fail", (test.name, test.status, test.message)
            assert test.message == f"not implemented yet: {expected[level.level]} (level {level.level})", \
                test.message


def test_an_unchanged_module_passes_so_the_variants_are_fair(tmp_path: Path) -> None:
    """The control for the variants above: the prelude alone changes nothing."""
    report = check_kata("composer", variant(tmp_path, "class Composer(Reference):\n    pass\n"))
    assert report.status == "pass"


# -- the leftover-task helper the level 3 checks rely on ---------------------------------------


def test_leftover_tasks_sees_a_leaked_call_and_ignores_the_servers_work() -> None:
    """A task the caller left behind is found; a delivery the network keeps running is not."""
    from harness import World
    from harness.checks.composer.scene import leftover_tasks

    with World(seed=1) as world:
        world.add_service("users")
        world.faults.inject({"fault": "hang", "target": "users"})
        client = world.client()

        async def leak() -> list[str]:
            asyncio.ensure_future(client.get("users", "/users/user-1"))  # nobody waits for it
            await asyncio.sleep(0.5)
            return [t.get_coro().__qualname__ for t in leftover_tasks(world)]

        assert world.run(leak()) == ["Client.get"]
    with World(seed=1) as world:
        world.add_service("users")
        world.faults.inject({"fault": "hang", "target": "users"})
        client = world.client()

        async def cancel_properly() -> list:
            try:
                async with asyncio.timeout(0.5):
                    await client.get("users", "/users/user-1", timeout=5)  # the network runs a delivery task
            except TimeoutError:
                pass
            return leftover_tasks(world)

        assert world.run(cancel_properly()) == []


def test_the_watched_client_notes_cancelled_calls() -> None:
    """The recorder never sees a call its caller cancelled; the scene's client does."""
    import solutions.composer as reference
    from harness.checks import Context
    from harness.checks.composer.scene import Shop

    with Shop(Context(reference, seed=0)) as shop:
        shop.fault({"fault": "hang", "target": "orders"})

        async def give_up() -> None:
            try:
                async with asyncio.timeout(0.2):
                    await shop.client.get("orders", "/orders", timeout=5)
            except TimeoutError:
                pass

        shop.run(give_up())
        assert [(c.start, c.end, c.outcome) for c in shop.calls] == [(0.0, 0.2, "cancelled")]
        assert shop.world.recorder.select(caller="composer") == []


def test_the_scene_examples_hold() -> None:
    """harness.checks is left out of the harness-wide doctest run; the scene's examples run here."""
    import doctest

    from harness.checks.composer import scene

    result = doctest.testmod(scene, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted and result.failed == 0
