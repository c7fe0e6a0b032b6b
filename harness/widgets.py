"""Notebook controls: a fault panel for a running world, and live experiments.

Both are ordinary objects that *hold* ipywidgets, so a test (or an
instructor's script) can drive them without a browser:

>>> from harness import World
>>> world = World(seed=1)
>>> _ = world.add_service("payments", instances=2)
>>> panel = FaultPanel(world)
>>> panel.set(kind="error", target="payments", status=503)
>>> handle = panel.inject()
>>> [h.fault.describe() for h in world.faults.handles]
['error on payments (status=503, probability=1.0)']
>>> panel.clear_all(); world.faults.handles
[]

In a notebook, the last expression of a cell displays them.
"""

from __future__ import annotations

import html
import io
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from .faults import (
    BUS_FAULTS,
    DISTRIBUTIONS,
    INSTANCE_FAULTS,
    LINK_FAULTS,
    SERVICE_FAULTS,
    FaultError,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .injector import FaultHandle
    from .recorder import Event, Exchange
    from .world import World

__all__ = ["Experiment", "FaultPanel", "experiment", "figure_png"]

# Kinds offered by the panel, in the order a learner meets them.
PANEL_KINDS: tuple[str, ...] = SERVICE_FAULTS + INSTANCE_FAULTS + LINK_FAULTS + BUS_FAULTS

# The parameters the panel shows for each kind (the parser fills in the rest).
_KIND_PARAMS: dict[str, tuple[str, ...]] = {
    "latency": ("dist", "probability"),
    "link-latency": ("dist", "probability"),
    "delay": ("dist", "probability"),
    "error": ("status", "probability"),
    "hang": ("probability",),
    "malformed": ("probability",),
    "crash": ("keep_state",),
    "flap": ("down", "up"),
    "capacity": ("workers", "queue"),
    "partition": ("direction",),
    "duplicate": ("probability", "copies"),
    "reorder": ("window",),
    "drop-ack": ("probability",),
}
# Faults whose ``route`` narrows them to some requests.
_ROUTED = ("latency", "error", "hang", "malformed", "link-latency")
_STYLE = {"description_width": "7em"}


def _param_widgets() -> dict[str, w.ValueWidget]:
    """One widget per fault parameter; seconds are virtual seconds."""

    def seconds(label: str, value: float, maximum: float = 600.0) -> w.BoundedFloatText:
        return w.BoundedFloatText(value=value, min=0.0, max=maximum, step=0.01,
                                  description=f"{label} (s)", style=_STYLE)

    return {
        "dist": w.Dropdown(options=list(DISTRIBUTIONS), value="lognormal", description="distribution",
                           style=_STYLE),
        "value": seconds("value", 0.2),
        "low": seconds("low", 0.05),
        "high": seconds("high", 0.5),
        "mean": seconds("mean", 0.2),
        "median": seconds("median", 0.1),
        "sigma": w.BoundedFloatText(value=0.5, min=0.0, max=5.0, step=0.05, description="sigma",
                                    style=_STYLE),
        "probability": w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="probability",
                                     style=_STYLE),
        "status": w.Dropdown(options=[500, 502, 503, 504, 429], value=503, description="status",
                             style=_STYLE),
        "keep_state": w.Checkbox(value=True, description="keep state on restart", indent=False),
        "down": seconds("down", 2.0),
        "up": seconds("up", 3.0),
        "workers": w.BoundedIntText(value=1, min=1, max=1000, description="workers", style=_STYLE),
        "queue": w.BoundedIntText(value=0, min=0, max=10000, description="queue", style=_STYLE),
        "direction": w.Dropdown(options=["both", "request", "response"], value="both",
                                description="direction", style=_STYLE),
        "copies": w.BoundedIntText(value=1, min=1, max=10, description="extra copies", style=_STYLE),
        "window": seconds("window", 1.0, 60.0),
    }


