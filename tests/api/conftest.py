"""API tests run twice: on the embedded default (a SQLite file and the in-process
executor) and on Postgres + Redis with a real `betascope worker` process."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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

warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")


@dataclass
class Backend:
    name: str
    settings: dict[str, Any]
    worker: CeleryWorker | None = None


@pytest.fixture(scope="session")
def fault_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """While this file exists, sweeps whose name contains its text fail in chunk 0."""
    return tmp_path_factory.mktemp("fault") / "fault"


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory: pytest.TempPathFactory, fault_file: Path
             ) -> Iterator[Backend]:
    need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
    need(redis_ok(), "Redis (BETASCOPE_TEST_REDIS_URL)")
    from api.db.migrate import upgrade

    settings = dict(FAST, database_url=pg_schema_url("api"), broker_url=REDIS_URL,
                    queue=f"betascope-test-{SESSION_TAG}", fault_inject=str(fault_file))
    upgrade(settings["database_url"])
    worker = CeleryWorker(settings, tmp_path_factory.mktemp("worker") / "worker.log")
    worker.start()
    yield Backend("postgres", settings, worker)
    worker.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, fault_file: Path) -> Backend:
    if request.param == "postgres":
        return request.getfixturevalue("pg_stack")
    return Backend("sqlite", dict(FAST, database_url=f"sqlite:///{tmp_path}/betascope.db",
                                  fault_inject=str(fault_file)))


@pytest.fixture
def make_client(backend: Backend) -> Iterator[Callable[..., Any]]:
    """TestClient factory on the backend, with per-test setting overrides."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    clients: list[Any] = []

    def make(**overrides: Any) -> Any:
        settings = Settings(**{**backend.settings, **overrides})
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()
