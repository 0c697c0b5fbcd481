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
    for metric in analysis.METRICS:
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


EXTRA_DOC: dict[str, Any] = {
    "name": "extra axes over REST",
    "problem": {"kind": "zhang2022", "x0": -0.5},
    "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
    "steps": 300,
    "grid": {
        "beta1": [0.0, 0.9],
        "beta2": [0.5, 0.9, 0.99],
        "lr": [0.1, 0.03],
        "seed": [0, 1, 2],
        "problem.n": [5, 10, 20],
        "optimizer.eps": [1e-8, 1e-3],
    },
}


def test_extra_axes_and_maps_over_any_two_axes(make_client: Any) -> None:
    """Several chunks of 54 runs (3 seeds x 3 n x 2 eps per block): maps, boundary
    and both CSV levels equal the CLI's, and so does any map the API draws."""
    import csv
    import io

    import pyarrow.parquet as pq

    from experiments.local import run_local

    client = make_client(chunk_runs=100, max_runs=100_000)
    checked = client.post("/api/v1/sweeps/validate", json=EXTRA_DOC)
    assert checked.status_code == 200, checked.text
    assert list(checked.json()["axis_sizes"].items())[-3:] == [
        ("seed", 3), ("problem.n", 3), ("optimizer.eps", 2)]
    sweep = submit(client, EXTRA_DOC)
    assert sweep["total_runs"] == 2 * 3 * 2 * 3 * 3 * 2
    wait_status(client, sweep["id"], "done", timeout=240)
    spec = parse_spec(EXTRA_DOC)
    local = run_local(spec, device="cpu")
    url = f"/api/v1/sweeps/{sweep['id']}"

    def get_map(**params: Any) -> dict[str, Any]:
        got = client.get(f"{url}/phase-map", params=params)
        assert got.status_code == 200, got.text
        return got.json()  # type: ignore[no-any-return]

    cases = [
        ({}, {}),
        ({"problem.n": 20, "optimizer.eps": 1e-3}, {"problem.n": 20, "optimizer.eps": 1e-3}),
        ({"x": "lr", "y": "beta2", "beta1": 0.9, "problem.n": 10},
         {"x": "lr", "y": "beta2", "beta1": 0.9, "problem.n": 10}),
        ({"x": "problem.n", "y": "beta2", "lr": 0.03}, {"x": "problem.n", "y": "beta2",
                                                       "lr": 0.03}),
        ({"x": "beta2", "y": "optimizer.eps"}, {"x": "beta2", "y": "optimizer.eps"}),
    ]
    for params, chosen in cases:
        for metric in ("outcome", "diverged_frac", "final_rel"):
            body = get_map(metric=metric, **params)
            want = json.loads(json.dumps(local.phase_map(metric, **chosen)))
            for key in ("x", "y", "z", "slice", "available", "beta2_star"):
                assert body[key] == want[key], (params, metric, key)
    # integers stay integers (== alone would take 5.0 for 5): an integer axis's values,
    # and the class indices of an outcome map, which clients index class names with
    n_map = get_map(x="problem.n", y="beta2")
    assert [type(v) for v in n_map["x"]["values"]] == [int] * 3, n_map["x"]
    assert {type(v) for row in n_map["z"] for v in row} <= {int, type(None)}, n_map["z"]
    assert {type(v) for row in get_map(metric="diverged_frac")["z"] for v in row} <= {
        float, type(None)}
    lr_map = get_map(x="lr", y="beta2")
    assert lr_map["x"] == {"name": "lr", "values": [0.1, 0.03]} and lr_map["beta2_star"] is None
    assert set(lr_map["slice"]) == {"beta1", "batch_size", "clip", "problem.n", "optimizer.eps"}
    default = get_map()
    assert default["slice"] == {"batch_size": 1, "clip": "none", "lr": 0.1, "problem.n": 5,
                                "optimizer.eps": 1e-8}
    assert default["available"]["problem.n"] == [5, 10, 20]
    for params, says in (({"x": "seed"}, "x"), ({"problem.n": 7}, "problem.n"),
                         ({"x": "problem.n", "problem.n": 5}, "problem.n"),
                         ({"x": "batch_size"}, "batch_size"), ({"x": "lr", "y": "lr"}, "y"),
                         ({"optimizer.beta9": 1}, "optimizer.beta9")):
        bad = client.get(f"{url}/phase-map", params=params)
        assert bad.status_code == 422 and says in bad.json()["detail"], (params, bad.text)

    # runs pages filter by an extra axis too (it was once ignored: every run came back)
    page = client.get(f"{url}/runs", params={"problem.n": 20, "optimizer.eps": 1e-3,
                                             "limit": 1000}).json()["items"]
    assert len(page) == local.total // 6
    assert {(r["extra"]["problem.n"], r["extra"]["optimizer.eps"]) for r in page} == {(20, 1e-3)}
    for params, says in (({"problem.n": 7}, "problem.n: '7' is not on the grid (have ['5.0'"),
                         ({"optimizer.beta9": 1}, "optimizer.beta9: not an axis")):
        bad = client.get(f"{url}/runs", params=params)
        assert bad.status_code == 422 and says in bad.json()["detail"], (params, bad.text)

    boundary = client.get(f"{url}/boundary").json()
    want_b = json.loads(json.dumps(local.boundary()))
    assert boundary["slices"] == want_b["slices"] and boundary["by_batch"] == want_b["by_batch"]

    runs_csv = client.get(f"{url}/export.csv").content
    assert runs_csv == b"".join(local.run_csv())
    cells_csv = client.get(f"{url}/export.csv", params={"level": "cells"}).text
    rows = list(csv.reader(io.StringIO(cells_csv)))
    assert tuple(rows[0]) == local.cell_columns and rows[0][-2:] == ["problem.n", "optimizer.eps"]
    assert rows[1:] == list(local.cell_rows())
    for level, first in (("runs", "run_key"), ("cells", "beta1")):
        got = client.get(f"{url}/export.parquet", params={"level": level})
        table = pq.read_table(io.BytesIO(got.content))
        assert table.column_names[0] == first
        n = table.column("problem.n").to_pylist()
        assert set(n) == {5, 10, 20} and set(table.column("optimizer.eps").to_pylist()) == {
            1e-8, 1e-3}
        if level == "runs":  # not null but the columns docs/rest.md gives nulls to
            assert {f.name for f in table.schema if f.nullable} == {
                "clip_threshold", "final_gap", "div_step", "max_rise", "spiky"}
            assert table.column("clip_threshold").null_count > 0  # clip "none"
            parquet = pq.ParquetFile(io.BytesIO(got.content)).schema
            levels = {parquet.column(i).path: parquet.column(i).max_definition_level
                      for i in range(len(parquet))}
            assert levels["flat_index"] == levels["problem.n"] == 0  # REQUIRED
            assert levels["div_step"] == 1
            # the same runs as the CSV, value for value (floats as the CSV's repr)
            rows = list(csv.DictReader(io.StringIO(runs_csv.decode())))
            assert table.column("flat_index").to_pylist() == list(range(len(rows)))
            for name in ("run_key", "beta1", "beta2", "batch_size", "clip_mode", "lr", "seed",
                         "steps", "outcome", "final_loss", "final_rel", "clip_fraction"):
                want = [r[name] for r in rows]
                got = table.column(name).to_pylist()
                assert [v if isinstance(v, str) else repr(v) for v in got] == want, name
    # uncompressed by default; ?compression= picks the codec, the table is the same
    plain = io.BytesIO(client.get(f"{url}/export.parquet").content)
    packed = io.BytesIO(client.get(f"{url}/export.parquet",
                                   params={"compression": "zstd"}).content)
    codec = [pq.ParquetFile(f).metadata.row_group(0).column(0).compression
             for f in (plain, packed)]
    assert codec == ["UNCOMPRESSED", "ZSTD"]
    assert pq.read_table(packed).equals(pq.read_table(plain))
    # readers skip row groups by the columns' statistics: every column has them (a
    # curve's values included) but the run keys, whose min and max skip nothing
    curves = io.BytesIO(client.get(f"{url}/export.parquet", params={"level": "curves"}).content)
    for f, want in ((plain, {"flat_index", "beta1", "final_rel", "div_step", "problem.n"}),
                    (curves, {"curve.list.element"})):
        group = pq.ParquetFile(f).metadata.row_group(0)
        columns = {group.column(i).path_in_schema: group.column(i)
                   for i in range(group.num_columns)}
        stats = {path: c.is_stats_set for path, c in columns.items()}
        assert stats.pop("run_key") is False and want <= set(stats), stats
        assert all(stats.values()), stats
    beta1 = pq.ParquetFile(plain).metadata.row_group(0).column(2)
    assert beta1.path_in_schema == "beta1"
    assert (beta1.statistics.min, beta1.statistics.max) == (0.0, 0.9)
    bad = client.get(f"{url}/export.parquet", params={"compression": "gzip"})
    assert bad.status_code == 422 and "compression" in bad.text, bad.text
    key = local.keys[100]
    one = client.get(f"{url}/runs/{key}")
    assert one.status_code == 200 and one.json()["run_key"] == key
    # a sweep whose grid contains this one's (one more n) reuses its runs; the chunks
    # that mix reused and computed runs still hold whole cells
    bigger = json.loads(json.dumps(EXTRA_DOC))
    bigger["grid"]["problem.n"] = [5, 10, 20, 50]
    again = submit(client, bigger)
    done = wait_status(client, again["id"], "done", timeout=240)
    assert done["cached_runs"] == sweep["total_runs"], done
    big_local = run_local(parse_spec(bigger), device="cpu")
    url2 = f"/api/v1/sweeps/{again['id']}"
    for n in (5, 50):
        body = client.get(f"{url2}/phase-map", params={"metric": "final_rel", "problem.n": n,
                                                       "lr": 0.03}).json()
        want = json.loads(json.dumps(big_local.phase_map("final_rel", lr=0.03,
                                                         **{"problem.n": n})))
        assert body["z"] == want["z"], n
    cells2 = client.get(f"{url2}/export.csv", params={"level": "cells"}).text
    assert list(csv.reader(io.StringIO(cells2)))[1:] == list(big_local.cell_rows())
