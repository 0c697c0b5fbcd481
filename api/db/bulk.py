"""Bulk writes: plain inserts, insert-or-ignore and upserts, keyed by primary key.

Postgres gets COPY (into a temporary staging table when rows may conflict,
followed by one INSERT ... SELECT ... ON CONFLICT), which moves 10^5 rows in
about a second; SQLite and small batches get one executemany with ON
CONFLICT. Either way the conflict rule is the same, so a chunk written twice
leaves one row per key. Rows are tuples in the order of `columns`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Table, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

COPY_MIN_ROWS = 200
_stage_ids = itertools.count()
Rows = Sequence[Sequence[Any]]


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: Rows) -> None:
    """INSERT every row (no conflicts expected)."""
    if not rows:
        return
    if _is_postgres(session) and len(rows) >= COPY_MIN_ROWS:
        _copy(session, table.name, table, columns, rows)
    else:
        session.execute(insert(table), _dicts(columns, rows))


def insert_ignore(
    session: Session, table: Table, columns: Sequence[str], rows: Rows
) -> set[Any]:
    """INSERT rows whose primary key is new, leave the others; return the new keys
    (single-column primary keys only)."""
    return _merge(session, table, columns, rows, update=(), returning=True)


def upsert(
    session: Session, table: Table, columns: Sequence[str], rows: Rows, update: Sequence[str]
) -> None:
    """INSERT rows, or UPDATE the `update` columns where the primary key exists."""
    keys = [columns.index(c.name) for c in table.primary_key.columns]
    last = {tuple(row[k] for k in keys): row for row in rows}  # one row per key: last wins
    _merge(session, table, columns, list(last.values()), update=tuple(update), returning=False)


def _merge(
    session: Session, table: Table, columns: Sequence[str], rows: Rows,
    update: tuple[str, ...], returning: bool,
) -> set[Any]:
    if not rows:
        return set()
    keys = [c.name for c in table.primary_key.columns]
    postgres = _is_postgres(session)
    if postgres and len(rows) >= COPY_MIN_ROWS:
        stage = f"_stage_{table.name}_{next(_stage_ids)}"
        session.execute(text(f"CREATE TEMP TABLE {stage} (LIKE {table.name}) ON COMMIT DROP"))
        _copy(session, stage, table, columns, rows)
        cols = ", ".join(columns)
        conflict = (
            "DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in update)
            if update else "DO NOTHING"
        )
        result = session.execute(text(
            f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} "
            f"ON CONFLICT ({', '.join(keys)}) {conflict}"
            + (f" RETURNING {keys[0]}" if returning else "")
        ))
        new = {row[0] for row in result} if returning else set()
        session.execute(text(f"DROP TABLE {stage}"))
        return new
    stmt = (pg_insert if postgres else sqlite_insert)(table)
    if update:
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    if returning:
        stmt = stmt.returning(table.c[keys[0]])
        return set(session.scalars(stmt, _dicts(columns, rows)))
    session.execute(stmt, _dicts(columns, rows))
    return set()


def _dicts(columns: Sequence[str], rows: Rows) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _copy(
    session: Session, target: str, table: Table, columns: Sequence[str], rows: Rows
) -> None:
    json_at = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(
        f"COPY {target} ({', '.join(columns)}) FROM STDIN"
    ) as copy:
        if not json_at:
            for row in rows:
                copy.write_row(row)
            return
        for row in rows:
            row = list(row)
            for i in json_at:
                if row[i] is not None:
                    row[i] = json.dumps(row[i], allow_nan=False)
            copy.write_row(row)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
