"""SQLite's log is checkpointed at quiet moments, or once large, by the server's
checkpointer: not in the commits that write it."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from api.db.checkpoint import AUTOCHECKPOINT_BYTES, WalCheckpointer, unbacked_bytes
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
    assert busy.checkpoint_if_due() is False
    assert os.path.getsize(path) == size_before

    quiet = WalCheckpointer(path, quiet=0.0)
    assert quiet.checkpoint_if_due() is True
    assert os.path.getsize(path) > 2 * len(payload)  # copied into the database file
    assert quiet.checkpoint_if_due() is False  # nothing new since
    with db.session(read_only=True) as s:
        assert s.execute(text("SELECT sum(length(data)) FROM blob")).scalar() == 2 * len(payload)
    db.dispose()


def test_a_log_written_without_pause_is_checkpointed_once_large(tmp_path: Path) -> None:
    """Never quiet (a long sweep), the log is copied by the checkpointer once busy_bytes
    of it are not in the database file, before SQLite's own checkpoint in a commit."""
    import sqlite3

    url = f"sqlite:///{tmp_path}/b.db"
    path = str(sqlite_path(url))
    db = Database(url)
    with db.session() as s:
        s.execute(text("CREATE TABLE blob (id INTEGER PRIMARY KEY, data BLOB)"))
    payload = os.urandom(SQLITE_PAGE_SIZE * 20)
    frame = SQLITE_PAGE_SIZE + 24
    checkpointer = WalCheckpointer(path, quiet=3600.0, busy_bytes=60 * frame)
    written, dues = [], []
    for i in range(6):
        with db.session() as s:
            s.execute(text("INSERT INTO blob (id, data) VALUES (:i, :d)"), {"i": i, "d": payload})
        written.append(unbacked_bytes(path))
        dues.append(checkpointer.checkpoint_if_due())
        assert dues[-1] is (written[-1] >= 60 * frame), (i, written)
        if dues[-1]:
            assert unbacked_bytes(path) == 0
    # each commit adds its pages (the blob's 20 and a few more) to what is not copied
    # yet; the third passes 60 pages and is copied, and the log starts again
    assert dues == [False, False, True, False, False, True], written
    assert 20 * frame <= written[0] < written[1] < written[2] and written[3] < written[2]
    # the header read is SQLite's own count: a checkpoint reports the same frames
    with db.session() as s:
        s.execute(text("INSERT INTO blob (id, data) VALUES (:i, :d)"), {"i": 9, "d": payload})
    before = unbacked_bytes(path)
    conn = sqlite3.connect(path, isolation_level=None)
    _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    conn.close()
    assert before == frames * frame and copied == frames and unbacked_bytes(path) == 0
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
