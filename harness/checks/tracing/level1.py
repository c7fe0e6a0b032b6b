"""Level 1: the W3C trace context, and interop with OpenTelemetry's propagator."""

from __future__ import annotations

import random
import re
from typing import Any

from .. import Context, level
from .scene import Story

W3C_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
W3C_PARENT = "00f067aa0ba902b7"
W3C_EXAMPLE = f"00-{W3C_TRACE}-{W3C_PARENT}-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
TRACESTATE_WITH_SPACES = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"  # W3C allows spaces after commas
HEX_ID = {32: re.compile(r"[0-9a-f]{32}"), 16: re.compile(r"[0-9a-f]{16}")}


def _hex(rng: random.Random, digits: int) -> str:
    value = 0
    while not value:
        value = rng.getrandbits(digits * 4)
    return f"{value:0{digits}x}"


def _header(rng: random.Random, *, sampled: bool = True) -> str:
    return f"00-{_hex(rng, 32)}-{_hex(rng, 16)}-{'01' if sampled else '00'}"


def _show(value: Any) -> str:
    return "None" if value is None else repr(value)


def _parse(story: Story, module: Any, header: Any) -> Any:
    result = module.parse_traceparent(header)
    story.note(f"parse_traceparent({header!r}) -> {_show(result)}")
    return result


def _expect_invalid(story: Story, module: Any, header: str, *, what: str, why: str) -> None:
    result = _parse(story, module, header)
    if result is not None:
        story.fail(got=f"a TraceContext: {result!r}",
                   expected=f"None: {what} is invalid, so the receiver starts a new trace", why=why)


def _expect_valid(story: Story, module: Any, header: str, trace_id: str, span_id: str, sampled: bool,
                  *, why: str | None = None) -> Any:
    result = _parse(story, module, header)
    if result is None or (result.trace_id, result.span_id, result.sampled) != (trace_id, span_id, sampled):
        got = "None" if result is None else f"trace_id={result.trace_id!r}, span_id={result.span_id!r}, sampled={result.sampled!r}"
        story.fail(got=got, expected=f"trace_id={trace_id!r}, span_id={span_id!r}, sampled={sampled!r}", why=why)
    return result


@level(1)
def parses_a_valid_traceparent(ctx: Context) -> None:
    """A valid traceparent gives its trace id, parent id and sampled flag."""
    story = Story(ctx)
    module = ctx.module
    _expect_valid(story, module, W3C_EXAMPLE, W3C_TRACE, W3C_PARENT, True)
    _expect_valid(story, module, f"00-{W3C_TRACE}-{W3C_PARENT}-00", W3C_TRACE, W3C_PARENT, False,
                  why="sampled is bit 0 of the flags: 00 means not sampled")
    _expect_valid(story, module, f"00-{W3C_TRACE}-{W3C_PARENT}-03", W3C_TRACE, W3C_PARENT, True,
                  why="sampled is bit 0 of the flags (flags & 1): 03 has it set; other bits do not matter")
    for _ in range(20):
        trace_id, span_id = _hex(ctx.rng, 32), _hex(ctx.rng, 16)
        _expect_valid(story, module, f"00-{trace_id}-{span_id}-01", trace_id, span_id, True)


@level(1)
def rejects_uppercase_hex(ctx: Context) -> None:
    """Uppercase hex anywhere makes the header invalid (W3C: lower case only)."""
    story = Story(ctx)
    why = ("it accepts uppercase hex: the W3C spec says uppercase MUST be treated as invalid. Compare with "
           "[0-9a-f] exactly: no re.IGNORECASE, no .lower(), and not int(x, 16), which happily reads 'AB'")
    _expect_invalid(story, ctx.module, W3C_EXAMPLE.upper(), what="an all-uppercase header", why=why)
    _expect_invalid(story, ctx.module, f"00-{W3C_TRACE.upper()}-{W3C_PARENT}-01", what="an uppercase trace id", why=why)
    _expect_invalid(story, ctx.module, f"00-{W3C_TRACE}-{W3C_PARENT.upper()}-01", what="an uppercase parent id", why=why)
    _expect_invalid(story, ctx.module, f"00-{W3C_TRACE}-{W3C_PARENT}-0A", what="uppercase flags", why=why)


