"""The service against the engine alone, on one large sweep, in one run.

    python benchmarks/service.py --runs 1000000 [--steps 200] [--modes embedded,postgres]
    python benchmarks/service.py --runs 10000000 --steps 100 --seeds 10 --modes postgres

The engine alone runs the sweep's runs in the service's chunks in this process
first, with the torch threads, wait policy and allocator policy the service's engine
gets (workers/threads.py, api/memory.py); then, for each mode, a real `betascope
serve` in a subprocess gets the same spec over REST: `embedded` is SQLite with the
in-process executor, `postgres` is Postgres + Redis + one `betascope worker --pool
solo` process.
Both share this machine's cores, so POST -> done over the engine's time is the
service's overhead. Each mode runs the sweep twice, on a fresh database and then
again (a criterion differs, so nothing is reused): the second is what a server
that has stored sweeps before sees. Printed per mode: POST latency, POST -> done /
engine for both, then for the second sweep the first phase-map after done, runs
CSV and Parquet export rows/s (downloaded by curl into /dev/null), the slowest of
the per-run reads (status, a runs page, a filtered page, a page from the
middle, one run by its key; each read's time is printed below the table), bytes
stored per run, and the API processes' peak memory growth (the largest VmHWM over
its VmRSS before the sweep, from /proc; the embedded engine's process is not the
API's), also after each step.

Postgres mode needs BETASCOPE_TEST_DATABASE_URL (a fresh schema is made and
dropped) and Redis at BETASCOPE_BENCH_REDIS_URL (default redis://127.0.0.1:6379/14).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import PG_URL, finished_at, with_search_path  # noqa: E402


def sweep_doc(runs: int, steps: int, batches: list[int], seeds: int) -> dict[str, Any]:
    """zhang2022 on a square (beta1, beta2) grid x batch sizes x seeds of about `runs`."""
    side = max(1, round(math.sqrt(runs / (len(batches) * seeds))))
    return {
        "name": f"service benchmark {uuid.uuid4().hex[:6]}",
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {"kind": "adam", "lr": 0.1, "schedule": "inv_sqrt",
                      "bias_correction": False},
        "steps": steps,
        "grid": {"beta1": {"start": 0.0, "stop": 0.99, "num": side},
                 "beta2": {"log1m": [1e-4, 1.0], "num": side},
                 "batch_size": batches, "seed": list(range(seeds))},
        # differs per call: no run of one benchmark is served from another's results
        "criteria": {"converge_rel": 0.05 + (time.time_ns() % 10**6) * 1e-12},
    }


def engine_only(doc: dict[str, Any], chunk_runs: int) -> tuple[str, float]:
    # the threads the service's engine gets, waiting as they do there (workers/threads.py),
    # and its allocator's policy (api/memory.py: freed memory kept for the next chunk)
    from api import memory
    from workers.threads import engine_threads

    engine_threads(1)
    memory.keep_freed_memory()
    import numpy as np

    from experiments.engine import run_chunk
    from experiments.kernels import resolve_kernel
    from experiments.reuse import chunk_bounds
    from experiments.runs import runs_at
    from experiments.spec import parse_spec

    spec = parse_spec(doc, max_runs=10**9)
    kernel = resolve_kernel(spec, "auto", "cpu")  # as the service resolves the sweep's
    bounds = chunk_bounds(spec, chunk_runs)
    warm = parse_spec({**doc, "steps": 20}, max_runs=10**9)
    run_chunk(warm, runs_at(warm, np.arange(int(bounds[1]))), device="cpu", kernel=kernel)
    t0 = time.perf_counter()
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        run_chunk(spec, runs_at(spec, np.arange(lo, hi)), device="cpu", kernel=kernel)
    return kernel, time.perf_counter() - t0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure in KiB: VmHWM (peak resident) or VmRSS (now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _tree(pid: int) -> list[int]:
    """The API processes: `serve` and its descendants (on Postgres one API process per
    core), less the embedded engine's process (the only one that loads torch) and
    multiprocessing's resource tracker."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            engine = b"libtorch" in Path(f"/proc/{child}/maps").read_bytes()
            if b"resource_tracker" not in cmd and not engine:
                out += _tree(int(child))
    return out


def _growth_kib(base: dict[int, int]) -> int:
    """The largest peak growth (VmHWM over the VmRSS in `base`) of the API processes."""
    return max(_kib(pid, "VmHWM") - rss for pid, rss in base.items())


