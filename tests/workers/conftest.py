"""Chunk tests run process_chunk in this process against Postgres and SQLite."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.conftest import need
from tests.services import pg_schema_url, postgres_ok

_schemas = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    from api.db.migrate import upgrade

    if request.param == "postgres":
        need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
        url = pg_schema_url(f"workers{next(_schemas)}")
    else:
        url = f"sqlite:///{tmp_path}/workers.db"
    upgrade(url)
    return url
