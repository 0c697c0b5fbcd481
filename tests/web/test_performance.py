"""A 250,000-run sweep's page draws its phase map within two seconds in Chromium.

Measured from navigation start to the moment Plotly has drawn the heatmap (the
page records `betascope.mapDrawnAt`), on the embedded default server. The first
visit in a fresh browser also compiles plotly.js (4.8 MB) and, on a server that
has not yet aggregated this sweep, waits for that; both are printed. The
assertion is on a visit with plotly.js in the browser's cache, which is every
visit but a browser's first.
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

BUDGET_MS = 2000.0


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


def test_250k_run_sweep_draws_its_map_within_two_seconds(
    browser: Any, server: Server, big_sweep: int
) -> None:
    url = f"{server.url}/sweeps/{big_sweep}"
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        first = visit(page, url)  # fresh browser, server has not aggregated the sweep yet
        repeats = [visit(page, url) for _ in range(3)]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "sweep-250k.png"), full_page=True)
        assert not errors, errors
    finally:
        context.close()
    best = min(r["drawn"] for r in repeats)
    report = {
        "runs": 250_000, "map": f"{first['rows']} x {first['cols']}",
        "first_visit_ms": round(first["drawn"]), "first_visit_phase_map_api_ms":
            round(first["api_ms"]) if first["api_ms"] is not None else None,
        "repeat_visits_ms": [round(r["drawn"]) for r in repeats],
        "repeat_phase_map_api_ms": [round(r["api_ms"]) for r in repeats if r["api_ms"]],
        "budget_ms": BUDGET_MS,
    }
    print("\n250k-run sweep page, navigation -> heatmap drawn: " + json.dumps(report))
    (ARTIFACTS / "render-250k.json").write_text(json.dumps(report, indent=2))
    grid = BIG_SPEC["grid"]
    assert (first["rows"], first["cols"]) == (grid["beta2"]["num"], grid["beta1"]["num"])
    assert all(r["plotly_cached"] for r in repeats)
    # the median of the repeats, so one hiccup of a shared machine does not decide it
    median = sorted(r["drawn"] for r in repeats)[1]
    assert median < BUDGET_MS, f"map drawn after {median:.0f} ms (best {best:.0f} ms)"
