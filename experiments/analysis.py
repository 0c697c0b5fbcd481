"""Phase maps and boundaries from per-run results (DESIGN section 6).

Everything works on a `ResultFrame`: flat numpy columns, one row per run, with
each run's grid indices. The service builds one from the database, the CLI
from the engine's output; both get the same numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.outcomes import CONVERGED, DIVERGED, NOT_CONVERGED, OUTCOMES, REGIMES
from experiments.spec import SweepSpec, clip_label

SLICE_AXES = ("batch_size", "clip", "lr")
METRICS = (
    "outcome",
    "regime",
    "diverged_frac",
    "converged_frac",
    "final_rel",
    "div_step",
    "max_rise",
)
# metrics whose z is a class index, and the classes' names
CLASSES = {"outcome": OUTCOMES, "regime": REGIMES}


@dataclass(frozen=True)
class ResultFrame:
    """Per-run results; grid [R, 6] holds indices into the spec's axes (AXES order)."""

    grid: np.ndarray  # int64 [R, 6]
    code: np.ndarray  # int8, index into OUTCOMES
    final_rel: np.ndarray  # float64
    div_step: np.ndarray  # float64, nan where not diverged
    # float64 1.0 (spiky) or 0.0, nan where max_rise was not measured; None: nan for all
    spiky: np.ndarray | None = None
    max_rise: np.ndarray | None = None  # float64, nan where not measured; None: nan for all

    @staticmethod
    def from_outcomes(grid: np.ndarray, outcomes: Any) -> ResultFrame:
        div = np.where(outcomes.div_step >= 0, outcomes.div_step, np.nan).astype(np.float64)
        spiky = spiky_weights(outcomes.max_rise, outcomes.spiky)
        return ResultFrame(grid, outcomes.code, outcomes.final_rel, div, spiky, outcomes.max_rise)


def spiky_weights(max_rise: np.ndarray, spiky: np.ndarray) -> np.ndarray:
    """ResultFrame.spiky from Outcomes' max_rise and spiky."""
    return np.where(np.isnan(max_rise), np.nan, np.asarray(spiky, dtype=np.float64))


@dataclass(frozen=True)
class Cells:
    """Per-(beta1, beta2, batch, clip, lr, extra axes...) aggregates over seeds, arrays
    of shape [n_beta1, n_beta2, n_batch, n_clip, n_lr, *extra axis sizes] (the
    spec's cell_axes); cells without runs have n_runs 0."""

    n_runs: np.ndarray
    diverged_frac: np.ndarray
    converged_frac: np.ndarray
    not_converged_frac: np.ndarray
    outcome: np.ndarray  # int8 majority outcome, -1 where no runs
    final_rel: np.ndarray  # median over seeds
    div_step: np.ndarray  # median over the diverged seeds, nan if none
    spiky_frac: np.ndarray  # share of the seeds that were spiky, nan if any is unknown
    max_rise: np.ndarray  # median over the seeds where it was measured
    regime: np.ndarray  # int8 index into REGIMES, -1 where no runs or unknown


@dataclass(frozen=True)
class CellStats:
    """What a phase map needs of each cell, computed from whole cells' runs:
    outcome counts [n, 3] (converged, not converged, diverged) and the medians
    over seeds. Counts merge by addition; medians are exact because a cell's
    runs (its seeds) are never split between two chunks (experiments.reuse.chunk_unit)."""

    counts: np.ndarray  # int64 [n, 3]
    final_rel: np.ndarray  # float64 [n], median over seeds (nan values left out)
    div_step: np.ndarray  # float64 [n], median over the diverged seeds, nan if none
    # float64 [n, 2]: spiky runs, spiky converged runs; nan where a run's max_rise
    # is unknown (stored before it was measured). None: unknown everywhere
    spiky: np.ndarray | None = None
    max_rise: np.ndarray | None = None  # float64 [n], median over seeds (nan left out)


def cell_stats(cell: np.ndarray, frame: ResultFrame, size: int) -> CellStats:
    """Aggregate runs over seeds into `size` cells; `cell` is each run's cell index."""
    counts = np.stack(
        [
            np.bincount(cell, weights=(frame.code == c), minlength=size)
            for c in (CONVERGED, NOT_CONVERGED, DIVERGED)
        ],
        axis=1,
    ).astype(np.int64)
    spiky = np.full(len(cell), np.nan) if frame.spiky is None else frame.spiky
    return CellStats(
        counts=counts,
        final_rel=_group_median(cell, frame.final_rel, size),
        div_step=_group_median(cell, frame.div_step, size),
        spiky=np.stack(
            [
                np.bincount(cell, weights=spiky, minlength=size),
                np.bincount(cell, weights=spiky * (frame.code == CONVERGED), minlength=size),
            ],
            axis=1,
        ),
        max_rise=_group_median(
            cell, np.full(len(cell), np.nan) if frame.max_rise is None else frame.max_rise, size
        ),
    )


