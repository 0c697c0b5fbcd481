"""`betascope serve --workers N` on Postgres: N real API processes, one reconciler.

The process holding the reconciler's advisory lock is killed with SIGKILL while
a sweep computes: another takes the role within two reconcile periods (by the
log's timestamps), and the sweep still finishes.
"""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import spec
from tests.api.live import LiveServer
from tests.conftest import need
from tests.services import FAST, pg_schema_url, postgres_ok, wait_for

pytestmark = [pytest.mark.services, pytest.mark.timeout(400)]
TAKES = re.compile(r"^(\S+ \S+) INFO betascope.leader: reconciler: this process "
                   r"\(pid (\d+)\) now runs the reconciler", re.M)
PERIOD = 3.0


def _holders(server: LiveServer) -> list[tuple[datetime, int]]:
    return [(datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f"), int(pid))
            for t, pid in TAKES.findall(server.log())]


def test_reconciler_moves_to_another_process_when_its_holder_is_killed(tmp_path: Path) -> None:
    need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
    settings = dict(FAST, database_url=pg_schema_url("processes"), reconcile_seconds=PERIOD,
                    lease_seconds=6.0, chunk_runs=8)
    server = LiveServer(settings, tmp_path / "serve.log", "--workers", "2").wait_ready()
    try:
        wait_for(lambda: _holders(server), 60, "a process to take the reconciler")
        time.sleep(2 * PERIOD)
        holders = _holders(server)
        assert len({pid for _, pid in holders}) == 1, holders  # exactly one, and it stays
        holder = holders[0][1]
        served = {int(p) for p in re.findall(r"\[(\d+)\]", server.log())} - {server.proc.pid}
        assert holder in served and len(served) >= 2, server.log()[-3000:]

        doc = spec("takeover", steps=1500, beta2={"log1m": [0.01, 1.0], "num": 8})
        created = httpx.post(f"{server.url}/api/v1/sweeps", json=doc, timeout=60)
        assert created.status_code == 201, created.text
        sweep_id = created.json()["id"]
        killed_at = datetime.now()
        os.kill(holder, signal.SIGKILL)

        wait_for(lambda: len(_holders(server)) > 1, 60, "another process to take over")
        taken_at, new = _holders(server)[1]
        assert new != holder
        assert (taken_at - killed_at).total_seconds() < 2 * PERIOD, (taken_at, killed_at)

        def done() -> bool:
            got = httpx.get(f"{server.url}/api/v1/sweeps/{sweep_id}", timeout=30).json()
            assert got["status"] in ("queued", "running", "done"), got
            return bool(got["status"] == "done")

        wait_for(done, 240, "the sweep to finish after the kill", interval=0.5)
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]


def _engine_children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if ppid == pid and b"multiprocessing" in cmd and b"resource_tracker" not in cmd:
            found.append(int(stat.parent.name))
    return found


def test_embedded_engine_process_killed_mid_chunk_is_replaced(tmp_path: Path) -> None:
    """The in-process executor computes in a child process; SIGKILL it mid-sweep and
    another takes over (the lost chunk once its lease expires): the sweep finishes."""
    # two chunks of 32 runs: eager takes seconds for each (a chunk is running when killed)
    settings = dict(FAST, database_url=f"sqlite:///{tmp_path}/kill.db", chunk_runs=32,
                    embedded_process=True)
    server = LiveServer(settings, tmp_path / "serve.log").wait_ready()
    try:
        doc = spec("engine killed", steps=20000, beta2={"log1m": [0.01, 1.0], "num": 8})
        created = httpx.post(f"{server.url}/api/v1/sweeps", json=doc, timeout=60)
        assert created.status_code == 201, created.text
        sweep_id = created.json()["id"]
        child = wait_for(lambda: _engine_children(server.proc.pid), 60, "the engine process")
        wait_for(lambda: httpx.get(f"{server.url}/api/v1/sweeps/{sweep_id}", timeout=30)
                 .json()["chunks"].get("running"), 60, "a chunk to run")
        os.kill(child[0], signal.SIGKILL)

        def done() -> bool:
            got = httpx.get(f"{server.url}/api/v1/sweeps/{sweep_id}", timeout=30).json()
            assert got["status"] in ("queued", "running", "done"), got
            return bool(got["status"] == "done")

        wait_for(done, 240, "the sweep to finish after the kill", interval=0.5)
        assert set(_engine_children(server.proc.pid)) - set(child)  # a new one
    finally:
        server.stop()
    assert "the engine process died; starting another" in server.log()


def test_sqlite_is_served_by_one_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.services import ROOT, env_for

    env = env_for({"database_url": f"sqlite:///{tmp_path}/one.db"})
    done = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--workers", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "served by one process" in done.stdout + done.stderr


def test_stopping_the_server_hands_the_engine_process_chunk_back(tmp_path: Path) -> None:
    """SIGTERM to `serve` (and its process group): the engine process stops at its next
    step block and its chunk is queued again, unused; the next start finishes the sweep."""
    from sqlalchemy import select

    from api.db.models import Chunk
    from api.db.session import get_database

    db_url = f"sqlite:///{tmp_path}/stop.db"
    settings = dict(FAST, database_url=db_url, chunk_runs=32, lease_seconds=60.0,
                    embedded_process=True)  # two chunks, seconds each on eager
    server = LiveServer(settings, tmp_path / "serve.log").wait_ready()
    try:
        doc = spec("stopped", steps=40000, beta2={"log1m": [0.01, 1.0], "num": 8})
        sweep_id = httpx.post(f"{server.url}/api/v1/sweeps", json=doc, timeout=60).json()["id"]
        wait_for(lambda: httpx.get(f"{server.url}/api/v1/sweeps/{sweep_id}", timeout=30)
                 .json()["chunks"].get("running"), 60, "a chunk to run")
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]
    assert "leaked semaphore" not in server.log()
    with get_database(db_url).session(read_only=True) as session:
        rows = session.execute(select(Chunk.status, Chunk.attempts, Chunk.lease_token)).all()
    assert all(status != "running" and token is None for status, _, token in rows), rows

    again = LiveServer(settings, tmp_path / "again.log").wait_ready()
    try:
        wait_for(lambda: httpx.get(f"{again.url}/api/v1/sweeps/{sweep_id}", timeout=30)
                 .json()["status"] == "done", 240, "the sweep to finish after a restart",
                 interval=0.5)
    finally:
        again.stop()
