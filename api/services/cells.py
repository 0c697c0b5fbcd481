"""A sweep's cells, assembled once per API process and merged a chunk at a time.

A phase map, the boundary and the cells exports read every cell of a sweep:
O(cells), from the done chunks' cell records (a chunk holds whole cells, so a
sweep's cells are its chunks' cell records side by side). Each process keeps
each sweep's cells assembled (flat arrays over the cell index, as
experiments.analysis.cell_fields derives them) together with the chunks they
hold. When a chunk lands, the next read fetches and merges that chunk's record
alone: a sweep page polling a running sweep of 10^7 runs reads each chunk's
cells once, not every chunk's at every poll, and the first map after a sweep
finished reads only what landed since the last one. A finished sweep's cells
are answered without a query until its row changes (a retry).

While a client reads a running sweep (its status or its maps), a thread of the
process merges its chunks' cells as they land, behind the engine (nice 19: in the
time the engine leaves a core idle), until the sweep is finished or nobody has
read it for FOLLOW_SECONDS: the map a page or a notebook asks for at the end is
then one chunk's merge away, not the whole sweep's.

A merge writes a new chunk's cells in place, into cells that had no runs: a map
being made meanwhile from the same arrays sees each of those cells either as it
was (no runs yet) or as it now is, as a read a moment earlier or later would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from api import memory
from api.db.models import Sweep
from api.db.session import get_database
from api.db.store import Stored, cell_records, done_chunks, reads_source_cells, spec_of
from experiments import analysis
from experiments.reuse import cells_per_unit, chunk_unit
from experiments.spec import SweepSpec

# assembled cells kept in memory, least recently used dropped first: one sweep of 10^6
# cells (66 MB), or many smaller ones
CACHE_BYTES = 96 << 20
CELL_BYTES = sum(a.itemsize for a in analysis.empty_cell_fields(1).values())
FINISHED = ("done", "failed", "canceled")
FOLLOW_SECONDS = 10.0  # a running sweep's cells are merged this long after its last read
FOLLOW_PERIOD = 0.5  # seconds between the follower's merges
log = logging.getLogger("betascope.cells")


@dataclass
class _Assembly:
    """One sweep's cells as merged so far."""

    fields: dict[str, np.ndarray]  # flat over the cell index
    merged: frozenset[int] = frozenset()  # ids of the chunks whose cells are in
    n_results: int = 0  # runs with a result
    generation: int = 0  # bumped by every merge: maps made from older cells are stale
    finished: Any = None  # (status, finished_at) when assembled after the sweep finished
    lock: threading.Lock = field(default_factory=threading.Lock)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.fields.values())


_cache: OrderedDict[tuple[Any, ...], _Assembly] = OrderedDict()
_cache_lock = threading.Lock()


def sweep_cells(session: Session, sweep: Sweep, spec: SweepSpec
                ) -> tuple[tuple[Any, ...], analysis.Cells, int]:
    """(version, cells, runs with a result): the version names these cells (maps made
    from them are kept under it); cells are up to date with the sweep's done chunks."""
    key = (str(session.get_bind().url), sweep.id, sweep.created_at)
    assembly = _assembly(key, spec)
    finished = (sweep.status, sweep.finished_at) if sweep.status in FINISHED else None
    with assembly.lock:
        if finished is None or assembly.finished != finished:
            stored = Stored.of(sweep)
            source = reads_source_cells(session, stored) if sweep.source_id is not None \
                else None
            _merge(session, assembly, source or stored, spec)
            assembly.finished = finished
        fields, n, generation = assembly.fields, assembly.n_results, assembly.generation
    shape = analysis.cell_shape(spec)
    cells = analysis.Cells(**{k: v.reshape(shape) for k, v in fields.items()})
    return (*key, generation), cells, n


def assembled(sweep_id: int, created_at: Any) -> bool:
    """Whether this process holds the sweep's cells merged since it finished: a map of
    it is then a few ms to make here (api.answers waits for another process's only
    when it is not)."""
    with _cache_lock:
        return any(k[1:] == (sweep_id, created_at) and a.finished is not None
                   for k, a in _cache.items())


def _assembly(key: tuple[Any, ...], spec: SweepSpec) -> _Assembly:
    with _cache_lock:
        assembly = _cache.get(key)
        if assembly is None:
            n_cells = spec.total_runs() // chunk_unit(spec) * cells_per_unit(spec)
            size = n_cells * CELL_BYTES
            # room first, then the new arrays: the process never holds both
            while _cache and sum(a.nbytes() for a in _cache.values()) + size > CACHE_BYTES:
                _cache.popitem(last=False)
                memory.release()
            assembly = _cache[key] = _Assembly(analysis.empty_cell_fields(n_cells))
        _cache.move_to_end(key)
        return assembly


def _merge(session: Session, assembly: _Assembly, stored: Stored, spec: SweepSpec) -> None:
    """Merge the cells of the chunks that landed since the last merge (all of them the
    first time; afresh if a merged chunk is no longer done, which a retry of a
    finished sweep never does, but costs nothing to allow)."""
    chunks = done_chunks(session, stored.id)
    ids = {i for i, _, _ in chunks}
    if not assembly.merged <= ids:
        assembly.fields = analysis.empty_cell_fields(len(assembly.fields["n_runs"]))
        assembly.merged, assembly.n_results = frozenset(), 0
    new = [(i, lo, hi) for i, lo, hi in chunks if i not in assembly.merged]
    if not new:
        return
    unit, per_unit = chunk_unit(stored.spec), cells_per_unit(stored.spec)
    where = {i: slice(lo // unit * per_unit, hi // unit * per_unit) for i, lo, hi in new}
    for chunk_id, stats in cell_records(session, [i for i, _, _ in new]):
        part = analysis.cell_fields(stats)
        for name, values in part.items():
            assembly.fields[name][where[chunk_id]] = values
        assembly.n_results += int(part["n_runs"].sum())
    assembly.merged = assembly.merged | where.keys()
    assembly.generation += 1
    memory.release()  # the records' decoded arrays (api/memory.py)


class _Follower:
    """The thread that keeps watched running sweeps' cells merged (module docstring)."""

    def __init__(self) -> None:
        self._watched: dict[tuple[str, int], float] = {}  # (url, sweep id) -> last read
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, url: str, sweep_id: int) -> None:
        with self._lock:
            self._watched[(url, sweep_id)] = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="betascope-cells",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        from workers.threads import yield_to_engine

        yield_to_engine()
        while True:
            time.sleep(FOLLOW_PERIOD)
            with self._lock:
                now = time.monotonic()
                for key in [k for k, t in self._watched.items() if now - t > FOLLOW_SECONDS]:
                    del self._watched[key]
                if not self._watched:
                    self._thread = None
                    return
                keys = list(self._watched)
            for url, sweep_id in keys:
                try:
                    if self._merge(url, sweep_id):
                        with self._lock:
                            self._watched.pop((url, sweep_id), None)
                except Exception as exc:  # the next read merges what this missed
                    log.warning("merging sweep %s's cells failed: %r", sweep_id, exc)

    @staticmethod
    def _merge(url: str, sweep_id: int) -> bool:
        """Merge what landed; True once there is nothing more to follow."""
        with get_database(url).session(read_only=True) as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is None or sweep.hidden:
                return True
            sweep_cells(session, sweep, spec_of(sweep.id, sweep.created_at, sweep.spec))
            return sweep.status in FINISHED


_follower = _Follower()


def follow(url: str, sweep: Sweep) -> None:
    """A client read this sweep: keep its cells merged while it runs."""
    if sweep.status not in FINISHED:
        _follower.watch(url, sweep.id)
