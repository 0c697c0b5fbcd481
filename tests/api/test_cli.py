"""The service commands as a user runs them: serve, submit --wait, export, db upgrade."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from api.db.migrate import head
from tests.api.helpers import spec
from tests.services import ROOT, env_for, wait_for

pytestmark = pytest.mark.services


def _betascope(*args: str, env: dict[str, str], timeout: float = 180
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """`betascope serve` on a free port, on the embedded default (SQLite, in-process)."""
    tmp = tmp_path_factory.mktemp("serve")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = env_for({"database_url": f"sqlite:///{tmp}/serve.db", "port": port,
                   "chunk_runs": 8, "heartbeat_seconds": 0.2})
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/api/v1/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None  # died: stop waiting, fail below

    wait_for(up, 60, "betascope serve to answer")
    assert proc.poll() is None, (tmp / "serve.log").read_text()
    yield url, env
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_submit_wait_and_export(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = server
    doc = spec("cli submit", steps=100)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    done = _betascope("submit", str(path), "--wait", "--url", url, env=env)
    assert done.returncode == 0, done.stderr
    assert "sweep 1: 32 runs, 0 cached" in done.stdout and "done, 32 of 32 runs" in done.stdout
    # before it submits: the run-steps and a duration measured here
    lines = done.stdout.splitlines()
    assert lines[0] == "32 runs x 100 steps = 3.2e+03 run-steps", done.stdout
    assert lines[1].startswith("estimated duration at this machine's speed: "), done.stdout

    out = tmp_path / "runs.csv"
    exported = _betascope("export", "1", "--out", str(out), "--url", url, env=env)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.reader(out.open()))
    assert rows[0][:3] == ["run_key", "beta1", "beta2"] and len(rows) == 33
    cells = tmp_path / "cells.csv"
    assert _betascope("export", "1", "--out", str(cells), "--level", "cells", "--url", url,
                      env=env).returncode == 0
    assert len(list(csv.reader(cells.open()))) == 17
    # a .parquet file gets Parquet (it once got CSV text under that name)
    for level, n in (("runs", 32), ("cells", 16)):
        table = tmp_path / f"{level}.parquet"
        assert _betascope("export", "1", "--out", str(table), "--level", level, "--url", url,
                          env=env).returncode == 0
        assert pq.read_table(table).num_rows == n

    again = _betascope("submit", str(path), "--url", url, env=env)
    assert again.returncode == 0 and "32 cached, done" in again.stdout


def test_submit_warns_above_a_day_before_sending(server: tuple[str, dict[str, str]],
                                                 tmp_path: Path) -> None:
    url, env = server
    doc = spec("huge", steps=10_000_000)
    # 200,000,000 runs: over the server's cap, so the server refuses it after the warning;
    # 2e15 run-steps are over a day below 2.3e10 run-steps/s (the fused kernel on two
    # cores warms up at 2-2.5e9: 2e14 run-steps, 22-28 hours, sat on the line)
    doc["grid"].update(beta1={"start": 0.0, "stop": 0.99, "num": 1000},
                       beta2={"log1m": [1.0e-4, 1.0], "num": 1000}, batch_size=[1, 2],
                       clip=[{"mode": "none"}], seed=list(range(100)))
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(doc))
    result = _betascope("submit", str(path), "--url", url, env=env)
    assert "200000000 runs x 10000000 steps = 2e+15 run-steps" in result.stdout, result.stdout
    assert "warning: this sweep would take about" in result.stderr
    assert "days at this machine's speed" in result.stderr
    assert result.returncode == 2 and "413" in result.stderr  # and the server's answer
    quiet = _betascope("submit", str(path), "--no-estimate", "--url", url, env=env)
    assert "run-steps" not in quiet.stdout and "warning" not in quiet.stderr


def test_submit_reports_field_errors(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = server
    bad = spec()
    bad["grid"]["beta2"] = [1.5]
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(bad))
    result = _betascope("submit", str(path), "--url", url, env=env)
    assert result.returncode == 2 and "grid.beta2" in result.stderr
    missing = _betascope("export", "999", "--out", str(tmp_path / "x.csv"), "--url", url, env=env)
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_db_upgrade_and_worker_without_broker(tmp_path: Path) -> None:
    env = env_for({"database_url": f"sqlite:///{tmp_path}/up.db"})
    result = _betascope("db", "upgrade", env=env)
    assert result.returncode == 0 and f"at revision {head()}" in result.stdout
    worker = _betascope("worker", env=env)
    assert worker.returncode == 2 and "BETASCOPE_BROKER_URL" in worker.stderr