class FaultPanel:
    """Pick a fault, a target and its parameters; inject it into a world; clear it again.

    The widgets are attributes (``kind``, ``target``, ``source``, ``route``,
    ``topic``, ``params[name]``, ``inject_button``, ``clear_button``), every
    button has a method twin (:meth:`inject`, :meth:`clear_all`,
    :meth:`clear`), and ``listed`` holds what the active list shows, so the
    panel works the same from code as from a browser.

    >>> # panel = FaultPanel(world); panel  # the last line of a cell shows it
    >>> # panel.set(kind="latency", target="catalog", dist="constant", value=0.3); panel.inject()
    """

    def __init__(self, world: World, *, kinds: tuple[str, ...] = PANEL_KINDS, watch: bool = True):
        self.world = world
        self.kind = w.Dropdown(options=list(kinds), value=kinds[0], description="fault", style=_STYLE)
        self.target = w.Dropdown(description="target", style=_STYLE)
        self.source = w.Dropdown(description="from", style=_STYLE)
        self.route = w.Text(value="", placeholder="all routes, or e.g. POST /charges",
                            description="route", style=_STYLE)
        self.topic = w.Text(value="*", placeholder="topic, or * for all", description="topic",
                            style=_STYLE)
        self.params = _param_widgets()
        self.inject_button = w.Button(description="Inject", button_style="danger", icon="bolt")
        self.clear_button = w.Button(description="Clear all", icon="eraser")
        self.status = w.HTML()
        self.active = w.VBox()
        self.listed: list[str] = []  # what the active list shows, for code and tests
        self._form = w.VBox()
        self.widget = w.VBox([
            w.HTML("<b>Fault panel</b>"),
            self._form,
            w.HBox([self.inject_button, self.clear_button]),
            self.status,
            w.HTML("<b>Active faults</b>"),
            self.active,
        ])
        self.kind.observe(self._layout, names="value")
        self.params["dist"].observe(self._layout, names="value")
        self.inject_button.on_click(lambda _button: self.inject())
        self.clear_button.on_click(lambda _button: self.clear_all())
        self._listener: Callable | None = None
        if watch:
            # Faults switched by a schedule or by code show up here too.
            self._listener = self._on_record
            world.recorder.listeners.append(self._listener)
        self.refresh()

    # -- what the learner sees ------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        # Without a live kernel a viewer shows this instead of the controls.
        faults = "; ".join(self.listed) or "none"
        bundle["text/plain"] = f"FaultPanel (a live kernel shows the controls). Active faults: {faults}"
        return bundle

    def _visible_params(self) -> list[str]:
        names = list(_KIND_PARAMS.get(self.kind.value, ()))
        if "dist" in names:
            names[1:1] = DISTRIBUTIONS[self.params["dist"].value]
        return names

    def _layout(self, _change: Any = None) -> None:
        kind = self.kind.value
        rows: list[w.Widget] = [self.kind]
        if kind in BUS_FAULTS:
            rows.append(self.topic)
        else:
            if kind in LINK_FAULTS:
                rows.append(self.source)
            rows.append(self.target)
        if kind in _ROUTED:
            rows.append(self.route)
        rows += [self.params[name] for name in self._visible_params()]
        self._form.children = rows

    def refresh(self) -> None:
        """Re-read the world: its services and instances, and the faults that are on."""
        net = self.world.net
        services = sorted(net.services)
        instances = sorted(net.instances)
        targets = services + [i for i in instances if i not in services] + ["*"]
        self._set_options(self.target, targets)
        callers = ["client"] + services + [i for i in instances if i not in services] + ["*"]
        self._set_options(self.source, callers)
        self._layout()
        rows = []
        self.listed = [handle.fault.describe() for handle in self.world.faults.handles]
        for handle in self.world.faults.handles:
            button = w.Button(description="clear", layout=w.Layout(width="5em"))
            button.on_click(lambda _button, h=handle: self.clear(h))
            rows.append(w.HBox([button, w.HTML(f"<code>{html.escape(handle.fault.describe())}</code>")]))
        self.active.children = rows or [w.HTML("<i>none</i>")]

    @staticmethod
    def _set_options(dropdown: w.Dropdown, options: list[str]) -> None:
        current = dropdown.value
        if list(dropdown.options) != options:
            dropdown.options = options
        dropdown.value = current if current in options else (options[0] if options else None)

    def _on_record(self, record: Event | Exchange) -> None:
        if getattr(record, "kind", None) in ("fault-on", "fault-off"):
            self.refresh()

    def _say(self, text: str, *, error: bool = False) -> None:
        colour = "#b00020" if error else "#1b5e20"
        self.status.value = (f"<span style='color:{colour}'>{html.escape(text)}</span>"
                             f" <small>(t = {self.world.now():g} virtual s)</small>")

    # -- driving it -----------------------------------------------------------------------
    def set(self, **values: Any) -> None:
        """Set controls by name: ``kind``, ``target``, ``source``, ``route``, ``topic`` or a parameter.

        >>> # panel.set(kind="partition", source="orders", target="payments", direction="request")
        """
        if "kind" in values:  # first: it decides which parameters exist
            self.kind.value = values.pop("kind")
        for name, value in values.items():
            if name in ("target", "source", "route", "topic"):
                getattr(self, name).value = value
            elif name in self.params:
                self.params[name].value = value
            else:
                known = ", ".join(["kind", "target", "source", "route", "topic", *self.params])
                raise TypeError(f"FaultPanel has no control {name!r} (controls: {known})")

    def spec(self) -> dict[str, Any]:
        """The fault the controls describe, as the plain dict a schedule would hold."""
        kind = self.kind.value
        spec: dict[str, Any] = {"fault": kind}
        if kind in BUS_FAULTS:
            spec["topic"] = self.topic.value.strip() or "*"
        else:
            spec["target"] = self.target.value
            if kind in LINK_FAULTS:
                spec["source"] = self.source.value
        if kind in _ROUTED and self.route.value.strip():
            spec["route"] = self.route.value.strip()
        for name in self._visible_params():
            spec[name] = self.params[name].value
        return spec

    def inject(self) -> FaultHandle | None:
        """Switch on the fault the controls describe; returns its handle (None if refused)."""
        spec = self.spec()
        try:
            handle = self.world.faults.inject(spec)
        except (FaultError, KeyError, ValueError) as exc:
            # A bad combination is a message to the learner, not a traceback.
            reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            self._say(f"not injected: {reason}", error=True)
            return None
        self._say(f"injected: {handle.fault.describe()}")
        self.refresh()
        return handle

    def clear(self, handle: FaultHandle | int) -> None:
        """Switch one fault off (a handle or its key)."""
        self.world.faults.clear(handle)
        self._say("cleared one fault")
        self.refresh()

    def clear_all(self) -> None:
        """Switch every fault off (crashed instances restart)."""
        count = len(self.world.faults.handles)
        self.world.faults.clear_all()
        self._say(f"cleared {count} fault{'s' if count != 1 else ''}")
        self.refresh()

    def close(self) -> None:
        """Stop following the world's faults and close the widgets."""
        if self._listener is not None and self._listener in self.world.recorder.listeners:
            self.world.recorder.listeners.remove(self._listener)
        self._listener = None
        self.widget.close()


