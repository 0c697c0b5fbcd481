"""Limits on sweep creation: 429 with Retry-After, declared in OpenAPI, nothing accepted lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api import limits
from tests.api.helpers import spec, submit
from tests.conftest import need
from tests.services import FAST, REDIS_URL, SESSION_TAG, pg_schema_url, postgres_ok, redis_ok

pytestmark = pytest.mark.services


@pytest.fixture
def idle_queue() -> Iterator[Any]:
    """Postgres + a broker queue no worker reads: accepted chunks stay queued."""
    need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
    need(redis_ok(), "Redis (BETASCOPE_TEST_REDIS_URL)")
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    settings = Settings(**{**FAST, "database_url": pg_schema_url("limits"),
                           "broker_url": REDIS_URL, "queue": f"betascope-idle-{SESSION_TAG}",
                           "max_queued_run_steps": 32 * 100 + 10, "max_concurrent_creates": 1})
    with TestClient(create_app(settings)) as client:
        yield client


def _too_many(resp: Any) -> None:
    assert resp.status_code == 429, resp.text
    assert int(resp.headers["retry-after"]) >= 1
    assert "BETASCOPE_" in resp.json()["detail"]


def test_a_full_queue_refuses_new_sweeps_until_it_drains(idle_queue: Any) -> None:
    client = idle_queue
    doc = spec("limits", steps=100)  # 32 runs x 100 steps: alone it fits
    first = submit(client, doc)
    _too_many(client.post("/api/v1/sweeps", json=spec("limits 2", steps=100)))
    # what was accepted stays queued, with every chunk
    got = client.get(f"/api/v1/sweeps/{first['id']}").json()
    assert got["status"] == "queued" and got["chunks"] == {"queued": first["n_chunks"]}
    assert client.post(f"/api/v1/sweeps/{first['id']}/cancel").status_code == 200
    big = submit(client, spec("limits alone", steps=5000))  # over the bound, but alone
    _too_many(client.post("/api/v1/sweeps", json=spec("limits 3", steps=1)))
    client.post(f"/api/v1/sweeps/{big['id']}/cancel")


def test_creations_beyond_the_concurrent_bound_get_429(idle_queue: Any) -> None:
    client = idle_queue
    settings = client.app.state.settings
    with limits.creation_slot(settings):  # another creation is under way
        _too_many(client.post("/api/v1/sweeps", json=spec("busy", steps=1)))
    made = submit(client, spec("not busy", steps=1))
    client.post(f"/api/v1/sweeps/{made['id']}/cancel")


def test_429_is_declared_with_retry_after(idle_queue: Any) -> None:
    doc = idle_queue.get("/openapi.json").json()
    declared = doc["paths"]["/api/v1/sweeps"]["post"]["responses"]["429"]
    assert "Retry-After" in declared["headers"]