def run_mode(mode: str, doc: dict[str, Any], chunk_runs: int, tmp: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BETASCOPE_")}
    port = _port()
    env.update({"BETASCOPE_PORT": str(port), "BETASCOPE_CHUNK_RUNS": str(chunk_runs),
                "BETASCOPE_MAX_RUNS": str(10**8)})
    schema = None
    if mode == "postgres":
        import psycopg

        schema = f"bench_{os.getpid()}"
        libpq = PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        env["BETASCOPE_DATABASE_URL"] = with_search_path(PG_URL, schema)
        env["BETASCOPE_BROKER_URL"] = os.environ.get("BETASCOPE_BENCH_REDIS_URL",
                                                     "redis://127.0.0.1:6379/14")
        env["BETASCOPE_QUEUE"] = f"betascope-bench-{os.getpid()}"
    else:
        env["BETASCOPE_DATABASE_URL"] = f"sqlite:///{tmp}/bench.db"
    procs = []
    out: dict[str, Any] = {}
    try:
        log = (tmp / f"{mode}-api.log").open("w")
        api = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
        procs.append(api)
        worker_log = tmp / f"{mode}-worker.log"
        if mode == "postgres":
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker", "--pool", "solo"], cwd=ROOT,
                env=env, stdout=worker_log.open("w"), stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}/api/v1"
        client = httpx.Client(timeout=600)
        _wait(lambda: _ok(client, f"{url}/readyz") and (
            mode != "postgres" or b"ready." in worker_log.read_bytes()), 120, "server")
        # a small sweep first: the worker and executor import torch and warm up
        small = {**doc, "grid": {**doc["grid"], "beta1": [0.0], "seed": [0]}, "steps": 20}
        _finish(client, url, client.post(f"{url}/sweeps", json=small).json()["id"])
        base = {pid: _kib(pid, "VmRSS") for pid in _tree(api.pid)}
        # twice: a fresh database, then one that has stored a sweep before (on SQLite
        # its log's pages are then reused, as on any server that has run a while); the
        # second differs in a criterion, so none of its runs is served from the first
        out["post"], out["done_fresh"], _ = _timed_sweep(client, url, doc)
        crit = doc["criteria"]
        again = {**doc, "criteria": {**crit, "converge_rel": crit["converge_rel"] + 1e-9}}
        time.sleep(2.0)  # the server's quiet moment after a sweep (SQLite checkpoints then)
        _, out["done"], sweep = _timed_sweep(client, url, again)
        sid, total = sweep["id"], sweep["total_runs"]
        peaks = [_growth_kib(base)]
        t0 = time.perf_counter()
        client.get(f"{url}/sweeps/{sid}/phase-map").raise_for_status()
        out["phase_map"] = time.perf_counter() - t0
        peaks.append(_growth_kib(base))
        seconds, _ = _download(client, f"{url}/sweeps/{sid}/export.csv")
        out["csv_rows_s"] = total / seconds
        peaks.append(_growth_kib(base))
        seconds, _ = _download(client, f"{url}/sweeps/{sid}/export.parquet")
        out["parquet_rows_s"] = total / seconds
        peaks.append(_growth_kib(base))
        out["peaks"] = " -> ".join(f"{p / 1024:.0f}" for p in peaks)
        _check_exports(client, f"{url}/sweeps/{sid}", total)
        reads = {"status": f"{url}/sweeps/{sid}",
                 "first runs page": f"{url}/sweeps/{sid}/runs?limit=100",
                 "filtered page": f"{url}/sweeps/{sid}/runs?limit=100&outcome=diverged"
                                  "&batch_size=1",
                 "page from the middle": f"{url}/sweeps/{sid}/runs?limit=100&cursor={total // 2}"}
        took = {}
        for name, read in reads.items():
            t0 = time.perf_counter()
            page = client.get(read)
            page.raise_for_status()
            took[name] = time.perf_counter() - t0
        key = client.get(f"{url}/sweeps/{sid}/runs?limit=1&cursor={total - 2}").json()
        t0 = time.perf_counter()
        client.get(f"{url}/sweeps/{sid}/runs/{key['items'][0]['run_key']}").raise_for_status()
        took["one run by key"] = time.perf_counter() - t0
        out["run_read"] = max(took.values())
        out["reads"] = ", ".join(f"{k} {v * 1000:.0f}" for k, v in took.items())
        out["memory_mb"] = _growth_kib(base) / 1024
        out["bytes_per_run"] = _stored_bytes(env["BETASCOPE_DATABASE_URL"], sid) / total
        out["total"] = total
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        if schema is not None:
            import psycopg

            libpq = PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)
            with psycopg.connect(libpq, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return out


def _timed_sweep(client: httpx.Client, url: str, doc: dict[str, Any]
                 ) -> tuple[float, float, dict[str, Any]]:
    """(seconds until POST answered, seconds until the sweep was done, the sweep).

    Done is the sweep's finished_at, set by the transaction that stored its last
    chunk, on this machine's clock: polling at the 5 ms resolution a precise
    client-side figure would need costs the shared cores more than the service
    does (each status read of a running sweep is a query), so status is polled
    every 0.1 s, as a page or `betascope submit --wait` would, and not timed."""
    sent = time.time()
    t0 = time.perf_counter()
    created = client.post(f"{url}/sweeps", json=doc)
    created.raise_for_status()
    post = time.perf_counter() - t0
    sweep = _finish(client, url, created.json()["id"])
    assert sweep["status"] == "done", sweep
    done = finished_at(sweep) - sent
    return post, done, sweep


def _download(client: httpx.Client, url: str) -> tuple[float, int]:
    """(seconds, bytes) of one GET into /dev/null by curl, the client README shows (a
    Python client reading 100-200 MB costs these shared cores more than the server
    does); by httpx where there is no curl."""
    curl = shutil.which("curl")
    if curl is not None:
        done = subprocess.run([curl, "-s", "-f", "-o", "/dev/null", "-w",
                               "%{time_total} %{size_download}", url],
                              check=True, capture_output=True, text=True)
        seconds, size = done.stdout.split()
        return float(seconds), int(size)
    t0 = time.perf_counter()
    size = 0
    with client.stream("GET", url) as resp:
        for block in resp.iter_bytes():
            size += len(block)
    return time.perf_counter() - t0, size


def _check_exports(client: httpx.Client, sweep_url: str, total: int) -> None:
    """Both exports hold one row per run (read again, untimed)."""
    import io

    import pyarrow.parquet as pq

    lines = 0
    with client.stream("GET", f"{sweep_url}/export.csv") as resp:
        for block in resp.iter_bytes():
            lines += block.count(b"\n")
    assert lines - 1 == total, (lines, total)
    body = client.get(f"{sweep_url}/export.parquet").content
    assert pq.ParquetFile(io.BytesIO(body)).metadata.num_rows == total


def _stored_bytes(url: str, sweep_id: int) -> int:
    from sqlalchemy import func, select

    from api.db.models import Chunk, Sweep
    from api.db.session import get_database

    with get_database(url).session(read_only=True) as s:
        data = s.scalar(select(func.sum(func.length(Chunk.runs_data)
                                        + func.length(Chunk.cells_data)
                                        + func.coalesce(func.length(Chunk.curves_data), 0)))
                        .where(Chunk.sweep_id == sweep_id))
        row = s.scalar(select(func.sum(func.length(Sweep.name))).where(Sweep.id == sweep_id))
        return int(data or 0) + int(row or 0) + 200  # + the sweep's own row, roughly


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--chunk-runs", type=int, default=50_000)
    parser.add_argument("--modes", default="embedded,postgres")
    args = parser.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    doc = sweep_doc(args.runs, args.steps, batches, args.seeds)
    kernel, engine = engine_only(doc, args.chunk_runs)
    tmp = Path(tempfile.mkdtemp(prefix="betascope-bench-"))
    results = {m: run_mode(m, {**doc, "name": f"{doc['name']} {m}"}, args.chunk_runs, tmp)
               for m in args.modes.split(",")}
    total = int(next(iter(results.values()))["total"])
    import torch

    print(f"sweep: {total:,} runs x {args.steps} steps on zhang2022, chunks of at most "
          f"{args.chunk_runs:,} runs, {os.cpu_count()} cores; engine alone {engine:.2f} s "
          f"(kernel {kernel}, {torch.get_num_threads()} torch threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')})")
    head = f"{'':34}" + "".join(f"{m:>14}" for m in results)
    print(head)
    rows = [("POST /sweeps answers after (s)", "post", "{:.3f}"),
            ("POST -> done, fresh database (s)", "done_fresh", "{:.2f}"),
            ("  / engine alone", "ratio_fresh", "{:.2f}"),
            ("POST -> done, second sweep (s)", "done", "{:.2f}"),
            ("  / engine alone", "ratio", "{:.2f}"),
            ("first phase-map after done (ms)", "phase_map", "{:.0f}"),
            ("runs CSV export (rows/s)", "csv_rows_s", "{:,.0f}"),
            ("Parquet export (rows/s)", "parquet_rows_s", "{:,.0f}"),
            ("slowest per-run read (ms)", "run_read", "{:.0f}"),
            ("bytes stored per run", "bytes_per_run", "{:.1f}"),
            ("API peak memory growth (MB)", "memory_mb", "{:.0f}")]
    for label, key, form in rows:
        cells = []
        for r in results.values():
            scale = 1000 if key in ("phase_map", "run_read") else 1
            if key in ("ratio", "ratio_fresh"):
                v = r[key.replace("ratio", "done")] / engine
            else:
                v = r[key] * scale
            cells.append(form.format(v))
        print(f"{label:34}" + "".join(f"{c:>14}" for c in cells))
    for mode, r in results.items():
        print(f"{mode}: API peak memory growth (MB) when done, after the phase map, "
              f"the CSV, the Parquet: {r['peaks']}")
        print(f"{mode}: per-run reads (ms): {r['reads']}")


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


def _finish(client: httpx.Client, url: str, sweep_id: int) -> dict[str, Any]:
    while True:
        s = client.get(f"{url}/sweeps/{sweep_id}").json()
        if s["status"] in ("done", "failed", "canceled"):
            return s
        time.sleep(0.1)


if __name__ == "__main__":
    main()
