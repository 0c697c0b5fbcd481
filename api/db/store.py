"""Reading a sweep's stored results: cell aggregates and any runs, by flat index.

A sweep's results are its done chunks' records; runs it shares with its source
sweep (source_id) are read from there, through the source's own source if it
has one. Everything is gathered a chunk at a time with numpy: the cost of a
read is the chunks it touches, not the runs in the sweep.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.db import columnar
from api.db.models import Chunk, Sweep
from experiments.analysis import CellStats
from experiments.reuse import axis_maps, map_runs
from experiments.spec import SweepSpec, parse_stored

_specs: OrderedDict[tuple[Any, ...], SweepSpec] = OrderedDict()
_lock = threading.Lock()


def spec_of(sweep_id: int, created_at: Any, document: dict[str, Any]) -> SweepSpec:
    """The sweep's validated spec, parsed once per process (the cap applied at creation)."""
    key = (sweep_id, created_at)
    with _lock:
        if key in _specs:
            _specs.move_to_end(key)
            return _specs[key]
    # stored dumps once held the swept fields at their defaults: a sweep of problem.n
    # [5, 50] stored problem.n: 20, and did not parse again (every chunk failed)
    spec = parse_stored(document)
    with _lock:
        _specs[key] = spec
        while len(_specs) > 256:
            _specs.popitem(last=False)
    return spec


@dataclass(frozen=True)
class Stored:
    """What reading a sweep's results needs of its row."""

    id: int
    spec: SweepSpec
    source_id: int | None

    @staticmethod
    def load(session: Session, sweep_id: int) -> Stored | None:
        row = session.execute(
            select(Sweep.id, Sweep.created_at, Sweep.spec, Sweep.source_id)
            .where(Sweep.id == sweep_id)
        ).one_or_none()
        if row is None:
            return None
        return Stored(row.id, spec_of(row.id, row.created_at, row.spec), row.source_id)

    @staticmethod
    def of(sweep: Sweep) -> Stored:
        return Stored(sweep.id, spec_of(sweep.id, sweep.created_at, sweep.spec), sweep.source_id)


def data_version(session: Session, sweep_id: int) -> tuple[int, Any]:
    """Changes whenever a chunk of the sweep lands (count and last finish of done chunks)."""
    n, last = session.execute(
        select(func.count(), func.max(Chunk.finished_at))
        .where(Chunk.sweep_id == sweep_id, Chunk.status == "done")
    ).one()
    return int(n), last


def done_chunks(session: Session, sweep_id: int) -> list[tuple[int, int, int]]:
    """(id, lo, hi) of the sweep's done chunks, by lo."""
    rows = session.execute(
        select(Chunk.id, Chunk.lo, Chunk.hi)
        .where(Chunk.sweep_id == sweep_id, Chunk.status == "done").order_by(Chunk.lo)
    ).all()
    return [(int(i), int(lo), int(hi)) for i, lo, hi in rows]


def record_rows(session: Session, query: Select[Any]) -> list[Any]:
    """The rows of a query that reads chunk records. On Postgres they come in the
    binary format: as text a bytea is hex, which the server encodes, sends at twice
    its size and the client parses (17 + 7 ms for a 2 MB record, measured, against
    3 + 2 ms in binary). Run on the session's own connection and transaction."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return list(conn.execute(query).all())
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    with conn.connection.driver_connection.cursor(binary=True) as cur:  # type: ignore[union-attr]
        cur.execute(str(compiled), compiled.params)
        return list(cur.fetchall())


def cell_records(session: Session, chunk_ids: list[int]) -> Iterator[tuple[int, CellStats]]:
    """(chunk id, its cells) for the given chunks, each decoded as it is taken."""
    rows = record_rows(session, select(Chunk.id, Chunk.cells_data).where(Chunk.id.in_(chunk_ids)))
    for i, data in rows:
        yield int(i), columnar.decode_cells(data)


def reads_source_cells(session: Session, sweep: Stored) -> Stored | None:
    """The sweep whose cells are this sweep's: an identical resubmission has no chunks
    of its own and reads every result from its source, which may itself be one (a
    resubmission of a resubmission, as databases before that was avoided hold)."""
    source = None
    while sweep.source_id is not None and not _has_chunks(session, sweep.id):
        found = Stored.load(session, sweep.source_id)
        if found is None:  # a source deleted under its reader (a race create_sweep now
            return None    # prevents): no results, rather than a 500
        source = sweep = found
    return source


def _has_chunks(session: Session, sweep_id: int) -> bool:
    return session.scalar(select(Chunk.id).where(Chunk.sweep_id == sweep_id).limit(1)) is not None


def gather(
    session: Session, sweep: Stored, flat: np.ndarray, columns: tuple[str, ...]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Results of the runs at the given flat indices (distinct, any order): (found
    bool [n], {column: array [n, ...]}); entries not found are left as zeros/nan.
    The pseudo-column "_chunk" is the id of the chunk that computed each run."""
    flat = np.asarray(flat, dtype=np.int64)
    if len(flat) > 1 and (np.diff(flat) < 0).any():
        order = np.argsort(flat, kind="stable")
        found_sorted, rec_sorted = _gather_sorted(session, sweep, flat[order], columns)
        found = np.empty_like(found_sorted)
        found[order] = found_sorted
        rec = {}
        for name, values in rec_sorted.items():
            rec[name] = np.empty_like(values)
            rec[name][order] = values
        return found, rec
    return _gather_sorted(session, sweep, flat, columns)


