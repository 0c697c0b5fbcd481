"""CSV rows for runs and cells (DESIGN section 10). Rows only; callers write them.

Floats are written with repr (round-trips exactly); nan, inf and -inf as such;
a missing value as an empty field. Text fields that a spreadsheet would read as
a formula (leading =, +, -, @) are prefixed with a single quote.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

RUN_COLUMNS = (
    "run_key",
    "beta1",
    "beta2",
    "batch_size",
    "clip_mode",
    "clip_threshold",
    "lr",
    "seed",
    "steps",
    "outcome",
    "final_loss",
    "final_rel",
    "final_gap",
    "div_step",
    "clip_fraction",
    "max_rise",
    "spiky",
)
CELL_COLUMNS = (
    "beta1",
    "beta2",
    "batch_size",
    "clip",
    "lr",
    "n_runs",
    "outcome",
    "converged_frac",
    "not_converged_frac",
    "diverged_frac",
    "median_final_rel",
    "median_div_step",
    "spiky_frac",
    "median_max_rise",
)


def run_columns(spec: Any) -> tuple[str, ...]:
    """The runs CSV header: RUN_COLUMNS, then each extra axis named by its path."""
    return RUN_COLUMNS + tuple(spec.extra_axes())


def cell_columns(spec: Any) -> tuple[str, ...]:
    """The cells CSV header: CELL_COLUMNS, then each extra axis named by its path."""
    return CELL_COLUMNS + tuple(spec.extra_axes())


def _extra_values(spec: Any) -> list[list[Any]]:
    """Each extra axis's values, in order (their own type: an int field stays int)."""
    values = spec.axis_values()
    return [values[a] for a in spec.extra_axes()]


def fmt(value: Any) -> str:
    """One CSV field."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value))
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def format_row(values: Sequence[Any]) -> list[str]:
    return [fmt(v) for v in values]


def run_rows(
    *,
    keys: Sequence[str],
    runs: Any,
    clip_modes: Sequence[str],
    clip_thresholds: Sequence[float | None],
    steps: int,
    outcomes: Any,
    extras: Sequence[Sequence[Any]] = (),
) -> Iterator[list[str]]:
    """Runs-level rows for a RunTable and its Outcomes (same order); `extras` holds
    each extra axis's values (its columns follow the standard ones)."""
    from experiments.spec import AXES

    labels = outcomes.labels
    first = len(AXES)
    for i, key in enumerate(keys):
        div = int(outcomes.div_step[i])
        more = [vals[int(runs.grid_index[i, first + j])] for j, vals in enumerate(extras)]
        yield format_row(
            (
                key,
                float(runs.beta1[i]),
                float(runs.beta2[i]),
                int(runs.batch_size[i]),
                clip_modes[i],
                clip_thresholds[i],
                float(runs.lr[i]),
                int(runs.seed[i]),
                steps,
                labels[i],
                float(outcomes.final_loss[i]),
                float(outcomes.final_rel[i]),
                _nan_to_none(float(outcomes.final_gap[i])),
                div if div >= 0 else None,
                float(outcomes.clip_fraction[i]),
                _nan_to_none(float(outcomes.max_rise[i])),
                None if np.isnan(outcomes.max_rise[i]) else bool(outcomes.spiky[i]),
                *more,
            )
        )


def _nan_to_none(v: float) -> float | None:
    return None if np.isnan(v) else v


def cell_rows(spec: Any, cells: Any) -> Iterator[list[str]]:
    """Cells-level rows: one per (beta1, beta2, batch, clip, lr) with runs."""
    from experiments.analysis import available
    from experiments.outcomes import OUTCOMES

    values = spec.axis_values()
    avail = available(spec)
    extras = _extra_values(spec)
    for idx in np.argwhere(cells.n_runs > 0):
        i1, i2, ib, ic, il = (int(v) for v in idx[:5])
        at = tuple(int(v) for v in idx)
        more = [vals[int(i)] for vals, i in zip(extras, idx[5:], strict=True)]
        yield format_row(
            (
                float(values["beta1"][i1]),
                float(values["beta2"][i2]),
                int(avail["batch_size"][ib]),
                avail["clip"][ic],
                float(avail["lr"][il]),
                int(cells.n_runs[at]),
                OUTCOMES[int(cells.outcome[at])],
                float(cells.converged_frac[at]),
                float(cells.not_converged_frac[at]),
                float(cells.diverged_frac[at]),
                _nan_to_none(float(cells.final_rel[at])),
                _nan_to_none(float(cells.div_step[at])),
                _nan_to_none(float(cells.spiky_frac[at])),
                _nan_to_none(float(cells.max_rise[at])),
                *more,
            )
        )