@level(1)
def rejects_all_zero_ids(ctx: Context) -> None:
    """A trace id of 32 zeros or a parent id of 16 zeros is invalid."""
    story = Story(ctx)
    _expect_invalid(story, ctx.module, f"00-{'0' * 32}-{W3C_PARENT}-01", what="an all-zero trace id",
                    why="it accepts an all-zero trace id: 32 zeros is the W3C's invalid trace id")
    _expect_invalid(story, ctx.module, f"00-{W3C_TRACE}-{'0' * 16}-01", what="an all-zero parent id",
                    why="it accepts an all-zero parent id: 16 zeros is the W3C's invalid span id")


@level(1)
def rejects_version_ff_and_bad_shapes(ctx: Context) -> None:
    """Version ff, wrong lengths, wrong delimiters and non-hex digits are all invalid."""
    story = Story(ctx)
    forms = [
        ("version ff", f"ff-{W3C_TRACE}-{W3C_PARENT}-01", "version ff is forbidden by the spec"),
        ("a one-digit version", f"0-{W3C_TRACE}-{W3C_PARENT}-01", "the version has exactly two digits"),
        ("a trace id one digit short", f"00-{W3C_TRACE[:-1]}-{W3C_PARENT}-01", "the trace id has exactly 32 digits"),
        ("a trace id one digit too long", f"00-{W3C_TRACE}a-{W3C_PARENT}-01", "the trace id has exactly 32 digits"),
        ("a parent id one digit short", f"00-{W3C_TRACE}-{W3C_PARENT[:-1]}-01", "the parent id has exactly 16 digits"),
        ("one-digit flags", f"00-{W3C_TRACE}-{W3C_PARENT}-1", "the flags have exactly two digits"),
        ("a missing field", f"00-{W3C_TRACE}-{W3C_PARENT}", "there are four fields"),
        ("'_' as a delimiter", f"00_{W3C_TRACE}_{W3C_PARENT}_01", "the delimiter is '-'"),
        ("'.' as one delimiter", f"00-{W3C_TRACE}.{W3C_PARENT}-01", "the delimiter is '-'"),
        ("a non-hex digit", f"00-{W3C_TRACE[:-1]}g-{W3C_PARENT}-01", "ids are hex digits"),
        ("a non-hex version", f"0x-{W3C_TRACE}-{W3C_PARENT}-01", "the version is two hex digits"),
        ("an empty header", "", "there is nothing to parse"),
    ]
    for what, header, rule in forms:
        _expect_invalid(story, ctx.module, header, what=what, why=f"{rule}; check every field's length and "
                                                                   "every delimiter before trusting the ids")
    result = ctx.module.parse_traceparent(None)
    story.note(f"parse_traceparent(None) -> {_show(result)}")
    if result is not None:
        story.fail(got=repr(result), expected="None: a request without traceparent starts a new trace")


@level(1)
def version_00_has_exactly_four_fields_later_versions_may_have_more(ctx: Context) -> None:
    """Version 00 with anything after the flags is invalid; a later version may add fields after a '-'."""
    story = Story(ctx)
    _expect_invalid(story, ctx.module, W3C_EXAMPLE + "-01", what="version 00 with a fifth field",
                    why="version 00 is exactly 55 characters: extra fields are allowed only in later versions")
    _expect_valid(story, ctx.module, f"cc-{W3C_TRACE}-{W3C_PARENT}-01-what-comes-next", W3C_TRACE, W3C_PARENT, True,
                  why="a later version (here cc) may carry more fields: read its first 55 characters like "
                      "version 00 (forward compatibility), as long as what follows starts with '-'")
    _expect_invalid(story, ctx.module, f"cc-{W3C_TRACE}-{W3C_PARENT}-01x", what="a later version with junk "
                    "glued to the flags", why="after the 55 characters of the known fields, a later version "
                                              "continues with '-' or ends")


