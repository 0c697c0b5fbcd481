"""Postgres stops in the middle of a sweep and comes back later.

While it is down the API must say so quickly and clearly: 503 with a JSON
body on /readyz, on reads and on writes (never a 500, never a hang). The
worker's heartbeats and its chunk's final write fail meanwhile; the task is
retried, the lease (shorter than the outage) runs out and the reconciler
queues the chunk again. Once Postgres is back the sweep finishes with exactly
one result per run. A server that accepts connections and never answers must
not hang the API either.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import get, spec, submit
from tests.faults.servers import free_port
from tests.faults.stack import Process, Stack
from tests.services import env_for, wait_for

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]

OUTAGE = 8.0  # seconds; longer than the lease, so the running chunk's lease expires
ANSWER_WITHIN = 20.0  # every request during the outage is answered within this (s)


def _timed(call: Callable[[], httpx.Response]) -> httpx.Response:
    t0 = time.monotonic()
    resp = call()
    took = time.monotonic() - t0
    assert took < ANSWER_WITHIN, f"{resp.request.method} {resp.request.url} took {took:.1f} s"
    return resp


def _unavailable(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 503, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    return resp.json()


def test_a_database_outage_is_503_and_loses_nothing(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    client = stack.start_api()
    worker = stack.start_worker()
    sweep = submit(client, spec("postgres outage", steps=40_000, beta1=[0.0], batch_size=[1],
                                seed=[0, 1]))
    sweep_id = sweep["id"]
    assert sweep["n_chunks"] == 4

    stack.wait_mid_sweep(sweep_id)
    assert stack.pg is not None
    stack.pg.stop()
    down_at = time.monotonic()
    try:
        ready = _unavailable(_timed(lambda: client.get("/api/v1/readyz")))
        assert ready["status"] == "unavailable"
        assert ready["checks"]["database"].startswith("unreachable"), ready
        assert ready["checks"]["broker"] == "ok", ready
        created = _unavailable(_timed(lambda: client.post(
            "/api/v1/sweeps", json=spec("during the outage", steps=100))))
        assert "database" in created["detail"].lower(), created
        read = _unavailable(_timed(lambda: client.get(f"/api/v1/sweeps/{sweep_id}")))
        assert "database" in read["detail"].lower(), read
        assert client.get("/api/v1/healthz").status_code == 200  # alive, only not ready
        # down for a lease at least, and until the worker has had to retry: its task
        # (Celery's retry), or the store of a chunk it computed (the store thread's
        # backoff), whichever the outage caught it in
        stack.wait(lambda: time.monotonic() - down_at > OUTAGE and any(
            mark in worker.log() for mark in (b"retry: Retry in", b"storing failed, retrying")),
                   120, "the worker to retry during the outage")
    finally:
        stack.pg.start()

    stack.wait(lambda: client.get("/api/v1/readyz").status_code == 200, 60,
               "the API to be ready again", interval=0.2)
    done = stack.wait_finished(sweep_id, timeout=240)
    assert done["status"] == "done", done
    assert done["done_runs"] == done["total_runs"] == 8
    stack.assert_one_result_per_run(done)
    assert worker.alive(), "the worker must ride out the outage, not exit"
    counts = stack.stored_counts()
    assert counts == {c["id"]: 1 for c in stack.chunks(sweep_id)}, counts
    # and the service takes new work again
    after = submit(client, spec("after the outage", steps=100, beta1=[0.0], batch_size=[1],
                                seed=[0]))
    assert stack.wait_finished(after["id"], timeout=120)["status"] == "done"
    assert get(client, sweep_id)["status"] == "done"


def test_a_database_that_never_answers_is_503_not_a_hang(tmp_path: Path) -> None:
    """A server that accepts the TCP connection and then says nothing (frozen host,
    half-open network path): the API must give up connecting in bounded time."""
    port = free_port()
    with socket.create_server(("127.0.0.1", port), backlog=64):  # never accept()s
        env = {**env_for({"database_url": f"postgresql://nobody@127.0.0.1:{port}/silent",
                          "auto_upgrade": False}),
               "PYTHONUNBUFFERED": "1"}
        api_port = free_port()
        api = Process([sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app",
                       "--port", str(api_port)], env, tmp_path / "api.log")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as client:
                wait_for(lambda: _answers(client), 60, "the API server to answer")
                ready = _unavailable(_timed(lambda: client.get("/api/v1/readyz")))
                assert ready["checks"]["database"].startswith("unreachable"), ready
                created = _unavailable(_timed(lambda: client.post(
                    "/api/v1/sweeps", json=spec("never answered", steps=100))))
                assert "database" in created["detail"], created
        finally:
            api.stop()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/api/v1/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
