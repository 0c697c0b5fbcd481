"""Spikes over REST: the regime map, max_rise and spiky in runs, cells and exports,
equal to what `betascope run` computes for the same spec (several chunks, and a
sweep that reuses another's runs)."""

from __future__ import annotations

import csv
import io
import json
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from api.services import results
from experiments import analysis
from experiments.outcomes import REGIMES
from experiments.spec import parse_spec
from tests.api.helpers import all_runs, submit, wait_status
from tests.web.specs import regimes_poly

pytestmark = pytest.mark.services


@lru_cache(maxsize=2)
def local(doc_json: str) -> Any:
    from experiments.local import run_local

    return run_local(parse_spec(json.loads(doc_json)), device="cpu")


def test_regime_map_runs_and_exports_equal_the_cli(make_client: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(chunk_runs=9, max_runs=100_000)  # several chunks
    doc = regimes_poly()
    sweep = submit(client, doc)
    wait_status(client, sweep["id"], "done", timeout=240)
    spec = parse_spec(doc)
    result = local(json.dumps(doc))
    cells = result.cells()
    url = f"/api/v1/sweeps/{sweep['id']}"

    body = client.get(f"{url}/phase-map", params={"metric": "regime"}).json()
    want = json.loads(json.dumps(analysis.phase_map(spec, cells, "regime",
                                                    analysis.slice_index(spec))))
    for key in ("x", "y", "z", "metric", "outcomes", "slice", "available"):
        assert body[key] == want[key], key
    assert body["outcomes"] == list(REGIMES)
    # the spec was chosen so that every regime shows on the one slice
    assert {v for row in body["z"] for v in row} == set(range(len(REGIMES)))
    rise_map = client.get(f"{url}/phase-map", params={"metric": "max_rise"}).json()
    assert rise_map["z"] == json.loads(json.dumps(analysis.phase_map(
        spec, cells, "max_rise", analysis.slice_index(spec))))["z"]

    # runs: the page and the detail carry max_rise and spiky as computed locally
    runs = all_runs(client, sweep["id"])
    by_key = {r["run_key"]: r for r in runs}
    o = result.outcomes
    for i, key in enumerate(result.keys):
        assert by_key[key]["max_rise"] == o.max_rise[i]
        assert by_key[key]["spiky"] is bool(o.spiky[i])
    spiky_key = result.keys[int(np.flatnonzero(o.spiky)[0])]
    detail = client.get(f"{url}/runs/{spiky_key}").json()
    assert detail["spiky"] is True and detail["max_rise"] >= 10

    # CSV: the bytes `betascope run` writes; Parquet: the same values as columns
    got_runs = client.get(f"{url}/export.csv").content
    assert got_runs == b"".join(result.run_csv())
    # a piece formatted in several batches, the last one short, writes the same bytes
    monkeypatch.setattr(results, "CSV_ROWS", 4)
    assert client.get(f"{url}/export.csv").content == got_runs
    got_cells = client.get(f"{url}/export.csv", params={"level": "cells"}).content
    assert got_cells == b"".join(result.cell_csv())
    header = next(csv.reader(io.StringIO(got_cells.decode())))
    assert header[-2:] == ["spiky_frac", "median_max_rise"]
    table = pq.read_table(io.BytesIO(client.get(f"{url}/export.parquet").content))
    assert table.column("max_rise").to_pylist() == o.max_rise.tolist()
    assert table.column("spiky").to_pylist() == o.spiky.tolist()
    ctable = pq.read_table(io.BytesIO(
        client.get(f"{url}/export.parquet", params={"level": "cells"}).content))
    have = cells.n_runs > 0
    assert ctable.column("spiky_frac").to_pylist() == cells.spiky_frac[have].tolist()


def test_a_sweep_that_reuses_runs_counts_their_spikes(make_client: Any) -> None:
    client = make_client(chunk_runs=9, max_runs=100_000)
    small = regimes_poly()
    small["grid"]["beta1"] = [0.0, 0.99]
    first = submit(client, small)
    wait_status(client, first["id"], "done", timeout=240)
    big = regimes_poly()
    second = submit(client, big)
    assert second["cached_runs"] > 0
    wait_status(client, second["id"], "done", timeout=240)
    spec = parse_spec(big)
    cells = local(json.dumps(big)).cells()
    url = f"/api/v1/sweeps/{second['id']}"
    body = client.get(f"{url}/phase-map", params={"metric": "regime"}).json()
    assert body["z"] == json.loads(json.dumps(analysis.phase_map(
        spec, cells, "regime", analysis.slice_index(spec))))["z"]
    got_cells = client.get(f"{url}/export.csv", params={"level": "cells"}).content
    assert got_cells == b"".join(local(json.dumps(big)).cell_csv())
