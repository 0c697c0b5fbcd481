"""Chunk state: claim with a lease, heartbeat, finish, fail, requeue.

Every transition is one conditional UPDATE, so two workers (or a worker and
the reconciler) racing for a chunk cannot both win. The lease token is the
task's id: a retry of the same task may re-claim its own chunk at once, any
other claimant waits until the lease has expired. Helpers named
`*_without_commit` run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, text, update
from sqlalchemy.orm import Session

from api.db.models import Chunk, Sweep

ERROR_CHARS = 4000
FINISHED_CHANNEL = "betascope_finished"  # NOTIFY'd when a sweep is done (Postgres)


@dataclass(frozen=True)
class ClaimedChunk:
    """What a worker needs to compute a chunk: the sweep's spec and the chunk's range."""

    id: int
    sweep_id: int
    seq: int
    attempts: int
    sweep_name: str
    spec: dict[str, Any]
    kernel: str
    engine_version: str
    created_at: datetime
    lo: int  # flat grid indices [lo, hi)
    hi: int
    source_id: int | None


def claim_chunk_without_commit(
    session: Session, *, chunk_id: int, token: str, now: datetime, lease_seconds: float,
    max_worker_losses: int,
) -> ClaimedChunk | None:
    """Take the chunk if it is queued, its lease expired, or this token holds it.

    The sweep's row is locked before the chunk's, the order cancel, retry and
    finishing a chunk take them in: taking them the other way round deadlocked
    against a cancel on Postgres."""
    sweep_id = session.scalar(select(Chunk.sweep_id).where(Chunk.id == chunk_id))
    if sweep_id is None or lock_sweep_without_commit(session, sweep_id) is None:
        return None
    expired = and_(Chunk.lease_expires_at < now,
                   Chunk.attempts - Chunk.failures < max_worker_losses)
    claimed = session.execute(
        update(Chunk)
        .where(
            Chunk.id == chunk_id,
            or_(
                Chunk.status == "queued",
                and_(Chunk.status == "running", or_(expired, Chunk.lease_token == token)),
            ),
        )
        .values(
            status="running",
            attempts=case((Chunk.lease_token == token, Chunk.attempts), else_=Chunk.attempts + 1),
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_at=func.coalesce(Chunk.started_at, now),
            progress=0.0,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return None
    chunk = session.execute(
        select(Chunk.sweep_id, Chunk.seq, Chunk.attempts, Chunk.lo, Chunk.hi)
        .where(Chunk.id == chunk_id)
    ).one()
    session.execute(
        update(Sweep)
        .where(Sweep.id == chunk.sweep_id, Sweep.status == "queued")
        .values(status="running", started_at=func.coalesce(Sweep.started_at, now))
    )
    sweep = session.execute(
        select(Sweep.name, Sweep.spec, Sweep.kernel, Sweep.engine_version, Sweep.created_at,
               Sweep.source_id)
        .where(Sweep.id == chunk.sweep_id)
    ).one()
    return ClaimedChunk(chunk_id, chunk.sweep_id, chunk.seq, chunk.attempts, sweep.name,
                        sweep.spec, sweep.kernel, sweep.engine_version, sweep.created_at,
                        int(chunk.lo),
                        int(chunk.hi), sweep.source_id)


def heartbeat_without_commit(
    session: Session, *, chunk_id: int, sweep_id: int, token: str, progress: float,
    now: datetime, lease_seconds: float,
) -> bool:
    """Record progress and renew the lease; False when the chunk should stop
    (its sweep was canceled or deleted, or another worker took the chunk)."""
    renewed = session.execute(
        update(Chunk)
        .where(Chunk.id == chunk_id, Chunk.lease_token == token, Chunk.status == "running")
        .values(progress=progress, lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    status = session.scalar(select(Sweep.status).where(Sweep.id == sweep_id))
    return renewed.rowcount == 1 and status not in (None, "canceled")


def lock_sweep_without_commit(session: Session, sweep_id: int) -> str | None:
    """Lock the sweep row (Postgres; SQLite's BEGIN IMMEDIATE already serialises)
    so that concurrent chunk completions see each other; None if it was deleted."""
    return session.scalar(select(Sweep.status).where(Sweep.id == sweep_id).with_for_update())


def finish_chunk_without_commit(
    session: Session, *, chunk_id: int, sweep_id: int, now: datetime,
    runs_data: bytes | memoryview, cells_data: bytes | memoryview,
    curves_data: bytes | memoryview, n_compute: int,
) -> bool:
    """Store the chunk's results and mark it done; False when nothing was written. A
    chunk finished twice (a lost lease that came back) keeps its first results: both
    runs computed the same. A chunk whose sweep was canceled while it computed (or
    while its results waited to be stored) stays canceled: the canceled sweep's
    counts, and every answer built from them, must not change afterwards."""
    stored = session.execute(
        update(Chunk)
        .where(Chunk.id == chunk_id, Chunk.status.notin_(("done", "canceled")))
        .values(status="done", progress=1.0, finished_at=now, lease_token=None,
                lease_expires_at=None, last_error=None, runs_data=runs_data,
                cells_data=cells_data, curves_data=curves_data, n_compute=n_compute)
    ).rowcount == 1
    if stored:
        refresh_sweep_status_without_commit(session, sweep_id=sweep_id, now=now)
    return stored


def fail_attempt_without_commit(
    session: Session, *, chunk_id: int, sweep_id: int, token: str, error: str, now: datetime,
    max_attempts: int, permanent: bool = False,
) -> str:
    """After an engine error: 'retry' (queued again), 'failed' (out of attempts), or
    'lost' (this worker no longer holds the chunk; leave it alone)."""
    lock_sweep_without_commit(session, sweep_id)
    chunk = session.execute(
        select(Chunk.status, Chunk.lease_token, Chunk.failures).where(Chunk.id == chunk_id)
    ).one_or_none()
    if chunk is None or chunk.status != "running" or chunk.lease_token != token:
        return "lost"
    error = error[:ERROR_CHARS]
    failures = chunk.failures + 1
    common = {"lease_token": None, "lease_expires_at": None, "last_error": error,
              "failures": failures}
    if permanent or failures >= max_attempts:
        session.execute(update(Chunk).where(Chunk.id == chunk_id)
                        .values(status="failed", finished_at=now, **common))
        refresh_sweep_status_without_commit(session, sweep_id=sweep_id, now=now)
        return "failed"
    session.execute(update(Chunk).where(Chunk.id == chunk_id)
                    .values(status="queued", enqueued_at=now, **common))
    return "retry"


def release_chunk_without_commit(session: Session, *, chunk_id: int, token: str) -> None:
    """Give a chunk back untried (worker shutting down): it does not use up an attempt."""
    session.execute(
        update(Chunk)
        .where(Chunk.id == chunk_id, Chunk.lease_token == token, Chunk.status == "running")
        .values(status="queued", attempts=Chunk.attempts - 1, lease_token=None,
                lease_expires_at=None, enqueued_at=None, progress=0.0)
    )


def refresh_sweep_status_without_commit(
    session: Session, *, sweep_id: int, now: datetime
) -> str | None:
    """Derive the sweep's status from its chunks (queued -> running -> done/failed).
    A canceled sweep stays canceled."""
    status = session.scalar(select(Sweep.status).where(Sweep.id == sweep_id))
    if status is None or status == "canceled":
        return status
    counts = dict(
        session.execute(
            select(Chunk.status, func.count())
            .where(Chunk.sweep_id == sweep_id)
            .group_by(Chunk.status)
        ).all()
    )
    pending = counts.get("queued", 0) + counts.get("running", 0)
    if pending:
        started = status == "running" or any(counts.get(s) for s in ("running", "done", "failed"))
        new = "running" if started else "queued"
    else:
        new = "failed" if counts.get("failed") or counts.get("canceled") else "done"
    if new != status:
        values: dict[str, Any] = {"status": new}
        if new in ("done", "failed"):
            values["finished_at"] = now
        if new == "done":
            notify_finished_without_commit(session)
        if new == "running":
            values["started_at"] = func.coalesce(Sweep.started_at, now)
        session.execute(update(Sweep).where(Sweep.id == sweep_id).values(**values))
    return new


def expire_leases_without_commit(
    session: Session, *, now: datetime, max_worker_losses: int
) -> list[int]:
    """Chunks whose lease ran out: back to queued (returned, to be enqueued), or
    failed once max_worker_losses workers were lost under them (a chunk that
    keeps killing its worker, e.g. out of memory). Lost workers are counted apart
    from engine errors: pre-empted hosts must not fail a healthy chunk."""
    rows = session.execute(
        select(Chunk.id, Chunk.sweep_id, Chunk.attempts, Chunk.failures)
        .where(Chunk.status == "running", Chunk.lease_expires_at < now)
    ).all()
    requeued = []
    for chunk_id, sweep_id, attempts, failures in rows:
        still_expired = (Chunk.id == chunk_id, Chunk.status == "running",
                         Chunk.lease_expires_at < now)
        if attempts - failures >= max_worker_losses:
            lock_sweep_without_commit(session, sweep_id)
            done = session.execute(update(Chunk).where(*still_expired).values(
                status="failed", finished_at=now, lease_token=None, lease_expires_at=None,
                last_error=f"lease expired on attempt {attempts}: the worker was lost "
                           "(killed, out of memory, or stalled)",
            ))
            if done.rowcount:
                refresh_sweep_status_without_commit(session, sweep_id=sweep_id, now=now)
            continue
        done = session.execute(update(Chunk).where(*still_expired).values(
            status="queued", lease_token=None, lease_expires_at=None, enqueued_at=now,
        ))
        if done.rowcount:
            requeued.append(chunk_id)
    return requeued


def stale_queued_without_commit(
    session: Session, *, now: datetime, older_than: float
) -> list[int]:
    """Queued chunks never sent, or sent so long ago that the message was likely lost."""
    cutoff = now - timedelta(seconds=older_than)
    ids = list(session.scalars(
        select(Chunk.id).where(
            Chunk.status == "queued",
            or_(Chunk.enqueued_at.is_(None), Chunk.enqueued_at <= cutoff),
        ).order_by(Chunk.id)
    ))
    if ids:
        session.execute(update(Chunk).where(Chunk.id.in_(ids), Chunk.status == "queued")
                        .values(enqueued_at=now))
    return ids


def mark_unsent_without_commit(session: Session, chunk_ids: list[int]) -> None:
    """Enqueueing failed (broker down): let the reconciler send these soon."""
    if chunk_ids:
        session.execute(update(Chunk).where(Chunk.id.in_(chunk_ids)).values(enqueued_at=None))


def notify_finished_without_commit(session: Session) -> None:
    """Postgres: tell the API processes (api.prepare) at commit that a sweep finished,
    so that they prepare its reads before a client asks."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {FINISHED_CHANNEL}"))
