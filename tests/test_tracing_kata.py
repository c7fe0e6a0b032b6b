"""The tracing kata's checks bite: the solution passes, the stub fails, each plausible mistake is named.

Each wrong variant is the reference solution with one mistake a learner might
make, written as a text patch of ``solutions/tracing.py`` (its functions call
each other, so a mistake in ``extract`` must reach the middleware that uses
it) into a temporary ``tracing.py``, checked the way a learner's file is. It
must fail the level that teaches the rule it breaks, with a message that
names the mistake (and where the mistake breaks a later rule too, that level
as well: ``levels`` says which). Every patch must apply exactly once, so a
change in the solution that makes a variant meaningless fails loudly.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.toolchain import catalogue
from harness.toolchain.reset import ResetError, starting_version
from harness.toolchain.runner import check_kata

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = (ROOT / "solutions" / "tracing.py").read_text()


def patched(patches: list[tuple[str, str]]) -> str:
    """The solution with each (old, new) replaced once. A patch of several lines is written
    without its indentation: it takes the indentation of the line where ``old`` starts."""
    source = SOLUTION
    for old, new in patches:
        old, new = textwrap.dedent(old).strip("\n"), textwrap.dedent(new).strip("\n")
        if "\n" in old or "\n" in new:
            first = old.splitlines()[0]
            starts = [line[: len(line) - len(line.lstrip())] for line in source.splitlines()
                      if line.strip() == first.strip() or line.lstrip().startswith(first)]
            assert starts, f"no line starts with {first!r}"
            old, new = textwrap.indent(old, starts[0]), textwrap.indent(new, starts[0])
        count = source.count(old)
        assert count == 1, f"the patch applies {count} times, not once:\n{old}"
        source = source.replace(old, new)
    return source


def variant(tmp_path: Path, patches: list[tuple[str, str]]) -> str:
    (tmp_path / "tracing.py").write_text(patched(patches))
    return str(tmp_path)


# name: (the levels it fails, a phrase the failure message of its first level must contain, the patches)
VARIANTS: dict[str, tuple[set[int], str, list[tuple[str, str]]]] = {
    # -- level 1 ---------------------------------------------------------------------
    "accepts_uppercase_hex": ({1, 2}, "accepts uppercase hex", [
        ('_HEX = re.compile(r"[0-9a-f]+")', '_HEX = re.compile(r"[0-9a-fA-F]+")')]),
    "accepts_all_zero_ids": ({1}, "accepts an all-zero trace id", [
        ("if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:", "if False:")]),
    "accepts_version_ff": ({1}, "version ff is forbidden", [
        ('if not _hex(version, 2) or version == "ff":', "if not _hex(version, 2):")]),
    "accepts_extra_fields_in_version_00": ({1}, "version 00 is exactly 55 characters", [
        ("if len(value) != _V00_LENGTH:  # version 00 has exactly four fields", "if len(value) < _V00_LENGTH:")]),
    "rejects_later_versions_with_more_fields": ({1}, "forward compatibility", [
        ('elif len(value) > _V00_LENGTH and value[_V00_LENGTH] != "-":', "elif len(value) != _V00_LENGTH:")]),
    "drops_tracestate": ({1, 2}, "drops tracestate", [
        ('return TraceContext(context.trace_id, context.span_id, context.sampled, headers.get("tracestate", ""))',
         "return context")]),
    "forwards_a_stale_tracestate": ({1}, "stale tracestate", [
        ("out.pop(\"tracestate\", None)  # never forward someone else's stale state", "pass")]),
    "reuses_the_parents_span_id": ({1, 2}, "reuses the parent's span id", [
        ("return TraceContext(parent.trace_id, ids.span_id(), parent.sampled, parent.tracestate)",
         "return TraceContext(parent.trace_id, parent.span_id, parent.sampled, parent.tracestate)")]),
    "ids_from_os_urandom": ({1, 2}, "ids do not come from self.rng", [
        ("import math\n", "import math\nimport os\n"),
        ("value = self.rng.getrandbits(bits)", 'value = int.from_bytes(os.urandom(bits // 8), "big")')]),
    # -- level 2 ---------------------------------------------------------------------
    "current_span_in_a_global": ({2}, "spans are mixed between requests", [
        ('_CURRENT: ContextVar[Span | None] = ContextVar("current_span", default=None)', """
            class _Global:
                value = None

                def get(self):
                    return self.value

                def set(self, value):
                    old, self.value = self.value, value
                    return old

                def reset(self, old):
                    self.value = old


            _CURRENT = _Global()
        """)]),
    "never_resets_the_current_span": ({2}, "leaves its span current", [
        ("""
            finally:
                _CURRENT.reset(token)
        """, """
            finally:
                pass
        """)]),
    "span_lost_when_the_app_raises": ({2}, "not finished when the app raises", [
        ("self.tracer.finish(span, http_status=status or 500)\nraise", "raise")]),
    "error_on_4xx": ({2}, "a 4xx is the caller's mistake", [
        ("(http_status is not None and http_status >= 500)", "(http_status is not None and http_status >= 400)")]),
    "callee_hangs_under_the_server_span": ({2}, "the callee's parent is the client span", [
        ('kwargs["headers"] = inject(span.context, kwargs.get("headers"))',
         'kwargs["headers"] = inject(here.context if here is not None else span.context, kwargs.get("headers"))')]),
    "client_span_ignores_the_current_span": ({2}, "a child of the request being handled", [
        ('parent = here.context if here is not None else extract(kwargs.get("headers") or {})',
         'parent = extract(kwargs.get("headers") or {})')]),
    "client_span_lost_on_timeout": ({2}, "error=True", [
        ("self.tracer.finish(span, error=True)  # timeout, refused, reset: no answer\nraise", "raise")]),
    "metadata_in_annotations": ({2}, "two separate dicts", [
        ("self.metadata[key] = value", "self.annotations[key] = value")]),
    "annotations_take_objects": ({2}, "a string, number or boolean only", [
        ("if not isinstance(value, (str, int, float, bool)):", "if False:")]),
    "no_client_wrapper": ({2}, "instrument() must replace ctx.client", [
        ("ctx.client = TracingClient(ctx.client, tracer, ctx.service)", "pass")]),
    # -- level 3 ---------------------------------------------------------------------
    "drops_orphans": ({3}, "it drops orphans", [
        ("""
            node.orphan = span.parent_id is not None
            roots.append(node)
        """, """
            if span.parent_id is None:
                roots.append(node)
        """),
        ("    _adopt_cycles(ordered, nodes, roots)\n", "")]),
    "orphans_under_the_first_root": ({3}, "not the root's child", [
        ("""
            node.orphan = span.parent_id is not None
            roots.append(node)
        """, """
            if span.parent_id is None or not roots:
                roots.append(node)
            else:
                roots[0].children.append(node)
        """)]),
    "error_rate_over_all_calls": ({3}, "over all calls instead of per service", [
        ('node["error_rate"] = node["errors"] / node["calls"] if node["calls"] else None',
         'node["error_rate"] = sum(failed for *_, failed in calls) / len(calls) if node["calls"] else None')]),
    "counts_each_call_twice": ({3}, "each call is counted once", [
        ("elif span.parent_id not in client_ids:", "else:")]),
    "five_percent_is_red": ({3}, "exactly 5 % is yellow", [("if rate <= 0.05:", "if rate < 0.05:")]),
    "float_noise_at_five_percent": ({3}, "0.050000000000000044", [
        ("rate = round(error_rate, 12)", "rate = error_rate")]),
    # -- level 4 ---------------------------------------------------------------------
    "percentile_interpolates": ({4}, "interpolates", [
        ("return ordered[max(1, math.ceil(q * len(ordered))) - 1]", """
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)""")]),
    "percentile_averages_the_middle": ({4}, "averages the two middle values", [
        ("return ordered[max(1, math.ceil(q * len(ordered))) - 1]", """
    if q == 0.5 and len(ordered) % 2 == 0:
        middle = len(ordered) // 2
        return (ordered[middle - 1] + ordered[middle]) / 2
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]""")]),
    "percentile_is_the_mean": ({4}, "it averages the values", [
        ("return ordered[max(1, math.ceil(q * len(ordered))) - 1]", "return sum(ordered) / len(ordered)")]),
    "latency_from_server_spans": ({4}, "it measures server spans", [
        ('if span.kind == "client" and span.peer is not None:\n    latencies.setdefault(span.peer, [])',
         'if span.kind == "server":\n    latencies.setdefault(span.service, [])')]),
    "back_to_back_sibling_dropped": ({4}, "back-to-back siblings stay on the path", [
        ("ready = [c for c in children if c[2] <= until]",
         "ready = [c for c in children if c[2] < until or (until == end and c[2] <= until)]")]),
    "critical_path_adds_up_every_child": ({4}, "Never add up every child", [
        ("ready = [c for c in children if c[2] <= until]", "ready = children")]),
    "critical_path_unclipped": ({4}, "unclipped children", [
        ("child_start, child_end = max(child.span.start, start), min(child.span.end, end)",
         "child_start, child_end = child.span.start, child.span.end")]),
    # -- level 5 ---------------------------------------------------------------------
    "query_searches_metadata": ({5}, "it searches metadata", [
        ("return lambda trace: any(key in s.annotations and _compare(op, s.annotations[key], literal)",
         "return lambda trace: any(_compare(op, {**s.metadata, **s.annotations}[key], literal) "
         "if key in {**s.metadata, **s.annotations} else False")]),
    "duration_in_milliseconds": ({5}, "in seconds", [
        ("return lambda trace: op(max(s.end for s in trace) - min(s.start for s in trace), number)",
         "return lambda trace: op((max(s.end for s in trace) - min(s.start for s in trace)) * 1000, number)")]),
    "or_binds_tighter_than_and": ({5}, "AND binds tighter than OR", [
        ("""
            parts = [self.conjunction()]
            while self.peek()[0] == "OR":
                self.take()
                parts.append(self.conjunction())
            return parts[0] if len(parts) == 1 else (lambda trace: any(p(trace) for p in parts))
        """, """
            parts = [self.negation()]
            while self.peek()[0] in ("OR", "AND"):
                word = self.take()[0]
                right = self.negation()
                left = parts.pop()
                parts.append((lambda a, b: lambda t: a(t) or b(t))(left, right) if word == "OR"
                             else (lambda a, b: lambda t: a(t) and b(t))(left, right))
            return parts[0]
        """)]),
    "bad_query_found_nothing": ({5}, "parse the query before looking at any trace", [
        ("predicate = parse_query(query)  # first: a bad query fails even on no data",
         "spans = list(spans)\nif not spans:\n    return []\npredicate = parse_query(query)")]),
    "head_sampling": ({5}, "it drops error traces", [
        ("""
            if span.trace_id not in self._pending:
                self._pending[span.trace_id] = []
        """, """
            if span.trace_id not in self._pending:
                keep = span.status == "error" or self.rng.random() < self.rate  # decided at the first span
                self._decided[span.trace_id] = keep
                if keep:
                    self._released.append(span)
                return
        """)]),
    "rate_applies_to_error_traces": ({5}, "it drops error traces", [
        ('if any(s.status == "error" for s in spans):', "if False:")]),
    "decides_without_waiting": ({5}, "before decision_wait had passed", [
        ("if self._first_arrival[trace_id] + self.decision_wait > now:", "if False:")]),
    "samples_spans_not_traces": ({5}, "decide per trace, not per span", [
        ("""
            keep = self._keep(spans)
            self._decided[trace_id] = keep
            if keep:
                self._released.extend(spans)
        """, """
            self._decided[trace_id] = False
            self._released.extend(s for s in spans if self._keep([s]))
        """)]),
    "late_spans_reopen_the_decision": ({5}, "a decided trace keeps its decision", [
        ("decision = self._decided.get(span.trace_id)", "decision = None")]),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_mistake_fails_its_level_and_is_named(tmp_path: Path, name: str) -> None:
    levels, phrase, patches = VARIANTS[name]
    report = check_kata("tracing", variant(tmp_path, patches))
    failing = {level.level for level in report.levels if level.status != "pass"}
    assert failing == levels, f"{name} fails levels {sorted(failing)}, expected {sorted(levels)}: " + "\n\n".join(
        t.message or "" for lv in report.levels for t in lv.failures)
    first = report.levels[min(levels) - 1]
    messages = [test.message or "" for test in first.failures]
    assert all(test.status == "fail" for test in first.failures), [(t.name, t.status, t.message) for t in first.failures]
    assert any(phrase in message for message in messages), "\n\n".join(messages)


def test_the_solution_passes_every_level_for_many_seeds() -> None:
    for seed in range(3, 9):
        report = check_kata("tracing", "solutions", seed=seed)
        assert report.status == "pass", (seed, [t.message for lv in report.levels for t in lv.failures])


def starting_stub(folder: Path) -> str:
    stub = ROOT / "katas" / "tracing.py"
    try:
        source, _ = starting_version(stub)
    except ResetError:  # not committed yet: the working copy is the stub
        source = stub.read_bytes()
    (folder / "tracing.py").write_bytes(source)
    return str(folder)


def test_the_stub_fails_every_level_as_not_implemented(tmp_path: Path) -> None:
    report = check_kata("tracing", starting_stub(tmp_path))
    assert [level.status for level in report.levels] == ["fail"] * len(catalogue.kata("tracing").levels)
    for level in report.levels:
        for test in level.tests:
            assert test.status == "fail", (test.name, test.status, test.message)
            assert test.message.startswith("not implemented yet: "), test.message
            assert test.message.endswith(f"(level {level.level})")


def test_an_unchanged_copy_passes_so_the_variants_are_fair(tmp_path: Path) -> None:
    assert check_kata("tracing", variant(tmp_path, [])).status == "pass"


def test_a_learners_error_inside_a_service_is_reported_as_theirs(tmp_path: Path) -> None:
    """An error raised by the learner's middleware inside the world is not hidden behind an HTTP 500."""
    unfinished = variant(tmp_path, [("""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
    """, """
        raise NotImplementedError
    """)])
    report = check_kata("tracing", unfinished, level=2)
    messages = {t.message for t in report.levels[0].tests}
    assert messages == {"not implemented yet: SpanMiddleware.__call__ (level 2)"}, messages
    (tmp_path / "tracing.py").write_text(patched([("token = _CURRENT.set(span)", "token = _CURRENT.set(span, span)")]))
    report = check_kata("tracing", str(tmp_path), level=2)
    test = report.levels[0].tests[0]
    assert test.status == "error", (test.status, test.message)
    assert test.message.startswith("TypeError") and "in SpanMiddleware.__call__" in test.message, test.message


def test_the_checks_colours_are_the_harness_colours() -> None:
    """Level 3 checks health_colour against a table; the table is what harness.plots says."""
    from harness.checks.tracing.level3 import COLOURS
    from harness.plots import health_colour

    assert [(rate, health_colour(rate)) for rate, _ in COLOURS] == COLOURS


def test_a_failure_message_tells_what_was_done_and_how_to_replay(tmp_path: Path) -> None:
    report = check_kata("tracing", variant(tmp_path, VARIANTS["drops_tracestate"][2]), level=1, seed=5)
    failure = report.levels[0].failures[0]
    assert failure.message.startswith("What was done:")
    assert "Expected:" in failure.message and failure.message.endswith("(seed 5)")
    assert failure.replay == f"kata check tracing --level 1 --seed 5 --against {tmp_path}"
