"""Reading results back: maps from cell aggregates, runs pages, one run, exports.

Phase maps and boundaries come from experiments.analysis on Cells assembled
from the chunks' cell records (O(cells), never O(runs)); runs pages and exports
gather the chunks' run records a chunk at a time. CSV rows come from
experiments.export, so the service and `betascope run` write the same bytes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import memory
from api.db import columnar
from api.db.models import Chunk, Sweep
from api.db.session import Database
from api.db.store import Stored, data_version, gather
from api.services import cells
from experiments import analysis, export
from experiments.keys import find_run
from experiments.outcomes import OUTCOMES, Outcomes, checkpoint_steps, is_spiky
from experiments.reuse import cell_index
from experiments.runs import clip_columns, runs_at
from experiments.spec import AXES, SweepSpec, clip_label, run_keys

MAPS_CACHE_BYTES = 48 << 20  # phase maps kept as answered (JSON), newest first
EXPORT_ROWS = 50_000  # runs read per export piece / Parquet row group
CSV_ROWS = 10_000  # runs formatted as CSV at a time
SCAN_ROWS = 1 << 18  # flat indices examined per step when paging through runs
RUN_COLUMNS = tuple(name for name, _ in columnar.RESULT_FIELDS)
_maps_lock = threading.Lock()
_maps_cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
_stars: OrderedDict[tuple[Any, ...], Any] = OrderedDict()  # beta2* of a slice, by its cells


def sweep_cells(session: Session, sweep: Sweep, spec: SweepSpec) -> tuple[analysis.Cells, int]:
    """Cells over seeds and the number of runs with results, kept per process and
    merged a chunk at a time (api.services.cells)."""
    _, c, n = cells.sweep_cells(session, sweep, spec)
    return c, n


def results_tag(request: Any, session: Session, sweep: Sweep) -> str:
    """The ETag of what the sweep's stored results say (maps, boundary): a finished
    sweep's from its row, a running one's from its done chunks (one small query)."""
    from api import etag

    tag = etag.sweep_tag(request, sweep)
    if tag is not None:
        return tag
    return etag.make_tag(request, sweep.id, sweep.created_at, data_version(session, sweep.id))


def phase_map(
    session: Session, sweep: Sweep, spec: SweepSpec, *, metric: str, chosen: dict[str, Any],
    x: str | None = None, y: str | None = None,
) -> dict[str, Any]:
    """One slice's heatmap over (x, y) (beta1, beta2 by default); KeyError names a bad
    metric, map axis, or an axis value not on the grid."""
    return _slice_map(session, sweep, spec, metric, chosen, x, y)[1]()


def phase_map_body(
    session: Session, sweep: Sweep, spec: SweepSpec, render: Callable[[dict[str, Any]], bytes],
    *, metric: str, chosen: dict[str, Any], x: str | None = None, y: str | None = None,
) -> bytes:
    """render(phase_map(...)): the map as its answer's bytes, kept (a few hundred per
    process, MAPS_CACHE_BYTES at most) while its cells are, whatever URL asks for it
    (its slice named in full or left to defaults, its parameters in any order):
    serializing a 500 x 500 map takes longer than making it from the cells."""
    map_key, make = _slice_map(session, sweep, spec, metric, chosen, x, y)
    with _maps_lock:
        if map_key in _maps_cache:
            _maps_cache.move_to_end(map_key)
            return _maps_cache[map_key]
    body = render(make())
    with _maps_lock:
        _maps_cache[map_key] = body
        while len(_maps_cache) > 1 and (len(_maps_cache) > 256 or sum(
                len(b) for b in _maps_cache.values()) > MAPS_CACHE_BYTES):
            _maps_cache.popitem(last=False)
    return body


def _slice_map(
    session: Session, sweep: Sweep, spec: SweepSpec, metric: str, chosen: dict[str, Any],
    x: str | None, y: str | None,
) -> tuple[tuple[Any, ...], Callable[[], dict[str, Any]]]:
    """(what names the map while the sweep's cells stay as they are, what makes it)."""
    mx, my = analysis.map_axes(spec, x, y)
    sl = analysis.slice_index(spec, mx, my, **chosen)
    key, c, n = cells.sweep_cells(session, sweep, spec)

    def make() -> dict[str, Any]:
        pm = analysis.phase_map(spec, c, metric, sl, mx, my)
        # beta2* is a boundary in the (beta1, beta2) plane: on other maps it means
        # nothing. It is the slice's, whatever the metric: found once for its maps
        pm["beta2_star"] = None
        if (mx, my) == analysis.MAP_DEFAULT:
            star_key = (key, "beta2_star", tuple(sorted(sl.items())))
            with _maps_lock:
                star = _stars.get(star_key)
            if star is None:
                star = analysis.beta2_star(spec, analysis.cells_at(spec, c, sl), sl)
                with _maps_lock:
                    _stars[star_key] = star
                    while len(_stars) > 256:
                        _stars.popitem(last=False)
            pm["beta2_star"] = star
        pm["n_results"] = n
        return pm

    return (key, metric, mx, my, tuple(sorted(sl.items()))), make


def boundary(session: Session, sweep: Sweep, spec: SweepSpec) -> dict[str, Any]:
    c, _ = sweep_cells(session, sweep, spec)
    out = analysis.boundaries(spec, c)
    out["sqrt_curve"] = analysis.sqrt_curve(spec.axis_values()["beta2"])
    return out


def axis_filters(spec: SweepSpec, given: dict[str, Any]) -> dict[str, int]:
    """Axis values to grid indices; KeyError names a value not on the grid, and an axis
    (an extra axis's path) the sweep does not have."""
    values = spec.axis_values()
    unknown = [a for a, v in given.items() if v is not None and a not in values]
    if unknown:
        raise KeyError(f"{unknown[0]}: not an axis of this sweep (its axes: "
                       f"{', '.join(values)})")
    out: dict[str, int] = {}
    for axis in ("batch_size", "clip", "lr"):
        if given.get(axis) is not None:
            out[axis] = analysis.slice_index(spec, **{axis: given[axis]})[axis]
    casts = [("beta1", float), ("beta2", float), ("seed", int)]
    casts += [(axis, float) for axis in spec.extra_axes()]  # by path: problem.n=20
    for axis, cast in casts:
        if given.get(axis) is None:
            continue
        try:
            want = cast(given[axis])
        except (TypeError, ValueError, OverflowError):  # an extra axis's raw text
            raise KeyError(f"{axis}: {given[axis]!r} is not a number") from None
        hits = [i for i, v in enumerate(values[axis]) if cast(v) == want]
        if not hits:
            shown = [str(cast(v)) for v in values[axis]]
            if len(shown) > 12:
                shown = [*shown[:6], "...", *shown[-6:]]
            raise KeyError(f"{axis}: {given[axis]!r} is not on the grid (have {shown}; "
                           "give a value as the phase map and runs list it)")
        out[axis] = hits[0]
    return out


def _run_dicts(session: Session, sweep: Sweep, spec: SweepSpec, flat: np.ndarray,
               rec: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    runs = runs_at(spec, flat)
    keys = run_keys(spec, runs, kernel=sweep.kernel).astype(str).tolist()
    modes, thresholds = clip_columns(spec, runs)
    clips = [clip_label(c) for c in spec.axis_values()["clip"]]
    values = spec.axis_values()
    extra = [(j, a, values[a]) for j, a in enumerate(spec.extra_axes(), start=len(AXES))]
    chunk_ids = sorted(set(rec["_chunk"].tolist()))
    finished = dict(session.execute(
        select(Chunk.id, Chunk.finished_at).where(Chunk.id.in_(chunk_ids))).all())
    rise = rec["max_rise"]
    spiky = is_spiky(rise, spec.criteria)
    out = []
    for i in range(len(flat)):
        div = int(rec["div_step"][i])
        out.append({
            "flat_index": int(flat[i]), "run_key": keys[i], "beta1": float(runs.beta1[i]),
            "beta2": float(runs.beta2[i]), "batch_size": int(runs.batch_size[i]),
            "clip_mode": modes[i], "clip_threshold": thresholds[i],
            "clip": clips[int(runs.clip_index[i])], "lr": float(runs.lr[i]),
            "seed": int(runs.seed[i]), "steps": spec.steps,
            "outcome": OUTCOMES[int(rec["outcome"][i])],
            "final_loss": float(rec["final_loss"][i]), "final_rel": float(rec["final_rel"][i]),
            "final_gap": _none_if_nan(float(rec["final_gap"][i])),
            "div_step": div if div >= 0 else None,
            "clip_fraction": float(rec["clip_fraction"][i]),
            "max_rise": _none_if_nan(float(rise[i])),
            "spiky": None if np.isnan(rise[i]) else bool(spiky[i]),
            "computed_at": finished.get(int(rec["_chunk"][i])),
            "extra": {a: vals[int(runs.grid_index[i, j])] for j, a, vals in extra},
        })
    return out


def _none_if_nan(v: float) -> float | None:
    return None if np.isnan(v) else v


def list_runs(
    session: Session, sweep: Sweep, spec: SweepSpec, *, filters: dict[str, int],
    outcome: str | None, cursor: int | None, limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of runs with results in grid order, and the cursor of the next page.

    Candidates are scanned a window of flat indices at a time; cells whose counts
    show none of the wanted outcome are skipped without reading a run.
    """
    stored = Stored.of(sweep)
    sizes = spec.axis_sizes()
    total = spec.total_runs()
    cell_ok = None
    if outcome is not None:  # from the cached cells: a fraction above 0 is a count
        c, _ = sweep_cells(session, sweep, spec)
        cell_ok = getattr(c, f"{outcome}_frac").reshape(-1) > 0
    start = 0 if cursor is None else cursor + 1
    flats: list[np.ndarray] = []
    recs: list[dict[str, np.ndarray]] = []
    have = 0
    while start < total and have <= limit:
        window = np.arange(start, min(start + SCAN_ROWS, total), dtype=np.int64)
        start = int(window[-1]) + 1
        if filters or cell_ok is not None:  # else every index is a candidate
            keep = np.ones(len(window), dtype=bool)
            if filters:
                grid = np.unravel_index(window, sizes)
                for axis, index in filters.items():
                    keep &= grid[spec.axes().index(axis)] == index
            if cell_ok is not None:
                keep &= cell_ok[cell_index(spec, window)]
            window = window[keep]
        while len(window) and have <= limit:
            part, window = window[: 4 * (limit + 1)], window[4 * (limit + 1):]
            found, rec = gather(session, stored, part, (*RUN_COLUMNS, "_chunk"))
            hit = found.copy()
            if outcome is not None and found.any():
                hit &= rec["outcome"] == OUTCOMES.index(outcome)
            if hit.any():
                flats.append(part[hit])
                recs.append({k: v[hit] for k, v in rec.items()})
                have += int(hit.sum())
    if not flats:
        return [], None
    flat = np.concatenate(flats)[: limit + 1]
    rec = {k: np.concatenate([r[k] for r in recs])[: limit + 1] for k in recs[0]}
    items = _run_dicts(session, sweep, spec, flat[:limit], {k: v[:limit] for k, v in rec.items()})
    return items, (int(flat[limit - 1]) if len(flat) > limit else None)


def run_detail(
    session: Session, sweep: Sweep, spec: SweepSpec, run_key: str
) -> dict[str, Any] | None:
    """One run with its loss curve, found from its key without scanning the sweep."""
    flat = find_run(spec, run_key, kernel=sweep.kernel)
    if flat is None:
        return None
    at = np.array([flat], dtype=np.int64)
    found, rec = gather(session, Stored.of(sweep), at, (*RUN_COLUMNS, "_chunk", columnar.CURVE,
                                                         columnar.FINAL_X))
    if not found[0]:
        return None
    out = _run_dicts(session, sweep, spec, at, rec)[0]
    out["curve"] = {"steps": checkpoint_steps(spec.steps),
                    "loss": [float(v) for v in rec[columnar.CURVE][0]]}
    if columnar.FINAL_X in rec:
        out["final_x"] = [float(v) for v in rec[columnar.FINAL_X][0]]
    return out


def _piece(db: Database, sweep_id: int, spec: SweepSpec, columns: tuple[str, ...], lo: int
           ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """(flat indices, columns) of the runs with a result among EXPORT_ROWS flat indices
    from lo, read in a short transaction of its own; None when there are none (or
    the sweep is gone)."""
    flat = np.arange(lo, min(lo + EXPORT_ROWS, spec.total_runs()), dtype=np.int64)
    with db.session(read_only=True) as session:
        stored = Stored.load(session, sweep_id)
        if stored is None:
            return None
        found, rec = gather(session, stored, flat, columns)
    if not found.any():
        return None
    if found.all():
        return flat, rec
    return flat[found], {k: v[found] for k, v in rec.items()}


def _piece_starts(spec: SweepSpec) -> Iterator[int]:
    return iter(range(0, spec.total_runs(), EXPORT_ROWS))


def _outcomes(spec: SweepSpec, rec: dict[str, np.ndarray]) -> Outcomes:
    return Outcomes(code=rec["outcome"].astype(np.int8), final_loss=rec["final_loss"],
                    final_rel=rec["final_rel"], final_gap=rec["final_gap"],
                    div_step=rec["div_step"].astype(np.int64),
                    clip_fraction=rec["clip_fraction"], max_rise=rec["max_rise"],
                    spiky=is_spiky(rec["max_rise"], spec.criteria))


def export_csv(db: Database, sweep_id: int, spec: SweepSpec, level: str, kernel: str
               ) -> Iterator[bytes]:
    """CSV bytes, streamed a piece at a time (the same bytes `betascope run` writes)."""
    if level == "cells":
        with db.session(read_only=True) as session:
            sweep = session.get(Sweep, sweep_id)
            c = sweep_cells(session, sweep, spec)[0] if sweep is not None else None
        yield export.csv_lines([export.cell_columns(spec)])
        if c is not None:
            yield from export.cell_csv(spec, c)
        return
    yield export.csv_lines([export.run_columns(spec)])
    writer = export.RunCsv(spec, kernel=kernel)

    def lines(lo: int) -> list[bytes]:
        """One piece read and formatted CSV_ROWS at a time (~1 kB a row meanwhile)."""
        piece = _piece(db, sweep_id, spec, RUN_COLUMNS, lo)
        if piece is None:
            return []
        flat, rec = piece
        return [writer.lines(runs_at(spec, flat[a:a + CSV_ROWS]),
                             _outcomes(spec, {k: v[a:a + CSV_ROWS] for k, v in rec.items()}))
                for a in range(0, len(flat), CSV_ROWS)]

    for texts in export.ahead(lines, _piece_starts(spec)):  # pieces read and formatted in threads
        yield from texts
        del texts
        memory.release()  # the last piece's arrays, before the next one's (api/memory.py)


def _strings(keys: np.ndarray) -> Any:
    """numpy fixed-width bytes (run keys: ASCII) as an Arrow string array, without a
    Python string per run: the bytes are the array's data, the offsets a range."""
    import pyarrow as pa

    n, width = len(keys), keys.dtype.itemsize
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(np.ascontiguousarray(keys))])


def _run_table(spec: SweepSpec, flat: np.ndarray, rec: dict[str, np.ndarray], kernel: str,
               level: str) -> Any:
    """One piece of the runs (or curves) level as an Arrow table; every column is a
    numpy array handed to Arrow as it is, or one gathered per axis value."""
    import pyarrow as pa

    runs = runs_at(spec, flat)
    cols: dict[str, Any] = {"run_key": _strings(run_keys(spec, runs, kernel=kernel))}
    if level == "curves":
        curves = np.ascontiguousarray(rec[columnar.CURVE], dtype=np.float32)
        width = curves.shape[1]
        cols["curve"] = pa.FixedSizeListArray.from_arrays(pa.array(curves.reshape(-1)), width)
        return _not_null_but_nullable(cols, metadata={"curve_steps": ",".join(
            str(s) for s in checkpoint_steps(spec.steps))})
    clips = spec.axis_values()["clip"]
    modes = sorted({c.mode for c in clips})
    mode_of = np.array([modes.index(c.mode) for c in clips], dtype=np.int32)
    threshold = np.array([np.nan if getattr(c, "threshold", None) is None else c.threshold
                          for c in clips], dtype=np.float64)[runs.clip_index]
    div = rec["div_step"].astype(np.int64, copy=False)
    gap = rec["final_gap"]
    rise = rec["max_rise"]
    unknown = np.isnan(rise)  # stored before max_rise was measured: null
    cols.update({
        "flat_index": pa.array(flat),
        "beta1": pa.array(runs.beta1), "beta2": pa.array(runs.beta2),
        "batch_size": pa.array(runs.batch_size),
        "clip_mode": pa.DictionaryArray.from_arrays(pa.array(mode_of[runs.clip_index]),
                                                    pa.array(modes)),
        "clip_threshold": pa.array(threshold, mask=np.isnan(threshold)),
        "lr": pa.array(runs.lr), "seed": pa.array(runs.seed),
        "steps": pa.array(np.full(len(flat), spec.steps, dtype=np.int64)),
        "outcome": pa.DictionaryArray.from_arrays(
            pa.array(rec["outcome"].astype(np.int8, copy=False)), pa.array(list(OUTCOMES))),
        "final_loss": pa.array(rec["final_loss"]), "final_rel": pa.array(rec["final_rel"]),
        "final_gap": pa.array(gap, mask=np.isnan(gap)),
        "div_step": pa.array(div, mask=div < 0),
        "clip_fraction": pa.array(rec["clip_fraction"]),
        "max_rise": pa.array(rise, mask=unknown),
        "spiky": pa.array(is_spiky(rise, spec.criteria), mask=unknown),
    })
    values = spec.axis_values()
    for j, axis in enumerate(spec.extra_axes()):  # after the standard columns, by path
        cols[axis] = pa.array(np.asarray(values[axis])[runs.grid_index[:, len(AXES) + j]])
    if columnar.FINAL_X in rec:
        x = np.ascontiguousarray(rec[columnar.FINAL_X], dtype=np.float64)
        cols["final_x"] = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    return _not_null_but_nullable(cols)


# the runs level's columns that hold nulls (docs/rest.md says when); every other
# column is declared not null, so Parquet's writer stores no definition levels for it
# (a tenth of its time) and readers see which columns can be null
_NULLABLE = ("clip_threshold", "final_gap", "div_step", "max_rise", "spiky")


def _not_null_but_nullable(cols: dict[str, Any], metadata: dict[str, str] | None = None
                           ) -> Any:
    import pyarrow as pa

    schema = pa.schema([pa.field(name, col.type, nullable=name in _NULLABLE)
                        for name, col in cols.items()], metadata=metadata)
    return pa.Table.from_arrays(list(cols.values()), schema=schema)


def _cell_table(spec: SweepSpec, c: analysis.Cells) -> Any:
    import pyarrow as pa

    at = np.argwhere(c.n_runs > 0)
    values = spec.axis_values()
    avail = analysis.available(spec)
    sel = tuple(at[:, i] for i in range(at.shape[1]))
    table = {
        "beta1": pa.array(np.asarray(values["beta1"], dtype=np.float64)[at[:, 0]]),
        "beta2": pa.array(np.asarray(values["beta2"], dtype=np.float64)[at[:, 1]]),
        "batch_size": pa.array(np.asarray(avail["batch_size"], dtype=np.int64)[at[:, 2]]),
        "clip": pa.array(avail["clip"]).take(pa.array(at[:, 3])),
        "lr": pa.array(np.asarray(avail["lr"], dtype=np.float64)[at[:, 4]]),
        "n_runs": pa.array(c.n_runs[sel]),
        "outcome": pa.DictionaryArray.from_arrays(pa.array(c.outcome[sel].astype(np.int8)),
                                                  pa.array(list(OUTCOMES))),
        "converged_frac": pa.array(c.converged_frac[sel]),
        "not_converged_frac": pa.array(c.not_converged_frac[sel]),
        "diverged_frac": pa.array(c.diverged_frac[sel]),
        "median_final_rel": pa.array(c.final_rel[sel], mask=np.isnan(c.final_rel[sel])),
        "median_div_step": pa.array(c.div_step[sel], mask=np.isnan(c.div_step[sel])),
        "spiky_frac": pa.array(c.spiky_frac[sel], mask=np.isnan(c.spiky_frac[sel])),
        "median_max_rise": pa.array(c.max_rise[sel], mask=np.isnan(c.max_rise[sel])),
    }
    for j, axis in enumerate(spec.extra_axes()):
        table[axis] = pa.array(np.asarray(values[axis])[at[:, 5 + j]])
    assert tuple(table) == export.cell_columns(spec)
    return pa.table(table)


# columns with few distinct values per row group: Parquet dictionary-encodes these
# (the writer's default tries every column, and hashing a million distinct floats
# costs more than writing them)
_PARQUET_DICTIONARY = ("beta1", "beta2", "batch_size", "clip_mode", "clip", "lr", "seed",
                       "steps", "outcome")
# Parquet is written uncompressed by default: writing is then mostly copying (a
# 10^6-run file is about 83 MB); ?compression=zstd makes it 2.5x smaller, lz4 1.7x.
# Run keys share their first 32 hex digits (the program's): DELTA_BYTE_ARRAY stores
# each key's prefix length and its last 32 digits, 35 rather than 68 bytes a run
# (40% of the file), for 1.5 ms per 50,000 runs; readers see the same strings. Flat
# indices mostly step by one: DELTA_BINARY_PACKED stores them in next to nothing
# rather than 8 bytes a run (9% of the file) for 0.2 ms per 50,000.
_PARQUET_ENCODING = {"run_key": "DELTA_BYTE_ARRAY", "flat_index": "DELTA_BINARY_PACKED"}
# one data page per column chunk: the writer hands each page to _Pipe (a Python call)
_PARQUET_PAGE_BYTES = 8 << 20
# no min/max statistics for run keys: a row group's smallest and largest hash let no
# reader skip it, and computing them was 8% of writing the file (the other columns'
# statistics, which readers filter row groups by, stay)
_PARQUET_NO_STATISTICS = ("run_key",)


def _statistics_columns(schema: Any) -> list[str]:
    """Parquet's leaf paths of the columns that get statistics (a list column's values
    are "name.list.element")."""
    import pyarrow as pa

    return [f.name + (".list.element" if pa.types.is_fixed_size_list(f.type) else "")
            for f in schema if f.name not in _PARQUET_NO_STATISTICS]


class _Pipe:
    """A write-only file for pyarrow's ParquetWriter that hands on what was written
    since the last take(): the file streams a row group at a time. Each write is
    copied once, into the piece's buffer (Arrow reuses its own)."""

    closed = False

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def write(self, data: Any) -> int:
        n = len(data)
        self._buf += data
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def take(self) -> memoryview:
        out, self._buf = self._buf, bytearray()
        return memoryview(out)


def export_parquet(db: Database, sweep_id: int, spec: SweepSpec, level: str, kernel: str,
                   compression: str = "none") -> Iterator[bytes | memoryview]:
    """The level's table as a Parquet file, streamed: one row group per piece of runs
    (EXPORT_ROWS), written as it is read, so the server holds one piece at a time."""
    import pyarrow.parquet as pq

    pipe = _Pipe()

    def writer_for(table: Any) -> Any:
        extra = tuple(spec.extra_axes())
        dictionary = [c for c in table.column_names if c in _PARQUET_DICTIONARY + extra]
        encoding = {c: e for c, e in _PARQUET_ENCODING.items() if c in table.column_names}
        return pq.ParquetWriter(pipe, table.schema, compression=compression,
                                use_dictionary=dictionary, column_encoding=encoding or None,
                                data_page_size=_PARQUET_PAGE_BYTES,
                                write_statistics=_statistics_columns(table.schema))

    if level == "cells":
        with db.session(read_only=True) as session:
            sweep = session.get(Sweep, sweep_id)
            c = sweep_cells(session, sweep, spec)[0] if sweep is not None else None
        if c is not None:
            table = _cell_table(spec, c)
            with writer_for(table) as writer:
                for lo in range(0, max(table.num_rows, 1), EXPORT_ROWS):
                    writer.write_table(table.slice(lo, EXPORT_ROWS))
                    yield pipe.take()
            yield pipe.take()
        return
    columns = (columnar.CURVE,) if level == "curves" else RUN_COLUMNS + (columnar.FINAL_X,)
    writer = None

    def build(lo: int) -> Any:
        piece = _piece(db, sweep_id, spec, columns, lo)
        return None if piece is None else _run_table(spec, piece[0], piece[1], kernel, level)

    # the next pieces are read and their tables built in threads while this one is written
    for table in export.ahead(build, _piece_starts(spec)):
        if table is None:
            continue
        if writer is None:
            writer = writer_for(table)
        writer.write_table(table, row_group_size=table.num_rows)
        del table
        yield pipe.take()
    if writer is None:  # no results yet: an empty table with the same schema
        empty = {c: np.zeros(0) for c in RUN_COLUMNS}
        empty[columnar.CURVE] = np.zeros((0, len(checkpoint_steps(spec.steps))), np.float32)
        writer = writer_for(_run_table(spec, np.zeros(0, dtype=np.int64), empty, kernel, level))
        writer.write_table(_run_table(spec, np.zeros(0, dtype=np.int64), empty, kernel, level))
    writer.close()
    yield pipe.take()
    memory.release()  # the pieces' arrays, kept for reuse while the file was written
