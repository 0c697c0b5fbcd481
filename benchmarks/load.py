"""Reads under load: p50/p95/max per route at 50 in flight, with and without a sweep computing.

    python benchmarks/load.py [--mode embedded|postgres] [--workers N] [--runs 100000]
                              [--requests 600] [--in-flight 50] [--compute-runs 1000000]
                              [--threads] [--idle-only]

A real `betascope serve` (embedded: SQLite + the in-process executor; postgres:
BETASCOPE_TEST_DATABASE_URL in a fresh schema, the in-process executor, N API
processes) gets a finished sweep of about --runs runs, then --requests reads
(status, the sweeps list, phase maps of varying slices, a runs page) with
--in-flight in flight: twice plain (the first pass includes every API
process's first read of each answer, the second is the steady state), once
conditional (If-None-Match, 304s), and then while a second sweep of
--compute-runs runs computes: its throughput over --window seconds alone, with a
burst of --requests reads at the start of the window (a lab's dashboards
refreshed at once), and with reads sent for the whole window (a flood: every
read answered makes room for the next, so the reads take all the CPU they can).
Printed: how long after the sweep finished the first pass began (the time the
API processes had to prepare its reads, api/prepare.py), the tables, the API
processes' CPU per request (robust to other load
on the machine, unlike latencies), and the computing sweep's throughput with
the reads over its throughput alone (1.0 = the reads cost it nothing).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.api import loadgen  # noqa: E402
from tests.api.live import LiveServer  # noqa: E402
from tests.services import finished_at, pg_schema_url  # noqa: E402


def sweep_doc(name: str, side: int, batches: list[int], seeds: int, steps: int) -> dict[str, Any]:
    return {
        "name": name,
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {"kind": "adam", "lr": 0.1, "schedule": "inv_sqrt",
                      "bias_correction": False},
        "steps": steps,
        "grid": {"beta1": {"start": 0.0, "stop": 0.99, "num": side},
                 "beta2": {"log1m": [1e-4, 1.0], "num": side},
                 "batch_size": batches, "seed": list(range(seeds))},
        "criteria": {"converge_rel": 0.05 + (time.time_ns() % 10**6) * 1e-12},
    }


def finish(http: httpx.Client, sweep_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = http.get(f"/api/v1/sweeps/{sweep_id}").json()
        if got["status"] in ("done", "failed", "canceled"):
            return dict(got)
        time.sleep(0.5)
    raise TimeoutError(f"sweep {sweep_id} not done in {timeout:.0f} s")


def done_runs(http: httpx.Client, sweep_id: int) -> float:
    got = http.get(f"/api/v1/sweeps/{sweep_id}").json()
    return float(got["progress"]) * int(got["total_runs"])


def api_pids(serve: int) -> list[int]:
    """The API processes: `serve` itself, or with --workers its uvicorn children."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == serve and b"resource_tracker" not in cmd:
            kids.append(int(stat.parent.name))
    multi = b"--workers" in Path(f"/proc/{serve}/cmdline").read_bytes()
    return kids if multi and kids else [serve]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes alone (not their children)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def reads(url: str, sweep_id: int, doc: dict[str, Any], n: int, in_flight: int,
          conditional: bool, pids: list[int], at_least: float = 0.0
          ) -> tuple[list[loadgen.Result], float, float]:
    """(results, wall seconds, API CPU ms per request): n reads, repeated until at_least s."""
    async def go() -> tuple[list[loadgen.Result], float, float]:
        async with loadgen.client(url, in_flight) as http:
            etags = await loadgen.collect_etags(http, sweep_id, doc) if conditional else None
            out: list[loadgen.Result] = []
            t0, c0 = time.perf_counter(), cpu_seconds(pids)
            while not out or time.perf_counter() - t0 < at_least:
                jobs = loadgen.read_jobs(http, sweep_id, doc, n, etags, seed=len(out))
                out += await loadgen.bounded(jobs, in_flight, 600)
            wall, cpu = time.perf_counter() - t0, cpu_seconds(pids) - c0
            return out, wall, 1000 * cpu / len(out)

    return loadgen.run_in_thread(go)


