"""Plotly figure builders for phase maps: the Python twin of web/static/maps.js.

`betascope run --html` and the notebook API (`betascope.run(...).phase_map()`)
draw with these, so they must show what the sweep page shows: one cell per grid
point with the page's cell edges, log(1 - beta) axes for log-spaced grids, the
curve beta1 = sqrt(beta2) drawn smoothly, beta2*(beta1), and beta2* against
batch size with its scaling fit. When maps.js changes how a map looks, change
this file too (tests/test_figures.py holds the two palettes equal).

No database and no torch here: inputs are the plain dicts that
experiments.analysis and the REST API return (phase-map and boundary shapes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from web.labels import value_labels

OUTCOME_NAMES = ("converged", "not_converged", "diverged")
OUTCOME_LABELS = ("converged", "not converged", "diverged")
# Okabe-Ito: told apart under every common colour-vision deficiency
OUTCOME_COLOURS = {"converged": "#0072B2", "not_converged": "#F0E442", "diverged": "#D55E00"}
# the regime map's classes: the outcome colours, and a light blue for converged with
# spikes (maps.js's SPIKY, as far from the others for colour-blind readers)
CLASS_COLOURS = {**OUTCOME_COLOURS, "converged_spiky": "#80B0F8"}
CLASS_LABELS = {**dict(zip(OUTCOME_NAMES, OUTCOME_LABELS, strict=True)),
                "converged_spiky": "converged with spikes"}
EMPTY = "#d6d8db"  # cells without results show the plot background
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13}
# no "Share chart..." button (plotly.js shows one by default that uploads the chart to
# cloud.plotly.com; maps.js's CONFIG alike)
CONFIG = {"displaylogo": False, "responsive": True, "showSendToCloud": False,
          "plotlyServerURL": "", "modeBarButtonsToRemove": ["lasso2d", "select2d",
                                                            "sendChartToCloud"]}
# map axes are any two axes of the grid (beta1 x beta2 by default, or lr, batch_size,
# clip, problem.n, ...), each shown by its symbol (maps.js's SYMBOL)
SYMBOLS_BETA = ("beta1", "beta2")
SYMBOLS = {"beta1": "β1", "beta2": "β2", "lr": "lr", "batch_size": "batch size",
           "clip": "clipping"}
METRICS: dict[str, dict[str, Any]] = {
    "outcome": {"label": "majority outcome"},
    "regime": {"label": "regime"},
    "diverged_frac": {"label": "diverged fraction", "colorscale": "Reds", "zmin": 0, "zmax": 1},
    "converged_frac": {"label": "converged fraction", "colorscale": "Greens", "zmin": 0, "zmax": 1},
    "final_rel": {"label": "median final rel. loss", "colorscale": "Viridis", "log": True},
    "div_step": {"label": "median divergence step", "colorscale": "Plasma", "log": True,
                 "reverse": True},
    "max_rise": {"label": "median max rise", "colorscale": "Cividis", "log": True},
}
# plotly.js's own defaults, as the pages get them (no Python-side template)
_BARE = go.layout.Template()


# --- axes --------------------------------------------------------------------------------------


def symbol(name: str) -> str:
    return SYMBOLS.get(name, name)


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def default_scale(values: list[Any], name: str | None = None) -> str:
    """The spacing an axis's values call for (maps.js's defaultScale). Betas (and a
    nameless axis): log(1 - beta) when 1 - beta spans more than 1.5 decades. Other
    numbers: log when they are positive and spaced more evenly in log than in linear
    terms, or two values over 1.5 decades apart. Labels (clip settings): categories."""
    if not _numeric(values):
        return "category"
    if name is None or name in ("beta1", "beta2"):
        q = [1 - b for b in values if 1 - b > 0]
        return "log1m" if len(q) > 2 and max(q) / min(q) > 30 else "linear"
    v = sorted(float(x) for x in values)
    if len(v) < 2 or v[0] <= 0:
        return "linear"
    if len(v) == 2:
        return "log" if v[1] / v[0] > 30 else "linear"

    def spread(xs: list[float]) -> float:
        d = [b - a for a, b in zip(xs, xs[1:], strict=False)]
        mean = sum(d) / len(d)
        return math.sqrt(sum((e - mean) ** 2 for e in d) / len(d)) / mean if mean else math.inf

    return "log" if spread([math.log(x) for x in v]) < spread(v) else "linear"


def scales(name: str, values: list[Any]) -> tuple[str, ...]:
    """The spacings an axis can be drawn in (maps.js's scales)."""
    if not _numeric(values):
        return ("category",)
    if name in ("beta1", "beta2"):
        return ("linear", "log1m")
    return ("linear", "log") if all(v > 0 for v in values) else ("linear",)


def coord(mode: str, b: float) -> float:
    """Plotted coordinate of a number: itself, log10(1 - beta) on a reversed axis, or
    log10 of it (a "log" axis)."""
    if mode == "log1m":
        return math.log10(1 - b)
    return math.log10(b) if mode == "log" else b


def _coords(values: list[Any], mode: str) -> list[float]:
    """Plotted coordinates of an axis's values; categories at their positions."""
    if mode == "category":
        return [float(k) for k in range(len(values))]
    return [coord(mode, float(v)) for v in values]


def _edges(c: list[float], half: float = 0.5) -> tuple[float, float]:
    """Outer edges of the first and last cell: half a step beyond each end, as plotly
    draws a heatmap's cells (each edge halfway between neighbouring grid points); a lone
    value's cell is 2 * `half` wide (maps.js's edges)."""
    if len(c) == 1:
        return c[0] - half, c[0] + half
    return c[0] - (c[1] - c[0]) / 2, c[-1] + (c[-1] - c[-2]) / 2


def axis(name: str, betas: list[Any], mode: str) -> dict[str, Any]:
    """Axis layout for an axis's sorted grid values (categories in grid order), with
    maps.js's range and ticks."""
    sym = symbol(name)
    base: dict[str, Any] = {"zeroline": False, "showgrid": False, "ticks": "outside",
                            "automargin": True, "linecolor": "#9ca3af", "mirror": True}
    if mode == "category":
        return {**base, "title": {"text": sym}, "range": [-0.5, len(betas) - 0.5],
                "tickvals": _coords(betas, mode), "ticktext": [str(v) for v in betas]}
    # a lone beta on a linear axis: a narrow cell, so the axis stays near [0, 1)
    lo, hi = _edges(_coords(betas, mode), 0.05 if name in SYMBOLS_BETA and mode == "linear"
                    else 0.5)
    if mode == "log":  # ticks at the grid's own values, thinned to at most 9
        labels = _labels(betas)
        use = betas[::math.ceil(len(betas) / 9)]
        return {**base, "title": {"text": f"{sym}  (log spaced)"}, "range": [lo, hi],
                "tickvals": _coords(use, mode), "ticktext": [labels[float(v)] for v in use]}
    if mode != "log1m":
        return {**base, "title": {"text": sym}, "range": [lo, hi]}
    # ticks where 1 - beta is 1, 5 or 2 times a power of ten (0.9, 0.95, 0.98, 0.99, ...),
    # thinned to the 1s and 5s, then to the 1s, when there are too many
    top, bottom = min(lo, hi), max(lo, hi)
    ticks = []
    for k in range(13):
        nines = "0." + "9" * k
        for u, label, rank in ((-k, "0" if k == 0 else nines, 0),
                               (-k - math.log10(2), nines + "5", 1),
                               (-k - math.log10(5), nines + "8", 2)):
            if top <= u <= bottom:
                ticks.append((u, label, rank))
    use = ticks
    for keep in (1, 0):
        if len(use) > 9:
            use = [t for t in ticks if t[2] <= keep]
    return {**base, "title": {"text": f"{sym}  (spaced by log(1 − {sym}))"},
            "range": [max(lo, hi), min(lo, hi)],
            "tickvals": [t[0] for t in use], "ticktext": [t[1] for t in use]}


# --- the phase map ------------------------------------------------------------------------------


def _scales(pm: dict[str, Any], scale: str | Mapping[str, str] | None) -> dict[str, str]:
    """Each map axis's spacing: `scale` for both axes, per axis ({"x": .., "y": ..}, an
    axis left out or None as the page picks it), or None. ValueError naming `scale` and
    what the axis allows for anything else (a typo must not draw a linear map)."""
    if scale is None:
        scale = {}
    elif isinstance(scale, str):
        scale = {"x": scale, "y": scale}
    elif not isinstance(scale, Mapping):
        raise ValueError("scale: must be 'linear', 'log1m' (beta axes), 'log', "
                         f"{{'x': ..., 'y': ...}} or None; got {scale!r}")
    bad = [k for k in scale if k not in ("x", "y")]
    if bad:
        raise ValueError(f"scale: a dict's keys are 'x' and 'y' (each 'linear', 'log1m', "
                         f"'log' or 'category', as its axis allows); got {bad[0]!r}")
    out = {}
    for k in ("x", "y"):
        name, values = pm[k].get("name", "beta1" if k == "x" else "beta2"), pm[k]["values"]
        want = scale.get(k)
        allowed = scales(name, values)
        if want is None:
            out[k] = default_scale(values, name)
        elif isinstance(want, str) and want in allowed:
            out[k] = want
        else:
            raise ValueError(f"scale: {want!r} does not suit {name} on {k}; must be one of "
                             f"{', '.join(map(repr, allowed))} (or None: the page's choice)")
    return out


def _smallest_positive(z: list[list[Any]]) -> float | None:
    seen = [v for row in z for v in row if v is not None and v > 0]
    return min(seen) if seen else None


def _colour(metric: str, v: float | None, floor: float | None = None) -> float | None:
    """The colour value of a cell: log10 for the log metrics, where a zero (a median
    final rel of exactly 0) takes the colour of `floor`, the map's smallest positive
    value (1 without one), as maps.js's colourTransform; it was drawn as 1e-16."""
    if not METRICS[metric].get("log") or v is None:
        return v
    if v == 0:
        return 0.0 if floor is None else math.log10(floor)
    return math.log10(v) if v > 0 else None


def _log_ticks(z: list[list[float | None]], zero_label: str | None = None) -> dict[str, Any]:
    """Colour bar ticks at powers of ten; with zero cells, the bottom colour labelled
    `zero_label` and no other label too near it (maps.js's logTicks)."""
    seen = [v for row in z for v in row if v is not None]
    if not seen:
        return {}
    lo, hi = min(seen), max(seen)
    step = max(1, math.ceil((math.ceil(hi) - math.floor(lo)) / 8))
    vals = list(range(math.floor(lo), math.ceil(hi) + 1, step))
    text = ["1" if k == 0 else f"1e{k}" for k in vals]
    if zero_label is not None:
        gap = max(0.3, (hi - lo) / 12)
        keep = [i for i, k in enumerate(vals) if k >= lo + gap]
        return {"tickvals": [lo, *(vals[i] for i in keep)],
                "ticktext": [zero_label, *(text[i] for i in keep)]}
    return {"tickvals": vals, "ticktext": text}


def _pct(v: float) -> str:
    return f"{round(v * 1000) / 10:g} %"


def phase_map_figure(
    pm: dict[str, Any],
    *,
    star: list[float | None] | None = None,
    scale: str | dict[str, str] | None = None,
    show_sqrt: bool = True,
    title: str | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> go.Figure:
    """One slice as the sweep page draws it.

    `pm` is a phase-map response (x, y, z rows over y, metric) over any two axes;
    `star` is beta2*(beta1) in the order of pm's x values; `scale` is one spacing for
    both axes, {"x": .., "y": ..} or None (each axis as the page picks it from its
    values): "linear" or "log1m" for a beta axis, "linear" or "log" for other positive
    numbers, "category" for labels; anything else raises ValueError naming `scale`.
    `extra` maps other metrics to phase maps of the same slice, for the hover. The
    curve beta1 = sqrt(beta2) and `star` are drawn on the (beta1, beta2) plane only.
    """
    metric = pm["metric"]
    modes = _scales(pm, scale)
    names = (pm["x"].get("name", "beta1"), pm["y"].get("name", "beta2"))
    if names != ("beta1", "beta2"):  # the theory overlays mean something there only
        show_sqrt, star = False, None
    # sorted axes: plotly puts each cell edge halfway to its neighbour only on a sorted axis
    xo, yo = _order(pm["x"]["values"], modes["x"]), _order(pm["y"]["values"], modes["y"])
    b1 = [_value(pm["x"]["values"][i]) for i in xo]
    b2 = [_value(pm["y"]["values"][i]) for i in yo]
    maps = {**(extra or {}), metric: pm}
    z = {m: [[p["z"][i][j] for j in xo] for i in yo] for m, p in maps.items()}
    stars = [star[j] for j in xo] if star is not None else None
    l1, l2 = _labels(b1), _labels(b2)
    xs, ys = _coords(b1, modes["x"]), _coords(b2, modes["y"])
    dense = len(b1) > 40 or len(b2) > 40
    floor = _smallest_positive(z[metric])
    heat: dict[str, Any] = {
        "x": xs, "y": ys, "z": [[_colour(metric, v, floor) for v in row] for row in z[metric]],
        "zsmooth": False, "xgap": 0 if dense else 1, "ygap": 0 if dense else 1,
        "hoverongaps": False,
        "text": _hover(names, b1, b2, l1, l2, z, stars,
                       (maps.get("regime") or {}).get("outcomes"), metric),
        "hovertemplate": "%{text}<extra></extra>", "name": "cells",
    }
    classes = pm.get("outcomes") or (list(OUTCOME_NAMES) if metric == "outcome" else None)
    if classes:  # classes (outcome, regime): one colour band and label each
        heat.update(_class_scale(classes))
    else:
        m = METRICS[metric]
        zeros = any(v == 0 for row in z[metric] for v in row)
        zero_label = None if not zeros else "0" if floor is None else f"0 or {floor:.6g}"
        heat.update(colorscale=m["colorscale"], reversescale=bool(m.get("reverse")),
                    colorbar={"title": {"text": m["label"], "side": "right"}, "thickness": 14,
                              "outlinewidth": 0,
                              **(_log_ticks(heat["z"], zero_label) if m.get("log") else {})})
        if "zmin" in m:
            heat.update(zmin=m["zmin"], zmax=m["zmax"])
    fig = go.Figure(go.Heatmap(**heat))
    # the overlays (and their legend entries) only where they draw something (maps.js)
    sqrt = sqrt_curve_trace(b1, b2, modes) if show_sqrt else None
    if sqrt is not None and len(set(sqrt.x)) > 1:  # a line, not one point repeated
        fig.add_trace(sqrt)
    if stars is not None and any(v is not None for v in stars):
        fig.add_trace(go.Scatter(
            x=xs, y=[None if v is None else coord(modes["y"], v) for v in stars],
            mode="lines+markers", name="β2*(β1), extracted boundary", connectgaps=False,
            hoverinfo="skip", line={"color": "#ffffff", "width": 3},
            marker={"color": "#ffffff", "size": 7, "line": {"color": "#111827", "width": 1.2}},
        ))
    fig.update_layout(
        template=_BARE, font=FONT, margin={"l": 64, "r": 20, "t": 40 if title else 16, "b": 60},
        title={"text": title, "font": {"size": 14}, "x": 0.02, "xanchor": "left"} if title
        else None,
        xaxis=axis(names[0], b1, modes["x"]), yaxis=axis(names[1], b2, modes["y"]),
        plot_bgcolor=EMPTY, paper_bgcolor="#ffffff", showlegend=True,
        legend={"orientation": "h", "x": 0, "y": -0.16, "yanchor": "top"}, hovermode="closest",
        hoverlabel={"bgcolor": "#111827", "font": {"color": "#fff", "size": 12}},
        width=560, height=520,
    )
    return fig


def _order(values: list[Any], mode: str) -> list[int]:
    """Indices of an axis's values in plotted order: by value, categories as listed."""
    if mode == "category":
        return list(range(len(values)))
    return sorted(range(len(values)), key=lambda i: float(values[i]))


def _value(v: Any) -> Any:
    return float(v) if _numeric([v]) else v


def _labels(values: list[Any]) -> dict[Any, str]:
    """Hover and tick text of an axis's values: whole numbers (batch size, problem.n)
    as themselves, other numbers by value_labels, labels (clip) as given."""
    if not _numeric(values):
        return {v: str(v) for v in values}
    if all(float(v).is_integer() and abs(v) < 1e15 for v in values):
        return {float(v): str(int(v)) for v in values}
    return value_labels(values)


def _class_scale(classes: list[str]) -> dict[str, Any]:
    """z = index into `classes`: a stepped colour scale over [0, n - 1] (as maps.js)."""
    n = len(classes)
    scale = [[(k + e) / n, CLASS_COLOURS[c]] for k, c in enumerate(classes) for e in (0, 1)]
    return {"zmin": 0, "zmax": n - 1, "colorscale": scale,
            "colorbar": {"tickvals": [(k + 0.5) * (n - 1) / n for k in range(n)],
                         "ticktext": [CLASS_LABELS[c] for c in classes], "thickness": 14,
                         "len": 0.6, "y": 0.5, "outlinewidth": 0}}


def _hover(names: tuple[str, str], b1: list[Any], b2: list[Any], l1: dict[Any, str],
           l2: dict[Any, str], z: dict[str, list[list[Any]]], stars: list[float | None] | None,
           regimes: list[str] | None = None, drawn: str = "") -> list[list[str]]:
    sx, sy = symbol(names[0]), symbol(names[1])

    def zero_note(metric: str, v: Any) -> str:
        return (" (a log scale has no 0: coloured as the smallest value)"
                if v == 0 and metric == drawn and METRICS[metric].get("log") else "")

    rows = []
    for i, y in enumerate(b2):
        row = []
        for j, x in enumerate(b1):
            lines = [f"{sx} = {l1[x]}", f"{sy} = {l2[y]}"]
            get = {m: v[i][j] for m, v in z.items()}
            if "outcome" in get:
                o = get["outcome"]
                lines.append("<i>no results yet</i>" if o is None
                             else f"majority: <b>{OUTCOME_LABELS[int(o)]}</b>")
            if get.get("regime") is not None and regimes:
                lines.append(f"regime: <b>{CLASS_LABELS[regimes[int(get['regime'])]]}</b>")
            dv, cv = get.get("diverged_frac"), get.get("converged_frac")
            if dv is not None:
                lines.append("diverged: " + _pct(dv))
            if cv is not None:
                lines.append("converged: " + _pct(cv))
            if dv is not None and cv is not None:
                lines.append("not converged: " + _pct(max(0.0, 1 - dv - cv)))
            for metric, what in (("final_rel", "median final rel"),
                                 ("div_step", "median div step"),
                                 ("max_rise", "median max rise")):
                if get.get(metric) is not None:
                    lines.append(f"{what}: {get[metric]:.3g}" + zero_note(metric, get[metric]))
            if stars is not None:
                s = stars[j]
                shown = "none" if s is None else l2.get(s, f"{s:g}")
                lines.append("β2* of this column: " + shown)
            row.append("<br>".join(lines))
        rows.append(row)
    return rows


def sqrt_curve_trace(b1: list[float], b2: list[float], modes: dict[str, str],
                     n: int = 200) -> go.Scatter:
    """beta1 = sqrt(beta2), i.e. beta2 = beta1**2, as a smooth curve: sampled evenly in
    both plotted coordinates over the grid's range, not through grid points."""
    lo, hi, y0, y1 = min(b1), max(b1), min(b2), max(b2)

    def even(a: float, b: float, mode: str, t: float) -> float:
        if mode == "log1m":
            return 1 - (1 - a) ** (1 - t) * (1 - b) ** t
        return a + (b - a) * t

    pts = sorted([even(lo, hi, modes["x"], k / n) for k in range(n + 1)]
                 + [math.sqrt(even(y0, y1, modes["y"], k / n)) for k in range(n + 1)])
    xs, ys = [], []
    for b in pts:
        if lo <= b <= hi and y0 <= b * b <= y1:
            xs.append(coord(modes["x"], b))
            ys.append(coord(modes["y"], b * b))
    return go.Scatter(x=xs, y=ys, mode="lines", name="β1 = √β2 (convergence needs β1 < √β2)",
                      hoverinfo="skip", line={"color": "#111827", "width": 2, "dash": "dash"})


# --- beta2* against batch size -----------------------------------------------------------------


def _viridis(t: float) -> str:
    stops = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
    x = max(0.0, min(1.0, t)) * (len(stops) - 1)
    i = min(len(stops) - 2, int(x))
    f = x - i
    c = [round(a + (b - a) * f) for a, b in zip(stops[i], stops[i + 1], strict=True)]
    return f"rgb({c[0]},{c[1]},{c[2]})"


def _slope_text(fit: dict[str, Any] | None) -> str:
    if not fit:
        return ""
    err = fit.get("stderr")
    slope = round(fit["slope"], 2) + 0.0  # no "-0.00"
    return f" · slope {slope:.2f}" + (f" ± {err:.2f}" if err is not None else "")


def scaling_figure(rows: list[dict[str, Any]]) -> go.Figure:
    """beta2* against batch size, one line per beta1, for the boundary's `by_batch` rows of
    one (clip, lr); y spaced by log(1 - beta2*) as on the sweep page."""
    with_data = [r for r in rows if any(v is not None for v in r["beta2_star"])]
    b1s = [r["beta1"] for r in rows] or [0.0]
    lo, hi = min(b1s), max(b1s)
    l1 = value_labels(b1s)
    stars = sorted({v for r in with_data for v in r["beta2_star"] if v is not None})
    l2 = value_labels(stars) if stars else {}

    def shade(b1: float) -> str:  # no pale yellow on white
        return _viridis(0.85 * ((b1 - lo) / (hi - lo) if hi > lo else 0.5))

    fig = go.Figure()
    for r in with_data:
        slope = _slope_text(r.get("fit"))
        fig.add_trace(go.Scatter(
            x=r["batch_size"],
            y=[None if v is None else coord("log1m", v) for v in r["beta2_star"]],
            mode="lines+markers", name=f"β1 = {l1[r['beta1']]}{slope}", connectgaps=False,
            line={"color": shade(r["beta1"]), "width": 1.8},
            marker={"color": shade(r["beta1"]), "size": 7},
            customdata=["none" if v is None else l2[v] for v in r["beta2_star"]],
            hovertemplate=f"β1 = {l1[r['beta1']]}<br>batch %{{x}}<br>β2* = %{{customdata}}"
                          f"{slope}<extra></extra>",
        ))
    n = len(with_data)
    if n > 14:  # too many for a legend: a colour bar for beta1 instead
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False,
            marker={"color": [lo], "cmin": lo, "cmax": hi, "showscale": True,
                    "colorscale": [[t, _viridis(0.85 * t)] for t in (0, 0.25, 0.5, 0.75, 1)],
                    "colorbar": {"title": {"text": "β1", "side": "right"}, "thickness": 14,
                                 "outlinewidth": 0}},
        ))
    yaxis = axis("beta2", stars, "log1m") if stars else {}
    batches = rows[0]["batch_size"] if rows else []
    fig.update_layout(
        template=_BARE, font=FONT, margin={"l": 70, "r": 16, "t": 10, "b": 50},
        height=380 if n else 120, width=640,
        xaxis={"type": "log", "title": {"text": "batch size"}, "tickvals": batches,
               "ticks": "outside", "zeroline": False, "visible": n > 0},
        yaxis={**yaxis, "title": {"text": "β2*  (spaced by log(1 − β2))"}, "showgrid": True,
               "gridcolor": "#eef0f3", "visible": n > 0},
        showlegend=n <= 14, legend={"x": 1.02, "y": 1}, hovermode="closest",
        annotations=[] if n else [{
            "text": "no β1 column converges from some β2 upward yet", "showarrow": False,
            "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "font": {"color": "#6b7280"}}],
    )
    return fig


def fit_table_html(rows: list[dict[str, Any]]) -> str:
    """The sweep page's fit table: slope of log(1 - beta2*) against log(batch) per beta1."""
    fitted = [r for r in rows if r.get("fit")]
    if not fitted:
        return "<p class='note'>No β1 has β2* values at two batch sizes or more: no fit.</p>"
    l1 = value_labels([r["beta1"] for r in fitted])
    head = ("<tr><th>β1</th><th class='num'>slope</th><th class='num'>± s.e.</th>"
            "<th class='num'>points</th><th class='num'>half-life rule</th></tr>")
    body = []
    for r in fitted:
        f = r["fit"]
        err = "–" if f.get("stderr") is None else f"{f['stderr']:.3f}"
        slope = round(f["slope"], 3) + 0.0
        body.append(f"<tr><td>{l1[r['beta1']]}</td><td class='num'>{slope:.3f}</td>"
                    f"<td class='num'>{err}</td><td class='num'>{f['n_points']}</td>"
                    "<td class='num'>1</td></tr>")
    return "<table class='fits'>" + head + "".join(body) + "</table>"