def csv_lines(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows as csv.writer writes them (the CLI's and the service's dialect)."""
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


class RunCsv:
    """Runs-level CSV rows as bytes, column by column: the bytes csv_lines(run_rows(...))
    gives, without a Python call per run. Axis columns are formatted once per axis
    value (here, once per export) and indexed; per-run floats are formatted by
    float_reprs; experiments/csv_kernels.py writes the lines."""

    def __init__(self, spec: Any, *, kernel: str):
        from experiments.outcomes import OUTCOMES

        self.spec, self.kernel = spec, kernel
        values = spec.axis_values()
        clips = values["clip"]
        self.axis_labels = [
            [fmt(float(v)) for v in values["beta1"]],
            [fmt(float(v)) for v in values["beta2"]],
            [fmt(int(v)) for v in values["batch_size"]],
            [fmt(c.mode) for c in clips],
            [fmt(getattr(c, "threshold", None)) for c in clips],
            [fmt(float(v)) for v in values["lr"]],
            [fmt(int(v)) for v in values["seed"]],
        ]
        self.axis_of = (0, 1, 2, 3, 3, 4, 5)  # the grid column each is indexed by
        self.steps = [fmt(int(spec.steps))]
        self.outcomes = [fmt(o) for o in OUTCOMES]
        self.spiky = [fmt(False), fmt(True), fmt(None)]
        self.extras = [[fmt(v) for v in vals] for vals in _extra_values(spec)]

    def lines(self, runs: Any, outcomes: Any) -> bytes:
        from experiments.spec import AXES, run_keys

        n = len(runs)
        if n == 0:
            return b""
        g = runs.grid_index
        out = _Lines(n)
        out.fixed_width(run_keys(self.spec, runs, kernel=self.kernel))
        for labels, axis in zip(self.axis_labels, self.axis_of, strict=True):
            out.labels(labels, g[:, axis])
        out.labels(self.steps, np.zeros(n, dtype=np.int64))
        out.labels(self.outcomes, np.asarray(outcomes.code, dtype=np.int64))
        out.floats(outcomes.final_loss)
        out.floats(outcomes.final_rel)
        out.floats(outcomes.final_gap, empty_if_nan=True)
        div = np.asarray(outcomes.div_step, dtype=np.int64)
        out.ints(div, empty=div < 0)
        clip_frac = np.asarray(outcomes.clip_fraction, dtype=np.float64)
        uniq, inverse = np.unique(clip_frac, return_inverse=True)  # at most steps + 1 values
        out.labels([fmt(float(v)) for v in uniq], inverse.reshape(-1))
        rise = np.asarray(outcomes.max_rise, dtype=np.float64)
        out.floats(rise, empty_if_nan=True)
        spiky = np.where(np.isnan(rise), 2, np.asarray(outcomes.spiky, dtype=np.int64))
        out.labels(self.spiky, spiky)
        for j, labels in enumerate(self.extras):
            out.labels(labels, g[:, len(AXES) + j])
        return out.join()


def run_csv(spec: Any, runs: Any, outcomes: Any, *, kernel: str) -> bytes:
    """RunCsv(spec, kernel=kernel).lines(runs, outcomes)."""
    return RunCsv(spec, kernel=kernel).lines(runs, outcomes)


class _Lines:
    """Columns of formatted fields, each a table of labels (bytes, offsets) and each
    row's index into it, joined into CSV lines by csv_kernels.join_lines (csv.writer's
    minimal quoting needs none here: no field holds a comma, quote or line break)."""

    def __init__(self, n: int):
        self.n = n
        self._data: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        self._index: list[np.ndarray] = []
        self._bytes = 0
        self._labels = 0

    def _add(self, data: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> None:
        """data: the labels' bytes; offsets: [k + 1] into data, from 0; index: [n] < k."""
        self._data.append(data[: int(offsets[-1])])
        self._offsets.append(offsets.astype(np.int64) + self._bytes)
        self._index.append(np.asarray(index, dtype=np.int64) + self._labels)
        self._bytes += int(offsets[-1])
        self._labels += len(offsets)

    def labels(self, labels: Sequence[str], index: np.ndarray) -> None:
        """A column of few distinct fields: each row's index into `labels`."""
        enc = [t.encode() for t in labels]
        offsets = np.zeros(len(enc) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in enc], out=offsets[1:])
        self._add(np.frombuffer(b"".join(enc), dtype=np.uint8), offsets, index)

    def text(self, data: np.ndarray, offsets: np.ndarray, empty: np.ndarray | None = None) -> None:
        """A field per row (row r: data[offsets[r]:offsets[r + 1]]); rows where `empty`
        holds get an empty field."""
        rows = np.arange(self.n, dtype=np.int64)
        first = int(offsets[0])
        data, offsets = data[first:], offsets - first
        if empty is not None and empty.any():
            offsets = np.append(offsets, offsets[-1])  # label n: the empty field
            rows = np.where(empty, self.n, rows)
        self._add(data, offsets, rows)

    def fixed_width(self, values: np.ndarray) -> None:
        """numpy fixed-width bytes ('S64' run keys), one field per row."""
        width = values.dtype.itemsize
        data = np.ascontiguousarray(values).view(np.uint8).reshape(-1)
        self.text(data, np.arange(0, width * (self.n + 1), width, dtype=np.int64))

    def floats(self, x: np.ndarray, empty_if_nan: bool = False) -> None:
        x = np.asarray(x, dtype=np.float64)
        data, offsets = _repr_buffers(x)
        self.text(data, offsets, np.isnan(x) if empty_if_nan else None)

    def ints(self, x: np.ndarray, empty: np.ndarray | None = None) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.text(*_arrow_buffers(pc.cast(_arrow_numbers(x), pa.string())), empty)

    def join(self) -> bytes:
        from experiments.csv_kernels import join_lines

        return join_lines(
            np.concatenate(self._data), np.concatenate(self._offsets), np.stack(self._index, axis=1)
        ).tobytes()


