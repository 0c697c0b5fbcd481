"""Maps over any two axes and slices over extra axes, on the sweep and compare pages
(issue 10, item 4): what the page draws is, cell by cell, GET /phase-map for the
same axes and slice, and the spacing of each axis is chosen from its values."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.web.conftest import Server, Watched
from tests.web.test_pages import until, wait_map

pytestmark = pytest.mark.browser

LRS = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]


def axes_spec(name: str, lr_scale: float = 1.0) -> dict[str, Any]:
    """zhang2022 over lr x beta2 (beta1 two values) and n = 5, 20 as an extra axis."""
    return {
        "name": name,
        "problem": {"kind": "zhang2022", "x0": -0.5},
        "optimizer": {"schedule": "inv_sqrt", "bias_correction": False},
        "steps": 300,
        "grid": {
            "beta1": [0.0, 0.9],
            "beta2": {"log1m": [0.01, 1.0], "num": 5},
            "lr": [v * lr_scale for v in LRS],
            "seed": [0, 1],
            "problem.n": [5, 20],
        },
    }


@pytest.fixture(scope="module")
def sweeps(server: Server) -> tuple[int, int]:
    a = server.create(axes_spec("lr x beta2 with n"))
    b = server.create(axes_spec("lr x beta2 with n, again"))  # its results are reused
    for s in (a, b):
        server.wait_done(s)
    return a, b


def api_map(server: Server, sweep_id: int, **params: Any) -> dict[str, Any]:
    return server.api(  # type: ignore[no-any-return]
        "GET", f"/sweeps/{sweep_id}/phase-map?" + urlencode({"metric": "outcome", **params}))


def drawn(web: Watched, div: str = "map") -> dict[str, Any]:
    return web.page.evaluate(  # type: ignore[no-any-return]
        f"""(() => {{
          const d = document.getElementById({div!r});
          const h = d.data[0], fl = d._fullLayout;
          return {{ x: h.x, y: h.y, z: h.z, text: h.text, traces: d.data.length,
                    names: d.data.map(t => t.name),
                    slice: d.dataset.slice ? JSON.parse(d.dataset.slice) : null,
                    axes: d.dataset.axes ? JSON.parse(d.dataset.axes) : null,
                    xticks: fl.xaxis.ticktext, xtitle: fl.xaxis.title.text,
                    xscale: document.getElementById('xscale').value,
                    yscale: document.getElementById('yscale').value }};
        }})()"""
    )


def test_a_map_over_lr_and_beta2_is_the_apis(web: Watched, server: Server,
                                              sweeps: tuple[int, int]) -> None:
    sweep, _ = sweeps
    page = web.page
    web.goto(f"/sweeps/{sweep}")
    wait_map(web)
    assert drawn(web)["axes"] == ["beta1", "beta2"]
    # every axis with more than one value can be mapped; seed is no map axis
    options = page.eval_on_selector_all("#x-axis option", "os => os.map(o => o.value)")
    assert set(options) == {"beta1", "beta2", "lr", "problem.n"}, options
    page.select_option("#x-axis", "lr")
    until(page, "(d => d.dataset.axes === JSON.stringify(['lr', 'beta2']))"
                "(document.getElementById('map'))")
    wait_map(web)
    got = drawn(web)
    want = api_map(server, sweep, x="lr", y="beta2")
    assert want["x"] == {"name": "lr", "values": LRS} and want["beta2_star"] is None
    assert got["z"] == want["z"], (got["z"], want["z"])
    assert len({v for row in want["z"] for v in row}) >= 2, "one outcome only: a weak sweep"
    # lr spans decades: log spaced, ticks naming the grid's own values; beta2 keeps log(1 - b)
    assert (got["xscale"], got["yscale"]) == ("log", "log1m")
    assert got["x"] == pytest.approx([math.log10(v) for v in LRS], abs=1e-12)
    assert [float(t) for t in got["xticks"]] == pytest.approx(LRS)
    # no beta1 = sqrt(beta2) or beta2* overlay off the (beta1, beta2) plane
    assert got["traces"] == 1, got["names"]
    assert got["slice"] == {"beta1": 0.0, "batch_size": 1, "clip": "none", "problem.n": 5}
    assert got["text"][0][0].startswith("lr = 0.01<br>β2 = 0<br>"), got["text"][0][0]
    # the beta1 slice control appears (beta1 is no longer mapped), the lr one hides
    assert page.is_visible("#slice-beta1") and not page.is_visible("#lr")
    page.select_option("#slice-beta1", "0.9")
    until(page, "JSON.parse(document.getElementById('map').dataset.slice).beta1 === 0.9")
    wait_map(web)
    other = api_map(server, sweep, x="lr", y="beta2", beta1=0.9)
    assert drawn(web)["z"] == other["z"]
    web.shot("map-lr-beta2")


def test_an_extra_axis_is_a_slice_control(web: Watched, server: Server,
                                          sweeps: tuple[int, int]) -> None:
    sweep, _ = sweeps
    page = web.page
    web.goto(f"/sweeps/{sweep}")
    wait_map(web)
    page.select_option("#lr", "1")  # at lr 1 the maps of n = 5 and 20 differ
    until(page, "JSON.parse(document.getElementById('map').dataset.slice).lr === 1")
    wait_map(web)
    n5 = api_map(server, sweep, lr=1.0)
    assert n5["slice"]["problem.n"] == 5 and drawn(web)["z"] == n5["z"]
    n20 = api_map(server, sweep, lr=1.0, **{"problem.n": 20})
    assert n20["z"] != n5["z"], "n = 5 and 20 give the same map: a weak test sweep"
    page.select_option("[id='slice-problem.n']", "20")
    until(page, "JSON.parse(document.getElementById('map').dataset.slice)['problem.n'] === 20")
    wait_map(web)
    got = drawn(web)
    assert got["z"] == n20["z"]
    assert got["traces"] >= 2  # the beta1 x beta2 map keeps its overlays
    assert "problem.n 20" in page.inner_text("#map-title")
    # and a map with the extra axis on x
    page.select_option("#x-axis", "problem.n")
    until(page, "(d => d.dataset.axes === JSON.stringify(['problem.n', 'beta2']))"
                "(document.getElementById('map'))")
    wait_map(web)
    want = api_map(server, sweep, x="problem.n", y="beta2", lr=1.0)
    got = drawn(web)
    assert got["z"] == want["z"] and want["x"]["values"] == [5, 20]
    assert not page.is_visible("[id='slice-problem.n']") and page.is_visible("#slice-beta1")


def test_compare_maps_two_sweeps_over_lr_and_beta2(web: Watched, server: Server,
                                                   sweeps: tuple[int, int]) -> None:
    a, b = sweeps
    page = web.page
    web.goto(f"/compare?a={a}&b={b}")
    wait_map(web, "diff")
    page.select_option("#x-axis", "lr")
    until(page, "document.getElementById('diff').data[0].x.length === 6")
    wait_map(web, "diff")
    pa = api_map(server, a, x="lr", y="beta2")
    pb = api_map(server, b, x="lr", y="beta2", **{"problem.n": 20})
    page.select_option("[id='b-slice-problem.n']", "20")
    until(page, "document.getElementById('map-b').layout.title.text.includes('problem.n 20')")
    diff = page.evaluate("betascope.comparePage.diff")
    want = [[None if va is None or vb is None else vb - va for va, vb in zip(ra, rb, strict=True)]
            for ra, rb in zip(pa["z"], pb["z"], strict=True)]
    assert diff["z"] == want
    assert diff["differ"] == sum(1 for row in want for v in row if v)
    assert page.inner_text("#load-error") == ""
    assert drawn(web, "map-a")["z"] == pa["z"]


def test_a_map_over_clip_settings_draws_them_as_categories(web: Watched,
                                                           server: Server) -> None:
    doc = axes_spec("clip x batch")
    doc["grid"] = {"beta1": [0.9], "beta2": [0.9, 0.99], "batch_size": [1, 2, 4],
                   "clip": [{"mode": "none"}, {"mode": "value", "threshold": 0.5},
                            {"mode": "global_norm", "threshold": 0.1}], "seed": [0, 1]}
    sweep = server.create(doc)
    server.wait_done(sweep)
    page = web.page
    web.goto(f"/sweeps/{sweep}")
    wait_map(web)
    page.select_option("#x-axis", "clip")
    page.select_option("#y-axis", "batch_size")
    until(page, "(d => d.dataset.axes === JSON.stringify(['clip', 'batch_size']))"
                "(document.getElementById('map'))")
    wait_map(web)
    got = drawn(web)
    want = api_map(server, sweep, x="clip", y="batch_size")
    assert want["x"]["values"] == ["none", "value:0.5", "global_norm:0.1"]
    assert got["z"] == want["z"] and got["x"] == [0, 1, 2]
    assert got["xscale"] == "category" and got["xticks"] == want["x"]["values"]
    assert got["yscale"] == "log"  # batch sizes 1, 2, 4: evenly spaced in log
    assert got["slice"] == {"beta1": 0.9, "beta2": 0.9, "lr": 0.1}
