"""Phase maps and boundaries over REST equal experiments.analysis on the CLI's result,
for a reduced zhang2022-batch preset (beta1 = 0 kept, batch sizes 1, 2, 4, 8)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import pytest

from experiments import analysis
from experiments.presets import preset
from experiments.spec import parse_spec
from tests.api.helpers import submit, wait_status

pytestmark = pytest.mark.services


def reduced_preset() -> dict[str, Any]:
    doc = preset("zhang2022-batch")
    doc["name"] = "zhang2022-batch, reduced"
    doc["grid"]["beta1"] = [0.0, 0.5]  # beta2 grid, batch sizes, seeds and steps as published
    doc["grid"]["beta2"] = {"log1m": [0.01, 1.0], "num": 12}
    return doc


@lru_cache(maxsize=1)
def cli_result() -> Any:
    from experiments.local import run_local

    return run_local(parse_spec(reduced_preset()), device="cpu")


def test_phase_map_and_boundary_equal_the_cli(make_client: Any) -> None:
    client = make_client(chunk_runs=1000, max_runs=100_000)  # one chunk: the science is slow
    doc = reduced_preset()
    sweep = submit(client, doc)
    assert sweep["total_runs"] == 2 * 12 * 4 * 3
    wait_status(client, sweep["id"], "done", timeout=240)

    spec = parse_spec(doc)
    result = cli_result()
    cells = result.cells()
    url = f"/api/v1/sweeps/{sweep['id']}"
    for metric in ("outcome", "diverged_frac", "converged_frac", "final_rel", "div_step"):
        for batch in (1, 2, 4, 8):
            got = client.get(f"{url}/phase-map", params={"metric": metric, "batch_size": batch})
            assert got.status_code == 200, got.text
            sl = analysis.slice_index(spec, batch_size=batch)
            want = json.loads(json.dumps(analysis.phase_map(spec, cells, metric, sl)))
            body = got.json()
            for key in ("x", "y", "z", "metric", "slice", "available", "outcomes"):
                assert body[key] == want[key], (metric, batch, key)
            assert body["beta2_star"] == analysis.beta2_star(spec, cells, sl)
            assert body["n_results"] == result.total

    default = client.get(f"{url}/phase-map").json()
    assert default["slice"] == {"batch_size": 1, "clip": "none", "lr": 0.1}
    assert default["available"] == {"batch_size": [1, 2, 4, 8], "clip": ["none"], "lr": [0.1]}
    bad = client.get(f"{url}/phase-map", params={"batch_size": 3})
    assert bad.status_code == 422 and "batch_size" in bad.json()["detail"]
    bad = client.get(f"{url}/phase-map", params={"clip": "value:0.5"})
    assert bad.status_code == 422 and "clip" in bad.json()["detail"]
    assert client.get(f"{url}/phase-map", params={"metric": "colour"}).status_code == 422

    boundary = client.get(f"{url}/boundary").json()
    want = json.loads(json.dumps(analysis.boundary(spec, cells)))
    assert boundary["slices"] == want["slices"]
    assert boundary["by_batch"] == want["by_batch"]
    assert boundary["sqrt_curve"]["beta2"] == spec.axis_values()["beta2"]

    # the paper's claim on this grid: beta2* at beta1 = 0 falls strictly with batch size
    row = next(r for r in boundary["by_batch"] if r["beta1"] == 0.0)
    stars = row["beta2_star"]
    assert row["batch_size"] == [1, 2, 4, 8] and None not in stars, stars
    assert all(a > b for a, b in zip(stars, stars[1:], strict=False)), stars
