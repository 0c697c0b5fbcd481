"""End to end against engine only: one sweep of 50,000 runs through the service.

    python benchmarks/service.py [--runs-steps 1000] [--chunk-runs 10000]

REST (`betascope serve` in a subprocess) -> Redis -> one Celery worker process
(`betascope worker --pool solo`) -> Postgres, timed from the POST until the
sweep reads done. The engine alone runs the same runs in the same chunks in
this process. Both use the same cores (one process, torch's default threads),
so their ratio is the service's overhead: sweep creation, messaging, claims,
heartbeats and result writes. Result rows written per second come from the
worker's own timing of each chunk's store transaction (build rows + one upsert).

Needs Postgres and Redis: BETASCOPE_TEST_DATABASE_URL (a fresh schema is made
and dropped) and BETASCOPE_BENCH_REDIS_URL (default redis://127.0.0.1:6379/14).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import PG_URL, with_search_path  # noqa: E402


def sweep_doc(steps: int, rep: int = 0) -> dict:
    """50,000 runs: 50 x 50 (beta1, beta2) x 4 batch sizes x 5 seeds on zhang2022.
    `rep` changes converge_rel (part of every run_key), so no repetition is cached."""
    return {
        "name": f"service benchmark {uuid.uuid4().hex[:6]}",
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {"kind": "adam", "lr": 0.1, "schedule": "inv_sqrt",
                      "bias_correction": False},
        "steps": steps,
        "grid": {"beta1": {"start": 0.0, "stop": 0.98, "num": 50},
                 "beta2": {"log1m": [0.001, 1.0], "num": 50},
                 "batch_size": [1, 2, 4, 8], "seed": [0, 1, 2, 3, 4]},
        "criteria": {"converge_rel": 0.05 + rep * 1e-9, "diverge_rel": 10.0},
    }


def engine_only(doc: dict, chunk_runs: int) -> float:
    import numpy as np

    from experiments.engine import run_chunk
    from experiments.runs import all_runs
    from experiments.spec import parse_spec

    spec = parse_spec(doc)
    runs = all_runs(spec)
    # warm-up at full chunk size and few steps, as the worker gets (the first big
    # call of a process is several times slower than the next ones)
    warm = parse_spec({**doc, "steps": 50})
    run_chunk(warm, all_runs(warm).take(np.arange(min(chunk_runs, len(runs)))), device="cpu")
    t0 = time.perf_counter()
    for lo in range(0, len(runs), chunk_runs):
        run_chunk(spec, runs.take(np.arange(lo, min(lo + chunk_runs, len(runs)))), device="cpu")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--chunk-runs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3,
                        help="alternate engine-only and end-to-end runs (pairs)")
    args = parser.parse_args()

    import psycopg

    from api.db.migrate import upgrade

    schema = f"bench_{os.getpid()}"
    libpq = PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    db_url = with_search_path(PG_URL, schema)
    upgrade(db_url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BETASCOPE_")}
    env.update({
        "BETASCOPE_DATABASE_URL": db_url,
        "BETASCOPE_BROKER_URL": os.environ.get("BETASCOPE_BENCH_REDIS_URL",
                                               "redis://127.0.0.1:6379/14"),
        "BETASCOPE_QUEUE": f"betascope-bench-{os.getpid()}",
        "BETASCOPE_CHUNK_RUNS": str(args.chunk_runs),
        "BETASCOPE_PORT": str(port),
        "BETASCOPE_MAX_RUNS": "2000000",
    })
    tmp = Path(tempfile.mkdtemp(prefix="betascope-bench-"))
    procs = []
    try:
        api_log = (tmp / "api.log").open("w")
        procs.append(subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=ROOT,
                                      env=env, stdout=api_log, stderr=subprocess.STDOUT))
        worker_log = tmp / "worker.log"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--pool", "solo"], cwd=ROOT, env=env,
            stdout=worker_log.open("w"), stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}/api/v1"
        client = httpx.Client(timeout=600)
        _wait(lambda: _ok(client, f"{url}/readyz") and b"ready." in worker_log.read_bytes(),
              120, "server and worker")

        warm = sweep_doc(50, rep=-1)  # one full-size chunk of few steps
        warm["grid"]["seed"] = [0]
        warm["grid"]["beta1"] = {"start": 0.0, "stop": 0.98,
                                 "num": max(1, min(50, args.chunk_runs // 200))}
        _finish(client, url, client.post(f"{url}/sweeps", json=warm).json()["id"])

        engines, e2es, creates, rows_written, store_seconds = [], [], [], 0, 0.0
        for rep in range(args.reps):
            doc = sweep_doc(args.steps, rep)
            engines.append(engine_only(doc, args.chunk_runs))
            before = len(_stores(worker_log))
            t0 = time.perf_counter()
            created = client.post(f"{url}/sweeps", json=doc)
            created.raise_for_status()
            creates.append(time.perf_counter() - t0)
            sweep = _finish(client, url, created.json()["id"])
            e2es.append(time.perf_counter() - t0)
            assert sweep["status"] == "done" and sweep["cached_runs"] == 0, sweep
            stores = _stores(worker_log)[before:]
            rows_written += sum(n for n, _ in stores)
            store_seconds += sum(t for _, t in stores)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    total = sweep["total_runs"]
    ratios = [e / g for e, g in zip(e2es, engines, strict=True)]
    quiet = min(range(len(engines)), key=lambda i: engines[i])  # least disturbed pair
    print(f"sweep: {total:,} runs x {args.steps} steps, chunks of {args.chunk_runs:,}, "
          f"1 solo worker, Postgres + Redis, {os.cpu_count()} cores")
    for i, (g, e, c) in enumerate(zip(engines, e2es, creates, strict=True)):
        print(f"  rep {i}: engine only {g:7.2f} s   end to end {e:7.2f} s "
              f"(creation {c:5.2f} s)   ratio {e / g:5.2f}")
    print(f"engine only (same chunks, this process): {engines[quiet]:8.2f} s")
    print(f"end to end (POST -> done over REST):     {e2es[quiet]:8.2f} s")
    print(f"  of which sweep creation (POST):        {creates[quiet]:8.2f} s")
    print(f"ratio end to end / engine:               {ratios[quiet]:8.2f}   "
          f"(rep {quiet}, the fastest engine run; median of reps "
          f"{sorted(ratios)[len(ratios) // 2]:.2f})")
    print(f"result rows written: {rows_written:,} in {store_seconds:.2f} s of store "
          f"transactions = {rows_written / store_seconds:,.0f} rows/s")
    print(f"throughput end to end: {total / e2es[quiet]:,.0f} runs/s")


def _stores(log: Path) -> list[tuple[int, float]]:
    """(rows, seconds) of every chunk's store transaction, from the worker's log."""
    return [(int(n), float(t)) for n, t in
            re.findall(r"stored (\d+) results in ([0-9.]+) s", log.read_text())]


def _ok(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def _finish(client: httpx.Client, url: str, sweep_id: int) -> dict:
    while True:
        s = client.get(f"{url}/sweeps/{sweep_id}").json()
        if s["status"] in ("done", "failed", "canceled"):
            return s
        time.sleep(0.25)


if __name__ == "__main__":
    main()
