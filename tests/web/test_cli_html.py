"""`betascope run --html` against the sweep page, both in real Chromium: the same sweep
drawn by each must give the same map (axes, ticks, cells, colours, overlays, legend),
and the file must draw offline, from file://, with nothing fetched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from api.cli import app
from tests.conftest import ARTIFACTS
from tests.web.conftest import Server, Watched
from tests.web.test_pages import until, wait_map

pytestmark = pytest.mark.browser

# an uneven list on beta1 (cells of different widths) and a log-spaced beta2
SPEC = """\
name: cli html vs page
problem: {kind: zhang2022, n: 10, x0: -0.5}
optimizer: {lr: 0.1, schedule: inv_sqrt, bias_correction: false}
steps: 300
grid:
  beta1: [0.0, 0.5, 0.7, 0.9]
  beta2: {log1m: [0.01, 1.0], num: 5}
  batch_size: [1, 4]
  seed: [0, 1]
"""

# what a map is made of, read from a drawn Plotly div
SHAPE = """(id) => {
  const d = document.getElementById(id), L = d.layout;
  const ax = (a) => ({range: a.range, tickvals: a.tickvals || null, ticktext: a.ticktext || null,
                      title: a.title && a.title.text, type: a.type || null});
  const tr = (t) => ({type: t.type, name: t.name, mode: t.mode || null, x: Array.from(t.x),
                      y: Array.from(t.y), z: t.z || null, colorscale: t.colorscale || null,
                      zmin: t.zmin ?? null, zmax: t.zmax ?? null, xgap: t.xgap ?? null,
                      ygap: t.ygap ?? null, zsmooth: t.zsmooth ?? null,
                      colorbar: t.colorbar ? {tickvals: t.colorbar.tickvals || null,
                                              ticktext: t.colorbar.ticktext || null} : null,
                      line: t.line || null});
  return {traces: d.data.map(tr), xaxis: ax(L.xaxis), yaxis: ax(L.yaxis),
          plot_bgcolor: L.plot_bgcolor, legend: L.legend, showlegend: L.showlegend};
}"""


def same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), (where, set(a) ^ set(b))
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def test_the_html_file_draws_the_sweep_pages_map(
    web: Watched, server: Server, browser: Any, tmp_path: Path
) -> None:
    sweep_id = server.create(yaml.safe_load(SPEC))
    server.wait_done(sweep_id)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    html = tmp_path / "map.html"
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "runs.csv"),
                                      "--html", str(html), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"wrote {html}" in result.output

    web.goto(f"/sweeps/{sweep_id}")
    wait_map(web)
    # drawn with its beta2* once the boundary is in: a line where some column has one
    # (the page leaves an all-null line, and its legend entry, out)
    until(web.page, """(() => {
      const s = betascope.sweepPage.state, d = document.getElementById('map');
      if (!s.boundary || !s.boundary.slices || !d.data || !d.dataset.slice) return false;
      const sl = JSON.parse(d.dataset.slice);
      const e = s.boundary.slices.find((e) => Object.entries(sl).every(
        ([k, v]) => String(e[k]) === String(v)));
      return d.data.length === 2 + (e && e.beta2_star.some((v) => v !== null) ? 1 : 0);
    })()""")
    page_map = web.page.evaluate(SHAPE, "map")
    web.shot("cli-html-sweep-page")

    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    try:
        local = context.new_page()
        errors: list[str] = []
        fetched: list[str] = []
        local.on("pageerror", lambda e: errors.append(str(e)))

        def route(r: Any) -> None:
            if r.request.url.startswith("file:"):
                r.continue_()
            else:
                fetched.append(r.request.url)
                r.abort()

        local.route("**/*", route)
        local.goto(html.as_uri())
        local.wait_for_selector("body[data-drawn='1']", timeout=60_000)
        file_map = local.evaluate(SHAPE, "fig0")  # batch size 1, the page's default slice
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        local.screenshot(path=str(ARTIFACTS / "cli-html.png"), full_page=True)
        assert local.locator(".main-svg").count() >= 2 * 3  # 4 maps and 2 beta2* charts
        assert not errors and not fetched, (errors, fetched)
        # no chart offers plotly.js's "Share chart..." (an upload to cloud.plotly.com)
        assert local.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
            .every(d => d._context.showSendToCloud === false
                        && !d.querySelector('[data-title^="Share chart"]'))""")
    finally:
        context.close()
    assert [t["name"] for t in file_map["traces"]] == [t["name"] for t in page_map["traces"]]
    same(file_map, page_map, "map")
    # the uneven beta1 list keeps its own cells: edges halfway between neighbours
    assert json.dumps(file_map["xaxis"]["range"]) == json.dumps(page_map["xaxis"]["range"])
    assert file_map["xaxis"]["range"] == pytest.approx([-0.25, 1.0])