def _gather_sorted(
    session: Session, sweep: Stored, flat: np.ndarray, columns: tuple[str, ...]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    found = np.zeros(len(flat), dtype=bool)
    out: dict[str, np.ndarray] = {}
    if len(flat) == 0:
        return found, out
    chunks = session.execute(
        select(Chunk.id, Chunk.lo, Chunk.hi)
        .where(Chunk.sweep_id == sweep.id, Chunk.status == "done",
               Chunk.hi > int(flat[0]), Chunk.lo <= int(flat[-1]))
        .order_by(Chunk.lo)
    ).all()
    consecutive = int(flat[-1] - flat[0]) + 1 == len(flat)  # distinct and sorted
    # the runs a source may answer: those of the sweep's done chunks (its other chunks'
    # runs have no result here, as its counts and maps say), or every one for a
    # resubmission, which has no chunks
    sourced = np.zeros(len(flat), dtype=bool)
    if sweep.source_id is not None and not chunks:
        sourced[:] = not _has_chunks(session, sweep.id)
    for chunk_id, lo, hi in chunks:
        a, b = np.searchsorted(flat, [lo, hi])
        sourced[a:b] = True
        if a == b:
            continue
        rec = _chunk_record(session, chunk_id, columns)
        if "_chunk" in columns:  # which chunk computed each run (for computed_at)
            stored = len(next(iter(rec.values())))
            rec["_chunk"] = np.full(stored, chunk_id, dtype=np.int64)
        if consecutive and columnar.OFFSET not in rec:
            # a range of the record's rows: sliced, not gathered run by run (an export
            # piece that is one chunk takes the record's arrays as they are)
            rows = slice(int(flat[a]) - lo, int(flat[b - 1]) - lo + 1)
            if a == 0 and b == len(flat):
                out, found[:] = {k: v[rows] for k, v in rec.items()}, True
                break
            _put(out, rec, len(flat), slice(a, b), rows)
            found[a:b] = True
            continue
        want = flat[a:b] - lo
        if columnar.OFFSET in rec:
            offset = rec.pop(columnar.OFFSET).astype(np.int64)
            pos = np.minimum(np.searchsorted(offset, want), max(len(offset) - 1, 0))
            hit = (offset[pos] == want) if len(offset) else np.zeros(len(want), dtype=bool)
        else:
            pos, hit = want, np.ones(len(want), dtype=bool)
        _put(out, rec, len(flat), np.arange(a, b)[hit], pos[hit])
        found[np.arange(a, b)[hit]] = True
    if not found.all() and sweep.source_id is not None and sourced.any():
        source = Stored.load(session, sweep.source_id)
        if source is not None:
            maps = axis_maps(sweep.spec, source.spec)
            if maps is not None:
                missing = np.flatnonzero(~found & sourced)
                inside, src_flat = map_runs(sweep.spec, source.spec, maps, flat[missing])
                missing, src_flat = missing[inside], src_flat[inside]
                got, rec = gather(session, source, src_flat, columns)
                _put(out, rec, len(flat), missing[got], np.flatnonzero(got))
                found[missing[got]] = True
    for name, _ in columnar.RESULT_FIELDS:  # a column no record of these runs has yet
        if name in columns and name in columnar.LATER_FIELDS and name not in out:
            out[name] = np.full(len(flat), np.nan)
    return found, out


def _chunk_record(session: Session, chunk_id: int, columns: tuple[str, ...]
                  ) -> dict[str, np.ndarray]:
    """The columns asked for (and OFFSET) of one chunk's stored runs; CURVE from the
    curves record, or from the runs record where it was stored before curves had
    their own (columnar's docstring)."""
    wanted = (columnar.OFFSET, *(c for c in columns if c != "_chunk"))
    if columnar.CURVE not in columns:
        data = record_rows(session, select(Chunk.runs_data).where(Chunk.id == chunk_id))[0][0]
        return columnar.decode_runs(data, wanted)
    data, curves = record_rows(
        session, select(Chunk.runs_data, Chunk.curves_data).where(Chunk.id == chunk_id))[0]
    if curves is None:
        return columnar.decode_runs(data, wanted)
    rec = columnar.decode_runs(data, tuple(c for c in wanted if c != columnar.CURVE))
    rec.update(columnar.decode_runs(curves))
    return rec


def _put(out: dict[str, np.ndarray], rec: dict[str, np.ndarray], n: int,
         rows: np.ndarray | slice, src: np.ndarray | slice) -> None:
    for name, values in rec.items():
        if name not in out:
            fill = np.nan if values.dtype.kind == "f" else 0
            out[name] = np.full((n, *values.shape[1:]), fill, dtype=values.dtype)
        out[name][rows] = values[src]