@level(1)
def formats_version_00(ctx: Context) -> None:
    """format_traceparent writes version 00 and round-trips with parse_traceparent."""
    story = Story(ctx)
    module = ctx.module
    for sampled in (True, False):
        context = module.TraceContext(W3C_TRACE, W3C_PARENT, sampled)
        header = module.format_traceparent(context)
        story.note(f"format_traceparent({context!r}) -> {header!r}")
        expected = f"00-{W3C_TRACE}-{W3C_PARENT}-{'01' if sampled else '00'}"
        if header != expected:
            story.fail(got=repr(header), expected=repr(expected),
                       why="four fields joined by '-': version 00, trace id, span id, flags 01 (sampled) or 00")
    for _ in range(10):
        header = _header(ctx.rng, sampled=ctx.rng.random() < 0.5)
        back = module.format_traceparent(module.parse_traceparent(header))
        story.note(f"format_traceparent(parse_traceparent({header!r})) -> {back!r}")
        if back != header:
            story.fail(got=repr(back), expected=f"{header!r} (the same header)")


@level(1)
def extract_and_inject_forward_tracestate(ctx: Context) -> None:
    """A valid traceparent brings tracestate along, unchanged, into the next request's headers."""
    story = Story(ctx)
    module = ctx.module
    headers = {"traceparent": W3C_EXAMPLE, "tracestate": TRACESTATE_WITH_SPACES, "accept": "application/json"}
    context = module.extract(headers)
    story.note(f"extract({headers!r}) -> {_show(context)}")
    if context is None or (context.trace_id, context.span_id) != (W3C_TRACE, W3C_PARENT):
        story.fail(got=_show(context), expected=f"the context of trace {W3C_TRACE}, parent {W3C_PARENT}")
    why = ("it drops tracestate, or rewrites it: the vendors' state must travel with the trace exactly as "
           "received (another vendor's entries are not ours to change)")
    if context.tracestate != TRACESTATE_WITH_SPACES:
        story.fail(got=f"tracestate={context.tracestate!r}", expected=f"tracestate={TRACESTATE_WITH_SPACES!r}", why=why)
    child = module.child_context(context, module.IdGenerator(random.Random(ctx.seed)))
    story.note(f"child_context(that context, ids) -> {child!r}")
    out = module.inject(child, {"accept": "application/json"})
    story.note(f"inject(child, {{'accept': 'application/json'}}) -> {out!r}")
    if out.get("tracestate") != TRACESTATE_WITH_SPACES:
        story.fail(got=f"headers {out!r}", expected=f"a tracestate header {TRACESTATE_WITH_SPACES!r}", why=why)
    if out.get("traceparent") != f"00-{W3C_TRACE}-{child.span_id}-01" or out.get("accept") != "application/json":
        story.fail(got=f"headers {out!r}", expected=f"accept kept, and traceparent 00-{W3C_TRACE}-<the child's span id>-01")


@level(1)
def an_invalid_traceparent_starts_a_new_trace_without_tracestate(ctx: Context) -> None:
    """With an invalid traceparent, extract gives None and the new trace sends no tracestate."""
    story = Story(ctx)
    module = ctx.module
    headers = {"traceparent": W3C_EXAMPLE.upper(), "tracestate": TRACESTATE}
    context = module.extract(headers)
    story.note(f"extract({headers!r}) -> {_show(context)}")
    if context is not None:
        story.fail(got=repr(context), expected="None: the traceparent is invalid (uppercase)",
                   why="it accepts uppercase hex in extract (or does not use parse_traceparent there)")
    root = module.child_context(None, module.IdGenerator(random.Random(ctx.seed)))
    story.note(f"child_context(None, ids) -> {root!r}")
    if not (HEX_ID[32].fullmatch(str(root.trace_id)) and HEX_ID[16].fullmatch(str(root.span_id))):
        story.fail(got=repr(root), expected="fresh ids: 32 and 16 lower-case hex digits")
    if root.trace_id == W3C_TRACE or root.tracestate or not root.sampled:
        story.fail(got=repr(root), expected="a new trace: a fresh trace id, sampled=True, tracestate ''",
                   why="W3C: when traceparent is invalid, tracestate is not parsed; the new trace starts clean")
    out = module.inject(root, {"tracestate": "stale=1"})
    story.note(f"inject(root, {{'tracestate': 'stale=1'}}) -> {out!r}")
    if "tracestate" in out:
        story.fail(got=f"headers {out!r}", expected="no tracestate header: the new trace has no vendor state",
                   why="a stale tracestate from the caller's own headers was forwarded into a new trace")


