"""Create, cancel, retry and delete sweeps; summarise their progress.

Creation expands the grid, inserts one `run` row per new run_key and one
`sweep_run` row per grid point, reuses every run that already has a result
(cached_runs), and splits the rest into chunks. The caller commits and only
then enqueues the returned chunk ids, so no worker can see a chunk that a
rolled-back transaction never created.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import String, any_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from api.db.base import utcnow
from api.db.bulk import insert_ignore, insert_rows
from api.db.chunks import refresh_sweep_status_without_commit
from api.db.models import Chunk, Run, Sweep, SweepRun
from api.settings import Settings
from experiments.runs import all_runs, clip_columns
from experiments.spec import SweepSpec, parse_spec, run_keys
from experiments.version import engine_version

KEY_BATCH = 5000
RUN_AXIS_COLUMNS = ("run_key", "beta1", "beta2", "batch_size", "clip_mode", "clip_threshold",
                    "lr", "seed", "steps")
MEMBER_COLUMNS = ("sweep_id", "flat_index", "run_key", "chunk_id", "i_beta1", "i_beta2",
                  "i_batch_size", "i_clip", "i_lr", "i_seed")


class Conflict(Exception):
    """The sweep's state does not allow this action (HTTP 409)."""


def stored_spec(sweep: Sweep) -> SweepSpec:
    """The sweep's validated spec (the cap applied at creation, not again)."""
    return parse_spec(sweep.spec, max_runs=sys.maxsize)


def create_sweep(
    *, session: Session, spec: SweepSpec, settings: Settings
) -> tuple[Sweep, list[int]]:
    """Insert the sweep, its runs, membership and chunks; return (sweep, chunk ids to enqueue)."""
    kernel = settings.kernel
    table = all_runs(spec)
    keys = np.asarray(run_keys(spec, table, kernel=kernel))
    now = utcnow()
    sweep = Sweep(
        name=spec.name, spec=spec.model_dump(mode="json"), kernel=kernel,
        engine_version=engine_version(kernel), status="queued", total_runs=len(table),
        cached_runs=0, n_chunks=0, created_at=now,
    )
    session.add(sweep)
    session.flush()

    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    modes, thresholds = clip_columns(spec, table)
    uniq_keys = uniq.tolist()
    new = insert_ignore(session, Run.__table__, RUN_AXIS_COLUMNS, [
        (uniq_keys[u], float(table.beta1[i]), float(table.beta2[i]), int(table.batch_size[i]),
         modes[i], thresholds[i], float(table.lr[i]), int(table.seed[i]), spec.steps)
        for u, i in enumerate(first.tolist())
    ])
    # runs inserted just now have no result; only keys that existed may be cached
    cached = _computed_keys(session, [k for k in uniq_keys if k not in new])

    # Distinct uncached runs, in order of first appearance, fill chunks of chunk_runs.
    order = np.argsort(first, kind="stable")
    is_cached = np.fromiter((k in cached for k in uniq_keys), dtype=bool, count=len(uniq))
    todo = order[~is_cached[order]]
    seq_of_key = np.full(len(uniq), -1, dtype=np.int64)
    seq_of_key[todo] = np.arange(len(todo)) // settings.chunk_runs
    seq = seq_of_key[inverse.reshape(-1)]
    n_chunks = int(seq.max()) + 1 if len(todo) else 0
    n_runs = np.bincount(seq[seq >= 0], minlength=n_chunks)
    n_compute = np.bincount(seq_of_key[todo], minlength=n_chunks)

    chunk_ids: list[int] = []
    if n_chunks:
        returned = session.execute(
            insert(Chunk).returning(Chunk.id, sort_by_parameter_order=True),
            [{"sweep_id": sweep.id, "seq": s, "status": "queued", "n_runs": int(n_runs[s]),
              "n_compute": int(n_compute[s]), "progress": 0.0, "attempts": 0, "failures": 0,
              "enqueued_at": now} for s in range(n_chunks)],
        )
        chunk_ids = [row[0] for row in returned]
    chunk_of = np.asarray(chunk_ids + [0], dtype=np.int64)[seq]  # seq -1 picks the sentinel
    insert_rows(session, SweepRun.__table__, MEMBER_COLUMNS, [
        (sweep.id, fi, k, c if s >= 0 else None, *g)
        for fi, k, c, s, g in zip(table.index.tolist(), keys.tolist(), chunk_of.tolist(),
                                  seq.tolist(), table.grid_index.tolist(), strict=True)
    ])
    sweep.cached_runs = int((seq < 0).sum())
    sweep.n_chunks = n_chunks
    if n_chunks == 0:
        sweep.status, sweep.started_at, sweep.finished_at = "done", now, now
    session.flush()
    return sweep, chunk_ids


def _computed_keys(session: Session, keys: list[str]) -> set[str]:
    out: set[str] = set()
    if not keys:
        return out
    if session.get_bind().dialect.name == "postgresql":
        # one array parameter: far cheaper for Postgres to plan than thousands of binds
        wanted = bindparam("keys", keys, type_=ARRAY(String))
        return set(session.scalars(
            select(Run.run_key).where(Run.run_key == any_(wanted), Run.computed_at.is_not(None))
        ))
    for lo in range(0, len(keys), KEY_BATCH):
        batch = keys[lo : lo + KEY_BATCH]
        out.update(session.scalars(
            select(Run.run_key).where(Run.run_key.in_(batch), Run.computed_at.is_not(None))
        ))
    return out