def cell_shape(spec: SweepSpec) -> tuple[int, ...]:
    """The shape of Cells arrays: one dimension per axis but seed (spec.cell_axes())."""
    values = spec.axis_values()
    return tuple(len(values[a]) for a in spec.cell_axes())


def cells(spec: SweepSpec, frame: ResultFrame) -> Cells:
    """Aggregate runs over seeds (see cells_from_stats)."""
    shape = cell_shape(spec)
    keep = [i for i, a in enumerate(spec.axes()) if a != "seed"]
    flat = np.ravel_multi_index(tuple(frame.grid[:, i] for i in keep), shape)
    return cells_from_stats(spec, cell_stats(flat, frame, int(np.prod(shape))))


def cells_from_stats(spec: SweepSpec, stats: CellStats) -> Cells:
    """Cells from per-cell aggregates (see cell_fields), shaped over the cell axes."""
    shape = cell_shape(spec)
    return Cells(**{k: v.reshape(shape) for k, v in cell_fields(stats).items()})


def cell_fields(stats: CellStats) -> dict[str, np.ndarray]:
    """The Cells fields of these cells, flat, one entry per cell of `stats` (any run of
    cells: a sweep's cells can be derived a chunk's cells at a time). Majority ties
    break toward the worse outcome (diverged over not converged over converged): a
    boundary claimed converged should be so for most seeds.

    regime: the majority outcome, except that a converged cell is converged_spiky
    when more than half of its converged seeds were spiky; -1 where the cell has no
    runs, or is converged and some run's max_rise is unknown."""
    c, nc, d = (stats.counts[:, i] for i in range(3))
    n = c + nc + d
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = [c / n, nc / n, d / n]  # contiguous: a million cells take 8 MB each
    majority = np.where(
        (d >= nc) & (d >= c), DIVERGED, np.where(nc >= c, NOT_CONVERGED, CONVERGED)
    ).astype(np.int8)  # ties go to the worse outcome
    majority[n == 0] = -1
    spiky = np.full((len(n), 2), np.nan) if stats.spiky is None else stats.spiky
    with np.errstate(invalid="ignore", divide="ignore"):
        spiky_frac = spiky[:, 0] / n
        mostly_spiky = spiky[:, 1] / c > 0.5
    # np.select's first true condition, assigned in place from the last (a million
    # cells: four fewer int64 temporaries)
    regime = np.where(
        mostly_spiky, REGIMES.index("converged_spiky"), REGIMES.index("converged")
    ).astype(np.int8)
    regime[np.isnan(spiky[:, 1])] = -1
    regime[majority == NOT_CONVERGED] = REGIMES.index("not_converged")
    regime[majority == DIVERGED] = REGIMES.index("diverged")
    regime[n == 0] = -1
    return {
        "n_runs": n.astype(np.int64),
        "diverged_frac": frac[2],
        "converged_frac": frac[0],
        "not_converged_frac": frac[1],
        "outcome": majority,
        "final_rel": stats.final_rel,
        "div_step": stats.div_step,
        "spiky_frac": spiky_frac,
        "max_rise": np.full(len(n), np.nan) if stats.max_rise is None else stats.max_rise,
        "regime": regime,
    }


def empty_cell_fields(size: int) -> dict[str, np.ndarray]:
    """cell_fields of `size` cells without runs (what cell_fields gives for no counts)."""
    ints = {"n_runs": (0, np.int64), "outcome": (-1, np.int8), "regime": (-1, np.int8)}
    out = {}
    for f in dataclasses.fields(Cells):
        fill, dtype = ints.get(f.name, (np.nan, np.float64))
        out[f.name] = np.full(size, fill, dtype=dtype)
    return out