@level(1)
def a_child_gets_a_fresh_span_id(ctx: Context) -> None:
    """A child keeps the trace id, flags and tracestate, with a span id of its own."""
    story = Story(ctx)
    module = ctx.module
    parent = module.TraceContext(W3C_TRACE, W3C_PARENT, False, TRACESTATE)
    ids = module.IdGenerator(random.Random(ctx.seed))
    children = [module.child_context(parent, ids) for _ in range(5)]
    story.note(f"parent = {parent!r}")
    story.note("5 x child_context(parent, ids) -> span ids " + ", ".join(repr(c.span_id) for c in children))
    for child in children:
        if child.span_id == parent.span_id:
            story.fail(got=f"child span_id {child.span_id!r}", expected="a fresh span id",
                       why="it reuses the parent's span id: the child's parent id points at the parent's "
                           "span id, so the child needs an id of its own or the tree cannot be rebuilt")
        if not HEX_ID[16].fullmatch(str(child.span_id)):
            story.fail(got=f"child span_id {child.span_id!r}", expected="16 lower-case hex digits")
        if (child.trace_id, child.sampled, child.tracestate) != (W3C_TRACE, False, TRACESTATE):
            story.fail(got=repr(child), expected=f"trace_id={W3C_TRACE!r}, sampled=False, tracestate={TRACESTATE!r}",
                       why="a child belongs to its parent's trace, with the same flags and vendor state")
    if len({c.span_id for c in children}) != len(children):
        story.fail(got="two children with the same span id", expected="5 distinct span ids")


@level(1)
def ids_come_from_the_injected_random(ctx: Context) -> None:
    """Ids are drawn from the injected random.Random: same seed, same ids; right shape; distinct."""
    story = Story(ctx)
    module = ctx.module
    first, second = module.IdGenerator(random.Random(ctx.seed)), module.IdGenerator(random.Random(ctx.seed))
    a = [(first.trace_id(), first.span_id()) for _ in range(20)]
    b = [(second.trace_id(), second.span_id()) for _ in range(20)]
    story.note(f"two IdGenerator(random.Random({ctx.seed})), 20 trace ids and span ids from each")
    if a != b:
        story.fail(got=f"different ids: {a[0]} then {b[0]}",
                   expected="the same ids from the same seed",
                   why="ids do not come from self.rng (os.urandom, uuid4, secrets or the global random "
                       "module are not reproducible: a replayed run would get other ids)")
    for trace_id, span_id in a:
        if not (HEX_ID[32].fullmatch(str(trace_id)) and HEX_ID[16].fullmatch(str(span_id))):
            story.fail(got=f"trace id {trace_id!r}, span id {span_id!r}",
                       expected="32 and 16 lower-case hex digits (pad with zeros: f'{n:032x}')")
    if len({t for t, _ in a}) != len(a) or len({s for _, s in a}) != len(a):
        story.fail(got="repeated ids", expected="20 distinct trace ids and 20 distinct span ids")


# -- interop with OpenTelemetry ---------------------------------------------------------------


def _otel_reads(carrier: dict[str, str]) -> Any:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract(carrier)
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def _otel_writes(trace_id: int, span_id: int, sampled: bool, tracestate: list[tuple[str, str]]) -> dict[str, str]:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    span_context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1 if sampled else 0),
                               trace_state=TraceState(tracestate))
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(NonRecordingSpan(span_context)))
    return carrier


@level(1)
def opentelemetry_reads_the_headers_we_write(ctx: Context) -> None:
    """Headers from inject() read the same in OpenTelemetry's TraceContextTextMapPropagator."""
    story = Story(ctx)
    module = ctx.module
    ids = module.IdGenerator(random.Random(ctx.seed))
    for n in range(20):
        sampled = n % 3 != 0
        state = TRACESTATE if n % 2 else ""
        parent = module.TraceContext(ids.trace_id(), ids.span_id(), sampled, state)
        carrier = module.inject(parent)
        story.note(f"inject({parent!r}) -> {carrier!r}")
        read = _otel_reads(carrier)
        if read is None:
            story.fail(got="OpenTelemetry found no valid context in those headers",
                       expected="the same trace id and span id", why="the traceparent we wrote is not valid W3C")
        got = (f"{read.trace_id:032x}", f"{read.span_id:016x}", bool(read.trace_flags & 1),
               read.trace_state.to_header() if read.trace_state else "")
        want = (parent.trace_id, parent.span_id, sampled, state)
        story.note(f"OpenTelemetry reads trace {got[0]}, span {got[1]}, sampled {got[2]}, tracestate {got[3]!r}")
        if got != want:
            story.fail(got=f"OpenTelemetry read {got}", expected=f"{want}",
                       why="it drops tracestate" if got[3] != want[3] else None)


