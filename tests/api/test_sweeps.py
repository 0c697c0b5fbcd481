"""Sweeps over REST: creation and validation, listing, 404/409/401/413, delete."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.helpers import all_runs, get, spec, submit, wait_status
from tests.services import wait_for

pytestmark = pytest.mark.services


def test_create_returns_201_and_the_sweep(client: Any) -> None:
    doc = spec("create test")
    created = submit(client, doc)
    assert created["status"] in ("queued", "running")
    assert created["total_runs"] == 2 * 4 * 2 * 2
    assert created["cached_runs"] == 0
    assert created["n_chunks"] == 2  # 32 runs in chunks of 16
    assert created["spec"]["name"] == "create test"
    assert created["spec"]["grid"]["batch_size"] == [1, 4]
    done = wait_status(client, created["id"], "done")
    assert done["done_runs"] == done["total_runs"] and done["progress"] == 1.0
    assert done["started_at"] and done["finished_at"] and done["failed_runs"] == 0


def test_list_is_newest_first_and_paginated(client: Any) -> None:
    ids = [submit(client, spec(f"list {i}", steps=20))["id"] for i in range(3)]
    page = client.get("/api/v1/sweeps", params={"limit": 2}).json()
    assert [s["id"] for s in page["items"]] == ids[::-1][:2]
    rest = client.get("/api/v1/sweeps", params={"limit": 2, "cursor": page["next_cursor"]})
    assert rest.json()["items"][0]["id"] == ids[0]
    assert {"progress", "done_runs", "cached_runs", "status"} <= set(page["items"][0])
    for sweep_id in ids:
        wait_status(client, sweep_id, "done")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"grid": {"beta1": [0.0, 1.0], "beta2": [0.5]}}, "grid.beta1"),
        ({"grid": {"beta1": [0.0], "beta2": [0.5], "batch_size": [40]}}, "grid.batch_size"),
        ({"steps": 0}, "steps"),
        ({"optimizer": {"lr": -1.0}}, "optimizer.lr"),
        ({"problem": {"kind": "nope"}}, "problem"),
        ({"colour": "blue"}, "colour"),
        ({"grid": {"beta1": [], "beta2": [0.5]}}, "grid.beta1"),
    ],
)
def test_invalid_spec_is_422_naming_the_field(client: Any, change: dict, field: str) -> None:
    doc = {**spec(), **change}
    resp = client.post("/api/v1/sweeps", json=doc)
    assert resp.status_code == 422, resp.text
    fields = [e["field"] for e in resp.json()["detail"]]
    assert any(f.startswith(field) for f in fields), fields
    assert all(e["loc"][0] == "body" and e["msg"] for e in resp.json()["detail"])


def test_a_server_on_the_fused_kernel_refuses_what_it_cannot_run_with_422(
    make_client: Any,
) -> None:
    fused = make_client(kernel="fused")
    doc = {**spec(), "problem": {"kind": "reddi2018", "C": 3.0}, "grid": {"beta1": [0.0],
                                                                           "beta2": [0.5]}}
    resp = fused.post("/api/v1/sweeps", json=doc)
    assert resp.status_code == 422, resp.text
    assert [e["field"] for e in resp.json()["detail"]] == ["problem.kind"]
    assert "fused" in resp.json()["detail"][0]["msg"]
    ok = submit(fused, spec("fused sweep", steps=20))
    assert ok["kernel"] == "fused"
    assert wait_status(fused, ok["id"], "done")["failed_runs"] == 0


def test_kernel_auto_is_resolved_per_sweep_before_it_is_stored(make_client: Any) -> None:
    auto = make_client(kernel="auto")
    small = submit(auto, spec("small auto sweep", steps=20))
    assert small["kernel"] == "eager"  # far below the size at which fused pays
    wait_status(auto, small["id"], "done")


def test_grid_over_the_cap_is_413(client: Any) -> None:
    doc = spec(beta1={"start": 0.0, "stop": 0.9, "num": 100},
               beta2={"start": 0.0, "stop": 0.9, "num": 100}, seed=[0, 1, 2])
    resp = client.post("/api/v1/sweeps", json=doc)
    assert resp.status_code == 413
    assert "cap" in resp.json()["detail"]


def test_request_body_over_the_limit_is_413(client: Any) -> None:
    doc = spec(seed=list(range(20000)))  # ~110 kB of JSON, limit is 64 KiB in tests
    resp = client.post("/api/v1/sweeps", content=json.dumps(doc),
                       headers={"content-type": "application/json"})
    assert resp.status_code == 413
    chunked = client.post("/api/v1/sweeps", content=iter([json.dumps(doc).encode()]),
                          headers={"content-type": "application/json"})
    assert chunked.status_code == 413


def test_bad_json_wrong_type_and_yaml(client: Any) -> None:
    bad = client.post("/api/v1/sweeps", content=b'{"name": ',
                      headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]
    form = client.post("/api/v1/sweeps", data={"name": "x"})
    assert form.status_code == 415 and "application/json" in form.json()["detail"]
    empty = client.post("/api/v1/sweeps", content=b"", headers={"content-type": "application/json"})
    assert empty.status_code == 400
    not_a_mapping = client.post("/api/v1/sweeps", json=[1, 2])
    assert not_a_mapping.status_code == 422
    import yaml

    as_yaml = client.post("/api/v1/sweeps", content=yaml.safe_dump(spec("yaml", steps=20)),
                          headers={"content-type": "application/yaml"})
    assert as_yaml.status_code == 201, as_yaml.text
    wait_status(client, as_yaml.json()["id"], "done")


def test_unknown_sweep_is_404_everywhere(client: Any) -> None:
    for method, path in [
        ("get", ""), ("post", "/cancel"), ("post", "/retry"), ("delete", ""), ("get", "/runs"),
        ("get", "/phase-map"), ("get", "/boundary"), ("get", "/export.csv"),
        ("get", "/runs/" + "0" * 64),
    ]:
        resp = getattr(client, method)(f"/api/v1/sweeps/987654{path}")
        assert resp.status_code == 404, (method, path, resp.status_code)
        assert "not found" in resp.json()["detail"]


def test_cancel_and_retry_conflict_when_state_does_not_fit(client: Any) -> None:
    sweep = submit(client, spec("conflicts", steps=20))
    wait_status(client, sweep["id"], "done")
    for action in ("cancel", "retry"):
        resp = client.post(f"/api/v1/sweeps/{sweep['id']}/{action}")
        assert resp.status_code == 409, resp.text
        assert "done" in resp.json()["detail"]


def test_mutations_need_the_token_when_one_is_set(make_client: Any) -> None:
    client = make_client(api_token="s3cret")
    doc = spec("auth", steps=20)
    assert client.post("/api/v1/sweeps", json=doc).status_code == 401
    wrong = client.post("/api/v1/sweeps", json=doc, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    ok = client.post("/api/v1/sweeps", json=doc, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 201
    sweep_id = ok.json()["id"]
    assert client.get(f"/api/v1/sweeps/{sweep_id}").status_code == 200  # reads stay open
    assert client.delete(f"/api/v1/sweeps/{sweep_id}").status_code == 401
    assert client.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code in (401,)
    wait_status(client, sweep_id, "done")
    assert client.delete(f"/api/v1/sweeps/{sweep_id}",
                         headers={"Authorization": "Bearer s3cret"}).status_code == 204


def test_delete_keeps_runs_that_another_sweep_uses(client: Any, backend: Any) -> None:
    small = spec("shared small", steps=30)
    big = json.loads(json.dumps(small))
    big["name"] = "shared big"
    big["grid"]["seed"] = [0, 1, 2]  # a superset of small's grid
    a = submit(client, small)
    wait_status(client, a["id"], "done")
    b = submit(client, big)
    assert b["cached_runs"] == a["total_runs"]
    wait_status(client, b["id"], "done")
    before = {r["run_key"]: r for r in all_runs(client, a["id"])}

    assert client.delete(f"/api/v1/sweeps/{b['id']}").status_code == 204
    assert client.get(f"/api/v1/sweeps/{b['id']}").status_code == 404
    after = {r["run_key"]: r for r in all_runs(client, a["id"])}
    assert after == before  # every shared result is still there, unchanged

    assert _stored_chunks(backend, a["id"]) == a["n_chunks"] > 0
    assert client.delete(f"/api/v1/sweeps/{a['id']}").status_code == 204
    assert _stored_chunks(backend, a["id"]) == 0  # no sweep uses them any more


def test_deleting_a_source_hides_it_until_its_last_reader_goes(client: Any, backend: Any) -> None:
    small = spec("source small", steps=30)
    big = json.loads(json.dumps(small))
    big["name"], big["grid"]["seed"] = "source big", [0, 1, 2]
    a = wait_status(client, submit(client, small)["id"], "done")
    b = wait_status(client, submit(client, big)["id"], "done")
    before = all_runs(client, b["id"])
    assert client.delete(f"/api/v1/sweeps/{a['id']}").status_code == 204
    assert client.get(f"/api/v1/sweeps/{a['id']}").status_code == 404
    assert a["id"] not in [s["id"] for s in client.get("/api/v1/sweeps").json()["items"]]
    assert all_runs(client, b["id"]) == before  # b still reads a's runs
    assert _stored_chunks(backend, a["id"]) == a["n_chunks"]
    assert client.delete(f"/api/v1/sweeps/{b['id']}").status_code == 204
    assert _stored_chunks(backend, a["id"]) == 0 == _stored_chunks(backend, b["id"])


def test_a_superset_sweep_computes_only_new_runs_and_reads_like_the_cli(
    client: Any, backend: Any
) -> None:
    from tests.api.test_lifecycle import _csv_text, local_result

    small = spec("subset", steps=40)
    big = json.loads(json.dumps(small))
    big["name"] = "superset"
    big["grid"]["seed"] = [1, 0, 5]  # another order, and a new seed
    big["grid"]["beta1"] = [0.5, 0.0, 0.9]
    a = wait_status(client, submit(client, small)["id"], "done")
    b = submit(client, big)
    assert b["cached_runs"] == a["total_runs"]
    b = wait_status(client, b["id"], "done")
    assert _computed_runs(backend, b["id"]) == b["total_runs"] - a["total_runs"]
    local = local_result(json.dumps(big))
    url = f"/api/v1/sweeps/{b['id']}/export.csv"
    assert client.get(url).text == _csv_text(local.run_columns, local.run_rows())
    cells = client.get(url, params={"level": "cells"}).text
    assert cells == _csv_text(local.cell_columns, local.cell_rows())  # medians over all seeds


def _computed_runs(backend: Any, sweep_id: int) -> int:
    from sqlalchemy import func, select

    from api.db.models import Chunk
    from api.db.session import get_database

    with get_database(backend.settings["database_url"]).session(read_only=True) as s:
        return s.scalar(select(func.sum(Chunk.n_compute)).where(Chunk.sweep_id == sweep_id))


def test_sweep_ids_are_never_reused(client: Any) -> None:
    first = submit(client, spec("id once", steps=5))["id"]
    assert client.delete(f"/api/v1/sweeps/{first}").status_code == 204
    assert submit(client, spec("id twice", steps=5))["id"] > first


def _stored_chunks(backend: Any, sweep_id: int) -> int:
    from sqlalchemy import func, select

    from api.db.models import Chunk
    from api.db.session import get_database

    with get_database(backend.settings["database_url"]).session(read_only=True) as s:
        return s.scalar(select(func.count()).select_from(Chunk).where(Chunk.sweep_id == sweep_id))


def test_presets_health_and_readiness(client: Any) -> None:
    presets = client.get("/api/v1/presets").json()
    names = {p["name"] for p in presets}
    assert "zhang2022-batch" in names
    assert all(p["total_runs"] > 0 and p["spec"]["grid"] for p in presets)
    assert client.get("/api/v1/healthz").json()["status"] == "ok"
    ready = client.get("/api/v1/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


def test_openapi_documents_every_endpoint(client: Any) -> None:
    doc = client.get("/openapi.json").json()
    ops = [op for path in doc["paths"].values() for op in path.values()]
    assert len(ops) >= 12
    assert all(op.get("description") or op.get("summary") for op in ops)
    assert client.get("/docs").status_code == 200
    # every route under /sweeps reads or writes the database: its 503 (an outage, with
    # Retry-After) is declared, as docs/rest.md says
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if "/sweeps" in path:
                assert "503" in op["responses"], (method, path)
                assert "Retry-After" in op["responses"]["503"]["headers"], (method, path)


def test_progress_fields_while_running(client: Any) -> None:
    # Long enough (32 runs in 2 chunks of 16) to be polled while it runs.
    sweep = submit(client, spec("fields", steps=10_000))
    seen: list[dict[str, Any]] = []

    def finished() -> bool:
        seen.append(get(client, sweep["id"]))
        return seen[-1]["status"] not in ("queued", "running")

    wait_for(finished, 120, "the sweep to finish", interval=0.05)
    *active, last = seen
    assert active, "the first poll, right after POST, already saw the sweep finished"
    for s in active:  # every poll before the end: a consistent, partial picture
        assert s["total_runs"] == 32 and s["failed_runs"] == 0 and s["cached_runs"] == 0, s
        # partly finished chunks count, so progress is at least the share of runs done
        assert s["done_runs"] / 32 <= s["progress"] <= 1.0, s
        assert s["finished_at"] is None, s
        assert s["done_runs"] < 32 or s["progress"] == 1.0, s
        if s["status"] == "running":
            assert s["started_at"] is not None, s
        if s["status"] == "running" and 0 < s["done_runs"] < 32:  # a chunk landed
            # the rate is runs done (running chunks' progress included) over the time
            # since the sweep started; the ETA is the runs left at that rate
            assert s["runs_per_second"] > 0 and s["eta_seconds"] > 0, s
            assert s["eta_seconds"] == pytest.approx(
                (32 - s["progress"] * 32) / s["runs_per_second"], rel=1e-6), s
    progress = [s["progress"] for s in seen]
    done = [s["done_runs"] for s in seen]
    assert progress == sorted(progress) and done == sorted(done), (progress, done)
    assert last["status"] == "done", last
    assert (last["progress"], last["done_runs"], last["failed_runs"]) == (1.0, 32, 0), last
    assert last["started_at"] is not None and last["finished_at"] >= last["started_at"], last
    assert last["eta_seconds"] == 0 and last["runs_per_second"] > 0, last
    assert any(s["eta_seconds"] for s in active), "no ETA was ever shown while it ran"


def test_validate_estimates_the_duration_from_measured_throughput(
    make_client: Any, backend: Any
) -> None:
    client = make_client()
    doc = spec("estimate", steps=300)
    first = client.post("/api/v1/sweeps/validate", json=doc).json()
    assert first["run_steps"] == first["total_runs"] * 300 == 32 * 300
    if backend.name == "sqlite":  # a fresh database: nothing measured yet
        assert first["estimated_seconds"] is None
    done = wait_status(client, submit(client, doc)["id"], "done")
    small = client.post("/api/v1/sweeps/validate", json=doc).json()["estimated_seconds"]
    big = client.post("/api/v1/sweeps/validate",
                      json=spec("estimate big", steps=300_000)).json()["estimated_seconds"]
    assert small > 0 and big == pytest.approx(1000 * small, rel=1e-9)  # one measured rate
    if backend.name == "sqlite":
        # the server did 32 x 300 run-steps in `wall` seconds: 1000 times the work
        wall = (_when(done["finished_at"]) - _when(done["started_at"])).total_seconds()
        assert big == pytest.approx(1000 * wall, rel=1e-6)


def _when(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_exports_hold_the_final_iterate_of_small_problems(client: Any) -> None:
    """Reddi et al.'s Theorem 1 reads directly: Adam with beta2 = 1/(1 + C^2) ends at
    x = +1, while beta2 = 0.999 ends near x* = -1 (final_x in Parquet and one run)."""
    import io

    import pyarrow.parquet as pq

    doc = {"name": "final x", "problem": {"kind": "reddi2018", "C": 3.0, "x0": 0.0},
           "optimizer": {"lr": 0.05, "schedule": "inv_sqrt", "bias_correction": False},
           "steps": 3000, "grid": {"beta1": [0.0], "beta2": [0.1, 0.999]},
           "criteria": {"converge_rel": 0.05 + 3e-7}}
    sweep = wait_status(client, submit(client, doc)["id"], "done")
    table = pq.read_table(io.BytesIO(
        client.get(f"/api/v1/sweeps/{sweep['id']}/export.parquet").content))
    x = {b2: xs[0] for b2, xs in zip(table.column("beta2").to_pylist(),
                                     table.column("final_x").to_pylist(), strict=True)}
    assert x[0.1] == pytest.approx(1.0, abs=1e-9) and x[0.999] < -0.5, x
    key = table.column("run_key").to_pylist()[0]
    one = client.get(f"/api/v1/sweeps/{sweep['id']}/runs/{key}").json()
    assert one["final_x"] == [pytest.approx(x[one["beta2"]], abs=0)]


def test_an_extra_axis_without_its_fields_default_runs(client: Any) -> None:
    """problem.n's default is 20; a grid of n [5, 50] was stored with problem.n: 20
    beside it, which the workers could not parse again: every chunk failed."""
    doc = spec("n without its default", steps=20, beta1=[0.0], seed=[0])
    del doc["problem"]["n"]
    doc["grid"]["problem.n"] = [5, 50]
    done = wait_status(client, submit(client, doc)["id"], "done", "failed", timeout=120)
    assert done["status"] == "done" and done["done_runs"] == done["total_runs"], done
    assert "n" not in done["spec"]["problem"] and done["spec"]["grid"]["problem.n"] == [5, 50]
    page = client.get(f"/api/v1/sweeps/{done['id']}/runs", params={"problem.n": 50}).json()
    assert page["items"] and {r["extra"]["problem.n"] for r in page["items"]} == {50}


def test_a_stored_spec_with_a_swept_field_beside_its_axis_still_parses() -> None:
    """Rows stored before (the whole dump) are read as they are."""
    from api.db.store import spec_of
    from experiments.spec import document, parse_spec

    doc = spec("stored", steps=20)
    del doc["problem"]["n"]
    doc["grid"]["problem.n"] = [5, 50]
    parsed = parse_spec(doc)
    old_row = parsed.model_dump(mode="json")
    assert old_row["problem"]["n"] == 20 and "n" not in document(parsed)["problem"]
    assert spec_of(-1, None, old_row) == parsed == parse_spec(document(parsed))
