"""Sliders over pure functions.

A chapter writes a *pure* function of the slider values that returns a matplotlib figure
(tests call it directly with edge values), and :func:`explore` puts sliders over it::

    def gmm_view(k: int = 3) -> Figure: ...
    explore(gmm_view, k=(1, 8, 1))

In Jupyter and Colab the sliders redraw the figure live; in the static book the widget
is shown in its first state (the figure for the default values), since there is no
kernel.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import matplotlib.pyplot as plt

__all__ = ["explore", "slider"]


def slider(
    low: float,
    high: float,
    step: float | None = None,
    *,
    value=None,
    description: str | None = None,
):
    """An IntSlider (all-int arguments) or FloatSlider spanning [low, high]."""
    import ipywidgets as w

    if not low < high:
        raise ValueError(f"slider needs low < high; got low={low}, high={high}")
    is_int = all(
        isinstance(v, int) and not isinstance(v, bool)
        for v in (low, high, step if step is not None else 1)
    )
    cls = w.IntSlider if is_int else w.FloatSlider
    step = step if step is not None else (1 if is_int else (high - low) / 100)
    value = low if value is None else value
    if not low <= value <= high:
        raise ValueError(f"slider value {value} lies outside [{low}, {high}]")
    return cls(
        min=low,
        max=high,
        step=step,
        value=value,
        description=description or "",
        continuous_update=False,
        style={"description_width": "initial"},
    )


def explore(fn: Callable[..., plt.Figure], **controls):
    """Show ``fn``'s figure with one control per keyword argument.

    A control is a widget, or a tuple ``(low, high[, step])`` made into a slider whose
    first value is ``fn``'s default for that argument (or ``low``). Returns the VBox;
    the figure for the first state is drawn immediately so static renderings show it.
    """
    import ipywidgets as w
    from IPython.display import display

    params = inspect.signature(fn).parameters
    unknown = sorted(set(controls) - set(params))
    if unknown:
        raise ValueError(
            f"{fn.__name__} has no argument(s) {unknown}; it takes {list(params)}"
        )
    widgets = {}
    for name, spec in controls.items():
        if isinstance(spec, w.Widget):
            widgets[name] = spec
            continue
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(
                f"control {name!r} must be a widget or (low, high[, step]); got "
                f"{spec!r}"
            )
        default = params[name].default
        widgets[name] = slider(
            *spec,
            value=None if default is inspect.Parameter.empty else default,
            description=name,
        )
    out = w.Output()

    def redraw(*_):
        fig = fn(**{name: wid.value for name, wid in widgets.items()})
        out.clear_output(wait=True)
        with out:
            display(fig)
        plt.close(fig)

    for wid in widgets.values():
        wid.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox(list(widgets.values())), out])
