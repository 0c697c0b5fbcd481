"""The sweep page (issue 9, items 7, 8, 9, 12 and 15): rounded labels over exact values,
a colour-blind-safe outcome palette, "never diverged" apart from "no results yet",
cancel that asks first and keeps finished chunks, and a log-scale suboptimality view."""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

import pytest

from tests.web.colours import DEUTERANOPIA, NORMAL, PROTANOPIA, difference
from tests.web.conftest import Server, Watched
from tests.web.specs import small_zhang
from tests.web.test_pages import until, wait_map, z_of

pytestmark = pytest.mark.browser

NOISY = 0.30000000000000004  # 0.1 + 0.2: what a grid built by adding steps holds
LONG = re.compile(r"\d\.\d{9,}")  # a value printed with float noise
VISIONS = {"normal": NORMAL, "deuteranopia": DEUTERANOPIA, "protanopia": PROTANOPIA}
MIN_DIFFERENCE = 20.0  # CIEDE2000; the old red/green palette is 6.6 apart under deuteranopia


@pytest.fixture(scope="module")
def noisy(server: Server) -> tuple[int, dict[str, Any]]:
    """A finished sweep whose beta1 grid holds 0.30000000000000004."""
    spec = small_zhang("noisy grid", steps=300)
    spec["grid"]["beta1"] = [0.0, 0.1, NOISY]
    sweep_id = server.create(spec)
    server.wait_done(sweep_id)
    return sweep_id, spec


def click_cell(web: Watched, row: int, col: int) -> None:
    box = web.page.evaluate(
        """([row, col]) => {
          const d = document.getElementById('map');
          const xa = d._fullLayout.xaxis, ya = d._fullLayout.yaxis, h = d.data[0];
          const r = d.querySelector('.nsewdrag').getBoundingClientRect();
          return {x: r.left + xa.l2p(h.x[col]), y: r.top + ya.l2p(h.y[row])};
        }""", [row, col])
    web.page.mouse.click(box["x"], box["y"])


def test_outcome_colours_stay_apart_for_colour_blind_readers(
    web: Watched, noisy: tuple[int, dict[str, Any]]
) -> None:
    page = web.page
    web.goto(f"/sweeps/{noisy[0]}")
    wait_map(web)
    scale = page.evaluate("document.getElementById('map').data[0].colorscale")
    drawn = list(dict.fromkeys(c for _, c in scale))  # converged, not converged, diverged
    assert len(drawn) == 3
    empty = page.evaluate("document.getElementById('map').layout.plot_bgcolor")
    swatches = page.evaluate("""
      ['converged', 'not-converged', 'diverged', 'empty', 'never-diverged'].map(k =>
        getComputedStyle(document.querySelector('.swatch.' + k)).backgroundColor)""")
    named = dict(zip(["converged", "not converged", "diverged"], drawn, strict=True))
    named["no results"] = empty
    for a, b in itertools.combinations(named, 2):
        for vision, m in VISIONS.items():
            d = difference(named[a], named[b], m)
            assert d >= MIN_DIFFERENCE, f"{a} and {b} are {d:.1f} apart with {vision}"
    # the legends show the colours the map draws
    for css, colour in zip(swatches[:4], [*drawn, empty], strict=True):
        assert difference(css, colour) < 1, (css, colour)
    never = page.evaluate("betascope.maps.NEVER_DIVERGED")
    assert difference(swatches[4], never) < 1
    for vision, m in VISIONS.items():
        assert difference(never, empty, m) >= MIN_DIFFERENCE, vision
    ranked = sorted(named.items(), key=lambda kv: difference(kv[1], "#000000", DEUTERANOPIA))
    print("\noutcome colours (CIEDE2000 from black, deuteranopia):",
          [(k, v, round(difference(v, "#000000", DEUTERANOPIA), 1)) for k, v in ranked])
    web.shot("sweep-palette")


def test_labels_are_rounded_and_the_api_keeps_full_precision(
    web: Watched, server: Server, noisy: tuple[int, dict[str, Any]]
) -> None:
    sweep_id, spec = noisy
    page = web.page
    web.goto(f"/sweeps/{sweep_id}")
    wait_map(web)
    until(page, "document.getElementById('map').data[0].text?.[0]?.[0]"
                "?.includes('median final rel')")
    texts = page.evaluate("document.getElementById('map').data[0].text.flat()")
    assert any("β1 = 0.3<br>" in t for t in texts)
    noisy_hovers = [t for t in texts if LONG.search(t)]
    assert not noisy_hovers, noisy_hovers[:2]
    # the map's coordinates and the API keep the exact grid values
    assert NOISY in server.api("GET", f"/sweeps/{sweep_id}/phase-map")["x"]["values"]
    rows = len(z_of(web))
    click_cell(web, rows - 1, 2)
    until(page, "(document.getElementById('curves').data || []).length > 0")
    info = page.text_content("#cell-info") or ""
    assert "0.3, 0.99" in info, info
    assert not LONG.search(info), info
    fits = page.text_content("#fits") or ""
    assert not LONG.search(fits), fits
    web.shot("sweep-rounded-cell")


