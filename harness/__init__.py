"""Microservice Katas harness: a deterministic simulated shop in virtual time.

Everything a learner may use is importable from here:

>>> from harness import World
>>> world = World(seed=7)
>>> _ = world.add_service("payments", instances=2)
>>> r = world.run(world.client().post("payments", "/charges", json={"order_id": "o-1", "amount": 20}))
>>> r.status, r.json()["status"]
(201, 'captured')
"""

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> module that defines it. Loaded on first use, so that a kata
# needing only the clock does not pay for importing FastAPI.
_WHERE = {
    "EventBus": "bus", "Message": "bus", "Subscription": "bus",
    "Capacity": "capacity", "Overloaded": "capacity",
    "CheckFailed": "checkers", "expect": "checkers", "expect_availability": "checkers",
    "expect_equal": "checkers", "expect_no_leftover_tasks": "checkers", "expect_status": "checkers",
    "explain": "checkers",
    "Clock": "clock", "Deadlock": "clock", "VirtualTimeLoop": "clock", "now": "clock", "run": "clock", "sleep": "clock",
    "Fault": "faults", "FaultError": "faults", "parse_fault": "faults", "parse_schedule": "faults",
    "ConnectError": "http", "ConnectionReset": "http", "MalformedResponse": "http", "NetworkError": "http",
    "RequestTimeout": "http", "Response": "http",
    "FaultHandle": "injector", "FaultInjector": "injector",
    "Client": "network", "Instance": "network", "InstanceContext": "network", "Network": "network",
    "Event": "recorder", "Exchange": "recorder", "Recorder": "recorder", "quantile": "recorder",
    "SHOP": "services",
    "World": "world",
    # Drawing and notebooks (matplotlib / ipywidgets load only when used).
    "plots": None, "widgets": None, "quiz": None, "scenarios": None, "slo": None,
    "SLO": "slo",
    "check_answer": "quiz", "FaultPanel": "widgets", "experiment": "widgets",
    # One module per chapter's own pictures and checks.
    "invariants": None, "saga_plots": None, "trace_plots": None, "canary_plots": None,
    "stepfunctions": None, "dashboard": None, "load": None,
    "check_invariants": "invariants", "invariant_report": "invariants",
    "swimlane": "saga_plots", "waterfall": "trace_plots", "open_loop": "load",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    module = _WHERE[name]
    if module is None:  # a whole submodule: harness.plots, harness.widgets, ...
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from . import (
        canary_plots,
        dashboard,
        invariants,
        load,
        plots,
        quiz,
        saga_plots,
        scenarios,
        slo,
        stepfunctions,
        trace_plots,
        widgets,
    )
    from .bus import EventBus, Message, Subscription
    from .capacity import Capacity, Overloaded
    from .checkers import (
        CheckFailed,
        expect,
        expect_availability,
        expect_equal,
        expect_no_leftover_tasks,
        expect_status,
        explain,
    )
    from .clock import Clock, Deadlock, VirtualTimeLoop, now, run, sleep
    from .faults import Fault, FaultError, parse_fault, parse_schedule
    from .http import (
        ConnectError,
        ConnectionReset,
        MalformedResponse,
        NetworkError,
        RequestTimeout,
        Response,
    )
    from .injector import FaultHandle, FaultInjector
    from .invariants import check_invariants, invariant_report
    from .load import open_loop
    from .network import Client, Instance, InstanceContext, Network
    from .quiz import check_answer
    from .recorder import Event, Exchange, Recorder, quantile
    from .saga_plots import swimlane
    from .services import SHOP
    from .slo import SLO
    from .trace_plots import waterfall
    from .widgets import FaultPanel, experiment
    from .world import World

__all__ = [
    "CheckFailed",
    "expect",
    "expect_availability",
    "expect_equal",
    "expect_no_leftover_tasks",
    "expect_status",
    "explain",
    "SHOP",
    "Capacity",
    "Client",
    "Clock",
    "ConnectError",
    "ConnectionReset",
    "Deadlock",
    "Event",
    "EventBus",
    "Exchange",
    "Fault",
    "FaultError",
    "FaultHandle",
    "FaultInjector",
    "Instance",
    "InstanceContext",
    "MalformedResponse",
    "Message",
    "Network",
    "NetworkError",
    "Overloaded",
    "Recorder",
    "RequestTimeout",
    "Response",
    "Subscription",
    "VirtualTimeLoop",
    "World",
    "check_answer",
    "experiment",
    "FaultPanel",
    "now",
    "plots",
    "quiz",
    "scenarios",
    "slo",
    "SLO",
    "widgets",
    "parse_fault",
    "parse_schedule",
    "quantile",
    "run",
    "sleep",
    "invariants",
    "saga_plots",
    "trace_plots",
    "canary_plots",
    "stepfunctions",
    "dashboard",
    "load",
    "check_invariants",
    "invariant_report",
    "swimlane",
    "waterfall",
    "open_loop",
]
