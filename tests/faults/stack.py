"""A whole betascope deployment for one fault test: throwaway Postgres and Redis,
`betascope serve` (API + reconciler) and `betascope worker` processes.

Everything here is started by the test and killed by it: `Stack.close()` ends
every process it started (SIGKILL to its process group if SIGTERM is not
enough) and removes the servers' data. The test inspects the database directly
with short-lived psycopg connections, so a Postgres restart never leaves it
holding a dead pool.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.api.helpers import get
from tests.faults.servers import ThrowawayPostgres, ThrowawayRedis, free_port
from tests.services import ROOT, env_for, wait_for

# Short timings so that a lost worker is noticed in seconds; the lease keeps the
# production invariant (at least three heartbeats) with room for a loaded machine.
FAULT_SETTINGS: dict[str, Any] = {
    "heartbeat_seconds": 0.5,
    "lease_seconds": 5.0,
    "reconcile_seconds": 0.5,
    "requeue_after_seconds": 300.0,
    "max_attempts": 3,
    "retry_backoff_seconds": 0.2,
    "chunk_runs": 2,
    "max_runs": 10_000,
    "device": "cpu",
}
STORED = re.compile(rb"chunk (\d+): stored (\d+) results")


class Process:
    """One subprocess in its own session, with its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except OSError:
            return b""

    def tail(self, n: int = 3000) -> str:
        return self.log()[-n:].decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the whole process group: no handler runs, nothing is cleaned up."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        self._log.close()

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


class Stack:
    """Postgres, Redis, one API server and any number of workers, all disposable."""

    def __init__(self, tmp: Path, **overrides: Any):
        self.tmp = tmp
        self.pg: ThrowawayPostgres | None = None
        self.redis: ThrowawayRedis | None = None
        self.api: Process | None = None
        self.workers: list[Process] = []
        self.client: httpx.Client | None = None
        try:
            self.pg = ThrowawayPostgres()
            self.redis = ThrowawayRedis()
        except BaseException:
            self.close()
            raise
        self.settings = {**FAULT_SETTINGS, "database_url": self.pg.url,
                         "broker_url": self.redis.url, "queue": "betascope-faults",
                         **overrides}

    # --- processes --------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        # one torch thread per process: the test machine has few cores to share
        return {**env_for(self.settings), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def start_api(self, timeout: float = 120.0) -> httpx.Client:
        """`betascope serve` on a free port; returns a client once it answers."""
        port = free_port()
        env = {**self.env(), "BETASCOPE_PORT": str(port)}
        self.api = Process([sys.executable, "-m", "api.cli", "serve"], env,
                           self.tmp / "api.log")
        # paths as in tests/api/helpers: /api/v1/...
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

        client = self.client

        def up() -> bool:
            assert self.api is not None
            if not self.api.alive():
                raise AssertionError(f"API server exited:\n{self.api.tail()}")
            try:
                return client.get("/api/v1/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout, "the API server to answer", interval=0.2)
        return self.client

    def start_worker(self) -> Process:
        """A new `betascope worker --pool solo` (not waiting for it to be ready)."""
        n = len(self.workers)
        worker = Process([sys.executable, "-m", "api.cli", "worker", "--pool", "solo",
                          "--loglevel", "INFO"], self.env(), self.tmp / f"worker{n}.log")
        self.workers.append(worker)
        return worker

    def stored_counts(self) -> Counter[int]:
        """How many times each chunk's results were written, from every worker's log."""
        counts: Counter[int] = Counter()
        for worker in self.workers:
            for chunk_id, _ in STORED.findall(worker.log()):
                counts[int(chunk_id)] += 1
        return counts

    def logs(self) -> str:
        parts = [f"--- api\n{self.api.tail()}" if self.api else ""]
        parts += [f"--- {w.log_path.name}\n{w.tail()}" for w in self.workers]
        return "\n".join(parts)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        for worker in self.workers:
            worker.kill()
        if self.api is not None:
            self.api.stop()
        if self.redis is not None:
            self.redis.close()
        if self.pg is not None:
            self.pg.close()

    # --- the database, read directly ------------------------------------------------------

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        assert self.pg is not None
        url = self.pg.url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()

    def chunks(self, sweep_id: int) -> list[dict[str, Any]]:
        cols = ("id", "seq", "status", "attempts", "progress", "lease_token", "last_error")
        rows = self.sql(f"SELECT {', '.join(cols)} FROM chunk WHERE sweep_id = %s ORDER BY seq",
                        sweep_id)
        return [dict(zip(cols, row, strict=True)) for row in rows]

    def assert_one_result_per_run(self, sweep: dict[str, Any]) -> None:
        """The sweep's chunks tile its grid exactly, each done with one stored result
        per run of its range (and cell counts that add up to the runs)."""
        from api.db import columnar

        sweep_id, total = sweep["id"], sweep["total_runs"]
        rows = self.sql("SELECT lo, hi, status, runs_data, cells_data FROM chunk "
                        "WHERE sweep_id = %s ORDER BY lo", sweep_id)
        edges = [(lo, hi) for lo, hi, *_ in rows]
        assert edges and edges[0][0] == 0 and edges[-1][1] == total, edges
        assert all(a[1] == b[0] for a, b in zip(edges, edges[1:], strict=False)), edges
        counted = 0
        for lo, hi, status, runs_data, cells_data in rows:
            assert status == "done" and runs_data is not None and cells_data is not None
            rec = columnar.decode_runs(bytes(runs_data), ("outcome",))
            assert len(rec["outcome"]) == hi - lo, (lo, hi, len(rec["outcome"]))
            counted += int(columnar.decode_cells(bytes(cells_data)).counts.sum())
        assert counted == total, (counted, total)

    # --- the API ----------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.1) -> Any:
        """wait_for, with every process's log in the failure message."""
        try:
            return wait_for(predicate, timeout, what, interval)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def wait_mid_sweep(self, sweep_id: int, timeout: float = 180) -> None:
        """Until one chunk is done and the next is running: the moment to break something."""

        def mid_sweep() -> bool:
            chunks = self.chunks(sweep_id)
            return any(c["status"] == "done" for c in chunks) and any(
                c["status"] == "running" and c["progress"] > 0 for c in chunks)

        self.wait(mid_sweep, timeout, "one chunk done and the next one running", interval=0.05)

    def wait_finished(self, sweep_id: int, timeout: float) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            s = get(self.client, sweep_id)
            return s if s["status"] in ("done", "failed", "canceled") else None

        try:
            return self.wait(finished, timeout, f"sweep {sweep_id} to finish", interval=0.3)
        except AssertionError as exc:
            raise AssertionError(f"chunks: {self.chunks(sweep_id)}\n{exc}") from None

