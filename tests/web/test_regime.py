"""The regime map in Chromium: four classes, their legend, colours that colour-blind
readers tell apart, and the hover naming each cell's regime."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from experiments import analysis
from tests.web.colours import difference
from tests.web.conftest import Server, Watched
from tests.web.specs import regimes_poly, regimes_zhang
from tests.web.test_pages import until, wait_map, z_of
from tests.web.test_sweep_page import MIN_DIFFERENCE, VISIONS
from web import figures

pytestmark = pytest.mark.browser

LABELS = ["converged", "converged with spikes", "not converged", "diverged"]


@pytest.fixture(scope="module")
def regimes(server: Server) -> tuple[int, dict[str, Any]]:
    spec = regimes_poly()
    sweep_id = server.create(spec)
    server.wait_done(sweep_id)
    return sweep_id, spec


def test_regime_map_renders_four_classes_with_a_legend(
    web: Watched, server: Server, regimes: tuple[int, dict[str, Any]]
) -> None:
    sweep_id, _ = regimes
    page = web.page
    web.goto(f"/sweeps/{sweep_id}")
    wait_map(web)
    # the picker, the page's figure code and the Python twin offer the server's metrics
    options = page.evaluate("[...document.querySelectorAll('#metric option')].map(o => o.value)")
    assert options == list(analysis.METRICS)
    assert page.evaluate("Object.keys(betascope.maps.METRICS)") == list(analysis.METRICS)
    assert list(figures.METRICS) == list(analysis.METRICS)
    page.select_option("#metric", "regime")
    until(page, "(document.getElementById('map').data[0].colorbar?.ticktext || [])"
                ".includes('converged with spikes')")
    heat = page.evaluate("(d => ({ticks: d.colorbar.ticktext, scale: d.colorscale, zmin: d.zmin,"
                         " zmax: d.zmax}))(document.getElementById('map').data[0])")
    assert heat["ticks"] == LABELS and (heat["zmin"], heat["zmax"]) == (0, 3)
    api = server.api("GET", f"/sweeps/{sweep_id}/phase-map?metric=regime")
    assert z_of(web) == api["z"]
    assert {v for row in api["z"] for v in row} == {0, 1, 2, 3}
    # one colour per class, apart from each other and from "no results" for every vision
    drawn = list(dict.fromkeys(c for _, c in heat["scale"]))
    assert len(drawn) == 4
    named = dict(zip(LABELS, drawn, strict=True))
    named["no results"] = page.evaluate("document.getElementById('map').layout.plot_bgcolor")
    for a, b in itertools.combinations(named, 2):
        for vision, m in VISIONS.items():
            d = difference(named[a], named[b], m)
            assert d >= MIN_DIFFERENCE, f"{a} and {b} are {d:.1f} apart with {vision}"
    # the hover names the regime (from the regime map) beside the majority outcome
    until(page, "document.getElementById('map').data[0].text?.[0]?.[0]?.includes('regime:')")
    texts = page.evaluate("document.getElementById('map').data[0].text.flat()")
    assert any("regime: <b>converged with spikes</b>" in t for t in texts)
    assert all("median max rise" in t for t in texts)
    web.shot("sweep-regime")
    # several maps (one per batch size: poly has one) share one legend, whose
    # swatches are the map's colours
    other = server.create(regimes_zhang())
    server.wait_done(other)
    web.goto(f"/sweeps/{other}")
    wait_map(web)
    page.select_option("#metric", "regime")
    page.select_option("#view", "multiples")
    until(page, "!document.getElementById('regime-legend').hidden")
    swatches = page.evaluate("""
      ['converged', 'converged-spiky', 'not-converged', 'diverged'].map(k =>
        getComputedStyle(document.querySelector('#regime-legend .swatch.' + k)).backgroundColor)""")
    for css, colour in zip(swatches, drawn, strict=True):
        assert difference(css, colour) < 1, (css, colour)
    assert page.is_hidden("#multiples-legend")
