"""A worker killed mid-chunk (SIGKILL, as by the OOM killer): the lease expires, the
reconciler re-enqueues the chunk, and another worker finishes the sweep."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

from tests.api.helpers import get, spec, submit, wait_status
from tests.conftest import need
from tests.services import (
    FAST,
    REDIS_URL,
    SESSION_TAG,
    CeleryWorker,
    pg_schema_url,
    postgres_ok,
    redis_ok,
)

pytestmark = pytest.mark.services
warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")


def test_a_killed_workers_chunk_is_finished_by_another(tmp_path: Path) -> None:
    need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
    need(redis_ok(), "Redis (BETASCOPE_TEST_REDIS_URL)")
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    settings = dict(FAST, database_url=pg_schema_url("lost"), broker_url=REDIS_URL,
                    queue=f"betascope-lost-{SESSION_TAG}", lease_seconds=3.0)
    first = CeleryWorker(settings, tmp_path / "first.log").start()
    second = CeleryWorker(settings, tmp_path / "second.log")
    try:
        with TestClient(create_app(Settings(**settings))) as client:
            sweep = submit(client, spec("killed", steps=60_000, beta1=[0.0], seed=[0]))
            deadline = time.monotonic() + 60
            while get(client, sweep["id"])["progress"] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert get(client, sweep["id"])["status"] == "running"
            first.kill()
            second.start()
            done = wait_status(client, sweep["id"], "done", "failed", timeout=120)
            assert done["status"] == "done", (done, second.tail())
            assert done["done_runs"] == done["total_runs"] == 8
            from sqlalchemy import select

            from api.db.models import Chunk
            from api.db.session import get_database

            with get_database(settings["database_url"]).session(read_only=True) as s:
                (chunk,) = s.scalars(select(Chunk).where(Chunk.sweep_id == sweep["id"]))
            assert chunk.attempts == 2 and chunk.status == "done"
    finally:
        first.kill()
        second.stop()
