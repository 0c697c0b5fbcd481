"""A test session's Postgres schema is dropped at exit even when a connection of the
session is still inside a transaction on it (tests/services.py)."""

from __future__ import annotations

import threading
import uuid

import pytest

from tests.conftest import need
from tests.services import PG_URL, _drop_schema, _libpq, postgres_ok

pytestmark = pytest.mark.services


def test_a_schema_held_by_an_open_transaction_is_still_dropped() -> None:
    need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
    import psycopg

    schema = f"bs_test_held_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(PG_URL), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        admin.execute(f'CREATE TABLE "{schema}".sweep (id integer primary key)')
    # what a request's session cut off mid-teardown leaves: idle in a transaction
    # that read the table (it holds a lock the drop must wait for)
    held = psycopg.connect(_libpq(PG_URL))
    held.execute(f'SELECT * FROM "{schema}".sweep')
    try:
        dropper = threading.Thread(target=_drop_schema, args=(schema,), daemon=True)
        dropper.start()
        dropper.join(30)
        assert not dropper.is_alive(), "the drop waited on the open transaction"
        with psycopg.connect(_libpq(PG_URL), autocommit=True) as admin:
            left = admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                 (schema,)).fetchall()
        assert left == []
    finally:
        try:
            held.close()
        except psycopg.Error:
            pass
