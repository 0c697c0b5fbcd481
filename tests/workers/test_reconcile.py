"""The reconciler after a database outage, and Postgres's statement timeout."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import text

from api.db.session import get_database
from api.services.sweeps import create_sweep
from api.settings import Settings
from experiments.spec import parse_spec
from tests.services import FAST, wait_for
from workers import reconcile

DOC = {"name": "outage", "problem": {"kind": "zhang2022", "n": 20},
       "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False}, "steps": 5,
       "grid": {"beta1": [0.0, 0.9], "beta2": [0.5, 0.99], "seed": [0, 1]}}


class Recorder:
    def __init__(self) -> None:
        self.sent: list[int] = []
        self.lock = threading.Lock()

    def enqueue(self, ids: Any, countdown: float = 0.0) -> list[int]:
        with self.lock:
            self.sent += list(ids)
        return []

    def broker_id(self) -> str | None:
        return None


def test_queued_chunks_are_sent_again_as_soon_as_the_database_is_back(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Messages sent while the database was down may have been dropped (a worker
    # gives up retrying); waiting requeue_after_seconds (120 s here) to resend
    # them would stall every sweep.
    settings = Settings(**{**FAST, "database_url": db_url, "chunk_runs": 2})
    with get_database(db_url).session() as s:
        _, ids = create_sweep(session=s, spec=parse_spec(DOC), settings=settings)
    real = reconcile.reconcile_once
    calls = []

    def flaky(**kw: Any) -> list[int]:
        calls.append(kw.get("requeue_after"))
        if len(calls) == 1:
            raise ConnectionError("database unreachable")
        return real(**kw)

    monkeypatch.setattr(reconcile, "reconcile_once", flaky)
    sent = Recorder()
    loop = reconcile.Reconciler(settings, sent)  # type: ignore[arg-type]
    loop.start()
    try:
        wait_for(lambda: sorted(sent.sent) == sorted(ids), 10, "chunks sent again")
    finally:
        loop.stop()
    assert calls[1] == 0.0


def test_postgres_connections_carry_a_statement_timeout(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("a Postgres setting")
    with get_database(db_url).session(read_only=True) as s:
        assert s.execute(text("SHOW statement_timeout")).scalar() == "2min"
