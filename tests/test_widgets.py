"""Widgets, driven from code: the fault panel changes the world; experiments re-run.

No browser and no kernel: ipywidgets work headless, buttons have ``click()``,
and every request is timed in virtual seconds, so effects are exact.
"""

from __future__ import annotations

import pytest
from ipywidgets import Dropdown, IntSlider
from matplotlib.figure import Figure

from harness import ConnectError, World
from harness.faults import parse_fault
from harness.widgets import PANEL_KINDS, FaultPanel, experiment, figure_png


@pytest.fixture
def world():
    world = World(seed=5)
    world.add_service("catalog", instances=2)
    world.add_service("payments")
    yield world
    world.close()


def _latency(world: World, target: str = "catalog") -> float:
    async def call():
        start = world.now()
        await world.client().get(target, "/products")
        return world.now() - start

    return world.run(call())


def _active(panel: FaultPanel) -> list[str]:
    assert len(panel.active.children) == max(1, len(panel.listed))  # a row each, or "none"
    return panel.listed


# -- FaultPanel ------------------------------------------------------------------------------------


def test_panel_offers_the_worlds_services_and_instances(world):
    panel = FaultPanel(world)
    assert list(panel.target.options) == ["catalog", "payments", "catalog-1", "catalog-2", "payments-1", "*"]
    assert list(panel.source.options)[:3] == ["client", "catalog", "payments"]
    world.add_service("users")
    panel.refresh()
    assert "users-1" in panel.target.options


def test_inject_and_clear_a_latency_fault(world):
    panel = FaultPanel(world)
    panel.set(kind="latency", target="catalog", dist="constant", value=0.25)
    assert panel.spec() == {"fault": "latency", "target": "catalog", "dist": "constant", "value": 0.25,
                            "probability": 1.0}
    handle = panel.inject()
    assert handle is not None and handle.active
    assert _latency(world) == 0.25
    assert _active(panel) == ["latency on catalog (dist=constant, value=0.25, probability=1.0)"]
    assert "injected" in panel.status.value

    panel.clear_all()
    assert world.faults.handles == []
    assert _active(panel) == []
    assert _latency(world) == 0.0
    kinds = [e.kind for e in world.recorder.events]
    assert kinds == ["fault-on", "fault-off"]


def test_buttons_do_what_the_methods_do(world):
    panel = FaultPanel(world)
    panel.set(kind="crash", target="catalog-2")
    panel.inject_button.click()
    assert not world.net.instances["catalog-2"].up
    with pytest.raises(ConnectError):
        world.run(world.client().get("catalog-2", "/products"))
    # Each active fault has its own clear button.
    (row,) = panel.active.children
    row.children[0].click()
    assert world.net.instances["catalog-2"].up
    panel.set(kind="error", target="payments", status=500)
    panel.inject_button.click()
    panel.clear_button.click()
    assert world.faults.handles == []


def test_route_narrows_the_fault(world):
    panel = FaultPanel(world)
    panel.set(kind="error", target="catalog", route="GET /health", status=503)
    panel.inject()
    assert world.run(world.client().get("catalog", "/health")).status == 503
    assert world.run(world.client().get("catalog", "/products")).status == 200


def test_a_refused_fault_is_a_message_not_a_traceback(world):
    panel = FaultPanel(world)
    panel.set(kind="latency", target="catalog", dist="uniform", low=0.5, high=0.1)
    assert panel.inject() is None
    assert "not injected" in panel.status.value and "low &lt;= high" in panel.status.value
    assert world.faults.handles == []


def test_every_kind_the_panel_offers_parses_with_its_default_controls(world):
    panel = FaultPanel(world)
    for kind in PANEL_KINDS:
        panel.set(kind=kind, target="payments")
        fault = parse_fault(panel.spec())
        assert fault.kind == kind
        shown = {getattr(c, "description", "") for c in panel._form.children}
        assert "fault" in shown


def test_the_form_shows_the_parameters_of_the_chosen_kind(world):
    panel = FaultPanel(world)
    panel.set(kind="latency", dist="lognormal")
    names = [c.description for c in panel._form.children]
    assert names == ["fault", "target", "route", "distribution", "median (s)", "sigma", "probability"]
    panel.set(kind="partition")
    assert [c.description for c in panel._form.children] == ["fault", "from", "target", "direction"]
    panel.set(kind="duplicate")
    assert [c.description for c in panel._form.children] == ["fault", "topic", "probability", "extra copies"]


def test_panel_follows_faults_switched_by_a_schedule(world):
    panel = FaultPanel(world)
    world.faults.schedule([{"at": 1, "until": 2, "fault": "hang", "target": "payments"}])
    world.run(until=1.5)
    assert _active(panel) == ["hang on payments (probability=1.0)"]
    world.run(until=3)
    assert _active(panel) == []
    panel.close()
    assert world.recorder.listeners == []


def test_set_refuses_unknown_controls(world):
    with pytest.raises(TypeError, match="no control 'colour'"):
        FaultPanel(world).set(colour="red")


def test_panel_displays_as_a_widget(world):
    bundle = FaultPanel(world)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


# -- experiment ------------------------------------------------------------------------------------


def _run_world(median_ms: int, requests: int = 50):
    """A tiny real experiment: lognormal latency on catalog, then its p50."""
    world = World(seed=9)
    world.add_service("catalog")
    world.faults.inject({"fault": "latency", "target": "catalog", "dist": "lognormal",
                         "median": median_ms / 1000, "sigma": 0.5})

    async def main():
        for _ in range(requests):
            await world.client().get("catalog", "/products")

    world.run(main())
    p50 = world.recorder.metrics()["catalog"]["p50"]
    world.close()
    fig = Figure()
    fig.add_subplot().bar([0], [p50])
    return fig, f"p50 = {p50!r} s"


def test_experiment_runs_once_at_once_and_again_on_each_change():
    slider = IntSlider(value=100, min=10, max=500)
    exp = experiment(_run_world, median_ms=slider, requests=20)
    assert exp.runs == 1 and isinstance(exp.figure, Figure)
    first = exp.summary
    slider.value = 200  # what dragging the slider does
    assert exp.runs == 2
    # Same seed, same draws: doubling the median doubles every latency, so p50 too.
    assert float(exp.summary.split()[2]) == pytest.approx(2 * float(first.split()[2]), rel=1e-9)
    assert exp.values == {"requests": 20, "median_ms": 200}


def test_update_moves_several_knobs_but_runs_once():
    seen = []

    def run(a, b):
        seen.append((a, b))
        return Figure()

    exp = experiment(run, a=IntSlider(1), b=Dropdown(options=["x", "y"], value="x"))
    fig = exp.update(a=3, b="y")
    assert seen == [(1, "x"), (3, "y")] and fig is exp.figure
    with pytest.raises(TypeError, match="no control named 'c'"):
        exp.update(c=1)


def test_a_failing_rerun_is_shown_not_raised():
    def run(n):
        if n > 1:
            raise RuntimeError("boom")
        return Figure()

    slider = IntSlider(1)
    exp = experiment(run, n=slider)
    slider.value = 2  # must not raise out of the widget callback
    assert exp.runs == 1
    with pytest.raises(RuntimeError):
        experiment(run, n=IntSlider(5))  # the first run raises like any cell


def test_experiment_carries_a_static_image_for_viewers_without_a_kernel():
    exp = experiment(lambda: (Figure(figsize=(2, 1)), "summary text"))
    bundle = exp._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == "summary text"
    assert bundle["image/png"]
    assert figure_png(exp.figure)[:4] == b"\x89PNG"
