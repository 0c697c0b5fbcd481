"""SQLite's log is checkpointed at quiet moments, not in the commits that write it."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from api.db.checkpoint import AUTOCHECKPOINT_BYTES, WalCheckpointer
from api.db.session import SQLITE_PAGE_SIZE, Database, sqlite_path


def test_commits_leave_the_log_to_the_checkpointer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    path = sqlite_path(url)
    assert path == f"{tmp_path}/c.db"
    db = Database(url)
    with db.session() as s:
        s.execute(text("CREATE TABLE blob (id INTEGER PRIMARY KEY, data BLOB)"))
    payload = os.urandom(SQLITE_PAGE_SIZE * 1100)  # past SQLite's default of 1,000 pages
    for i in range(2):
        with db.session() as s:
            s.execute(text("INSERT INTO blob (id, data) VALUES (:i, :d)"), {"i": i, "d": payload})
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == SQLITE_PAGE_SIZE
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() \
            == AUTOCHECKPOINT_BYTES // SQLITE_PAGE_SIZE
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


def test_page_size_of_new_and_existing_databases(tmp_path: Path) -> None:
    """A database the migrations create gets SQLITE_PAGE_SIZE; one made before with
    SQLite's 4 KiB pages keeps them, and its log is checkpointed by the same bytes."""
    import sqlite3

    from api.db.migrate import upgrade

    new = f"sqlite:///{tmp_path}/new.db"
    upgrade(new)
    old_path = tmp_path / "old.db"
    sqlite3.connect(old_path).execute("CREATE TABLE t (x)").connection.close()
    for url, page in ((new, SQLITE_PAGE_SIZE), (f"sqlite:///{old_path}", 4096)):
        db = Database(url)
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar() == page, url
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() \
                == AUTOCHECKPOINT_BYTES // page
        db.dispose()
    upgrade(f"sqlite:///{old_path}")  # an existing database upgrades as before
