"""A sweep's life over REST, on both backends: progress that moves, results equal
to `betascope run` bit for bit, the cache, cancel, and retry after a failure."""

from __future__ import annotations

import csv
import io
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import all_runs, get, same_float, spec, submit, wait_status

pytestmark = pytest.mark.services

# 32 runs in two chunks of 16; 10000 steps keep each chunk busy for a few seconds,
# long enough to watch its progress move.
LIFE = spec("lifecycle", steps=10000)


@lru_cache(maxsize=4)
def local_result(doc_json: str) -> Any:
    """What `betascope run` computes for the same spec (one process, one chunk)."""
    from experiments.local import run_local
    from experiments.spec import parse_spec

    return run_local(parse_spec(json.loads(doc_json)), device="cpu")


def _csv_text(header: Any, rows: Any) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def test_progress_moves_and_results_equal_the_cli(client: Any) -> None:
    sweep = submit(client, LIFE)
    seen = []
    while True:
        s = get(client, sweep["id"])
        seen.append(s["progress"])
        if s["status"] in ("done", "failed", "canceled"):
            break
        time.sleep(0.05)
    assert s["status"] == "done", s
    assert seen == sorted(seen), "progress never goes back"
    partial = [p for p in seen if 0.0 < p < 1.0 and p not in (0.5,)]
    assert partial, f"no progress inside a chunk was ever visible: {seen}"

    local = local_result(json.dumps(LIFE))
    runs = {r["run_key"]: r for r in all_runs(client, sweep["id"], limit=7)}
    assert len(runs) == local.total == s["total_runs"]
    for i, key in enumerate(local.keys):
        r = runs[key]
        assert r["outcome"] == local.outcomes.labels[i]
        for col in ("final_loss", "final_rel", "final_gap", "clip_fraction"):
            assert same_float(r[col], getattr(local.outcomes, col)[i]), (col, r, i)
        div = int(local.outcomes.div_step[i])
        assert r["div_step"] == (div if div >= 0 else None)

    key = local.keys[5]
    detail = client.get(f"/api/v1/sweeps/{sweep['id']}/runs/{key}").json()
    assert detail["curve"]["steps"] == local.curve_steps.tolist()
    # curves are stored as float32 (DESIGN: storage at scale)
    assert all(same_float(a, b) for a, b in zip(
        detail["curve"]["loss"], local.curves[5].astype("float32").tolist(), strict=True))

    # CSV: the very bytes `betascope run` writes, one row per run, full precision
    export = client.get(f"/api/v1/sweeps/{sweep['id']}/export.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert export.text == _csv_text(local.run_columns, local.run_rows())
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert list(rows[0]) == list(local.run_columns)
    for row in rows:
        stored = runs[row["run_key"]]
        for col in ("beta1", "beta2", "lr", "final_loss", "final_rel"):
            assert same_float(float(row[col]), stored[col]), col
    cells = client.get(f"/api/v1/sweeps/{sweep['id']}/export.csv", params={"level": "cells"})
    assert cells.text == _csv_text(local.cell_columns, local.cell_rows())
    cell_rows = list(csv.DictReader(io.StringIO(cells.text)))
    assert len(cell_rows) == local.total // 2  # two seeds per cell
    assert all(int(c["n_runs"]) == 2 for c in cell_rows)


def test_same_spec_again_is_served_from_the_cache(client: Any) -> None:
    doc = spec("cache", steps=300)
    first = wait_status(client, submit(client, doc)["id"], "done")
    before = {r["run_key"]: r["computed_at"] for r in all_runs(client, first["id"])}
    again = submit(client, {**doc, "name": "cache again"})
    assert again["status"] == "done" and again["cached_runs"] == again["total_runs"]
    assert again["n_chunks"] == 0 and again["chunks"] == {} and again["progress"] == 1.0
    after = {r["run_key"]: r["computed_at"] for r in all_runs(client, again["id"])}
    assert after == before  # not one run computed again
    # a third time finds the second, a resubmission with no chunks of its own: it reads
    # the first's results too (its maps and cells were once empty: n_results 0)
    third = submit(client, {**doc, "name": "cache third"})
    assert third["status"] == "done" and third["cached_runs"] == third["total_runs"]
    sweeps = [f"/api/v1/sweeps/{s['id']}" for s in (first, again, third)]
    maps = [client.get(f"{s}/phase-map").json() for s in sweeps]
    assert maps[0]["n_results"] == first["total_runs"]
    assert all((m["z"], m["n_results"]) == (maps[0]["z"], maps[0]["n_results"]) for m in maps)
    for level in ("runs", "cells"):
        texts = [client.get(f"{s}/export.csv", params={"level": level}).text for s in sweeps]
        assert texts[1] == texts[2] == texts[0] and texts[0].count("\n") > 1, level
    boundaries = [client.get(f"{s}/boundary").json() for s in sweeps]
    assert boundaries[1] == boundaries[2] == boundaries[0]


def test_cancel_stops_a_running_sweep(client: Any) -> None:
    long = spec("cancel me", steps=2_000_000, beta1=[0.0], seed=[0])  # minutes if not stopped
    sweep = submit(client, long)
    try:
        _cancel_and_check(client, sweep)
    finally:
        # however this test ends, the long sweep does not keep loading the next ones
        if get(client, sweep["id"])["status"] in ("queued", "running"):
            client.post(f"/api/v1/sweeps/{sweep['id']}/cancel")


def _cancel_and_check(client: Any, sweep: dict[str, Any]) -> None:
    s = wait_status(client, sweep["id"], "running", timeout=60)
    deadline = time.monotonic() + 60
    while s["progress"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        s = get(client, sweep["id"])
    assert s["progress"] > 0
    resp = client.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "canceled"
    assert resp.json()["finished_at"] is not None
    # the worker stops between step blocks and is free: a small sweep finishes
    quick = submit(client, spec("after cancel", steps=20))
    wait_status(client, quick["id"], "done", timeout=60)
    stopped = get(client, sweep["id"])
    assert stopped["status"] == "canceled" and stopped["done_runs"] == 0
    time.sleep(1.0)
    assert get(client, sweep["id"])["progress"] == stopped["progress"]  # nothing moves


def test_failed_chunk_is_reported_and_retry_finishes(client: Any, fault_file: Path) -> None:
    marker = f"inject-{time.monotonic_ns()}"
    fault_file.write_text(marker)
    try:
        sweep = submit(client, spec(f"retry {marker}", steps=50))
        failed = wait_status(client, sweep["id"], "failed", "done", timeout=60)
    finally:
        fault_file.unlink()
    assert failed["status"] == "failed"
    assert failed["failed_runs"] == 16 and failed["done_runs"] == 16
    error = failed["errors"][0]
    assert error["seq"] == 0 and error["status"] == "failed" and error["attempts"] == 2
    assert "injected fault" in error["last_error"]

    retried = client.post(f"/api/v1/sweeps/{sweep['id']}/retry")
    assert retried.status_code == 200 and retried.json()["status"] in ("queued", "running")
    done = wait_status(client, sweep["id"], "done", timeout=60)
    assert done["done_runs"] == done["total_runs"] and done["failed_runs"] == 0
    assert done["errors"] == []
    assert len(all_runs(client, sweep["id"])) == done["total_runs"]
    assert client.post(f"/api/v1/sweeps/{sweep['id']}/retry").status_code == 409


def test_runs_filters_and_cursor_pagination(client: Any) -> None:
    sweep = wait_status(client, submit(client, spec("filters", steps=300))["id"], "done")
    every = all_runs(client, sweep["id"], limit=5)
    assert [r["flat_index"] for r in every] == sorted(r["flat_index"] for r in every)
    assert len({r["run_key"] for r in every}) == len(every) == 32
    some = all_runs(client, sweep["id"], beta1=0.5, batch_size=4, clip="none", seed=1)
    assert len(some) == 4 and all(r["beta1"] == 0.5 and r["batch_size"] == 4 for r in some)
    for outcome in ("converged", "not_converged", "diverged"):
        got = all_runs(client, sweep["id"], outcome=outcome)
        assert len(got) == sum(r["outcome"] == outcome for r in every)
    b2 = every[3]["beta2"]
    assert all(r["beta2"] == b2 for r in all_runs(client, sweep["id"], beta2=b2))
    bad = client.get(f"/api/v1/sweeps/{sweep['id']}/runs", params={"beta1": 0.25})
    assert bad.status_code == 422 and "beta1" in bad.json()["detail"]
    bad = client.get(f"/api/v1/sweeps/{sweep['id']}/runs", params={"outcome": "maybe"})
    assert bad.status_code == 422
