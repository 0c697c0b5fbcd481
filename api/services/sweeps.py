"""Create, cancel, retry and delete sweeps; summarise their progress.

Creation is O(chunks): it stores the spec and one row per chunk (a range of
flat grid indices), never a row per run. An identical resubmission of a done
sweep is done at once, reading the earlier sweep's results; a sweep whose grid
contains a done sweep's grid reads the runs they share from it (cached_runs)
and computes the rest. The caller commits and only then enqueues the returned
chunk ids, so no worker can see a chunk that a rolled-back transaction never
created.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from api.db.base import utcnow
from api.db.chunks import notify_finished_without_commit, refresh_sweep_status_without_commit
from api.db.models import Chunk, Sweep
from api.db.store import spec_of
from api.settings import Settings
from experiments.kernels import resolve_kernel
from experiments.reuse import axis_maps, chunk_bounds, grid_digest
from experiments.spec import SweepSpec, document, program_digest
from experiments.version import engine_version

SOURCE_CANDIDATES = 50  # newest done sweeps of the same program checked for containment


class Conflict(Exception):
    """The sweep's state does not allow this action (HTTP 409)."""


def stored_spec(sweep: Sweep) -> SweepSpec:
    """The sweep's validated spec (the cap applied at creation, not again), parsed once."""
    return spec_of(sweep.id, sweep.created_at, sweep.spec)


def create_sweep(
    *, session: Session, spec: SweepSpec, settings: Settings
) -> tuple[Sweep, list[int]]:
    """Insert the sweep and its chunks; return (sweep, chunk ids to enqueue).

    The configured kernel is resolved for this spec first (auto -> fused or eager),
    so the stored kernel and every run_key name the one that computes the runs; an
    explicit `fused` for a spec it does not support raises SpecError (422)."""
    kernel = resolve_kernel(spec, settings.kernel, settings.device)
    now = utcnow()
    program = program_digest(spec, kernel).hex()
    grid = grid_digest(spec, kernel)
    total = spec.total_runs()
    sweep = Sweep(
        name=spec.name, spec=document(spec), kernel=kernel,
        engine_version=engine_version(kernel), status="queued", total_runs=total,
        cached_runs=0, n_chunks=0, created_at=now, program_key=program, grid_key=grid,
        hidden=False,
    )
    same = _done_sweeps(session, program).where(Sweep.grid_key == grid).limit(1)
    identical = session.execute(same).first()
    # the sweep that holds the results: a resubmission's own source, not the
    # resubmission, which has no chunks
    held = None if identical is None else (
        identical.source_id if identical.n_chunks == 0 and identical.source_id else identical.id)
    if held is not None and _hold(session, held):
        sweep.source_id, sweep.cached_runs = held, total
        sweep.status, sweep.started_at, sweep.finished_at = "done", now, now
        session.add(sweep)
        notify_finished_without_commit(session)
        session.flush()
        return sweep, []
    source = _containing(session, program, spec)
    if source is not None and _hold(session, source[0]):
        sweep.source_id, sweep.cached_runs = source
    session.add(sweep)
    session.flush()
    bounds = chunk_bounds(spec, settings.chunk_runs, kernel)
    lo, hi = bounds[:-1].tolist(), bounds[1:].tolist()
    returned = session.execute(
        insert(Chunk).returning(Chunk.id, sort_by_parameter_order=True),
        [{"sweep_id": sweep.id, "seq": s, "status": "queued", "lo": a, "hi": b,
          "n_runs": b - a, "n_compute": b - a, "progress": 0.0, "attempts": 0, "failures": 0,
          "enqueued_at": now} for s, (a, b) in enumerate(zip(lo, hi, strict=True))],
    )
    chunk_ids = [row[0] for row in returned]
    sweep.n_chunks = len(chunk_ids)
    session.flush()
    return sweep, chunk_ids


def _hold(session: Session, sweep_id: int) -> bool:
    """Keep a source from being deleted until this sweep, its reader, is committed, and
    say whether it is still there and done. FOR SHARE against delete_sweep's FOR UPDATE
    of the same row (Postgres; SQLite runs one writer at a time): without it a delete
    counted this reader's uncommitted row as none and removed the source, and the new
    sweep was done with no results (found by racing the two, 19 times in 30)."""
    return session.execute(
        select(Sweep.id).where(Sweep.id == sweep_id, Sweep.status == "done")
        .with_for_update(read=True)).first() is not None


def _done_sweeps(session: Session, program: str) -> Any:
    return (select(Sweep.id, Sweep.created_at, Sweep.spec, Sweep.total_runs, Sweep.source_id,
                   Sweep.n_chunks)
            .where(Sweep.program_key == program, Sweep.status == "done")
            .order_by(Sweep.id.desc()))


