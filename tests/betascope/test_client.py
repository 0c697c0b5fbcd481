"""`betascope.Client` against a real `betascope serve` (SQLite in a temporary directory,
in-process executor), as a notebook user drives it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import plotly.graph_objects as go
import pyarrow.parquet as pq
import pytest
import yaml

import betascope
from experiments import export
from tests.api.live import LiveServer
from tests.betascope.test_notebook_axes import N_SPEC, N
from tests.services import ROOT
from tests.test_cli import DESIGN_RUN_COLUMNS, SMALL_RUNS, SMALL_SPEC

TOKEN = "notebook-secret-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("client")
    srv = LiveServer({"database_url": f"sqlite:///{tmp}/client.db", "chunk_runs": 16,
                      "device": "cpu", "api_token": TOKEN}, tmp / "serve.log")
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def finished(server: LiveServer) -> betascope.Client:
    c = betascope.Client(server.url, token=TOKEN)
    sweep = c.submit(SMALL_SPEC)
    assert sweep["total_runs"] == SMALL_RUNS and c.sweep_id == sweep["id"]
    done = c.wait(progress=False, timeout=300)
    assert done["status"] == "done" and done["done_runs"] == SMALL_RUNS
    return c


def test_runs_and_cells_match_a_local_run(finished: betascope.Client) -> None:
    runs, cells = finished.runs(), finished.cells()
    assert list(runs.columns) == DESIGN_RUN_COLUMNS and len(runs) == SMALL_RUNS
    assert list(cells.columns) == list(export.CELL_COLUMNS)
    here = betascope.run(SMALL_SPEC, device="cpu", progress=False)
    key = ["beta1", "beta2", "batch_size", "clip_mode", "seed"]
    a = runs.sort_values(key).reset_index(drop=True)
    b = here.runs.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns="run_key"), b.drop(columns="run_key"))
    cell_key = ["beta1", "beta2", "batch_size", "clip", "lr"]
    pd.testing.assert_frame_equal(cells.sort_values(cell_key).reset_index(drop=True),
                                  here.cells.sort_values(cell_key).reset_index(drop=True))
    assert finished.boundary() == json.loads(json.dumps(here.boundary()))


def test_phase_map_and_export(finished: betascope.Client, tmp_path: Path) -> None:
    fig = finished.phase_map(batch_size=4)
    assert isinstance(fig, go.Figure) and fig.data[2].name.startswith("β2*(β1)")
    assert fig.layout.yaxis.title.text == "β2  (spaced by log(1 − β2))"
    csv_path = finished.export(tmp_path / "runs.csv")
    assert csv_path.read_text().splitlines()[0] == ",".join(DESIGN_RUN_COLUMNS)
    cells_pq = finished.export(tmp_path / "cells.parquet", level="cells")
    assert len(pd.read_parquet(cells_pq)) == SMALL_RUNS // 2
    # the server's Parquet, typed columns and all (it was the CSV read by pandas, whose
    # guesses made batch_size and n_runs whatever the CSV's text suggested)
    runs_pq = finished.export(tmp_path / "runs.parquet")
    assert runs_pq.read_bytes() == httpx.get(
        f"{finished.url}/api/v1/sweeps/{finished.sweep_id}/export.parquet").content
    assert str(pq.read_schema(runs_pq).field("clip_mode").type).startswith("dictionary")


def test_a_server_out_of_reach_is_one_connection_error() -> None:
    with pytest.raises(ValueError, match="url: a betascope server's address"):
        betascope.Client("127.0.0.1:8000")
    c = betascope.Client("http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ConnectionError, match="cannot reach betascope at http://127.0.0.1:9"):
        c.submit({"problem": {"kind": "zhang2022"}})
    with pytest.raises(ConnectionError, match="cannot reach betascope"):
        c.export("runs.csv", sweep_id=1)


def test_errors_name_the_field_and_the_token(server: LiveServer) -> None:
    c = betascope.Client(server.url, token=TOKEN)
    bad = yaml.safe_load(SMALL_SPEC)
    bad["grid"]["beta2"] = [1.5]
    with pytest.raises(betascope.ApiError, match="grid.beta2") as err:
        c.submit(bad)
    assert err.value.status == 422
    with pytest.raises(betascope.ApiError) as denied:
        betascope.Client(server.url).submit(SMALL_SPEC)  # no token
    assert denied.value.status == 401
    with pytest.raises(ValueError, match="submit"):
        c.runs()
    with pytest.raises(betascope.ApiError, match="404"):
        c.status(999_999)


SCRIPT = """
import sys, betascope
c = betascope.Client(sys.argv[1], token=sys.argv[2])
sweep = c.submit("optimizers-lstsq-adam")
c.wait()
print("ROWS", len(c.runs()), len(c.cells()))
c.phase_map()
loaded = sorted(m.split(".")[0] for m in sys.modules)
print("LOADED", " ".join(sorted(set(loaded) & {"api", "sqlalchemy", "workers", "torch",
                                               "experiments"})))
"""


def test_a_fresh_process_uses_only_rest(server: LiveServer) -> None:
    """A notebook's view: a preset by name, a progress bar, and none of the service's
    database code (nor torch) imported."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, server.url, TOKEN], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ROWS 288 " in proc.stdout, proc.stdout
    assert "LOADED \n" in proc.stdout or proc.stdout.rstrip().endswith("LOADED"), proc.stdout
    assert "100.0%" in proc.stdout + proc.stderr  # the bar, drawn to the terminal's output


def test_phase_map_slices_extra_axes_and_maps_any_two(server: LiveServer) -> None:
    spec = N_SPEC  # problem.n [5, 50]: without its default, 20 (once every chunk failed)
    c = betascope.Client(server.url, token=TOKEN)
    c.submit(spec)
    c.wait(progress=False, timeout=300)
    here = betascope.run(spec, device="cpu", progress=False)
    for kw in ({}, N, {"x": "lr", "y": "beta2", "beta1": 0.9, **N}):
        there, mine = c.phase_map(**kw), here.phase_map(**kw)
        assert there.data[0].z == mine.data[0].z and len(there.data) == len(mine.data)
        assert [t.y for t in there.data[1:]] == [t.y for t in mine.data[1:]]
    assert c.phase_map(**N).data[0].z != c.phase_map().data[0].z
    with pytest.raises(ValueError, match="bogus"):
        c.phase_map(bogus=1)
    with pytest.raises(betascope.ApiError, match="problem.n"):
        c.phase_map(**{"problem.n": 7})
