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


def run_csv(spec: Any, runs: Any, outcomes: Any, *, kernel: str) -> bytes:
    """Runs-level CSV rows as bytes, column by column: the bytes csv_lines(run_rows(...))
    gives, without a Python loop over runs. Axis columns are formatted once per axis
    value and indexed; per-run floats are formatted by float_reprs."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from experiments.outcomes import OUTCOMES
    from experiments.spec import AXES, run_keys

    n = len(runs)
    if n == 0:
        return b""
    values = spec.axis_values()
    clips = values["clip"]

    pick, floats = _pick, _float_column
    g = runs.grid_index
    div = np.asarray(outcomes.div_step, dtype=np.int64)
    div_text = pc.if_else(
        pa.array(div < 0), pa.scalar(b"", pa.binary()), pc.cast(pa.array(div), pa.string())
    ).cast(pa.binary())
    clip_frac = np.asarray(outcomes.clip_fraction, dtype=np.float64)
    uniq, inverse = np.unique(clip_frac, return_inverse=True)  # at most steps + 1 values
    rise = np.asarray(outcomes.max_rise, dtype=np.float64)
    spiky = np.where(np.isnan(rise), 2, np.asarray(outcomes.spiky, dtype=np.int64))
    columns = [
        pa.array(run_keys(spec, runs, kernel=kernel), pa.binary()),
        pick([fmt(float(v)) for v in values["beta1"]], g[:, 0]),
        pick([fmt(float(v)) for v in values["beta2"]], g[:, 1]),
        pick([fmt(int(v)) for v in values["batch_size"]], g[:, 2]),
        pick([fmt(c.mode) for c in clips], g[:, 3]),
        pick([fmt(getattr(c, "threshold", None)) for c in clips], g[:, 3]),
        pick([fmt(float(v)) for v in values["lr"]], g[:, 4]),
        pick([fmt(int(v)) for v in values["seed"]], g[:, 5]),
        pick([fmt(int(spec.steps))], np.zeros(n, dtype=np.int64)),
        pick([fmt(o) for o in OUTCOMES], np.asarray(outcomes.code, dtype=np.int64)),
        floats(outcomes.final_loss),
        floats(outcomes.final_rel),
        floats(outcomes.final_gap, empty_if_nan=True),
        div_text,
        pick([fmt(float(v)) for v in uniq], inverse.reshape(-1)),
        floats(rise, empty_if_nan=True),
        pick([fmt(False), fmt(True), fmt(None)], spiky),
        *(
            pick([fmt(v) for v in vals], g[:, len(AXES) + j])
            for j, vals in enumerate(_extra_values(spec))
        ),
    ]
    return _join_lines(columns, n)


def _pick(labels: Sequence[str], index: np.ndarray) -> Any:
    """labels[index] as an Arrow binary array (each label formatted once)."""
    import pyarrow as pa

    return pa.array([t.encode() for t in labels], pa.binary()).take(pa.array(index))


def _float_column(arr: np.ndarray, empty_if_nan: bool = False) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    col = float_reprs(arr).cast(pa.binary())
    if empty_if_nan:
        col = pc.if_else(pa.array(np.isnan(arr)), pa.scalar(b"", pa.binary()), col)
    return col


def _join_lines(columns: list[Any], n: int) -> bytes:
    """Columns of formatted fields as CSV lines (csv.writer's minimal quoting needs
    none here: no field holds a comma, quote or line break)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = pc.binary_join_element_wise(*columns, b",")
    lines = pc.binary_join_element_wise(rows, pa.scalar(b"", pa.binary()), b"\r\n")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    buffers = lines.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[lines.offset : lines.offset + n + 1]
    return buffers[2].to_pybytes()[int(offsets[0]) : int(offsets[-1])]


