"""The game day's tracing: the learner's tracer on every service, and a report built from their functions.

With the tracing kata plugged in, the protected run gives every service's
factory to the kata's ``Tracer.instrument`` (span middleware on the app, a
tracing client for its calls), and customers call through
``tracer.client(..., "customer")``: every customer request is the root of a
trace. The registry's health checks reach the services' middleware too (a
trace each, with no client span: the registry's own client is not wrapped)
and are left out of the report, which is about what customers did.

The report, each part from the learner's own function: the service map
(``service_map``, coloured by ``health_colour``), p50/p90/p99 per called
service (``latency_percentiles``), the critical path of the slowest profile
or checkout trace (``critical_path``), and what a tail-based sampler
(``TailSampler``, 10 %, a 10 s decision wait) keeps: every trace with an
error must be among them.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from ..world import World

__all__ = ["CUSTOMER", "SAMPLE_RATE", "customer_traces", "smoke_tracing", "trace_report", "traced_customer"]

CUSTOMER = "customer"
SAMPLE_RATE = 0.1
DECISION_WAIT = 10.0
SLOWEST_OF = ("/profile", "/checkout")  # the customer journeys whose slowest trace gets its critical path


def smoke_tracing(module: ModuleType) -> None:
    """Trace one call in a tiny shop and use every function the report needs (raises what the kata raises)."""
    from ..services import SHOP

    with World(seed=0, record_headers=False) as world:
        module.extract(module.inject(module.child_context(None, module.IdGenerator(world.rng("ids")))))  # level 1
        tracer = module.Tracer(world.clock, world.rng("tracing"))
        world.add_service("users", tracer.instrument(SHOP["users"]))
        customer = tracer.client(world.client(CUSTOMER), CUSTOMER)
        world.run(customer.request("GET", "users", "/users/user-1", timeout=1.0))
        spans = list(tracer.spans)
        module.group_traces(spans)
        module.service_map(spans)
        module.latency_percentiles(spans)
        module.critical_path(spans)
        sampler = module.TailSampler(SAMPLE_RATE, world.rng("sampler"), decision_wait=DECISION_WAIT)
        for span in spans:
            sampler.add(span)
        sampler.flush(math.inf)


def customer_traces(module: ModuleType, spans: list[Any]) -> dict[str, list[Any]]:
    """The traces that start with a customer's call (the learner's ``group_traces``, filtered)."""
    traces = module.group_traces(spans)
    return {trace_id: trace for trace_id, trace in traces.items()
            if any(s.parent_id is None and s.service == CUSTOMER for s in trace)}


def trace_report(module: ModuleType, spans: list[Any], rng: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(figures for the summary, objects for plots): built from the learner's functions."""
    traces = customer_traces(module, spans)
    mine = [s for trace in traces.values() for s in trace]
    graph = module.service_map(mine)
    percentiles = module.latency_percentiles(mine)
    errors = {trace_id for trace_id, trace in traces.items() if any(s.status == "error" for s in trace)}

    # The sampler sees spans as they end (the tracer keeps them in that order), decides each second.
    sampler = module.TailSampler(SAMPLE_RATE, rng, decision_wait=DECISION_WAIT)
    kept: set[str] = set()
    next_flush = 0.0
    for span in sorted(mine, key=lambda s: s.end):
        if span.end >= next_flush:
            kept.update(s.trace_id for s in sampler.flush(span.end))
            next_flush = math.floor(span.end) + 1.0
        sampler.add(span)
    kept.update(s.trace_id for s in sampler.flush(math.inf))

    def root(trace: list[Any]) -> Any:
        return next(s for s in trace if s.parent_id is None and s.service == CUSTOMER)

    journeys = [(trace_id, trace) for trace_id, trace in traces.items()
                if any(part in root(trace).name for part in SLOWEST_OF)]
    slowest: dict[str, Any] | None = None
    shown: dict[str, Any] = {"graph": graph, "percentiles": percentiles, "slowest": None, "critical": []}
    if journeys:
        trace_id, trace = max(journeys, key=lambda item: root(item[1]).duration)  # first of equals
        path = module.critical_path(trace)
        by_id = {s.span_id: s for s in trace}
        slowest = {
            "trace_id": trace_id, "name": root(trace).name, "start": root(trace).start,
            "duration": root(trace).duration, "spans": len(trace),
            "path": [(by_id[p.span_id].service, by_id[p.span_id].name, p.end - p.start)
                     for p in path if p.span_id in by_id],
        }
        shown.update(slowest=trace, critical=path)
    figures = {
        "spans": len(spans),
        "customer_traces": len(traces),
        "customer_spans": len(mine),
        "colours": {node: data.get("colour") for node, data in graph.nodes(data=True)},
        "error_rates": {node: data.get("error_rate") for node, data in graph.nodes(data=True)},
        "percentiles": percentiles,
        "slowest": slowest,
        "sampled": {"rate": SAMPLE_RATE, "kept": len(kept), "error_traces": len(errors),
                    "error_traces_kept": len(errors & kept), "every_error_kept": errors <= kept},
    }
    return figures, shown


def traced_customer(world: World, tracer: Any) -> Any:
    """A customer whose calls go through the learner's tracing client; returns ``fire(method, target, path, ...)``."""
    from .game_day_sagas import place_quietly

    client = tracer.client(world.client(CUSTOMER), CUSTOMER)
    loop = world.loop

    def fire(method: str, target: str, path: str, **kwargs: Any) -> None:
        loop.create_task(place_quietly(client.request(method, target, path, **kwargs)))

    return fire