def _containing(session: Session, program: str, spec: SweepSpec) -> tuple[int, int] | None:
    """(id, runs) of the largest recent done sweep whose grid this spec's grid contains."""
    best: tuple[int, int] | None = None
    for row in session.execute(_done_sweeps(session, program).limit(SOURCE_CANDIDATES)):
        if row.total_runs >= spec.total_runs() or (best and row.total_runs <= best[1]):
            continue
        if axis_maps(spec, spec_of(row.id, row.created_at, row.spec)) is not None:
            best = (row.id, int(row.total_runs))
    return best


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
    """Delete the sweep and its results; a sweep that another one still reads from
    is hidden instead, and deleted with the last sweep that reads from it."""
    session.execute(delete(Chunk).where(Chunk.sweep_id == sweep.id,
                                        Chunk.status.in_(("queued", "running"))))
    target: int | None = sweep.id
    session.expunge(sweep)
    while target is not None:
        # the row locked first (FOR UPDATE), then its readers counted: a reader being
        # created (_hold) or deleted meanwhile is committed, or waits, before the count
        row = session.execute(select(Sweep.source_id, Sweep.hidden)
                              .where(Sweep.id == target).with_for_update()).one_or_none()
        if row is None or (target != sweep.id and not row.hidden):
            return  # gone, or a source the user keeps: not only kept for its readers
        readers = session.scalar(select(func.count()).select_from(Sweep).where(
            Sweep.source_id == target, Sweep.id != target))
        if readers:
            session.execute(update(Sweep).where(Sweep.id == target).values(hidden=True))
            return
        session.execute(delete(Chunk).where(Chunk.sweep_id == target))
        session.execute(delete(Sweep).where(Sweep.id == target))
        target = row.source_id  # it may have been kept only for this sweep


@dataclass
class SweepStats:
    """Counts derived from a sweep's chunks (nothing denormalised to drift)."""

    done_runs: int = 0
    failed_runs: int = 0
    progress: float = 0.0
    runs_per_second: float | None = None
    eta_seconds: float | None = None
    chunks: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)


_finished: OrderedDict[tuple[Any, ...], SweepStats] = OrderedDict()
_finished_lock = threading.Lock()
FINISHED = ("done", "failed", "canceled")


def sweep_stats(session: Session, sweeps: list[Sweep], *, errors: bool = False
                ) -> dict[int, SweepStats]:
    """As _sweep_stats; a finished sweep's are computed once per process (its chunks
    and times no longer change, until a retry changes its status and so the key)."""
    url = session.get_bind().url
    keys = {s.id: (url, s.id, s.created_at, s.status, s.finished_at, errors)
            for s in sweeps if s.status in FINISHED}
    out: dict[int, SweepStats] = {}
    with _finished_lock:
        for sweep_id, key in keys.items():
            if key in _finished:
                _finished.move_to_end(key)
                out[sweep_id] = copy.deepcopy(_finished[key])
    todo = [s for s in sweeps if s.id not in out]
    if todo:
        fresh = _sweep_stats(session, todo, errors=errors)
        out.update(fresh)
        with _finished_lock:
            for sweep_id, st in fresh.items():
                if sweep_id in keys:
                    _finished[keys[sweep_id]] = copy.deepcopy(st)
            while len(_finished) > 1024:
                _finished.popitem(last=False)
    return out


def _sweep_stats(session: Session, sweeps: list[Sweep], *, errors: bool = False
                 ) -> dict[int, SweepStats]:
    """done_runs, failed_runs, progress in [0, 1], throughput, ETA and chunk counts.

    A chunk's runs count as done when it lands (those read from a source sweep
    included); a sweep without chunks was served whole from its source. The
    throughput is the runs done since the sweep started over the wall time
    (running chunks' partial progress included), so the ETA covers queueing and
    every worker's share, not one chunk's speed.
    """
    out = {s.id: SweepStats(done_runs=s.cached_runs if s.n_chunks == 0 else 0) for s in sweeps}
    if not sweeps:
        return out
    rows = session.execute(
        select(Chunk.sweep_id, Chunk.status, func.count(), func.sum(Chunk.n_runs),
               func.sum(Chunk.n_runs * Chunk.progress))
        .where(Chunk.sweep_id.in_(list(out)))
        .group_by(Chunk.sweep_id, Chunk.status)
    ).all()
    partial = {s.id: float(out[s.id].done_runs) for s in sweeps}
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
    now = utcnow()
    for s in sweeps:
        st = out[s.id]
        st.progress = 1.0 if s.total_runs == 0 else min(1.0, partial[s.id] / s.total_runs)
        if s.status == "done":
            st.progress = 1.0
        _throughput(st, s, partial[s.id], now)
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


RATE_SWEEPS = 20  # recent finished sweeps the server's throughput is measured on


def measured_rate(session: Session) -> float | None:
    """Run-steps per second of wall time over this server's recent finished sweeps
    (those that computed something), for estimating a new sweep; None without any."""
    rows = session.execute(
        select(Sweep.total_runs, Sweep.cached_runs, Sweep.spec, Sweep.started_at,
               Sweep.finished_at)
        .where(Sweep.status == "done", Sweep.n_chunks > 0, Sweep.started_at.is_not(None))
        .order_by(Sweep.id.desc()).limit(RATE_SWEEPS)
    ).all()
    work = seconds = 0.0
    for total, cached, spec, started, finished in rows:
        if finished is None or (wall := (finished - started).total_seconds()) <= 0:
            continue
        work += max(0, total - cached) * int(spec.get("steps", 0))
        seconds += wall
    return work / seconds if work > 0 and seconds > 0 else None


def _throughput(st: SweepStats, sweep: Sweep, done: float, now: datetime) -> None:
    if sweep.started_at is None or sweep.n_chunks == 0:
        return
    end = sweep.finished_at if sweep.status in ("done", "failed", "canceled") else now
    elapsed = (end - sweep.started_at).total_seconds()
    if elapsed <= 0 or done <= 0:
        return
    st.runs_per_second = done / elapsed
    if sweep.status in ("queued", "running"):
        st.eta_seconds = max(0.0, (sweep.total_runs - done) / st.runs_per_second)
    elif sweep.status == "done":
        st.eta_seconds = 0.0
