"""Engines and sessions: one `Database` per URL per process, and `session_scope()`.

SQLite (embedded mode) gets WAL, a busy timeout and `BEGIN IMMEDIATE` for
sessions that may write: a deferred transaction that reads and then writes can
fail outright when another connection committed in between, while an immediate
one simply waits its turn. Read-only sessions stay deferred, so a long export
never blocks the executor's writes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from api.db.checkpoint import AUTOCHECKPOINT_BYTES, JOURNAL_SIZE_LIMIT
from api.settings import Settings, get_settings

STATEMENT_TIMEOUT_MS = 120_000
# SQLite's page size for a new database (one that has pages keeps its own). A chunk's
# records are megabytes, stored as chains of overflow pages: with 64 KiB pages rather
# than the default 4 KiB, a 9 MB record is written in 7 ms rather than 20 and read
# back twice as fast (docs/storage.md)
SQLITE_PAGE_SIZE = 65536
CONNECT_TIMEOUT = 10  # seconds to establish a Postgres connection
_lock = threading.Lock()
_databases: dict[str, Database] = {}


class Database:
    """An engine plus session factories for one database URL."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = _make_engine(url)
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        reader = self.engine.execution_options(betascope_begin="DEFERRED")
        self._read = sessionmaker(reader, expire_on_commit=False)

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        """Commit on success, roll back on error, always close."""
        session = (self._read if read_only else self._write)()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        # libpq waits forever for a server that accepts the connection and never
        # answers (frozen host, half-open path); give up, so callers can answer 503
        # and retry. A connect_timeout in the URL wins.
        # A statement that runs past STATEMENT_TIMEOUT_MS (a lock never released, a
        # server stalled on I/O) is ended by the server, so neither a request nor a
        # worker waits forever; the largest write, one chunk's records, takes well
        # under a second. A statement_timeout in the URL's options wins.
        query = make_url(url).query
        args: dict[str, Any] = {}
        if "connect_timeout" not in query:
            args["connect_timeout"] = CONNECT_TIMEOUT
        options = str(query.get("options", ""))
        if "statement_timeout" not in options:  # e.g. beside a search_path in the URL
            args["options"] = f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                             connect_args=args)
    # as many pooled connections as the thread pool has threads (40): under load an
    # overflow connection would be opened, set up and closed for every request
    memory = url.startswith("sqlite:///:memory:") or url == "sqlite://"
    pool: dict[str, Any] = {} if memory else {"pool_size": 40, "max_overflow": 10}
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60},
                           **pool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module doc)
        cur = dbapi_conn.cursor()
        if not memory:
            new_page_size(cur)
            cur.execute("PRAGMA journal_mode=WAL")
            # checkpoints at quiet moments, not in a chunk's commit (api.db.checkpoint)
            page = cur.execute("PRAGMA page_size").fetchone()[0]
            cur.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_BYTES // page}")
            cur.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("betascope_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def new_page_size(cursor: Any) -> None:
    """SQLITE_PAGE_SIZE for a database with no pages yet (before its journal mode is
    set and its first table created); a no-op on any other."""
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")


def libpq_conninfo(url: str) -> str:
    """The database URL as psycopg's own connections take it (no SQLAlchemy driver)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_path(url: str) -> str | None:
    """The database file of an SQLite URL; None for Postgres and in-memory databases."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return str(parsed.database)


def get_database(url: str | None = None) -> Database:
    """The process-wide Database for `url` (default: the configured one)."""
    url = url or get_settings().database_url
    with _lock:
        db = _databases.get(url)
        if db is None:
            db = _databases[url] = Database(url)
        return db


def forget_databases() -> None:
    """Drop every cached engine without closing shared sockets (after a fork)."""
    with _lock:
        for db in _databases.values():
            db.engine.dispose(close=False)
        _databases.clear()


@contextmanager
def session_scope(
    settings: Settings | None = None, *, read_only: bool = False
) -> Iterator[Session]:
    """A session on the configured database that commits, or rolls back, and closes."""
    db = get_database((settings or get_settings()).database_url)
    with db.session(read_only=read_only) as session:
        yield session