def test_the_keyboard_reaches_a_cell_as_a_click_does(
    web: Watched, server: Server, noisy: tuple[int, dict[str, Any]]
) -> None:
    """Tab to the map, the arrow keys move a frame over the cells (up: the next β2),
    Enter shows that cell's loss curves: the same cell a click on it shows."""
    sweep_id, _ = noisy
    page = web.page
    web.goto(f"/sweeps/{sweep_id}")
    wait_map(web)
    pm = server.api("GET", f"/sweeps/{sweep_id}/phase-map")
    page.focus("#map")
    for key in ("ArrowRight", "ArrowRight", "ArrowRight", "ArrowUp", "ArrowLeft"):
        page.keyboard.press(key)  # the frame stops at the last column
    frame = page.evaluate("document.getElementById('map').layout.shapes")
    assert len(frame) == 1 and frame[0]["type"] == "rect"
    assert page.evaluate("(document.getElementById('curves').data || []).length") == 0
    page.keyboard.press("Enter")
    until(page, "(document.getElementById('curves').data || []).length > 0")
    keyed = page.text_content("#cell-info") or ""
    assert pm["x"]["values"][1] == 0.1 and "β20.1, " in keyed, keyed  # column 1: β1 = 0.1
    web.goto(f"/sweeps/{sweep_id}")  # the same cell, clicked
    wait_map(web)
    click_cell(web, 1, 1)
    until(page, "(document.getElementById('curves').data || []).length > 0")
    assert page.text_content("#cell-info") == keyed


def check_gap(linear: list[Any], gap: list[Any], f_star: float) -> None:
    """The gap view's curves are f - f* where that is positive, gaps elsewhere."""
    shown = 0
    for f, g in zip(linear, gap, strict=True):
        for fv, gv in zip(f, g, strict=True):
            if fv is None or fv - f_star <= 0:
                assert gv is None
            else:
                assert gv == pytest.approx(fv - f_star, rel=1e-9)
                shown += 1
    assert shown > 0