def cancel_sweep(*, session: Session, sweep: Sweep) -> Sweep:
    """Mark the sweep and its unfinished chunks canceled; workers stop at their next poll."""
    if sweep.status not in ("queued", "running"):
        raise Conflict(f"cannot cancel a sweep that is {sweep.status}")
    now = utcnow()
    session.execute(
        update(Chunk)
        .where(Chunk.sweep_id == sweep.id, Chunk.status.in_(("queued", "running")))
        .values(status="canceled", finished_at=now, lease_token=None, lease_expires_at=None)
    )
    sweep.status, sweep.finished_at = "canceled", now
    session.flush()
    return sweep


def retry_sweep(*, session: Session, sweep: Sweep) -> list[int]:
    """Queue the failed (or canceled) chunks again; return their ids to enqueue."""
    if sweep.status not in ("failed", "canceled"):
        raise Conflict(
            f"only a failed or canceled sweep can be retried; this one is {sweep.status}"
        )
    now = utcnow()
    ids = list(session.scalars(
        select(Chunk.id).where(Chunk.sweep_id == sweep.id,
                               Chunk.status.in_(("failed", "canceled"))).order_by(Chunk.seq)
    ))
    if not ids:
        raise Conflict("no failed or canceled chunks to retry")
    session.execute(
        update(Chunk).where(Chunk.id.in_(ids)).values(
            status="queued", attempts=0, failures=0, progress=0.0, lease_token=None,
            lease_expires_at=None, enqueued_at=now, finished_at=None,
        )
    )
    sweep.status, sweep.finished_at = "queued", None
    session.flush()
    refresh_sweep_status_without_commit(session, sweep_id=sweep.id, now=now)
    session.refresh(sweep)
    return ids


def delete_sweep(*, session: Session, sweep: Sweep) -> None:
    """Delete the sweep, its chunks and membership, and every run no other sweep uses."""
    other = aliased(SweepRun)
    mine = SweepRun
    orphans = list(session.scalars(
        select(mine.run_key).distinct().where(
            mine.sweep_id == sweep.id,
            ~exists().where(other.run_key == mine.run_key, other.sweep_id != sweep.id),
        )
    ))
    session.execute(delete(SweepRun).where(SweepRun.sweep_id == sweep.id))
    session.execute(delete(Chunk).where(Chunk.sweep_id == sweep.id))
    session.execute(delete(Sweep).where(Sweep.id == sweep.id))
    for lo in range(0, len(orphans), KEY_BATCH):
        batch = orphans[lo : lo + KEY_BATCH]
        session.execute(delete(Run).where(
            Run.run_key.in_(batch), ~exists().where(SweepRun.run_key == Run.run_key)
        ))
    session.expunge(sweep)


@dataclass
class SweepStats:
    """Counts derived from a sweep's chunks (nothing denormalised to drift)."""

    done_runs: int = 0
    failed_runs: int = 0
    progress: float = 0.0
    chunks: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)


def sweep_stats(session: Session, sweeps: list[Sweep], *, errors: bool = False
                ) -> dict[int, SweepStats]:
    """done_runs, failed_runs, progress in [0, 1] and chunk counts for each sweep."""
    out = {s.id: SweepStats(done_runs=s.cached_runs) for s in sweeps}
    if not sweeps:
        return out
    rows = session.execute(
        select(Chunk.sweep_id, Chunk.status, func.count(), func.sum(Chunk.n_runs),
               func.sum(Chunk.n_runs * Chunk.progress))
        .where(Chunk.sweep_id.in_(list(out)))
        .group_by(Chunk.sweep_id, Chunk.status)
    ).all()
    partial = {s.id: float(s.cached_runs) for s in sweeps}
    for sweep_id, status, count, n_runs, weighted in rows:
        st = out[sweep_id]
        st.chunks[status] = int(count)
        if status == "done":
            st.done_runs += int(n_runs)
            partial[sweep_id] += float(n_runs)
        elif status == "failed":
            st.failed_runs += int(n_runs)
        elif status == "running":
            partial[sweep_id] += float(weighted or 0.0)
    for s in sweeps:
        st = out[s.id]
        st.progress = 1.0 if s.total_runs == 0 else min(1.0, partial[s.id] / s.total_runs)
        if s.status == "done":
            st.progress = 1.0
    if errors:
        for sweep_id, chunk_id, seq, status, attempts, message in session.execute(
            select(Chunk.sweep_id, Chunk.id, Chunk.seq, Chunk.status, Chunk.attempts,
                   Chunk.last_error)
            .where(Chunk.sweep_id.in_(list(out)), Chunk.last_error.is_not(None))
            .order_by(Chunk.seq).limit(20)
        ):
            out[sweep_id].errors.append({"chunk_id": chunk_id, "seq": seq, "status": status,
                                         "attempts": attempts, "last_error": message})
    return out
