"""Limits that keep one client from hurting the others: 429 with Retry-After, never a timeout.

Two bounds, both on sweep creation (reads are never limited here):

- BETASCOPE_MAX_CONCURRENT_CREATES: creations being handled at once by one API
  process (parsing, the containment search, inserting chunks); one more is
  answered 429 at once instead of queueing behind them.
- BETASCOPE_MAX_QUEUED_RUN_STEPS: optimizer steps (runs x steps) still to compute
  over the server's queued and running chunks. A sweep that would take the
  queue past it is refused until the queue drains; a sweep alone in an empty
  queue is always accepted (BETASCOPE_MAX_RUNS bounds it), so nothing is ever
  refused forever. What was accepted is never dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.db.models import Chunk, Sweep
from api.db.store import spec_of
from api.settings import Settings
from experiments.spec import SweepSpec

CREATES_RETRY_AFTER = 2  # seconds: a creation takes well under one
QUEUE_RETRY_AFTER = 30

_gates: dict[int, threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


def too_many(detail: str, retry_after: int) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=detail,
                         headers={"Retry-After": str(retry_after)})


@contextmanager
def creation_slot(settings: Settings) -> Iterator[None]:
    """One of this process's max_concurrent_creates slots, or 429 when all are taken."""
    with _gates_lock:
        gate = _gates.setdefault(id(settings), threading.BoundedSemaphore(
            settings.max_concurrent_creates))
    if not gate.acquire(blocking=False):
        raise too_many(f"more than {settings.max_concurrent_creates} sweep creations at once "
                       "(BETASCOPE_MAX_CONCURRENT_CREATES); try again shortly",
                       CREATES_RETRY_AFTER)
    try:
        yield
    finally:
        gate.release()


def queued_run_steps(session: Session) -> int:
    """Optimizer steps still to compute over every queued or running chunk."""
    pending = (select(Chunk.sweep_id, func.sum(Chunk.n_compute).label("runs"))
               .where(Chunk.status.in_(("queued", "running")))
               .group_by(Chunk.sweep_id).subquery())
    rows = session.execute(
        select(Sweep.id, Sweep.created_at, Sweep.spec, pending.c.runs)
        .join(pending, pending.c.sweep_id == Sweep.id)
    ).all()
    return sum(int(n) * spec_of(i, at, doc).steps for i, at, doc, n in rows)


def check_queue(session: Session, settings: Settings, spec: SweepSpec) -> None:
    """429 when this sweep would take the queue past max_queued_run_steps."""
    cap = settings.max_queued_run_steps
    if cap is None:
        return
    queued = queued_run_steps(session)
    new = spec.total_runs() * spec.steps
    if queued > 0 and queued + new > cap:
        raise too_many(f"the queue holds {queued} run-steps and this sweep adds {new}, over "
                       f"BETASCOPE_MAX_QUEUED_RUN_STEPS={cap}; try again when it drains",
                       QUEUE_RETRY_AFTER)
