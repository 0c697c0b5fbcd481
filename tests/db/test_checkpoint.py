"""SQLite's log is checkpointed at quiet moments, not in the commits that write it."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from api.db.checkpoint import AUTOCHECKPOINT_PAGES, WalCheckpointer
from api.db.session import Database, sqlite_path


def test_commits_leave_the_log_to_the_checkpointer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    path = sqlite_path(url)
    assert path == f"{tmp_path}/c.db"
    db = Database(url)
    with db.session() as s:
        s.execute(text("CREATE TABLE blob (id INTEGER PRIMARY KEY, data BLOB)"))
    payload = os.urandom(8 << 20)  # 2,000 pages: twice what SQLite checkpoints at by default
    for i in range(2):
        with db.session() as s:
            s.execute(text("INSERT INTO blob (id, data) VALUES (:i, :d)"), {"i": i, "d": payload})
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == AUTOCHECKPOINT_PAGES
    size_before = os.path.getsize(path)
    assert size_before < len(payload)  # both blobs are still only in the log

    busy = WalCheckpointer(path, quiet=3600.0)  # written just now: not quiet yet
    assert busy.checkpoint_if_quiet() is False
    assert os.path.getsize(path) == size_before

    quiet = WalCheckpointer(path, quiet=0.0)
    assert quiet.checkpoint_if_quiet() is True
    assert os.path.getsize(path) > 2 * len(payload)  # copied into the database file
    assert quiet.checkpoint_if_quiet() is False  # nothing new since
    with db.session(read_only=True) as s:
        assert s.execute(text("SELECT sum(length(data)) FROM blob")).scalar() == 2 * len(payload)
    db.dispose()


def test_memory_databases_have_no_file_to_checkpoint() -> None:
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql+psycopg://u@h/db") is None
