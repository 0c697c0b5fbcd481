"""A chunk's results as columnar records: Arrow IPC (LZ4 but for curves), in BLOBs.

Why Arrow IPC in a bytea/BLOB column rather than rows or Parquet files beside
the database: one chunk's results are written in the same transaction that
marks the chunk done (so a chunk computed twice still leaves exactly one
result per run, and a backup of the database is a backup of everything); the
same bytes work on SQLite and Postgres; Arrow arrays read back as numpy
without copying; nan and inf are plain IEEE values (no (value, kind) pairs);
and the record is self-describing, so a column added later (max_rise, ...) is
simply there or absent: records stored before max_rise was measured read it as
nan, and their cell records have no spike counts (regime unknown).

Runs and cells records are LZ4-compressed: a 50,000-run record takes 39 bytes a
run against zstd's 37, for a third of the CPU (1.0 against 3.1 ms to write, on
the cores the engine computes on), and reads back faster; records written with
zstd before read as they are (the stream names its codec).

Three records per chunk: `runs` (one row per computed run, in flat-index order:
outcome, losses, div_step, ...), `curves` (the same rows' loss curves, most of
the bytes) and `cells` (one row per cell of the chunk: outcome counts and the
exact medians the maps need), so a phase map reads only the small cell
records, and exports and runs pages never read curves. Records stored before
the curves had a record of their own hold CURVE in the runs record; readers
take it from there (migration 20261202_curves_apart moves them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from experiments.analysis import CellStats, cell_fields

_WRITE = pa.ipc.IpcWriteOptions(compression="lz4")
_RAW = pa.ipc.IpcWriteOptions()

# Per-run result columns besides the curves: (name, Arrow type). Written once here;
# readers ask for columns by these names.
RESULT_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("outcome", pa.int8()),  # index into experiments.outcomes.OUTCOMES
    ("final_loss", pa.float64()),
    ("final_rel", pa.float64()),
    ("final_gap", pa.float64()),
    ("div_step", pa.int64()),  # -1 where the run did not diverge
    ("clip_fraction", pa.float64()),
    ("max_rise", pa.float64()),  # DESIGN section 5; absent in records stored before it
)
# result columns added after records were first stored: an encoder may leave them
# out (the migration that wrote the first records does), a reader gets nan
LATER_FIELDS = ("max_rise",)
OFFSET = "offset"  # position in the chunk's flat range; absent when every run is stored
CURVE = "curve"  # float32 [R, C]: the full objective at the checkpoints
FINAL_X = "final_x"  # float64 [R, d], for problems of dimension <= FINAL_X_MAX_DIM
FINAL_X_MAX_DIM = 8
CELL_FIELDS = ("n_converged", "n_not_converged", "n_diverged", "median_final_rel",
               "median_div_step")
# float64 counts, nan where a run's max_rise is unknown; absent in older records
CELL_SPIKY_FIELDS = ("n_spiky", "n_spiky_converged")
CELL_RISE = "median_max_rise"  # absent in older records


def _to_bytes(table: pa.Table, options: pa.ipc.IpcWriteOptions = _WRITE) -> memoryview:
    """The IPC stream's bytes, as a view of Arrow's buffer: database drivers take it as
    it is (no copy of a chunk's megabytes into a Python bytes object first)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return memoryview(sink.getvalue())


def _from_bytes(data: bytes | memoryview, columns: tuple[str, ...] | None = None) -> pa.Table:
    buf = pa.py_buffer(data)
    if columns is None:
        return pa.ipc.open_stream(buf).read_all()
    names = pa.ipc.open_stream(buf).schema.names
    wanted = [names.index(c) for c in columns if c in names]  # only these are decompressed
    return pa.ipc.open_stream(buf, options=pa.ipc.IpcReadOptions(included_fields=wanted)
                              ).read_all()


def _matrix(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    r, c = values.shape
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=arrow_type)
    return pa.FixedSizeListArray.from_arrays(flat, c) if r or c else pa.array(
        [], type=pa.list_(arrow_type, c))


def encode_runs(columns: dict[str, np.ndarray], *, offset: np.ndarray | None) -> memoryview:
    """One record from result columns (RESULT_FIELDS, optional FINAL_X, and CURVE where
    given: the service keeps curves in a record of their own, encode_curves, so that
    reading results never reads curves; records stored before that hold them here)."""
    names, arrays = [], []
    if offset is not None:
        names.append(OFFSET)
        arrays.append(pa.array(np.asarray(offset, dtype=np.uint32)))
    for name, arrow_type in RESULT_FIELDS:
        if name in LATER_FIELDS and name not in columns:
            continue
        names.append(name)
        arrays.append(pa.array(np.asarray(columns[name]), type=arrow_type))
    if CURVE in columns:
        names.append(CURVE)
        with np.errstate(over="ignore"):  # a loss beyond float32's range is inf
            curve = np.asarray(columns[CURVE]).astype(np.float32)
        arrays.append(_matrix(curve, pa.float32()))
    if FINAL_X in columns:
        names.append(FINAL_X)
        arrays.append(_matrix(np.asarray(columns[FINAL_X], dtype=np.float64), pa.float64()))
    return _to_bytes(pa.table(arrays, names=names))


def encode_curves(curve: np.ndarray) -> memoryview:
    """The curves record: CURVE float32 [R, C], rows as in the chunk's runs record,
    uncompressed: zstd takes float32 losses from 128 to 112 bytes per 32-point curve
    at twice the cost of writing them (30 against 17 ms per 50,000 runs, in the
    store that trails the engine)."""
    with np.errstate(over="ignore"):  # a loss beyond float32's range is inf, as it should
        values = np.ascontiguousarray(curve, dtype=np.float32)  # one pass, whatever layout
    return _to_bytes(pa.table([_matrix(values, pa.float32())], names=[CURVE]), _RAW)


def decode_runs(
    data: bytes | memoryview, columns: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """The record's columns as numpy arrays (matrices for CURVE and FINAL_X)."""
    table = _from_bytes(data, columns)
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if isinstance(col.type, pa.FixedSizeListType):
            width = col.type.list_size
            out[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


def encode_cells(stats: CellStats) -> memoryview:
    counts = stats.counts.astype(np.int32)
    arrays = [pa.array(counts[:, i]) for i in range(3)]
    arrays += [pa.array(stats.final_rel, type=pa.float64()),
               pa.array(stats.div_step, type=pa.float64())]
    names = list(CELL_FIELDS)
    if stats.spiky is not None:
        arrays += [pa.array(stats.spiky[:, i], type=pa.float64()) for i in range(2)]
        names += CELL_SPIKY_FIELDS
    if stats.max_rise is not None:
        arrays.append(pa.array(stats.max_rise, type=pa.float64()))
        names.append(CELL_RISE)
    return _to_bytes(pa.table(arrays, names=names))


def decode_cells(data: bytes | memoryview) -> CellStats:
    """A cells record; one stored before spikes were counted has spiky None."""
    t = _from_bytes(data)
    col: Any = {n: t.column(n).to_numpy() for n in t.column_names}
    spiky = None
    if all(n in col for n in CELL_SPIKY_FIELDS):
        spiky = np.stack([col[n] for n in CELL_SPIKY_FIELDS], axis=1).astype(np.float64)
    return CellStats(
        counts=np.stack([col["n_converged"], col["n_not_converged"], col["n_diverged"]],
                        axis=1).astype(np.int64),
        final_rel=col["median_final_rel"].astype(np.float64),
        div_step=col["median_div_step"].astype(np.float64),
        spiky=spiky,
        max_rise=col[CELL_RISE].astype(np.float64) if CELL_RISE in col else None,
    )


def warm_up() -> None:
    """Encode and decode one small record of each kind. Arrow's IPC writer and reader
    and its LZ4 codec load on their first use: 0.3 s on the quiet 2-core machine, up
    to 3.5 s seen on a loaded one, which a process would otherwise pay in its first
    store (an engine) or its first map (an API process)."""
    two = np.zeros(2)
    cells = CellStats(counts=np.zeros((2, 3), dtype=np.int64), final_rel=two, div_step=two,
                      spiky=np.zeros((2, 2)), max_rise=two)
    cell_fields(decode_cells(encode_cells(cells)))
    runs = {name: np.zeros(2) for name, _ in RESULT_FIELDS}
    decode_runs(encode_runs(runs, offset=np.arange(2)), ("outcome",))
    decode_runs(encode_curves(np.zeros((2, 3), dtype=np.float32)))
