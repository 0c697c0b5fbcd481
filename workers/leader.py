"""Which API process runs the reconciler: exactly one at a time, taken over when it dies.

On Postgres the role is a session-level advisory lock (pg_try_advisory_lock)
held on a connection of its own for the process's life: the server releases it
the moment that connection ends, whether the process exited, was killed with
SIGKILL, or lost its network, and the next process that asks gets it. Every
process asks once a reconcile period, so the role moves within one period (two
at worst) of its holder's death. The lock's key is derived from the database and
schema, so separate installations sharing one Postgres server never contend.
On SQLite (one process, by design) the process always holds the role.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from api.db.session import CONNECT_TIMEOUT

log = logging.getLogger("betascope.leader")


class Leadership:
    """held() says whether this process runs the reconciler now (and asks for the role)."""

    def __init__(self, database_url: str):
        self.url = database_url
        self.is_sqlite = database_url.startswith("sqlite")
        self._engine: Any = None
        self._conn: Any = None
        self._held = self.is_sqlite

    def held(self) -> bool:
        if self.is_sqlite:
            return True
        if self._held:
            try:  # the lock lives as long as this connection does
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception as exc:
                log.warning("reconciler lock connection lost (pid %d): %r", os.getpid(), exc)
                self._drop()
        try:
            if self._conn is None:
                if self._engine is None:
                    # a host that never answers must not hang the reconciler thread
                    args = ({} if "connect_timeout" in str(make_url(self.url).query)
                            else {"connect_timeout": CONNECT_TIMEOUT})
                    self._engine = create_engine(self.url, poolclass=NullPool,
                                                 connect_args=args)
                self._conn = self._engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT")
            key = self._conn.execute(text(
                "SELECT current_database() || '/' || coalesce(current_schema(), '')")).scalar()
            got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                     {"k": lock_key(str(key))}).scalar()
        except Exception as exc:
            log.warning("cannot ask for the reconciler lock (pid %d): %r", os.getpid(), exc)
            self._drop()
            return False
        if got:
            self._held = True
            log.info("reconciler: this process (pid %d) now runs the reconciler", os.getpid())
        return bool(got)

    def release(self) -> None:
        if self._held and not self.is_sqlite:
            log.info("reconciler: pid %d hands the reconciler back", os.getpid())
        self._drop()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()  # ends the session, and so releases the lock
            except Exception:
                pass
        self._conn, self._held = None, self.is_sqlite


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for this database and schema."""
    digest = hashlib.blake2b(f"betascope reconciler {name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
