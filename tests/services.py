"""Real services for integration tests: a fresh Postgres schema, Redis, Celery workers.

Postgres: every test session works in its own schema of BETASCOPE_TEST_DATABASE_URL
(search_path set through the URL), created empty and dropped at exit, so
concurrent test runs never see each other. Redis: BETASCOPE_TEST_REDIS_URL
(db 15 by default) with a queue name unique to the session.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

PG_URL = os.environ.get(
    "BETASCOPE_TEST_DATABASE_URL",
    "postgresql+psycopg://postgres@127.0.0.1:5432/betascope_test",
)
REDIS_URL = os.environ.get("BETASCOPE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SESSION_TAG = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
ROOT = Path(__file__).resolve().parent.parent

# Timings short enough for tests, with the same invariants as production.
FAST = {
    "heartbeat_seconds": 0.2,
    "lease_seconds": 4.0,
    "reconcile_seconds": 0.5,
    "requeue_after_seconds": 120.0,
    "max_attempts": 2,
    "max_worker_losses": 2,
    "retry_backoff_seconds": 0.1,
    "max_body_bytes": 65536,
    "max_runs": 20000,
    "chunk_runs": 16,
    # Starlette's TestClient sends Host: testserver (loopback names are always served)
    "allowed_hosts": "testserver",
    # each in-process app would spawn its own engine process (and load torch there):
    # tests/api/test_processes.py, the load test and the browser tests run the default
    "embedded_process": False,
}


def postgres_ok() -> bool:
    try:
        import psycopg

        with psycopg.connect(_libpq(PG_URL), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def redis_ok() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping())
    except Exception:
        return False


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"-csearch_path={schema}"
    return urlunsplit(parts._replace(query=urlencode(query)))


_schemas: dict[str, str] = {}
_lock = threading.Lock()


def pg_schema_url(name: str = "main") -> str:
    """A schema created empty for this test session (dropped at exit)."""
    import psycopg

    with _lock:
        if name in _schemas:
            return _schemas[name]
        schema = f"bs_test_{SESSION_TAG}_{name}"
        with psycopg.connect(_libpq(PG_URL), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
        atexit.register(_drop_schema, schema)
        _schemas[name] = with_search_path(PG_URL, schema)
        return _schemas[name]


# the connections that hold a lock on anything in a schema, other than the asking one
_HOLDERS = ("SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND l.pid <> pg_backend_pid()")


def _drop_schema(schema: str) -> None:
    """Drop a session's schema at exit. A connection still inside a transaction on it
    is ended first: a request's session left open when its in-process app shut down
    once held the drop, and with it the whole test run, until it was killed by hand.
    Nothing else uses a session's schema."""
    import psycopg

    from api.db.session import forget_databases

    forget_databases()
    try:
        with psycopg.connect(_libpq(PG_URL), autocommit=True, connect_timeout=3) as conn:
            conn.execute("SET lock_timeout = '3s'")
            for _ in range(3):
                try:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                    return
                except psycopg.errors.LockNotAvailable:
                    for (pid,) in conn.execute(_HOLDERS, (schema,)).fetchall():
                        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    except Exception:
        pass


def env_for(settings: dict[str, Any]) -> dict[str, str]:
    """BETASCOPE_* environment equivalent to Settings(**settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BETASCOPE_")}
    env["BETASCOPE_ENGINE_WARMUP"] = "false"  # unless asked for (tests/conftest.py)
    for key, value in settings.items():
        if value is not None:
            env[f"BETASCOPE_{key.upper()}"] = str(value)
    return env


class CeleryWorker:
    """`betascope worker --pool solo` in a subprocess, started and stopped by the test."""

    def __init__(self, settings: dict[str, Any], log_path: Path):
        self.settings, self.log_path = settings, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> CeleryWorker:
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--pool", "solo", "--loglevel", "INFO"],
            cwd=ROOT, env=env_for(self.settings), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{self.tail()}")
            if b"ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"celery worker not ready after {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-chunk, as on an out-of-memory kill."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()


def finished_at(sweep: dict[str, Any]) -> float:
    """A sweep's finished_at (as the API sends it: UTC, maybe without its zone) as a
    Unix time, for benchmarks timing the service on this machine's clock."""
    from datetime import UTC, datetime

    at = datetime.fromisoformat(sweep["finished_at"])
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; return its value or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
