"""What the phase map draws, cell by cell, against the API's numbers.

A map that is the right shape but upside down, shifted, or coloured by the
wrong outcome shows a researcher a wrong phase diagram. These tests read the
figure back from the page (the heatmap trace Plotly drew, its axes, and the
colour of the pixel at each cell's centre in a screenshot) and compare every
cell with GET /phase-map for the same slice.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from typing import Any

import pytest

from tests.web.conftest import Server, Watched
from tests.web.specs import small_zhang
from tests.web.test_pages import until, wait_map

pytestmark = pytest.mark.browser

# web/static/maps.js (Okabe-Ito): converged, not converged, diverged
OUTCOME_RGB = {0: (0x00, 0x72, 0xB2), 1: (0xF0, 0xE4, 0x42), 2: (0xD5, 0x5E, 0x00)}


def nearest(value: float, grid: list[float]) -> float:
    """The grid value a rounded label names (labels keep grid points apart)."""
    return min(grid, key=lambda g: abs(g - value))


@pytest.fixture(scope="module")
def sweep(server: Server) -> int:
    """A finished small Zhang et al. sweep (the same document as test_pages')."""
    sweep_id = server.create(small_zhang("zhang small"))
    server.wait_done(sweep_id)
    return sweep_id


def api_map(server: Server, sweep_id: int, metric: str, batch_size: int) -> dict[str, Any]:
    return server.api(
        "GET", f"/sweeps/{sweep_id}/phase-map?metric={metric}&batch_size={batch_size}"
    )


def drawn(web: Watched) -> dict[str, Any]:
    """The heatmap trace as drawn, each cell's centre in page pixels, and the axes."""
    return web.page.evaluate(
        """(() => {
          const d = document.getElementById('map');
          const h = d.data[0], fl = d._fullLayout;
          const r = d.querySelector('.nsewdrag').getBoundingClientRect();
          return {
            x: h.x, y: h.y, z: h.z, text: h.text, zmin: h.zmin, zmax: h.zmax,
            px: h.x.map(v => r.left + fl.xaxis.l2p(v)),
            py: h.y.map(v => r.top + fl.yaxis.l2p(v)),
            xrange: fl.xaxis.range, yrange: fl.yaxis.range,
            yticks: {vals: fl.yaxis.tickvals, text: fl.yaxis.ticktext},
            slice: JSON.parse(d.dataset.slice),
            yscale: document.getElementById('yscale').value,
            xscale: document.getElementById('xscale').value,
          };
        })()"""
    )


def pixel(web: Watched, x: float, y: float) -> tuple[int, int, int]:
    """RGB of one screen pixel: a 1 x 1 PNG screenshot, whose single row is the same
    bytes under every PNG filter (no neighbours), so no image library is needed."""
    clip = {"x": math.floor(x), "y": math.floor(y), "width": 1, "height": 1}
    png = web.page.screenshot(clip=clip)
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return raw[1], raw[2], raw[3]


def hide_overlays(web: Watched) -> None:
    """Untick the sqrt curve and the beta2* line, so every cell centre shows its colour."""
    page = web.page
    before = page.evaluate("document.getElementById('map').dataset.drawn")
    page.uncheck("#show-sqrt")
    page.uncheck("#show-star")
    until(page, f"document.getElementById('map').dataset.drawn !== {before!r} && "
                "document.getElementById('map').data.length === 1")


def check_map(web: Watched, pm: dict[str, Any], *, colours: bool) -> None:
    got = drawn(web)
    beta1, beta2, z = pm["x"]["values"], pm["y"]["values"], pm["z"]
    assert pm["x"]["name"] == "beta1" and pm["y"]["name"] == "beta2"
    # rows over beta2 and columns over beta1, exactly the API's cells
    assert got["z"] == z, f"drawn z {got['z']} != API z {z}"
    # coordinates: beta1 linear, beta2 spaced by log10(1 - beta2) (1 - beta2 spans 100x)
    assert (got["xscale"], got["yscale"]) == ("linear", "log1m")
    assert got["x"] == pytest.approx(beta1, abs=1e-12)
    assert got["y"] == pytest.approx([math.log10(1 - b) for b in beta2], abs=1e-12)
    # orientation: beta1 grows to the right, beta2 grows upward (pixel y falls)
    by_b1 = [got["px"][j] for j in sorted(range(len(beta1)), key=lambda j: beta1[j])]
    by_b2 = [got["py"][i] for i in sorted(range(len(beta2)), key=lambda i: beta2[i])]
    assert all(a < b for a, b in zip(by_b1, by_b1[1:], strict=False)), by_b1
    assert all(a > b for a, b in zip(by_b2, by_b2[1:], strict=False)), by_b2
    # the y tick labels name the beta2 at their position
    ticks = got["yticks"]
    assert ticks["vals"] and len(ticks["vals"]) == len(ticks["text"])
    for u, label in zip(ticks["vals"], ticks["text"], strict=True):
        assert 1 - 10**u == pytest.approx(float(label), abs=1e-9), (u, label)
    # every cell's hover names its own beta1, beta2 and outcome
    labels = ["converged", "not converged", "diverged"]
    for i, b2 in enumerate(beta2):
        for j, b1 in enumerate(beta1):
            text = got["text"][i][j]
            named = re.match(r"β1 = ([^<]+)<br>β2 = ([^<]+)<br>", text)
            assert named, text
            shown = (nearest(float(named[1]), beta1), nearest(float(named[2]), beta2))
            assert shown == (b1, b2), (i, j, text)
            if pm["metric"] == "outcome":
                assert f"majority: <b>{labels[int(z[i][j])]}</b>" in text, (i, j, text)
    if not colours:
        return
    # the colour at each cell's centre is its outcome's
    wrong = []
    for i in range(len(beta2)):
        for j in range(len(beta1)):
            rgb = pixel(web, got["px"][j], got["py"][i])
            want = OUTCOME_RGB[int(z[i][j])]
            if max(abs(a - b) for a, b in zip(rgb, want, strict=True)) > 8:
                wrong.append(f"cell (beta1={beta1[j]}, beta2={beta2[i]}): {rgb} not {want}")
    assert not wrong, "\n".join(wrong)
    # and the colour bar names each colour by its outcome: the bar's pixel beside each
    # tick label is that outcome's colour
    bar = web.page.evaluate(
        """(() => {
          const d = document.getElementById('map');
          const fill = d.querySelector('.colorbar .cbfill').getBoundingClientRect();
          return {x: fill.left + fill.width / 2, ticks: Array.from(
            d.querySelectorAll('.colorbar .cbaxis text, .colorbar .ytick text'),
            t => { const r = t.getBoundingClientRect();
                   return {label: t.textContent, y: r.top + r.height / 2}; })};
        })()"""
    )
    assert [t["label"] for t in bar["ticks"]] == labels, bar
    for k, tick in enumerate(bar["ticks"]):
        rgb = pixel(web, bar["x"], tick["y"])
        assert max(abs(a - b) for a, b in zip(rgb, OUTCOME_RGB[k], strict=True)) <= 8, (tick, rgb)


def test_drawn_map_is_the_apis_map_cell_by_cell(web: Watched, server: Server, sweep: int) -> None:
    page = web.page
    web.goto(f"/sweeps/{sweep}")
    wait_map(web)
    hide_overlays(web)
    one = api_map(server, sweep, "outcome", 1)
    assert len({v for row in one["z"] for v in row}) >= 2, "the sweep shows one outcome only"
    assert drawn(web)["slice"]["batch_size"] == 1
    check_map(web, one, colours=True)
    web.shot("map-content-batch-1")

    # another batch size: the slice the API gives for it, not the old one redrawn
    two = api_map(server, sweep, "outcome", 2)
    assert two["z"] != one["z"], "batch sizes 1 and 2 give the same map: a weak test sweep"
    page.select_option("#batch_size", "2")
    until(page, "JSON.parse(document.getElementById('map').dataset.slice).batch_size === 2")
    wait_map(web)
    check_map(web, two, colours=True)


def test_continuous_metrics_are_drawn_as_the_api_gives_them(
    web: Watched, server: Server, sweep: int
) -> None:
    page = web.page
    web.goto(f"/sweeps/{sweep}")
    wait_map(web)
    page.select_option("#batch_size", "2")
    until(page, "JSON.parse(document.getElementById('map').dataset.slice).batch_size === 2")
    for metric, label in (("diverged_frac", "diverged fraction"),
                          ("final_rel", "median final rel. loss")):
        pm = api_map(server, sweep, metric, 2)
        page.select_option("#metric", metric)
        until(page, f"document.getElementById('map').data[0].colorbar?.title?.text === {label!r}")
        wait_map(web)
        if metric == "final_rel":  # a log colour scale: z is log10 of the API's value
            z = drawn(web)["z"]
            want = [[math.log10(v) if v is not None and v > 0 else None for v in row]
                    for row in pm["z"]]
            assert len(z) == len(want) and all(v is not None for row in want for v in row)
            for got_row, want_row in zip(z, want, strict=True):
                assert got_row == pytest.approx(want_row, rel=1e-12), (z, want)
        else:
            check_map(web, pm, colours=False)
            assert (drawn(web)["zmin"], drawn(web)["zmax"]) == (0, 1)
