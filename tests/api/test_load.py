"""A bounded load test on loopback against real `betascope serve` processes.

One finished sweep of 100,000 runs and a second sweep computing; then a flood
of 50 sweep submissions at once (each answered 201, or 429 with Retry-After:
never a timeout or a 5xx, and every accepted sweep finishes), and 600 reads
(status, the sweeps list, phase maps of varying slices, a runs page; half of
them conditional, answered 304) with 50 in flight. On the embedded default
(SQLite, one process, the executor's child process) and on Postgres with
`--workers 2`. Only correctness is asserted; p50/p95/max per route are printed
and written to artifacts/load-<backend>.txt (benchmarks/load.py measures).
The client's asyncio runs in a fresh thread, so this works after tests that
leave an event loop running (playwright).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api import loadgen
from tests.api.helpers import spec
from tests.api.live import LiveServer
from tests.conftest import ARTIFACTS, need
from tests.services import FAST, pg_schema_url, postgres_ok, wait_for

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]

SUBMISSIONS = 50
READS = 600
IN_FLIGHT = 50
DEADLINE = 240.0  # seconds for each phase


def _grid(side: int, seeds: int) -> dict[str, Any]:
    return {"beta1": {"start": 0.0, "stop": 0.99, "num": side},
            "beta2": {"log1m": [1e-4, 1.0], "num": side}, "batch_size": [1, 2, 4, 8],
            "seed": list(range(seeds))}


def _wait_done(url: str, sweep_id: int, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        got = httpx.get(f"{url}/api/v1/sweeps/{sweep_id}", timeout=60).json()
        assert got["status"] in ("queued", "running", "done"), got
        return dict(got) if got["status"] == "done" else None

    return dict(wait_for(done, timeout, f"sweep {sweep_id} to finish", interval=0.5))


async def _flood_and_read(url: str, finished: dict[str, Any], doc: dict[str, Any]
                          ) -> tuple[list[loadgen.Result], list[str], list[int]]:
    errors: list[str] = []
    async with loadgen.client(url, IN_FLIGHT) as http:
        async def post(d: dict[str, Any]) -> tuple[str, float, int]:
            t0 = time.perf_counter()
            try:
                code, headers, body = await http.request("POST", "/api/v1/sweeps", body=d)
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors.append(f"POST: {exc!r}")
                return "POST /sweeps", time.perf_counter() - t0, 599
            if code == 201:
                accepted.append(json.loads(body)["id"])
            elif code == 429:
                if not headers.get("retry-after", "").isdigit():
                    errors.append("429 without Retry-After")
            else:
                errors.append(f"POST: HTTP {code} {body[:200]!r}")
            return "POST /sweeps", time.perf_counter() - t0, code

        accepted: list[int] = []
        docs = [spec(f"flood {i}", steps=50, beta1=[0.0, 0.5], beta2=[0.9, 0.99],
                     batch_size=[1], seed=[0, 1]) for i in range(SUBMISSIONS)]
        results = await loadgen.bounded([lambda d=d: post(d) for d in docs], SUBMISSIONS,
                                        DEADLINE)
        etags = await loadgen.collect_etags(http, finished["id"], doc)
        plain = loadgen.read_jobs(http, finished["id"], doc, READS // 2)
        conditional = loadgen.read_jobs(http, finished["id"], doc, READS // 2, etags, seed=1)
        jobs = [j for pair in zip(plain, conditional, strict=True) for j in pair]
        results += await loadgen.bounded(jobs, IN_FLIGHT, DEADLINE)
    for route, _, code in results:
        want = (304,) if "If-None-Match" in route else (201, 429) if "POST" in route else (200,)
        if code not in want:
            errors.append(f"{route}: HTTP {code}")
    return results, errors, accepted


@pytest.mark.parametrize("backend", ["embedded", "postgres-workers-2"])
def test_reads_under_load_while_a_sweep_computes(backend: str, tmp_path: Path) -> None:
    if backend == "embedded":
        url, args = f"sqlite:///{tmp_path}/load.db", ()
    else:
        need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
        url, args = pg_schema_url("load"), ("--workers", "2")
    settings = dict(FAST, database_url=url, max_runs=1_000_000, chunk_runs=25_000,
                    embedded_process=True)  # the default: the engine in a child process
    server = LiveServer(settings, tmp_path / "serve.log", *args).wait_ready(120)
    try:
        doc = {**spec("load finished", steps=20), "grid": _grid(50, 10)}  # 100,000 runs
        made = httpx.post(f"{server.url}/api/v1/sweeps", json=doc, timeout=120)
        assert made.status_code == 201, made.text
        finished = _wait_done(server.url, made.json()["id"], DEADLINE)
        assert finished["total_runs"] == 100_000
        busy_doc = {**spec("load computing", steps=1000), "grid": _grid(100, 4)}
        busy = httpx.post(f"{server.url}/api/v1/sweeps", json=busy_doc, timeout=120).json()

        t0 = time.perf_counter()
        results, errors, accepted = loadgen.run_in_thread(
            lambda: _flood_and_read(server.url, finished, doc))
        wall = time.perf_counter() - t0
        computing = httpx.get(f"{server.url}/api/v1/sweeps/{busy['id']}", timeout=60).json()
        for sweep_id in accepted:  # nothing accepted is lost
            _wait_done(server.url, sweep_id, DEADLINE)
        httpx.post(f"{server.url}/api/v1/sweeps/{busy['id']}/cancel", timeout=60)
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]

    report = "\n".join([
        f"load test ({backend}): {SUBMISSIONS} submissions at once ({len(accepted)} accepted, "
        f"the rest 429), then {READS} reads ({READS // 2} conditional) with {IN_FLIGHT} in "
        f"flight of a finished 100,000-run sweep, while a {busy_doc['steps']}-step sweep of "
        f"{busy['total_runs']} runs computes ({computing['status']} after the reads, "
        f"{computing['progress']:.0%}); in {wall:.1f} s",
        loadgen.table(results)])
    print("\n" + report)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"load-{backend}.txt").write_text(report + "\n")
    assert not errors, "\n".join(errors[:20])
    assert accepted, "every submission was refused"
    assert len(results) == SUBMISSIONS + READS