def test_suboptimality_view_of_the_loss_curves(
    web: Watched, noisy: tuple[int, dict[str, Any]]
) -> None:
    sweep_id, spec = noisy
    page = web.page
    web.goto(f"/sweeps/{sweep_id}")
    wait_map(web)
    click_cell(web, len(z_of(web)) - 1, 0)
    until(page, "(document.getElementById('curves').data || []).length > 0")
    linear = page.evaluate("document.getElementById('curves').data.map(t => t.y)")
    page.select_option("#curve-scale", "gap")
    until(page, "document.getElementById('curves').layout.yaxis.type === 'log'")
    gap = page.evaluate("document.getElementById('curves').data.map(t => t.y)")
    f_star = -3 / (2 * spec["problem"]["n"])  # Zhang et al.: f* = -3/(2n)
    assert len(gap) == len(spec["grid"]["seed"])
    check_gap(linear, gap, f_star)
    assert "f*" in page.evaluate("document.getElementById('curves').layout.yaxis.title.text")
    web.shot("sweep-curves-suboptimality")
    page.select_option("#curve-scale", "linear")
    until(page, "document.getElementById('curves').layout.yaxis.type !== 'log'")
    # no chart offers plotly.js's "Share chart...", which uploads it to cloud.plotly.com
    charts = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(
        d => [d.id, d._context.showSendToCloud, d._context.plotlyServerURL,
              d.querySelectorAll('[data-title^="Share chart"]').length])""")
    assert {c[0] for c in charts} >= {"map", "curves"}, charts
    assert all(c[1:] == [False, "", 0] for c in charts), charts


def test_cancel_asks_first_keeps_finished_chunks_and_the_step_map_tells_gaps_apart(
    web: Watched, server: Server
) -> None:
    spec = small_zhang("cancel midway", steps=20_000)
    spec["grid"]["batch_size"] = [1, 2, 4, 8]  # 160 runs, 8 chunks of 20, two at a time
    sweep_id = server.create(spec)
    page = web.page
    web.goto(f"/sweeps/{sweep_id}")
    page.locator("#cancel").wait_for(state="visible")
    # asking first: "Keep running" leaves it running
    page.click("#cancel")
    page.locator("dialog#confirm-dialog").wait_for()
    assert "already finished keep their results" in page.text_content("dialog#confirm-dialog")
    web.shot("sweep-cancel-confirm")
    page.click("#confirm-no")
    assert server.api("GET", f"/sweeps/{sweep_id}")["status"] in ("queued", "running")
    started = time.monotonic()
    while True:
        s = server.api("GET", f"/sweeps/{sweep_id}")
        assert s["status"] in ("queued", "running"), s  # eight chunks: far from done
        if s["done_runs"] >= 20:
            break
        assert time.monotonic() - started < 300, s
        time.sleep(0.2)
    print(f"\nfirst chunk done after {time.monotonic() - started:.1f} s")
    page.click("#cancel")
    page.click("#confirm-yes")
    until(page, "document.getElementById('status').textContent === 'canceled'")
    after = server.api("GET", f"/sweeps/{sweep_id}")
    assert after["status"] == "canceled"
    assert 20 <= after["done_runs"] < after["total_runs"]
    assert after["done_runs"] >= s["done_runs"]
    # every run counted as done still has its result, and nothing else has
    kept = []
    cursor = None
    while True:
        got = server.api("GET", f"/sweeps/{sweep_id}/runs?limit=200"
                         + (f"&cursor={cursor}" if cursor else ""))
        kept += got["items"]
        cursor = got["next_cursor"]
        if not cursor:
            break
    assert len(kept) == after["done_runs"]
    assert all(r["outcome"] in ("converged", "not_converged", "diverged") for r in kept)
    # the map shows the kept results and grey where none are
    page.reload()
    wait_map(web)
    page.select_option("#metric", "div_step")
    until(page, "document.getElementById('map').data.some(t => t.name === 'never diverged')")
    state = page.evaluate("""(() => { const d = document.getElementById('map').data;
      const never = d.find(t => t.name === 'never diverged');
      return {step: d[0].z, never: never.z, colour: never.colorscale[0][1],
              legend: !document.getElementById('step-legend').hidden}; })()""")
    outcome = server.api("GET", f"/sweeps/{sweep_id}/phase-map?metric=outcome")["z"]
    step = server.api("GET", f"/sweeps/{sweep_id}/phase-map?metric=div_step")["z"]
    n_never = n_empty = 0
    for i, row in enumerate(outcome):
        for j, oc in enumerate(row):
            never = state["never"][i][j] is not None
            if oc is None:  # no results yet: neither layer paints it, the grey shows
                n_empty += 1
                assert not never and state["step"][i][j] is None
            elif step[i][j] is None:  # results, none diverged
                n_never += 1
                assert never
            else:
                assert not never
    assert n_never > 0 and n_empty > 0, (n_never, n_empty)
    assert state["legend"]
    empty = page.evaluate("document.getElementById('map').layout.plot_bgcolor")
    assert difference(state["colour"], empty, DEUTERANOPIA) >= MIN_DIFFERENCE
    web.shot("sweep-canceled-div-step")


def test_censored_beta2_star_is_drawn_as_a_bound_and_counted_in_the_fit_table(
    web: Watched, noisy: tuple[int, dict[str, Any]]
) -> None:
    """DESIGN section 6, censored boundaries: a beta2* at the lowest grid beta2 is a bound,
    drawn as an open triangle and counted apart from the fit's points."""
    sweep_id, _ = noisy
    web.goto(f"/sweeps/{sweep_id}")
    wait_map(web)
    boundary = {"by_batch": [{
        "beta1": 0.5, "clip": "none", "lr": 0.1, "batch_size": [1, 2, 4, 8],
        "beta2_star": [0.999, 0.99, 0.9, 0.5], "censored": ["none", "none", "none", "below"],
        "n_censored": 1,
        "fit": {"slope": 1.0, "intercept": -6.9, "stderr": 0.0, "half_life_slope": 1.0,
                "n_points": 3, "n_censored": 1},
    }]}
    drawn = web.page.evaluate(
        """(b) => {
          const div = document.createElement('div'), table = document.createElement('table');
          document.body.append(div, table);
          betascope.scaling.draw(div, table, b, {clip: 'none', lr: 0.1, batchSizes: [1, 2, 4, 8]});
          const t = div.data[0];
          return {symbol: t.marker.symbol, hover: t.customdata,
                  head: [...table.rows[0].cells].map(c => c.textContent),
                  row: [...table.rows[1].cells].map(c => c.textContent)};
        }""", boundary)
    assert drawn["symbol"] == ["circle", "circle", "circle", "triangle-down-open"]
    assert drawn["hover"][3].startswith("≤ 0.5") and "bound" in drawn["hover"][3]
    assert drawn["head"][4] == "bounds left out" and drawn["row"][3:5] == ["3", "1"]
