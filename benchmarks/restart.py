"""A finished sweep's first reads in a freshly started server.

    python benchmarks/restart.py [--mode postgres|embedded] [--runs 1000000]

A real `betascope serve` computes a sweep of about --runs runs (20 steps), reads
its phase map and boundary once, and stops; then a new server is started on the
same database twice, and each times its first phase map, its boundary and a map
of another slice (nothing asked before). On Postgres the maps and boundary made
before are read from the `answer` table (api/answers.py); on SQLite, and before
that table, a new process assembles the sweep's cells from its chunks' records
first.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load import finish, sweep_doc  # noqa: E402
from tests.api.live import LiveServer  # noqa: E402
from tests.services import pg_schema_url  # noqa: E402


def timed(http: httpx.Client, path: str) -> tuple[float, int]:
    """(ms, bytes) of one GET."""
    t0 = time.perf_counter()
    got = http.get(path)
    got.raise_for_status()
    return (time.perf_counter() - t0) * 1e3, len(got.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["embedded", "postgres"], default="postgres")
    parser.add_argument("--runs", type=int, default=1_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="betascope-restart-"))
    url = (pg_schema_url(f"restart{os.getpid()}") if args.mode == "postgres"
           else f"sqlite:///{tmp}/restart.db")
    settings = {"database_url": url, "max_runs": 10**7, "chunk_runs": 50_000}
    side = max(2, round((args.runs / 20) ** 0.5))
    server = LiveServer(settings, tmp / "first.log").wait_ready(180)
    try:
        http = httpx.Client(base_url=server.url, timeout=600)
        sid = http.post("/api/v1/sweeps", json=sweep_doc("restart", side, [1, 2, 4, 8], 5, 20)
                        ).json()["id"]
        total = finish(http, sid, 1800)["total_runs"]
        base = f"/api/v1/sweeps/{sid}"
        ms, size = timed(http, f"{base}/phase-map")
        print(f"{args.mode}: {total} runs; first server: phase map {ms:.0f} ms ({size} bytes), "
              f"boundary {timed(http, f'{base}/boundary')[0]:.0f} ms")
    finally:
        server.stop()
    for i in range(2):
        server = LiveServer(settings, tmp / f"restarted{i}.log").wait_ready(180)
        try:
            time.sleep(3)  # its warm-up (api/warm.py) done
            http = httpx.Client(base_url=server.url, timeout=600)
            first = timed(http, f"{base}/phase-map")[0]
            boundary = timed(http, f"{base}/boundary")[0]
            other = timed(http, f"{base}/phase-map?batch_size=8&metric=final_rel")[0]
            print(f"  restarted ({i + 1}): first phase map {first:.0f} ms, boundary "
                  f"{boundary:.0f} ms, a slice not asked before {other:.0f} ms")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
