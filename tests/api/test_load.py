"""A bounded load test on loopback against a real `betascope serve` process.

50 sweep submissions at once, then 500 reads of phase maps and sweep status with
50 in flight, while the in-process executor computes those sweeps. Postgres where
BETASCOPE_TEST_DATABASE_URL answers; without it the test fails under
BETASCOPE_REQUIRE_SERVICES=1 (CI) and runs on the SQLite default otherwise, so
a missing Postgres never quietly turns CI's load test into a SQLite one. Every response must
be a 2xx; latencies (p50, p95, max per endpoint) are printed and written to
artifacts/load.txt. Bounded in count and in time (an overall deadline).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.helpers import spec
from tests.api.live import LiveServer
from tests.conftest import ARTIFACTS, REQUIRE_SERVICES
from tests.services import FAST, pg_schema_url, postgres_ok

pytestmark = [pytest.mark.services, pytest.mark.timeout(400)]

SUBMISSIONS = 50
READS = 500
IN_FLIGHT = 50
DEADLINE = 180.0  # seconds for each phase


async def _bounded(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.wait_for(asyncio.gather(*(one(j) for j in jobs)), DEADLINE)


async def _timed(http: httpx.AsyncClient, endpoint: str, method: str, url: str,
                 **kw: Any) -> tuple[str, float, httpx.Response]:
    t0 = time.perf_counter()
    try:
        resp = await http.request(method, url, **kw)
    except httpx.HTTPError as exc:  # a timeout is an error to report, with the others
        resp = httpx.Response(599, text=f"{type(exc).__name__}: {exc}")
    return endpoint, time.perf_counter() - t0, resp


async def _load(base: str) -> tuple[dict[str, list[float]], list[str], list[int]]:
    latencies: dict[str, list[float]] = {}
    errors: list[str] = []
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:

        def record(results: list[tuple[str, float, httpx.Response]], ok: int) -> None:
            for endpoint, took, resp in results:
                latencies.setdefault(endpoint, []).append(took)
                if resp.status_code != ok:
                    errors.append(f"{endpoint}: HTTP {resp.status_code} {resp.text[:200]}")

        docs = [spec(f"load {i}", steps=50, beta1=[0.0, 0.5], beta2=[0.9, 0.99],
                     batch_size=[1], seed=[0, 1]) for i in range(SUBMISSIONS)]
        made = await _bounded([
            lambda d=d: _timed(http, "POST /sweeps", "POST", "/api/v1/sweeps", json=d)
            for d in docs], SUBMISSIONS)
        record(made, 201)
        ids = [r.json()["id"] for _, _, r in made if r.status_code == 201]
        assert ids, errors[:5]

        rng = random.Random(0)
        reads = []
        for i in range(READS):
            sweep_id = rng.choice(ids)
            if i % 2:
                reads.append(lambda s=sweep_id: _timed(
                    http, "GET /sweeps/{id}", "GET", f"/api/v1/sweeps/{s}"))
            else:
                metric = rng.choice(["outcome", "diverged_frac", "final_rel"])
                reads.append(lambda s=sweep_id, m=metric: _timed(
                    http, "GET /sweeps/{id}/phase-map", "GET",
                    f"/api/v1/sweeps/{s}/phase-map", params={"metric": m}))
        record(await _bounded(reads, IN_FLIGHT), 200)
    return latencies, errors, ids


def _stats(name: str, values: list[float]) -> str:
    ms = np.asarray(values) * 1000
    return (f"{name:28s} n={len(ms):4d}  p50={np.percentile(ms, 50):7.1f} ms  "
            f"p95={np.percentile(ms, 95):7.1f} ms  max={ms.max():7.1f} ms")


def test_concurrent_submissions_and_reads(tmp_path: Path) -> None:
    if postgres_ok():
        backend, url = "postgres", pg_schema_url("load")
    elif REQUIRE_SERVICES:
        pytest.fail("Postgres at BETASCOPE_TEST_DATABASE_URL is required "
                    "(BETASCOPE_REQUIRE_SERVICES=1) but unavailable")
    else:
        backend, url = "sqlite", f"sqlite:///{tmp_path}/load.db"
    settings = dict(FAST, database_url=url, max_runs=100_000)
    server = LiveServer(settings, tmp_path / "serve.log").wait_ready()
    try:
        t0 = time.perf_counter()
        latencies, errors, ids = asyncio.run(_load(server.url))
        wall = time.perf_counter() - t0

        def finished() -> bool:
            return all(httpx.get(f"{server.url}/api/v1/sweeps/{i}", timeout=30)
                       .json()["status"] == "done" for i in ids)

        t1 = time.perf_counter()
        while not finished():  # the executor kept up: every submitted sweep completes
            assert time.perf_counter() - t1 < DEADLINE, "sweeps did not finish under load"
            time.sleep(0.5)
        drained = time.perf_counter() - t1
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]

    lines = [f"load test: {SUBMISSIONS} submissions, then {READS} reads with {IN_FLIGHT} in "
             f"flight; {backend}, in-process executor, one uvicorn process on loopback",
             *(_stats(k, v) for k, v in latencies.items()),
             f"{'wall time':28s} {wall:.1f} s for all requests; all {len(ids)} sweeps done "
             f"{drained:.1f} s later"]
    report = "\n".join(lines)
    print("\n" + report)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "load.txt").write_text(report + "\n")
    assert not errors, "\n".join(errors[:20])
    assert len(ids) == SUBMISSIONS
    assert sum(len(v) for v in latencies.values()) == SUBMISSIONS + READS
