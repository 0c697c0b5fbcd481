"""Sweep-page fixes: f* per point of the problem axes in the suboptimality view, maps
that open on two axes with several values, one colour range for small multiples,
zero on log colour scales, and a beta2* card only where it applies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import Server, Watched
from tests.web.specs import regimes_zhang
from tests.web.test_pages import until, wait_map
from tests.web.test_sweep_page import check_gap as check_gap_values
from tests.web.test_sweep_page import click_cell

pytestmark = pytest.mark.browser

LONE_LRS = [0.01, 0.1, 1.0]


def n_spec() -> dict[str, Any]:
    """zhang2022 over problem.n 5 and 20 (f* = -0.3 and -0.075), 2 x 2 betas, 2 seeds."""
    return {
        "name": "f* per n",
        "problem": {"kind": "zhang2022", "x0": -0.5},
        "optimizer": {"kind": "adam", "lr": 0.05, "schedule": "constant"},
        "steps": 300,
        "grid": {"beta1": [0.0, 0.9], "beta2": [0.99, 0.999], "batch_size": [1],
                 "seed": [0, 1], "problem.n": [5, 20]},
    }


def lone_beta1_spec() -> dict[str, Any]:
    """One beta1 (0.9), three lrs, three beta2s, one batch size: an lr x beta2 sweep."""
    return {
        "name": "lone beta1",
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {"kind": "adam", "schedule": "inv_sqrt", "bias_correction": False},
        "steps": 200,
        "grid": {"beta1": [0.9], "beta2": [0.9, 0.99, 0.999], "batch_size": [1],
                 "lr": LONE_LRS, "seed": [0]},
    }


@pytest.fixture(scope="module")
def sweeps(server: Server) -> dict[str, int]:
    ids = {"n": server.create(n_spec()), "lone": server.create(lone_beta1_spec()),
           "batches": server.create(regimes_zhang("multiples range"))}
    for s in ids.values():
        server.wait_done(s)
    return ids


def gap_of_cell(web: Watched, row: int, col: int) -> tuple[list[Any], list[Any], str]:
    """Click a cell; its curves as f(x), then as f(x) - f*, and the gap axis title."""
    page = web.page
    page.select_option("#curve-scale", "linear")
    page.evaluate("betascope.sweepPage.state.curves = null")
    click_cell(web, row, col)
    until(page, "(s => s.curves && JSON.stringify("
                "document.getElementById('curves').data.map(t => t.y)) === JSON.stringify("
                "s.curves.map(r => betascope.curves.values(r.curve.loss, 'linear', null))))"
                "(betascope.sweepPage.state)")
    linear = page.evaluate("document.getElementById('curves').data.map(t => t.y)")
    page.select_option("#curve-scale", "gap")
    until(page, "document.getElementById('curves').layout.yaxis.type === 'log'")
    gap = page.evaluate("document.getElementById('curves').data.map(t => t.y)")
    title = page.evaluate("document.getElementById('curves').layout.yaxis.title.text")
    return linear, gap, title


def check_gap(linear: list[Any], gap: list[Any], f_star: float) -> None:
    assert len(gap) == 2 and len(linear) == 2
    check_gap_values(linear, gap, f_star)


def test_the_suboptimality_view_uses_the_f_star_of_the_cells_problem(
    web: Watched, sweeps: dict[str, int]
) -> None:
    page = web.page
    web.goto(f"/sweeps/{sweeps['n']}")
    wait_map(web)
    slice_n = "JSON.parse(document.getElementById('map').dataset.slice)['problem.n']"
    assert page.evaluate(slice_n) == 5
    linear, gap, title = gap_of_cell(web, 0, 0)
    check_gap(linear, gap, -3 / (2 * 5))  # Zhang et al.: f* = -3/(2n)
    assert "f* = -0.3" in title.replace("−", "-"), title
    # n = 20: f* = -0.075
    page.select_option("[id='slice-problem.n']", "20")
    until(page, "JSON.parse(document.getElementById('map').dataset.slice)['problem.n'] === 20")
    wait_map(web)
    linear, gap, title = gap_of_cell(web, 0, 0)
    assert "problem.n 20" in page.inner_text("#cell-info")
    check_gap(linear, gap, -3 / (2 * 20))
    assert "f* = -0.075" in title.replace("−", "-"), title


def test_a_lone_beta1_opens_on_lr_against_beta2(web: Watched, server: Server,
                                                 sweeps: dict[str, int]) -> None:
    page = web.page
    web.goto(f"/sweeps/{sweeps['lone']}")
    wait_map(web)
    until(page, "document.getElementById('map').dataset.axes === JSON.stringify(['lr', 'beta2'])")
    assert page.input_value("#x-axis") == "lr" and page.input_value("#y-axis") == "beta2"
    xs = page.evaluate("document.getElementById('map').data[0].x")
    assert len(xs) == len(LONE_LRS)
    assert page.is_visible("#slice-beta1") and not page.is_visible("#lr")
    # the beta2* card says why it is not drawn (one batch size), and does not claim
    # that no column converges "yet"
    until(page, "!document.getElementById('scaling-note').hidden")
    note = page.inner_text("#scaling-note")
    assert "more than one batch size" in note, note
    assert not page.is_visible("#scaling")
    # the compare page opens on the same pair of axes
    web.goto(f"/compare?a={sweeps['lone']}&b={sweeps['lone']}")
    wait_map(web, "diff")
    assert page.input_value("#x-axis") == "lr" and page.input_value("#y-axis") == "beta2"
    assert len(page.evaluate("document.getElementById('diff').data[0].x")) == len(LONE_LRS)


def test_overlays_are_in_the_legend_only_when_drawn(web: Watched, server: Server,
                                                     sweeps: dict[str, int]) -> None:
    page = web.page
    web.goto(f"/sweeps/{sweeps['lone']}")
    wait_map(web)
    pm = server.api("GET", f"/sweeps/{sweeps['lone']}/phase-map?metric=outcome")
    assert pm["x"]["values"] == [0.9]
    names = page.evaluate(
        """pm => betascope.maps.figure(pm, {mode: {x: 'linear', y: 'log1m'}, showSqrt: true,
                                            star: [null]}).traces.map(t => t.name)""", pm)
    assert names == ["cells"], names
    # a beta1 x beta2 map whose beta1 range meets sqrt(beta2) keeps both
    two = dict(pm, x={"name": "beta1", "values": [0.0, 0.99]},
               z=[[row[0], row[0]] for row in pm["z"]])
    names = page.evaluate(
        """pm => betascope.maps.figure(pm, {mode: {x: 'linear', y: 'log1m'}, showSqrt: true,
                                            star: [0.99, null]}).traces.map(t => t.name)""", two)
    assert len(names) == 3, names


def test_small_multiples_share_one_colour_range(web: Watched, server: Server,
                                               sweeps: dict[str, int]) -> None:
    page = web.page
    web.goto(f"/sweeps/{sweeps['batches']}")
    wait_map(web)
    assert page.is_enabled("#batch_size")
    until(page, "!document.getElementById('scaling').hidden")
    page.select_option("#metric", "final_rel")
    page.select_option("#view", "multiples")
    until(page, "document.querySelectorAll('#multiples .plot').length === 2 && "
                "[...document.querySelectorAll('#multiples .plot')].every(d => d.data && "
                "d.dataset.drawn)")
    until(page, "(ds => ds.every(d => d.data[0].colorbar.title.text.includes('final')))"
                "([...document.querySelectorAll('#multiples .plot')])")
    panels = page.evaluate("""[...document.querySelectorAll('#multiples .plot')].map(d => ({
        zmin: d.data[0].zmin, zmax: d.data[0].zmax, z: d.data[0].z,
        showscale: d.data[0].showscale}))""")
    values = [v for p in panels for row in p["z"] for v in row if v is not None]
    assert len(values) > 2
    lows = [min(v for row in p["z"] for v in row if v is not None) for p in panels]
    assert lows[0] != lows[1] or max(values) != min(values)  # a range to share
    assert panels[0]["zmin"] == panels[1]["zmin"] == pytest.approx(min(values))
    assert panels[0]["zmax"] == panels[1]["zmax"] == pytest.approx(max(values))
    assert [p["showscale"] for p in panels] == [False, True]
    # no batch size to pick while every batch size has its map
    assert not page.is_enabled("#batch_size")
    page.select_option("#view", "single")
    until(page, "!document.getElementById('map').hidden")
    wait_map(web)
    assert page.is_enabled("#batch_size")
    # beta2* against batch size belongs to the beta1 x beta2 map
    page.select_option("#x-axis", "batch_size")
    until(page, "!document.getElementById('scaling-note').hidden")
    assert "β1 × β2" in page.inner_text("#scaling-note")
    page.select_option("#x-axis", "beta1")
    until(page, "document.getElementById('scaling-note').hidden")
    assert page.is_visible("#scaling")


def test_zero_on_a_log_colour_scale_takes_the_smallest_value(web: Watched,
                                                             sweeps: dict[str, int]) -> None:
    page = web.page
    web.goto(f"/sweeps/{sweeps['lone']}")
    wait_map(web)
    pm = {"metric": "final_rel", "x": {"name": "beta1", "values": [0.0, 0.5, 0.9]},
          "y": {"name": "beta2", "values": [0.9, 0.99]}, "slice": {}, "beta2_star": None,
          "z": [[0.0, 1e-3, 0.1], [None, 10.0, 1e-3]]}
    heat = page.evaluate("""pm => { const h = betascope.maps.figure(pm).traces[0];
        return {z: h.z, text: h.text, ticks: h.colorbar.tickvals,
                labels: h.colorbar.ticktext}; }""", pm)
    assert heat["z"][0] == pytest.approx([-3, -3, -1]) and heat["z"][1][0] is None
    assert min(heat["ticks"]) == pytest.approx(-3), heat  # not 1e-16
    assert heat["labels"][0].startswith("0 or "), heat["labels"]
    assert "coloured as the smallest value" in heat["text"][0][0]
    # small multiples: one range over both maps, zero at the smallest value of either
    other = dict(pm, z=[[1e-5, 1.0, 1.0], [1.0, 1.0, 1.0]])
    rng = page.evaluate("pms => betascope.maps.colourRange('final_rel', pms.map(p => p.z))",
                        [pm, other])
    assert rng["zmin"] == pytest.approx(-5) and rng["zmax"] == pytest.approx(1)
    z = page.evaluate("([pm, r]) => betascope.maps.figure(pm, {zrange: r}).traces[0].z",
                      [pm, rng])
    assert z[0][0] == pytest.approx(-5)