# -- experiments ---------------------------------------------------------------------------------


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """A figure as PNG bytes (how experiments show figures, whatever the backend)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _shell() -> Any:
    """The running IPython shell, or None (plain Python, pytest)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return None
    return get_ipython()


class Experiment:
    """A function of a few knobs, re-run whenever a knob moves. Made by :func:`experiment`.

    ``figure`` and ``summary`` hold the latest result (the first one as soon
    as the experiment is built, so headless runs can use it); :meth:`update`
    moves knobs from code and re-runs once.
    """

    def __init__(self, run: Callable[..., Any], controls: Mapping[str, Any]):
        self.run = run
        self.controls = {name: c for name, c in controls.items() if isinstance(c, w.ValueWidget)}
        self.fixed = {name: c for name, c in controls.items() if not isinstance(c, w.ValueWidget)}
        for name, control in self.controls.items():
            if not control.description:
                control.description = name
            control.style.description_width = "initial"
        self.output = w.Output()
        self.figure: Figure | None = None
        self.summary: str | None = None
        self.runs = 0
        self._holding = False
        self.widget = w.VBox([w.HBox(list(self.controls.values())), self.output])
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self._rerun()  # errors in the first run surface to the caller, as in any cell

    @property
    def values(self) -> dict[str, Any]:
        """The keyword arguments the next run gets."""
        return {**self.fixed, **{name: c.value for name, c in self.controls.items()}}

    def update(self, **values: Any) -> Figure:
        """Move some knobs, re-run once, and return the new figure.

        >>> # exp.update(median_ms=200).axes[0].get_title()
        """
        unknown = set(values) - set(self.controls) - set(self.fixed)
        if unknown:
            raise TypeError(f"no control named {sorted(unknown)[0]!r} (controls: {', '.join(self.controls)})")
        self._holding = True  # one run for the whole update, not one per knob
        try:
            for name, value in values.items():
                if name in self.controls:
                    self.controls[name].value = value
                else:
                    self.fixed[name] = value
        finally:
            self._holding = False
        return self._rerun()

    def _changed(self, _change: Any) -> None:
        if self._holding:
            return
        try:
            self._rerun()
        except Exception:  # a slider callback has no caller to raise to: show it instead
            with self.output:
                self.output.clear_output(wait=True)
                traceback.print_exc()

    def _rerun(self) -> Figure:
        result = self.run(**self.values)
        figure, summary = (result if isinstance(result, tuple) else (result, None))
        self.figure, self.summary = figure, summary
        self.runs += 1
        self._show()
        return figure

    def _show(self) -> None:
        shell = _shell()
        if shell is None:
            return  # no notebook to draw in; .figure and .summary hold the result
        from IPython.display import HTML, Image, display

        with self.output:
            self.output.clear_output(wait=True)
            if self.figure is not None:
                display(Image(data=figure_png(self.figure)))
            if self.summary:
                display(HTML(f"<pre>{html.escape(str(self.summary))}</pre>"))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        # A static copy for viewers without a live kernel (GitHub, an untrusted notebook).
        if self.figure is not None:
            import base64

            bundle["image/png"] = base64.b64encode(figure_png(self.figure)).decode("ascii")
        if self.summary:
            bundle["text/plain"] = str(self.summary)
        return bundle


def experiment(run: Callable[..., Any], /, **controls: Any) -> Experiment:
    """Run ``run(**values)`` now and again whenever one of the controls changes.

    ``run`` takes keyword arguments and returns a matplotlib Figure, or a
    ``(figure, summary_text)`` pair. Each control is an ipywidget whose value
    becomes the keyword of the same name; anything else is passed as a fixed
    value. The first run happens immediately, so ``experiment(...).figure``
    is there even without a browser (this is what nbval and tests use).

    >>> import ipywidgets as widgets
    >>> from matplotlib.figure import Figure
    >>> def bars(height):
    ...     fig = Figure(); fig.add_subplot().bar([0], [height]); return fig, f"height {height}"
    >>> exp = experiment(bars, height=widgets.IntSlider(3, min=1, max=10))
    >>> exp.summary, exp.update(height=7) is exp.figure, exp.summary
    ('height 3', True, 'height 7')
    """
    return Experiment(run, controls)
