"""Models and migrations agree, on Postgres and SQLite, and migrations revert."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from api.db.migrate import current, downgrade, head, upgrade
from api.db.models import Base


def _diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrations_match_the_models(empty_url: str) -> None:
    upgrade(empty_url)
    assert current(empty_url) == head() == "20261122_chunk_failures"
    assert _diff(empty_url) == []
    assert _tables(empty_url) == {"sweep", "run", "chunk", "sweep_run"}


def test_migrations_revert_and_reapply(empty_url: str) -> None:
    upgrade(empty_url)
    downgrade(empty_url, "base")
    assert _tables(empty_url) == set()
    assert current(empty_url) is None
    upgrade(empty_url)
    assert _diff(empty_url) == []


def test_chunk_failures_migration_reverts_to_the_initial_schema(empty_url: str) -> None:
    upgrade(empty_url)
    downgrade(empty_url, "20261122_initial")
    engine = create_engine(empty_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("chunk")}
    finally:
        engine.dispose()
    assert "failures" not in columns and "attempts" in columns
    upgrade(empty_url)
    assert _diff(empty_url) == []


def test_constraints_and_indexes_are_named() -> None:
    names = []
    for table in Base.metadata.sorted_tables:
        names += [c.name for c in table.constraints] + [i.name for i in table.indexes]
    assert all(isinstance(n, str) and n for n in names)
    assert "ix_sweep_run_run_key" in names and "ck_run_final_loss_kind" in names