def _group_median(group: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Median of the finite-or-inf (non-nan) values in each group."""
    if len(group) == size and (size == 0 or np.array_equal(group, np.arange(size))):
        return values.astype(np.float64)  # one run per group, in order (one seed): itself
    k = len(group) // size if size else 0
    if k and len(group) == k * size and (group.reshape(size, k) == np.arange(size)[:, None]).all():
        return _blocked_median(values.reshape(size, k).astype(np.float64))
    out = np.full(size, np.nan)
    keep = ~np.isnan(values)
    g, v = group[keep], values[keep]
    if g.size == 0:
        return out
    order = np.lexsort((v, g))
    g, v = g[order], v[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], g.size]
    lo = v[starts + (ends - starts - 1) // 2]
    hi = v[starts + (ends - starts) // 2]
    return _midpoint(out, g[starts], lo, hi)


def _blocked_median(rows: np.ndarray) -> np.ndarray:
    """_group_median where group i is row i (each cell's seeds consecutive, as in a
    chunk without extra axes): one sort along the rows, which puts nan last, instead
    of a sort of every run by (group, value); a tenth of the time for 10 seeds."""
    v = np.sort(rows, axis=1)
    n = (~np.isnan(v)).sum(axis=1)
    lo = np.take_along_axis(v, np.maximum(n - 1, 0)[:, None] // 2, axis=1)[:, 0]
    hi = np.take_along_axis(v, (n // 2)[:, None], axis=1)[:, 0] if v.shape[1] else lo
    at = np.flatnonzero(n > 0)
    return _midpoint(np.full(len(v), np.nan), at, lo[at], hi[at])


def _midpoint(out: np.ndarray, at: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        # halves first: (lo + hi) / 2 overflows to inf for two values near the float max
        out[at] = np.where(lo == hi, lo, lo / 2 + hi / 2)
    return out


MAP_DEFAULT = ("beta1", "beta2")


def map_axes(spec: SweepSpec, x: str | None = None, y: str | None = None) -> tuple[str, str]:
    """The (x, y) axes of a phase map: any two cell axes with more than one value
    (beta1 and beta2 when not given). Raises KeyError naming a bad choice."""
    x, y = x or MAP_DEFAULT[0], y or MAP_DEFAULT[1]
    axes = spec.cell_axes()
    values = spec.axis_values()
    for name, axis in (("x", x), ("y", y)):
        if axis not in axes:
            raise KeyError(f"{name}: {axis!r} is not an axis of this sweep (have {list(axes)})")
        if (x, y) != MAP_DEFAULT and len(values[axis]) < 2:
            raise KeyError(f"{name}: {axis!r} has one value; a map needs two on each axis")
    if x == y:
        raise KeyError(f"y: must differ from x ({x!r})")
    return x, y


def _labels(spec: SweepSpec, axis: str) -> list[Any]:
    """An axis's values as the API shows them: clip as its label, numbers as numbers."""
    values = spec.axis_values()[axis]
    if axis == "clip":
        return [clip_label(c) for c in values]
    if axis == "batch_size" or any(isinstance(v, int) for v in values):
        return [int(v) if float(v).is_integer() else float(v) for v in values]
    return [float(v) for v in values]


def slice_index(
    spec: SweepSpec, x: str | None = None, y: str | None = None, **chosen: Any
) -> dict[str, int]:
    """Resolve slice values to axis indices for every axis but the map's two (and
    seed); omitted (or None) = the axis's first value. Extra axes are named by path
    (`**{"problem.n": 20}`).

    Raises KeyError naming the axis for a value that is not on the grid, or for a
    slice on an axis the sweep does not have.
    """
    mx, my = map_axes(spec, x, y) if (x, y) != (None, None) else MAP_DEFAULT
    axes = [a for a in spec.cell_axes() if a not in (mx, my)]
    unknown = [a for a, v in chosen.items() if v is not None and a not in axes]
    if unknown:
        raise KeyError(f"{unknown[0]}: not a slice axis of this map (have {axes})")
    out = {}
    for axis in axes:
        want = chosen.get(axis)
        if want is None:
            out[axis] = 0
            continue
        labels = _labels(spec, axis)
        hit = _find(axis, labels, want)
        if hit is None:
            shown = labels if axis == "clip" else [str(v) for v in labels]
            raise KeyError(f"{axis}: {want!r} is not on the grid (have {shown})")
        out[axis] = hit
    return out


def _find(axis: str, labels: list[Any], want: Any) -> int | None:
    if axis == "clip":
        text = str(want)
        if ":" in text:
            mode, thr = text.split(":", 1)
            try:
                text = f"{mode}:{float(thr)!r}"
            except ValueError:  # "global_norm:abc"
                return None
        return labels.index(text) if text in labels else None
    try:
        value = float(want)
    except (TypeError, ValueError, OverflowError):
        return None
    for i, v in enumerate(labels):
        if float(v) == value:
            return i
    return None


def available(spec: SweepSpec, x: str = "beta1", y: str = "beta2") -> dict[str, list[Any]]:
    """Every value of each slice axis of an (x, y) map: every cell axis but x and y."""
    return {a: _labels(spec, a) for a in spec.cell_axes() if a not in (x, y)}


def plane(spec: SweepSpec, arr: np.ndarray, x: str, y: str, sl: dict[str, int]) -> np.ndarray:
    """One slice of a Cells array as [len(y), len(x)] (rows over y); axes missing
    from `sl` take their first value."""
    axes = spec.cell_axes()
    index = tuple(slice(None) if a in (x, y) else sl.get(a, 0) for a in axes)
    part = arr[index]
    return part if axes.index(y) < axes.index(x) else part.T


def cells_at(spec: SweepSpec, c: Cells, sl: dict[str, int]) -> Cells:
    """The cells of one point of the extra axes: the five standard dimensions only,
    as beta2_star and boundary read them."""
    extra = spec.extra_axes()
    if not extra:
        return c
    index = (slice(None),) * 5 + tuple(sl.get(a, 0) for a in extra)
    return Cells(*(getattr(c, f)[index] for f in Cells.__dataclass_fields__))


def phase_map(
    spec: SweepSpec,
    c: Cells,
    metric: str,
    sl: dict[str, int],
    x: str = "beta1",
    y: str = "beta2",
) -> dict[str, Any]:
    """One slice as a heatmap over the (x, y) axes (beta1, beta2 by default), z rows
    over y; `sl` holds an index for each other axis (slice_index)."""
    if metric not in METRICS:
        raise KeyError(f"metric: must be one of {METRICS}")
    z = plane(spec, getattr(c, metric), x, y, sl).astype(np.float64)
    if metric in CLASSES:
        z = np.where(z < 0, np.nan, z)
    avail = available(spec, x, y)
    return {
        "x": {"name": x, "values": _labels(spec, x)},
        "y": {"name": y, "values": _labels(spec, y)},
        "z": _nullable(z, classes=metric in CLASSES),
        "metric": metric,
        "outcomes": list(CLASSES[metric]) if metric in CLASSES else None,
        "slice": {a: avail[a][sl.get(a, 0)] for a in avail},
        "available": avail,
    }


def _nullable(z: np.ndarray, classes: bool = False) -> list[list[float | int | None]]:
    """Rows of z with non-finite entries as None (JSON null), without a call per cell;
    class indices (`classes`) as integers, as clients index the class names with them."""
    finite = np.isfinite(z)
    out = (np.where(finite, z, 0).astype(np.int64) if classes else z).astype(object)
    out[~finite] = None
    return out.tolist()  # type: ignore[no-any-return]


def beta2_star(spec: SweepSpec, c: Cells, sl: dict[str, int]) -> list[float | None]:
    """For each beta1: the smallest grid beta2 whose cell and every cell above it
    in that beta1 column is converged by majority; None if none."""
    # "Above" means larger beta2, whatever order the spec lists the axis in.
    order = np.argsort(np.asarray(spec.axis_values()["beta2"], dtype=np.float64), kind="stable")
    beta2 = [float(spec.axis_values()["beta2"][i]) for i in order]
    out: list[float | None] = []
    outcome = c.outcome[:, :, sl["batch_size"], sl["clip"], sl["lr"]]
    for col in outcome:
        ok = col[order] == CONVERGED
        if not ok[-1]:
            out.append(None)
            continue
        first = len(ok)
        while first > 0 and ok[first - 1]:
            first -= 1
        out.append(float(beta2[first]))
    return out


# How a beta2* is censored (DESIGN section 6): a value at the grid's lowest beta2
# (every cell of the column converges) says only that the true boundary lies at or
# below it; a missing one (the top cell does not converge) that it lies above the
# grid, if anywhere. Both are bounds, not values: fits leave them out.
UNCENSORED, BELOW, ABOVE = "none", "below", "above"


def censoring(spec: SweepSpec, stars: list[float | None]) -> list[str]:
    """For each beta2* of beta2_star: "none" (a value), "below" (at the lowest grid
    beta2, an upper bound) or "above" (missing, beyond the grid)."""
    lowest = min(float(v) for v in spec.axis_values()["beta2"])
    return [ABOVE if s is None else BELOW if s <= lowest else UNCENSORED for s in stars]


def boundary(spec: SweepSpec, c: Cells) -> dict[str, Any]:
    """beta2*(beta1) for every slice, beta2* against batch size, and the scaling fit."""
    values = spec.axis_values()
    avail = available(spec)
    slices = []
    for ci in range(len(values["clip"])):
        for li in range(len(values["lr"])):
            per_batch = []
            for bi in range(len(values["batch_size"])):
                sl = {"batch_size": bi, "clip": ci, "lr": li}
                per_batch.append(beta2_star(spec, c, sl))
                slices.append(
                    {
                        "batch_size": avail["batch_size"][bi],
                        "clip": avail["clip"][ci],
                        "lr": avail["lr"][li],
                        "beta1": [float(v) for v in values["beta1"]],
                        "beta2_star": per_batch[-1],
                        "censored": censoring(spec, per_batch[-1]),
                    }
                )
    return {"slices": slices, "by_batch": by_batch(spec, c)}


def boundaries(spec: SweepSpec, c: Cells) -> dict[str, Any]:
    """boundary() at every point of the extra axes, each slice and by_batch row
    tagged with the extra axes' values (by path); boundary() itself without any."""
    extra = spec.extra_axes()
    if not extra:
        return boundary(spec, c)
    labels = {a: _labels(spec, a) for a in extra}
    out: dict[str, list[Any]] = {"slices": [], "by_batch": []}
    for point in np.ndindex(*(len(labels[a]) for a in extra)):
        sl = dict(zip(extra, point, strict=True))
        tag = {a: labels[a][i] for a, i in sl.items()}
        part = boundary(spec, cells_at(spec, c, sl))
        for key, rows in out.items():
            rows += [{**row, **tag} for row in part[key]]
    return out


def by_batch(spec: SweepSpec, c: Cells) -> list[dict[str, Any]]:
    """beta2* against batch size per (beta1, clip, lr), with the log-log scaling fit."""
    values = spec.axis_values()
    avail = available(spec)
    batches = [int(b) for b in values["batch_size"]]
    out = []
    for ci in range(len(values["clip"])):
        for li in range(len(values["lr"])):
            stars = [
                beta2_star(spec, c, {"batch_size": bi, "clip": ci, "lr": li})
                for bi in range(len(batches))
            ]
            for b1i, b1 in enumerate(values["beta1"]):
                series = [s[b1i] for s in stars]
                censored = censoring(spec, series)
                out.append(
                    {
                        "beta1": float(b1),
                        "clip": avail["clip"][ci],
                        "lr": avail["lr"][li],
                        "batch_size": batches,
                        "beta2_star": series,
                        "censored": censored,
                        "n_censored": sum(cz != UNCENSORED for cz in censored),
                        "fit": scaling_fit(batches, series, censored),
                    }
                )
    return out


def scaling_fit(
    batches: list[int], stars: list[float | None], censored: list[str] | None = None
) -> dict[str, Any] | None:
    """Least-squares slope of log(1 - beta2*) against log(batch) with its standard error.

    The half-life rule (Marek et al. 2025: beta2 -> beta2**(B2/B1)) predicts slope 1.
    Bounds are left out (`censored` from censoring(); missing values always are)
    and counted in "n_censored".
    """
    if censored is None:
        censored = [ABOVE if s is None else UNCENSORED for s in stars]
    n_censored = sum(cz != UNCENSORED for cz in censored)
    pts = [
        (b, s)
        for b, s, cz in zip(batches, stars, censored, strict=True)
        if s is not None and cz == UNCENSORED and s < 1.0
    ]
    pts = [(b, s) for b, s in pts if 1.0 - s > 0.0]
    if len(pts) < 2 or len({b for b, _ in pts}) < 2:
        return None
    xs = np.log([b for b, _ in pts])
    ys = np.log([1.0 - s for _, s in pts])
    a = np.vstack([xs, np.ones_like(xs)]).T
    coef, res, *_ = np.linalg.lstsq(a, ys, rcond=None)
    slope, intercept = float(coef[0]), float(coef[1])
    stderr = None
    if len(pts) > 2:
        resid = ys - a @ coef
        s2 = float(resid @ resid) / (len(pts) - 2)
        stderr = float(np.sqrt(s2 / np.sum((xs - xs.mean()) ** 2)))
    return {
        "slope": slope,
        "intercept": intercept,
        "stderr": stderr,
        "half_life_slope": 1.0,
        "n_points": len(pts),
        "n_censored": n_censored,
    }


def sqrt_curve(beta2: list[float]) -> dict[str, list[float]]:
    """The theory overlay beta1 = sqrt(beta2): convergence needs beta1 < sqrt(beta2)."""
    return {"beta2": [float(b) for b in beta2], "beta1": [float(np.sqrt(b)) for b in beta2]}
