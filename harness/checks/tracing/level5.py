"""Level 5: a small query language over traces, and tail-based sampling."""

from __future__ import annotations

import random
from typing import Any

from .. import Context, level
from .scene import Story, span


def _shop_traces(m: Any) -> list[Any]:
    """Five traces with something to find in each (times in seconds)."""
    return [
        # t1: a slow order (the whole trace lasts 1.5 s), for user-123
        span(m, "a", None, "gateway", 0.0, 1.5, trace_id="t1", http_status=200),
        span(m, "b", "a", "orders", 0.2, 1.4, trace_id="t1", http_status=201, annotations={"user_id": "user-123"}),
        # t2: a quick order
        span(m, "c", None, "gateway", 2.0, 2.3, trace_id="t2", http_status=200),
        span(m, "d", "c", "orders", 2.1, 2.2, trace_id="t2", http_status=201, annotations={"user_id": "user-456"}),
        # t3: a failed payment, 2 s; user-123 recorded as metadata only (the seed's put_metadata)
        span(m, "e", None, "gateway", 3.0, 5.0, trace_id="t3", status="error", http_status=502),
        span(m, "f", "e", "payments", 3.5, 4.9, trace_id="t3", status="error", http_status=500,
             metadata={"user_id": "user-123"}),
        # t4: users only, 1.2 s, with typed annotations
        span(m, "g", None, "users", 6.0, 7.2, trace_id="t4", http_status=200,
             annotations={"items": 3, "vip": True, "code": "123", "total": 20.5}),
        # t5: payments answering 503, quick
        span(m, "h", None, "payments", 8.0, 8.25, trace_id="t5", status="error", http_status=503,
             annotations={"items": 1, "vip": False, "code": "7", "total": 99.0}),
        # t6: orders called inventory, which never answered: no span of inventory at all
        span(m, "i", None, "orders", 9.0, 9.5, trace_id="t6", status="error", http_status=504),
        span(m, "j", "i", "orders", 9.0, 9.25, trace_id="t6", kind="client", peer="inventory", status="error"),
    ]


def _expect_found(story: Story, module: Any, spans: list[Any], query: str, expected: list[str],
                  why: str | None = None) -> None:
    got = module.find_traces(spans, query)
    story.note(f"find_traces(spans, {query!r}) -> {got!r}")
    if list(got) != expected:
        story.fail(got=repr(got), expected=f"{expected!r} (traces in group_traces order)", why=why)


TRACES = ("t1: gateway 0..1.5 > orders (annotation user_id=user-123); t2: gateway 2..2.3 > orders "
          "(user_id=user-456); t3: gateway 502 3..5 > payments 500 (metadata user_id=user-123); t4: users "
          "6..7.2 (items=3, vip=true, code='123', total=20.5); t5: payments 503 8..8.25 (items=1, vip=false, "
          "code='7', total=99.0); t6: orders 504 9..9.5 > a call to inventory that timed out (client span only)")


@level(5)
def queries_services_and_durations_in_seconds(ctx: Context) -> None:
    """service("orders") AND duration > 1: a trace through orders lasting over 1 second."""
    story = Story(ctx)
    story.note(TRACES)
    spans = _shop_traces(ctx.module)
    _expect_found(story, ctx.module, spans, 'service("orders") AND duration > 1', ["t1"],
                  why="duration is the whole trace's, in seconds: from its earliest start to its latest end")
    _expect_found(story, ctx.module, spans, "duration > 1", ["t1", "t3", "t4"])
    _expect_found(story, ctx.module, spans, "duration >= 1.5", ["t1", "t3"],
                  why="the trace's duration, not one span's: t1 lasts 1.5 s from its root's start to its end")
    _expect_found(story, ctx.module, spans, "duration > 1000", [],
                  why="durations are seconds (as in X-Ray): nothing here lasted 1000 s")
    _expect_found(story, ctx.module, spans, 'service("payments")', ["t3", "t5"])
    _expect_found(story, ctx.module, spans, 'service("inventory")', ["t6"],
                  why="a trace goes through a service when it called it, answered or not: count client spans "
                      "whose peer is that service (a timed-out call left no span of inventory itself)")


@level(5)
def queries_http_status(ctx: Context) -> None:
    """http.status = 500 finds the traces where some span answered 500."""
    story = Story(ctx)
    story.note(TRACES)
    spans = _shop_traces(ctx.module)
    _expect_found(story, ctx.module, spans, "http.status = 500", ["t3"])
    _expect_found(story, ctx.module, spans, 'service("payments") AND http.status >= 500', ["t3", "t5"])
    _expect_found(story, ctx.module, spans, "http.status = 200 AND http.status = 201", ["t1", "t2"],
                  why="each comparison looks for *some* span of the trace: in t1 and t2 the gateway answered 200 "
                      "and orders 201")