def prepared_after(log: Path, sweep_id: int, finished: float) -> str:
    """When each API process had prepared the sweep's reads (api/prepare.py logs it),
    in seconds after the sweep finished: a first pass that begins before the last of
    them shares the cores with their preparing."""
    marker = f"sweep {sweep_id} finished: "
    after = []
    for line in log.read_text(errors="replace").splitlines():
        if marker in line and line.endswith(" prepared"):
            # the server's log: local time, milliseconds after a comma
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            after.append(f"{at - finished:.2f}")
    return (f"the API processes had prepared it {', '.join(sorted(after))} s after it "
            "finished" if after else "no API process had prepared it when the passes ended")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["embedded", "postgres"], default="embedded")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--compute-runs", type=int, default=1_000_000)
    parser.add_argument("--compute-steps", type=int, default=50_000)
    parser.add_argument("--threads", action="store_true",
                        help="executor in threads (BETASCOPE_EMBEDDED_PROCESS=false)")
    parser.add_argument("--idle-only", action="store_true",
                        help="only the reads of the finished sweep (no sweep computing)")
    parser.add_argument("--window", type=float, default=10.0,
                        help="seconds of computing measured alone, then with a burst of "
                             "--requests reads, then with reads throughout")
    args = parser.parse_args()
    batches, seeds = [1, 2, 4, 8], 5
    side = max(2, round((args.runs / (len(batches) * seeds)) ** 0.5))
    doc = sweep_doc("load finished", side, batches, seeds, args.steps)
    cside = max(2, round((args.compute_runs / (len(batches) * seeds)) ** 0.5))
    busy = sweep_doc("load computing", cside, batches, seeds, args.compute_steps)
    tmp = Path(tempfile.mkdtemp(prefix="betascope-load-"))
    url = (pg_schema_url(f"bench{os.getpid()}") if args.mode == "postgres"
           else f"sqlite:///{tmp}/load.db")
    extra = [] if args.workers is None else ["--workers", str(args.workers)]
    settings = {"database_url": url, "max_runs": 10**7, "chunk_runs": 25_000,
                "embedded_process": not args.threads}
    server = LiveServer(settings,
                        tmp / "serve.log", *extra).wait_ready(180)
    report = [f"mode {args.mode}, workers {args.workers or 'default'}, executor in "
              f"{'threads' if args.threads else 'a child process'}, "
              f"{args.requests} reads, {args.in_flight} in flight"]
    try:
        http = httpx.Client(base_url=server.url, timeout=600)
        t0 = time.perf_counter()
        sid = http.post("/api/v1/sweeps", json=doc).json()["id"]
        done = finish(http, sid, 1800)
        total, finished = done["total_runs"], finished_at(done)
        report.append(f"finished sweep: {total} runs, computed in {time.perf_counter() - t0:.1f} s")
        pids = api_pids(server.proc.pid)
        # how long the API processes had to prepare the sweep's reads (api/prepare.py)
        # before the first pass: the client polls every 0.5 s, so 0 to 0.5 s
        report.append(f"the first pass begins {time.time() - finished:.2f} s after "
                      "the sweep finished")
        # the first pass includes each API process's first read of every answer
        # (the sweep's cells assembled, each map and page made); the second is what
        # a dashboard polling it sees from then on
        for label, conditional in (("idle, first reads", False), ("idle, again", False),
                                   ("idle, conditional", True)):
            res, wall, cpu = reads(server.url, sid, doc, args.requests, args.in_flight,
                                   conditional, pids)
            report += [f"\n-- {label}: {len(res) / wall:.0f} requests/s, API CPU "
                       f"{cpu:.2f} ms/request", loadgen.table(res)]
        report.append(prepared_after(tmp / "serve.log", sid, finished))
        if args.idle_only:
            return
        busy_id = http.post("/api/v1/sweeps", json=busy).json()["id"]
        while done_runs(http, busy_id) <= 0:  # its first chunk is under way
            time.sleep(0.5)

        def rate(reading: float) -> tuple[float, list[loadgen.Result], float, float]:
            """The computing sweep's runs/s over the window, reads going on for the
            first `reading` seconds of it (0: none; at least one round of requests)."""
            a, t_a = done_runs(http, busy_id), time.perf_counter()
            res: list[loadgen.Result] = []
            wall = cpu = 0.0
            if reading >= 0:
                res, wall, cpu = reads(server.url, sid, doc, args.requests, args.in_flight,
                                       False, pids, at_least=reading)
            time.sleep(max(0.0, args.window - (time.perf_counter() - t_a)))
            b, t_b = done_runs(http, busy_id), time.perf_counter()
            return (b - a) / (t_b - t_a), res, wall, cpu

        alone = rate(-1)[0]
        for label, reading in ((f"{args.requests} reads", 0.0),
                               (f"reads for all {args.window:.0f} s", args.window)):
            loaded, res, wall, cpu = rate(reading)
            report += [f"\n-- {label} while a {busy['steps']}-step sweep of "
                       f"{cside * cside * 20} runs computes: {len(res)} reads in {wall:.2f} s, "
                       f"{len(res) / wall:.0f} requests/s, API CPU {cpu:.2f} ms/request",
                       loadgen.table(res),
                       f"its throughput over {args.window:.0f} s: {alone:.0f} runs/s alone, "
                       f"{loaded:.0f} runs/s with these reads "
                       f"(ratio {loaded / alone if alone else float('nan'):.2f})"]
        http.post(f"/api/v1/sweeps/{busy_id}/cancel")
    finally:
        server.stop()
        print("\n".join(report))


if __name__ == "__main__":
    main()