def cell_csv(spec: Any, cells: Any, piece: int = 50_000) -> Iterator[bytes]:
    """Cells-level rows as bytes, a piece of cells at a time, column by column: the
    bytes csv_lines(cell_rows(...)) gives (without the header)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from experiments.analysis import available
    from experiments.outcomes import OUTCOMES

    values = spec.axis_values()
    avail = available(spec)
    labels = {
        "beta1": [fmt(float(v)) for v in values["beta1"]],
        "beta2": [fmt(float(v)) for v in values["beta2"]],
        "batch_size": [fmt(int(v)) for v in avail["batch_size"]],
        "clip": [fmt(c) for c in avail["clip"]],
        "lr": [fmt(float(v)) for v in avail["lr"]],
    }
    where = np.argwhere(cells.n_runs > 0)
    for lo in range(0, len(where), piece):
        at = where[lo : lo + piece]
        sel = tuple(at[:, i] for i in range(at.shape[1]))  # every axis but seed
        columns = [_pick(labels[a], at[:, i]) for i, a in enumerate(labels)]
        columns += [
            pc.cast(pa.array(cells.n_runs[sel]), pa.string()).cast(pa.binary()),
            _pick([fmt(o) for o in OUTCOMES], cells.outcome[sel].astype(np.int64)),
            _float_column(cells.converged_frac[sel]),
            _float_column(cells.not_converged_frac[sel]),
            _float_column(cells.diverged_frac[sel]),
            _float_column(cells.final_rel[sel], empty_if_nan=True),
            _float_column(cells.div_step[sel], empty_if_nan=True),
            _float_column(cells.spiky_frac[sel], empty_if_nan=True),
            _float_column(cells.max_rise[sel], empty_if_nan=True),
            *(
                _pick([fmt(v) for v in vals], at[:, 5 + j])
                for j, vals in enumerate(_extra_values(spec))
            ),
        ]
        yield _join_lines(columns, len(at))


def float_reprs(x: np.ndarray) -> Any:
    """float.__repr__ of every value as an Arrow string array, without a call per value.

    Arrow's cast writes the same shortest round-trip digits as Python but other
    notations: positional for 1e-6 <= |x| < 1e10 ("0.0000015", "100"), scientific
    with one exponent digit ("1e-7"). Those are rewritten to Python's (positional
    for 1e-4 <= |x| < 1e16 with ".0" on integers, "e-07"); the few values in
    [1e10, 1e16), which Arrow writes in scientific notation, go through repr. Each
    rewrite runs only on the values whose magnitude can need it (the test of the
    text itself decides), so typical losses cost one cast.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    x = np.asarray(x, dtype=np.float64)
    s = pc.cast(pa.array(x), pa.string())
    with np.errstate(invalid="ignore"):
        mag = np.abs(x)
        finite = np.isfinite(x)
        whole = x == np.trunc(x)

    def rewrite(out: Any, near: np.ndarray, fix: Any) -> Any:
        """out with fix() applied to the values where `near` holds."""
        if not near.any():
            return out
        mask = pa.array(near)
        return pc.replace_with_mask(out, mask, fix(pc.filter(out, mask), x[near]))

    def integral(t: Any, _v: np.ndarray) -> Any:  # Arrow: "100", "-0"; Python: "100.0"
        plain = pc.invert(pc.or_(pc.match_substring(t, "."), pc.match_substring(t, "e")))
        return pc.if_else(plain, pc.binary_join_element_wise(t, pa.scalar(".0"), ""), t)

    def small(t: Any, _v: np.ndarray) -> Any:  # Arrow: "0.0000015"; Python: "1.5e-06"
        fixed = pc.match_substring_regex(t, r"^-?0\.0000")
        g = pc.extract_regex(
            pc.if_else(fixed, t, pa.scalar("0.00001")),
            r"^(?P<sign>-?)0\.(?P<zeros>0*)(?P<d>[1-9])(?P<rest>\d*)$",
        )
        exps = pa.array([f"e-{i:02d}" for i in range(400)], pa.string())
        exp = exps.take(pc.add(pc.utf8_length(g.field("zeros")), 1))
        rest = g.field("rest")
        dot = pc.if_else(pc.equal(pc.utf8_length(rest), 0), pa.scalar(""), pa.scalar("."))
        sci = pc.binary_join_element_wise(g.field("sign"), g.field("d"), dot, rest, exp, "")
        # exponents of one digit: Python pads to two ("1e-07")
        return pc.if_else(fixed, sci, pc.replace_substring_regex(t, r"e([+-])(\d)$", r"e\10\2"))

    def large(t: Any, v: np.ndarray) -> Any:  # Arrow: "1.5e+12"; Python: "1500000000000.0"
        mid = pc.match_substring_regex(t, r"e\+(\d|1[0-5])$").to_numpy(zero_copy_only=False)
        padded = pc.replace_substring_regex(t, r"e([+-])(\d)$", r"e\10\2")
        if not mid.any():
            return padded
        fixed = pa.array(list(map(float.__repr__, v[mid].tolist())), pa.string())
        return pc.replace_with_mask(padded, pa.array(mid), fixed)

    out = rewrite(s, finite & whole & (mag < 1e16), integral)
    out = rewrite(out, finite & (mag < 2e-4) & (x != 0), small)
    return rewrite(out, finite & (mag >= 5e9), large)