@level(5)
def annotations_are_searchable_metadata_is_not(ctx: Context) -> None:
    """annotation.user_id = "user-123" finds annotated traces, never the ones with that metadata."""
    story = Story(ctx)
    story.note(TRACES)
    spans = _shop_traces(ctx.module)
    _expect_found(story, ctx.module, spans, 'annotation.user_id = "user-123"', ["t1"],
                  why="it searches metadata: metadata is not indexed, queries see annotations only (the seed "
                      "puts user_id in metadata and then queries annotation.user_id: it finds nothing)")
    _expect_found(story, ctx.module, spans, 'annotation.user_id != "user-123"', ["t2"],
                  why="!= looks for a span that *has* the annotation with another value")


@level(5)
def annotation_values_are_typed(ctx: Context) -> None:
    """Numbers compare as numbers, strings and booleans with = and != only; "123" is not 123."""
    story = Story(ctx)
    story.note(TRACES)
    spans = _shop_traces(ctx.module)
    _expect_found(story, ctx.module, spans, "annotation.items > 2", ["t4"])
    _expect_found(story, ctx.module, spans, "annotation.total <= 20.5", ["t4"])
    _expect_found(story, ctx.module, spans, "annotation.vip = true", ["t4"])
    _expect_found(story, ctx.module, spans, "annotation.vip = false", ["t5"],
                  why="true and false are booleans: vip=False matches false (and the number 0 would not)")
    _expect_found(story, ctx.module, spans, "annotation.code = 123", [],
                  why="the annotation is the string '123': a number literal does not match it")
    _expect_found(story, ctx.module, spans, 'annotation.code = "123"', ["t4"])


@level(5)
def precedence_parentheses_and_not(ctx: Context) -> None:
    """NOT binds tighter than AND, AND tighter than OR; parentheses group; keywords in any case."""
    story = Story(ctx)
    story.note(TRACES)
    spans = _shop_traces(ctx.module)
    why = "AND binds tighter than OR: a OR b AND c is a OR (b AND c)"
    _expect_found(story, ctx.module, spans, 'service("users") OR service("payments") AND duration < 1', ["t4", "t5"],
                  why=why)
    _expect_found(story, ctx.module, spans, '(service("users") OR service("payments")) AND duration < 1.5', ["t4", "t5"])
    _expect_found(story, ctx.module, spans, 'NOT service("gateway") AND http.status = 503', ["t5"],
                  why="NOT applies to the condition right after it, before AND")
    _expect_found(story, ctx.module, spans, 'not (service("gateway") or service("users")) and duration < 0.5', ["t5"],
                  why="AND, OR and NOT may be written in lower case too")


BAD_QUERIES = [
    ("latency > 1", "latency", "an unknown field"),
    ("duration >", None, "a comparison without a value"),
    ("duration == 1", None, "an operator that does not exist (==)"),
    ('service(orders)', None, "a service name without quotes"),
    ('service("orders"', None, "a missing closing parenthesis"),
    ("duration > 1 AND", None, "a dangling AND"),
    ("(duration > 1", None, "an unclosed parenthesis"),
    ('annotation.user_id = "user-123', None, "an unclosed string"),
    ('duration > "slow"', None, "a string where a number is needed"),
    ('annotation.vip > true', None, "a boolean that cannot be ordered"),
    ("duration > 1 duration < 2", None, "two conditions without AND or OR"),
    ("annotation. = 1", None, "an annotation without a key"),
    ("", None, "an empty query"),
]


@level(5)
def a_bad_query_raises_one_clear_error(ctx: Context) -> None:
    """Every malformed query raises QueryError at once (even with no spans), in one line."""
    story = Story(ctx)
    module = ctx.module
    for query, named, what in BAD_QUERIES:
        try:
            result = module.find_traces([], query)
        except module.QueryError as error:
            message = str(error)
            story.note(f"find_traces([], {query!r}) -> QueryError: {message}")
            if not message or "\n" in message:
                story.fail(got=f"QueryError({message!r})", expected="a message of one line, not empty")
            if named and named not in message:
                story.fail(got=f"QueryError({message!r})", expected=f"a message naming {named!r}",
                           why=f"a learner reading the error must see which part is wrong ({what})")
            if not isinstance(error, ValueError):
                story.fail(got="QueryError is not a ValueError", expected="class QueryError(ValueError)")
            continue
        except NotImplementedError:
            raise
        except Exception as error:
            story.fail(got=f"find_traces([], {query!r}) raised {type(error).__name__}: {error}",
                       expected=f"QueryError ({what})",
                       why="parse errors must all be QueryError, with a message, not a crash of the parser")
        story.fail(got=f"find_traces([], {query!r}) returned {result!r}", expected=f"QueryError ({what})",
                   why="parse the query before looking at any trace: a bad query is an error even on no data, "
                       "not an empty answer")


