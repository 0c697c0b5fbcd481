"""web/figures.py, the Python twin of web/static/maps.js that `run --html` and the
notebook API draw with: exact cells on any grid, readable numbers, the page's palette."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from web import figures

MAPS_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "maps.js"


def pm(x: list[float], y: list[float], z: list[list[float | None]]) -> dict:
    return {"x": {"name": "beta1", "values": x}, "y": {"name": "beta2", "values": y},
            "z": z, "metric": "outcome", "slice": {}}


def test_a_list_grid_in_any_order_keeps_every_cell_in_place() -> None:
    # z rows over y; the spec listed both axes out of order
    x, y = [0.9, 0.0, 0.5], [0.99, 0.0, 0.9]
    z = [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    fig = figures.phase_map_figure(pm(x, y, z), star=[0.99, None, 0.9], scale="linear")
    heat, _, star = fig.data
    assert list(heat.x) == [0.0, 0.5, 0.9] and list(heat.y) == [0.0, 0.9, 0.99]
    cell = {(x[j], y[i]): z[i][j] for i in range(3) for j in range(3)}
    for i, b2 in enumerate(heat.y):
        for j, b1 in enumerate(heat.x):
            assert heat.z[i][j] == cell[(b1, b2)]
    assert list(star.y) == [None, 0.9, 0.99]
    # edge cells whole: half a step beyond the outer grid points
    assert fig.layout.xaxis.range == pytest.approx((-0.25, 1.1))
    assert fig.layout.yaxis.range == pytest.approx((-0.45, 0.99 + 0.045))


def test_numbers_are_shown_with_the_digits_that_tell_grid_points_apart() -> None:
    labels = figures.value_labels([0.0, 0.1, 0.2, 0.30000000000000004])
    assert list(labels.values()) == ["0", "0.1", "0.2", "0.3"]
    near_one = figures.value_labels([0.999, 0.9995, 0.9999])
    assert list(near_one.values()) == ["0.999", "0.9995", "0.9999"]
    logs = [1 - 10 ** (-k / 3) for k in range(4)]
    shown = figures.value_labels(logs)
    assert len(set(shown.values())) == 4 and all(len(s) <= 6 for s in shown.values()), shown
    fig = figures.phase_map_figure(pm([0.1, 0.30000000000000004], [0.5], [[0, 1]]),
                                   scale="linear")
    assert "β1 = 0.3<br>" in fig.data[0].text[0][1]


def test_log_axes_tick_where_one_minus_beta_is_round() -> None:
    ax = figures.axis("beta2", [0.0, 0.9, 0.99, 0.999], "log1m")
    assert ax["title"]["text"] == "β2  (spaced by log(1 − β2))"
    assert ax["range"][0] > ax["range"][1]  # beta still grows upward
    assert {"0", "0.9", "0.99", "0.999"} <= set(ax["ticktext"])
    assert figures.default_scale([0.0, 0.9, 0.99, 0.999]) == "log1m"
    assert figures.default_scale([0.0, 0.3, 0.6, 0.9]) == "linear"


def test_the_palette_is_the_pages() -> None:
    js = MAPS_JS.read_text(encoding="utf-8")
    colours = json.loads(re.search(r"const COLOURS = (\[[^\]]*\])", js).group(1))
    labels = json.loads(re.search(r"const OUTCOME_LABELS = (\[[^\]]*\])", js).group(1))
    empty = re.search(r'const EMPTY = "([^"]+)"', js).group(1)
    assert [figures.OUTCOME_COLOURS[k] for k in figures.OUTCOME_NAMES] == colours, (
        "web/static/maps.js changed its outcome colours: change web/figures.py to match")
    assert list(figures.OUTCOME_LABELS) == labels and figures.EMPTY == empty
    spiky = re.search(r'const SPIKY = "([^"]+)"', js).group(1)
    assert figures.CLASS_COLOURS["converged_spiky"] == spiky
    assert f'converged_spiky: "{figures.CLASS_LABELS["converged_spiky"]}"' in js


def test_zero_on_a_log_scale_and_lone_betas_are_drawn_as_the_page_draws_them() -> None:
    """The sweep page's choices (maps.js), kept here: a zero median takes the smallest
    positive value's colour (it was 1e-16, stretching the colour bar down sixteen
    decades) with its own label and hover note; a lone beta's cell is narrow (its axis
    ran over impossible betas); overlays only where they draw something."""
    m = {**pm([0.0, 0.5], [0.9, 0.99], [[0.0, 1e-3], [1e-2, 1.0]]), "metric": "final_rel"}
    fig = figures.phase_map_figure(m, scale="linear")
    heat = fig.data[0]
    assert heat.z[0][0] == pytest.approx(-3.0) and min(v for r in heat.z for v in r) == -3.0
    assert heat.colorbar.ticktext[0] == "0 or 0.001" and heat.colorbar.tickvals[0] == -3.0
    assert "coloured as the smallest value" in heat.text[0][0]
    assert "coloured as" not in heat.text[0][1]
    lone = figures.phase_map_figure(pm([0.9], [0.5, 0.9, 0.99], [[0], [1], [2]]),
                                    star=[None], scale="linear")
    assert lone.layout.xaxis.range == pytest.approx((0.85, 0.95))
    assert [t.name for t in lone.data] == ["cells"]  # no sqrt curve, no empty beta2* line