def _arrow_buffers(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow string array's (data uint8, offsets int64 [n + 1]), without copying data;
    the offsets start where the array's first value does."""
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = (
        np.frombuffer(bufs[2], dtype=np.uint8)
        if bufs[2] is not None
        else np.zeros(0, dtype=np.uint8)
    )
    first = int(offsets[0]) if len(offsets) else 0
    return data[first:], offsets.astype(np.int64) - first


def _repr_buffers(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float.__repr__ of every value as (data uint8, offsets int64 [n + 1])."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from experiments.csv_kernels import python_floats

    if len(x) == 0:
        return np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64)
    return python_floats(*_arrow_buffers(pc.cast(_arrow_numbers(x), pa.string())))


def _arrow_numbers(x: np.ndarray) -> Any:
    """An Arrow array over a numeric numpy array's memory. pa.array() would do the
    same, but its first call imports pandas (to ask whether x is a pandas object):
    0.2-0.5 s of a `betascope run` process that never needs pandas."""
    import pyarrow as pa

    x = np.ascontiguousarray(x)
    if x.dtype.kind not in "iuf":  # bools are bits in Arrow
        return pa.array(x)
    return pa.Array.from_buffers(pa.from_numpy_dtype(x.dtype), len(x), [None, pa.py_buffer(x)])


def cell_csv(spec: Any, cells: Any, piece: int = 50_000) -> Iterator[bytes]:
    """Cells-level rows as bytes, a piece of cells at a time, column by column: the
    bytes csv_lines(cell_rows(...)) gives (without the header)."""
    from experiments.analysis import available
    from experiments.outcomes import OUTCOMES

    values = spec.axis_values()
    avail = available(spec)
    labels = [
        [fmt(float(v)) for v in values["beta1"]],
        [fmt(float(v)) for v in values["beta2"]],
        [fmt(int(v)) for v in avail["batch_size"]],
        [fmt(c) for c in avail["clip"]],
        [fmt(float(v)) for v in avail["lr"]],
    ]
    outcome_labels = [fmt(o) for o in OUTCOMES]
    extras = [[fmt(v) for v in vals] for vals in _extra_values(spec)]
    where = np.argwhere(cells.n_runs > 0)
    for lo in range(0, len(where), piece):
        at = where[lo : lo + piece]
        sel = tuple(at[:, i] for i in range(at.shape[1]))  # every axis but seed
        out = _Lines(len(at))
        for i, axis_labels in enumerate(labels):
            out.labels(axis_labels, at[:, i])
        out.ints(cells.n_runs[sel])
        out.labels(outcome_labels, cells.outcome[sel].astype(np.int64))
        out.floats(cells.converged_frac[sel])
        out.floats(cells.not_converged_frac[sel])
        out.floats(cells.diverged_frac[sel])
        for column in (cells.final_rel, cells.div_step, cells.spiky_frac, cells.max_rise):
            out.floats(column[sel], empty_if_nan=True)
        for j, extra in enumerate(extras):
            out.labels(extra, at[:, 5 + j])
        yield out.join()


AHEAD = 2  # pieces formatted at once, in threads (Arrow and numba release the GIL)


def ahead(fn: Any, items: Iterator[Any], depth: int = AHEAD) -> Iterator[Any]:
    """fn(item) for each item, in order, computed `depth` at a time in threads: the
    next pieces are formatted while the last is written or sent. At most `depth`
    results are held, so memory stays flat."""
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(depth, thread_name_prefix="betascope-export") as pool:
        pending: list[Future[Any]] = []
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= depth:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:  # the reader went away: drop what is not started
            for f in pending:
                f.cancel()


def load_kernels() -> None:
    """Load the CSV writer's numba functions and experiments/run_kernels.py's (from
    numba's on-disk cache; about a second with numba's import) ahead of a first export."""
    from experiments import run_kernels

    lines = _Lines(1)
    lines.floats(np.zeros(1))
    lines.join()
    run_kernels.load()


def float_reprs(x: np.ndarray) -> Any:
    """float.__repr__ of every value as an Arrow string array, without a call per value:
    Arrow's cast writes the same shortest round-trip digits as Python in other
    notations, which experiments/csv_kernels.py rewrites into Python's."""
    import pyarrow as pa

    data, offsets = _repr_buffers(np.asarray(x, dtype=np.float64))
    return pa.Array.from_buffers(
        pa.large_string(), len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