# -- tail-based sampling ----------------------------------------------------------------------


def _stream(ctx: Context, traces: int, error_share: float) -> tuple[list[Any], set[str]]:
    """Traces of 3 spans arriving over time: a fast leaf, then payments (sometimes an error), then the root."""
    m = ctx.module
    spans, errors = [], set()
    for n in range(traces):
        t, start = f"t{n}", n * 0.05
        failed = ctx.rng.random() < error_share
        if failed:
            errors.add(t)
        spans += [span(m, f"{t}u", f"{t}r", "users", start, start + 0.01, trace_id=t),
                  span(m, f"{t}p", f"{t}r", "payments", start, start + 0.2, trace_id=t,
                       status="error" if failed else "ok", http_status=500 if failed else 201),
                  span(m, f"{t}r", None, "gateway", start, start + 0.25, trace_id=t,
                       status="error" if failed else "ok", http_status=502 if failed else 200)]
    spans.sort(key=lambda s: s.end)
    return spans, errors


def _sample(module: Any, spans: list[Any], *, rate: float, seed: int, every: float = 1.0, wait: float = 10.0,
            **options: Any) -> list[Any]:
    # Not random.Random(seed): the traces' errors were drawn from that very stream, and
    # the same numbers would keep exactly the error traces by coincidence.
    sampler = module.TailSampler(rate, random.Random(f"tail-sampler:{seed}"), decision_wait=wait, **options)
    kept: list[Any] = []
    next_flush = every
    for s in spans:
        while s.end > next_flush:
            kept += sampler.flush(next_flush)
            next_flush += every
        sampler.add(s)
    kept += sampler.flush(spans[-1].end + wait)
    return kept


@level(5)
def tail_sampling_keeps_every_error_trace(ctx: Context) -> None:
    """At rate 0.1, every error trace is kept whole; about 10 % of the others, whole too."""
    story = Story(ctx)
    spans, errors = _stream(ctx, 1000, 0.05)
    story.note(f"1000 traces (3 spans each; {len(errors)} with a payments error in the 2nd span to end), fed "
               "to TailSampler(rate=0.1, decision_wait=10) in order of their end, flush every 1 s, then at the end")
    kept = _sample(ctx.module, spans, rate=0.1, seed=ctx.seed)
    by_trace: dict[str, int] = {}
    for s in kept:
        by_trace[s.trace_id] = by_trace.get(s.trace_id, 0) + 1
    lost = sorted(errors - set(by_trace))
    if lost:
        story.fail(got=f"{len(errors) - len(lost)} of {len(errors)} error traces kept (lost e.g. {lost[:3]})",
                   expected="every error trace kept",
                   why="it drops error traces: decide only once the trace had time to finish, and keep every "
                       "trace with an error span whatever the rate (a coin flipped at the first span is head "
                       "sampling: it cannot know an error is coming)")
    partial = sorted(t for t, count in by_trace.items() if count != 3)
    if partial:
        story.fail(got=f"traces kept in part: {partial[:3]} ({by_trace[partial[0]]} of 3 spans)",
                   expected="whole traces: all 3 spans or none",
                   why="decide per trace, not per span; spans of a decided trace follow its decision")
    others = len(set(by_trace) - errors)
    share = others / (1000 - len(errors))
    if not 0.06 <= share <= 0.14:
        story.fail(got=f"{others} of {1000 - len(errors)} traces without errors kept ({share:.1%})",
                   expected="about 10 % of them (between 6 % and 14 %)", why="keep the others with probability rate")


