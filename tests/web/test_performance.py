"""A 250,000-run sweep's page draws the same map as a 2,500-run sweep's, about as fast.

The page reads O(cells) data whatever the run count, so the time from
navigation start to the moment Plotly has drawn the heatmap (the page records
`betascope.mapDrawnAt`) must not grow with the runs behind the cells. On a
shared two-core machine an absolute budget measures the neighbours, so the
test compares the two pages in the same browser, visits interleaved, and
asserts on the ratio of their medians; the absolute times (first visit too,
which also compiles plotly.js and waits for the server's first aggregation)
are printed and written to artifacts/render-250k.json.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import ARTIFACTS
from tests.web.big import BIG_SPEC, build_finished_sweep
from tests.web.conftest import Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The big page may take this many times the small one's: generous, since a
# per-run cost would show as a factor near 100 (250,000 against 2,500 runs).
MAX_RATIO = 5.0
VISITS = 5


@pytest.fixture(scope="module")
def big_sweep(server: Server) -> int:
    url = server.database_url
    t = time.perf_counter()
    sweep_id, timings = build_finished_sweep(url, BIG_SPEC)
    took = time.perf_counter() - t
    print(f"\nbuilt a finished sweep of 250,000 runs in {took:.1f} s: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    s = server.api("GET", f"/sweeps/{sweep_id}")
    assert s["total_runs"] == s["done_runs"] == 250_000 and s["status"] == "done"
    return sweep_id


@pytest.fixture(scope="module")
def small_sweep(server: Server) -> int:
    """The same 50 x 50 (beta1, beta2) grid, one batch size and one seed: 2,500 runs."""
    doc = json.loads(json.dumps(BIG_SPEC))
    doc["name"] = "the same grid, 2,500 runs"
    doc["grid"].update(batch_size=[1], seed=[0])
    sweep_id = server.create(doc)
    server.wait_done(sweep_id, timeout=300)
    return sweep_id


def visit(page: Any, url: str) -> dict[str, Any]:
    page.goto(url)
    page.wait_for_function("() => window.betascope && betascope.mapDrawnAt", timeout=60_000)
    return page.evaluate(
        """(() => {
          const e = performance.getEntriesByType('resource');
          const api = e.find(r => r.name.includes('/phase-map?metric=outcome'));
          const js = e.find(r => r.name.includes('plotly.min.js'));
          const d = document.getElementById('map');
          return {drawn: betascope.mapDrawnAt, api_ms: api ? api.responseEnd - api.startTime : null,
                  plotly_cached: js ? js.transferSize === 0 : null,
                  rows: d.data[0].z.length, cols: d.data[0].z[0].length};
        })()"""
    )


def test_250k_run_sweep_draws_its_map_as_fast_as_a_small_one(
    browser: Any, server: Server, big_sweep: int, small_sweep: int
) -> None:
    big_url = f"{server.url}/sweeps/{big_sweep}"
    small_url = f"{server.url}/sweeps/{small_sweep}"
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        first = visit(page, big_url)  # fresh browser, server has not aggregated the sweep yet
        visit(page, small_url)  # the small sweep's first aggregation, not measured
        big, small = [], []
        for _ in range(VISITS):  # interleaved, so both see the same background load
            big.append(visit(page, big_url))
            small.append(visit(page, small_url))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.goto(big_url)
        page.wait_for_function("() => window.betascope && betascope.mapDrawnAt", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "sweep-250k.png"), full_page=True)
        assert not errors, errors
    finally:
        context.close()

    def median(rs: list[dict[str, Any]]) -> float:
        return float(sorted(r["drawn"] for r in rs)[len(rs) // 2])

    ratio = median(big) / median(small)
    report = {
        "runs": 250_000, "map": f"{first['rows']} x {first['cols']}",
        "first_visit_ms": round(first["drawn"]), "first_visit_phase_map_api_ms":
            round(first["api_ms"]) if first["api_ms"] is not None else None,
        "repeat_visits_ms": [round(r["drawn"]) for r in big],
        "repeat_phase_map_api_ms": [round(r["api_ms"]) for r in big if r["api_ms"]],
        "small_sweep_visits_ms": [round(r["drawn"]) for r in small],
        "ratio_of_medians": round(ratio, 2), "max_ratio": MAX_RATIO,
    }
    print("\n250k-run sweep page, navigation -> heatmap drawn: " + json.dumps(report))
    (ARTIFACTS / "render-250k.json").write_text(json.dumps(report, indent=2))
    grid = BIG_SPEC["grid"]
    shape = (grid["beta2"]["num"], grid["beta1"]["num"])
    assert all((r["rows"], r["cols"]) == shape for r in [first, *big, *small])
    assert all(r["plotly_cached"] for r in big + small)
    assert ratio < MAX_RATIO, f"the 250k-run page took {ratio:.1f} times the 2,500-run page's"