@level(1)
def we_read_the_headers_opentelemetry_writes(ctx: Context) -> None:
    """Headers from OpenTelemetry's propagator read the same in extract()."""
    story = Story(ctx)
    module = ctx.module
    for n in range(20):
        trace_id, span_id = ctx.rng.getrandbits(128) or 1, ctx.rng.getrandbits(64) or 1
        sampled = n % 3 != 0
        state = [("congo", "t61rcWkgMzE"), ("rojo", f"{span_id:016x}")] if n % 2 else []
        carrier = _otel_writes(trace_id, span_id, sampled, state)
        context = module.extract(carrier)
        story.note(f"OpenTelemetry injects {carrier!r}; extract(...) -> {_show(context)}")
        want = (f"{trace_id:032x}", f"{span_id:016x}", sampled, carrier.get("tracestate", ""))
        got = None if context is None else (context.trace_id, context.span_id, context.sampled, context.tracestate)
        if got != want:
            story.fail(got=repr(got), expected=repr(want),
                       why="it drops tracestate" if got is not None and got[3] != want[3] else
                           "OpenTelemetry pads ids with leading zeros: 32 and 16 digits, always")


def _uppercase(text: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(text) if c in "abcdef"]
    i = rng.choice(letters) if letters else rng.randrange(len(text))
    return text[:i] + (text[i].upper() if letters else "A") + text[i + 1:]


MUTATIONS = {
    "an uppercase digit in the trace id": lambda h, rng: h[:3] + _uppercase(h[3:35], rng) + h[35:],
    "an uppercase digit in the parent id": lambda h, rng: h[:36] + _uppercase(h[36:52], rng) + h[52:],
    "an all-zero trace id": lambda h, rng: h[:3] + "0" * 32 + h[35:],
    "an all-zero parent id": lambda h, rng: h[:36] + "0" * 16 + h[52:],
    "version ff": lambda h, rng: "ff" + h[2:],
    "a trace id one digit short": lambda h, rng: h[:10] + h[11:],
    "a parent id one digit too long": lambda h, rng: h[:40] + "a" + h[40:],
    "one-digit flags": lambda h, rng: h[:-1],
    "an '_' delimiter": lambda h, rng: h[:35] + "_" + h[36:],
    "a non-hex 'g'": lambda h, rng: h[:20] + "g" + h[21:],
    "version 00 with a fifth field": lambda h, rng: h + "-01",
    "a later version with a fifth field": lambda h, rng: "cc" + h[2:] + "-extra",
    "a later version with junk after the flags": lambda h, rng: "cc" + h[2:] + "x",
    "spaces around the value": lambda h, rng: " " + h + "\t",
}


@level(1)
def agrees_with_opentelemetry_on_every_form(ctx: Context) -> None:
    """On seeded headers, each mutated, parse_traceparent accepts exactly what OpenTelemetry accepts."""
    story = Story(ctx)
    module = ctx.module
    for _ in range(5):
        valid = _header(ctx.rng)
        for what, mutate in MUTATIONS.items():
            header = mutate(valid, ctx.rng)
            theirs = _otel_reads({"traceparent": header})
            ours = module.parse_traceparent(header)
            story.note(f"{what}: {header!r}")
            if (theirs is None) != (ours is None):
                story.fail(got=f"parse_traceparent -> {_show(ours)}",
                           expected=f"{'None' if theirs is None else 'a context'}, as OpenTelemetry decides",
                           why=f"a header with {what} is {'invalid' if theirs is None else 'valid'} by the W3C spec")
            if theirs is not None and (ours.trace_id, ours.span_id) != (f"{theirs.trace_id:032x}", f"{theirs.span_id:016x}"):
                story.fail(got=f"trace {ours.trace_id!r}, span {ours.span_id!r}",
                           expected=f"trace {theirs.trace_id:032x}, span {theirs.span_id:016x}")