@level(5)
def tail_sampling_waits_before_deciding(ctx: Context) -> None:
    """A trace is decided only when decision_wait has passed since its first span arrived."""
    story = Story(ctx)
    m = ctx.module
    sampler = m.TailSampler(0.0, random.Random(ctx.seed), decision_wait=10.0)
    story.note("sampler = TailSampler(rate=0.0, decision_wait=10)")
    first = span(m, "u", "r", "users", 0.5, 1.0, trace_id="t1")
    sampler.add(first)
    story.note("add(users span of t1, ends at 1.0)")
    early = sampler.flush(5.0)
    story.note(f"flush(5.0) -> {len(early)} span(s)")
    late = span(m, "r", None, "gateway", 0.0, 6.0, trace_id="t1", status="error", http_status=502)
    sampler.add(late)
    story.note("add(gateway root span of t1, status error, ends at 6.0)")
    before = sampler.flush(10.9)
    story.note(f"flush(10.9) -> {len(before)} span(s)")
    at_wait = sampler.flush(11.0)
    story.note(f"flush(11.0) -> {[s.span_id for s in at_wait]}")
    released = early + before + at_wait
    if early or before:
        story.fail(got="spans released before t=11", expected="nothing before 1.0 + decision_wait = 11",
                   why="the trace was decided before decision_wait had passed since its first span arrived")
    if sorted(s.span_id for s in released) != ["r", "u"]:
        story.fail(got=f"released {[s.span_id for s in released]}", expected="both spans of t1 at flush(11.0)",
                   why="the trace was decided before decision_wait had passed (at flush(5.0), 4 s after its first "
                       "span), so its error, arriving at 6.0, came too late and the error trace was dropped. A "
                       "trace is due when its first span arrived at or before now - decision_wait (1.0 + 10 <= 11.0)")


@level(5)
def late_spans_follow_the_decision(ctx: Context) -> None:
    """After a decision, a trace's late spans are released if it was kept, dropped if it was not."""
    story = Story(ctx)
    m = ctx.module
    sampler = m.TailSampler(0.0, random.Random(ctx.seed), decision_wait=10.0)
    story.note("sampler = TailSampler(rate=0.0, decision_wait=10)")
    sampler.add(span(m, "k1", None, "payments", 0.0, 1.0, trace_id="kept", status="error", http_status=500))
    sampler.add(span(m, "d1", None, "users", 0.0, 1.0, trace_id="dropped", http_status=200))
    first = sampler.flush(11.0)
    story.note(f"add(an error span of 'kept', an ok span of 'dropped'); flush(11.0) -> {[s.span_id for s in first]}")
    sampler.add(span(m, "k2", "k1", "payments", 0.0, 12.0, trace_id="kept"))
    sampler.add(span(m, "d2", "d1", "users", 0.0, 12.0, trace_id="dropped", status="error", http_status=500))
    second = sampler.flush(13.0)
    story.note(f"add(a late span of each, the late one of 'dropped' an error); flush(13.0) -> {[s.span_id for s in second]}")
    if [s.span_id for s in first] != ["k1"]:
        story.fail(got=repr([s.span_id for s in first]), expected="['k1']")
    if [s.span_id for s in second] != ["k2"]:
        story.fail(got=repr([s.span_id for s in second]), expected="['k2']",
                   why="a decided trace keeps its decision: late spans of a kept trace are released (at the next "
                       "flush), late spans of a dropped trace are dropped, even errors (the rest of that trace "
                       "is gone already)")


@level(5)
def tail_sampling_keeps_slow_traces_and_is_reproducible(ctx: Context) -> None:
    """keep_slower_than keeps traces longer than it; the coin flips come from the injected random."""
    story = Story(ctx)
    m = ctx.module
    sampler = m.TailSampler(0.0, random.Random(ctx.seed), decision_wait=10.0, keep_slower_than=2.0)
    sampler.add(span(m, "s", None, "orders", 0.0, 2.5, trace_id="slow"))
    sampler.add(span(m, "e", None, "orders", 0.5, 2.5, trace_id="exactly"))
    kept = sorted({s.trace_id for s in sampler.flush(20.0)})
    story.note(f"TailSampler(rate=0, keep_slower_than=2): traces of 2.5 s and of exactly 2 s -> kept {kept}")
    if kept != ["slow"]:
        story.fail(got=f"kept {kept}", expected="['slow']: longer than 2 s is kept, exactly 2 s is not (rate 0)")
    spans, _ = _stream(ctx, 300, 0.0)
    runs = [sorted({s.trace_id for s in _sample(m, spans, rate=0.5, seed=ctx.seed)}) for _ in range(2)]
    story.note("300 traces without errors, twice through TailSampler(rate=0.5) with the same seeded random")
    if runs[0] != runs[1]:
        story.fail(got=f"{len(runs[0])} then {len(runs[1])} traces kept, not the same ones",
                   expected="the same traces kept both times",
                   why="the coin flips do not come from self.rng: a replay with the same seed must keep the same "
                       "traces")
    everything = _sample(m, spans, rate=1.0, seed=ctx.seed)
    if len(everything) != len(spans):
        story.fail(got=f"rate 1.0 kept {len(everything)} of {len(spans)} spans", expected="all of them")
