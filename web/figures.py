"""Plotly figure builders for phase maps, shared by the pages and the CLI's --html.

No database and no torch here: inputs are the plain dicts that
experiments.analysis and the REST API return.
"""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

OUTCOME_COLOURS = {"converged": "#2e7d32", "not_converged": "#f9a825", "diverged": "#c62828"}


def _outcome_colourscale() -> list[list[Any]]:
    c = list(OUTCOME_COLOURS.values())
    return [[0.0, c[0]], [1 / 3, c[0]], [1 / 3, c[1]], [2 / 3, c[1]], [2 / 3, c[2]], [1.0, c[2]]]


def phase_map_figure(
    pm: dict[str, Any], *, star: list[float | None] | None = None, title: str = ""
) -> go.Figure:
    """Heatmap of one slice on the exact grid, with beta1 = sqrt(beta2) and beta2*(beta1)."""
    x, y, z = pm["x"]["values"], pm["y"]["values"], pm["z"]
    fig = go.Figure()
    if pm["metric"] == "outcome":
        names = pm.get("outcomes") or list(OUTCOME_COLOURS)
        text = [[names[int(v)] if v is not None else "no runs" for v in row] for row in z]
        fig.add_trace(
            go.Heatmap(
                x=x, y=y, z=z, zmin=0, zmax=2, text=text, colorscale=_outcome_colourscale(),
                colorbar={"tickvals": [1 / 3, 1, 5 / 3], "ticktext": names},
                hovertemplate="beta1=%{x}<br>beta2=%{y}<br>%{text}<extra></extra>",
                xgap=0, ygap=0,
            )
        )
    else:
        fig.add_trace(go.Heatmap(x=x, y=y, z=z, colorscale="Viridis",
                                 colorbar={"title": pm["metric"]}))
    b2 = [v for v in y if v >= 0]
    fig.add_trace(
        go.Scatter(x=[v**0.5 for v in b2], y=b2, mode="lines", name="beta1 = sqrt(beta2)",
                   line={"color": "black", "dash": "dash"})
    )
    if star is not None:
        fig.add_trace(
            go.Scatter(x=x, y=star, mode="lines+markers", name="beta2*(beta1)",
                       line={"color": "white", "width": 2}, connectgaps=False)
        )
    fig.update_layout(
        title=title, xaxis_title="beta1", yaxis_title="beta2", height=460, width=560,
        xaxis={"range": [min(x) - 1e-9, max(x) + 1e-9]} if len(x) > 1 else {},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def standalone_page(title: str, figures: list[tuple[str, go.Figure]]) -> str:
    """One self-contained HTML page (plotly.js inlined, works offline)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        f"<script>{get_plotlyjs()}</script>",
        "<style>body{font-family:sans-serif;margin:1em} .maps{display:flex;flex-wrap:wrap}</style>",
        f"</head><body><h1>{html.escape(title)}</h1><div class='maps'>",
    ]
    for caption, fig in figures:
        parts.append(f"<figure><figcaption>{html.escape(caption)}</figcaption>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
        parts.append("</figure>")
    parts.append("</div></body></html>")
    return "\n".join(parts)
