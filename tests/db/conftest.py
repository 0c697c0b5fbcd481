"""Database tests run on Postgres and on SQLite."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.conftest import need
from tests.services import pg_schema_url, postgres_ok

_schemas = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (a fresh Postgres schema or a new SQLite file)."""
    if request.param == "postgres":
        need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
        return pg_schema_url(f"db{next(_schemas)}")
    return f"sqlite:///{tmp_path}/db.sqlite"


@pytest.fixture
def db_url(empty_url: str) -> str:
    """A database at the latest schema."""
    from api.db.migrate import upgrade

    upgrade(empty_url)
    return empty_url
