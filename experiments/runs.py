"""Runs as columns: the grid points of a sweep, addressed by flat grid index.

A sweep of two million runs is held as a handful of numpy arrays rather than
two million objects; any subset (a chunk) is rebuilt from its flat indices
alone, which is all a worker needs besides the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.spec import AXES, SweepSpec, kernel_pass


@dataclass(frozen=True)
class RunTable:
    """One row per run. `index` is the flat grid index (C order over AXES)."""

    index: np.ndarray  # int64 [R]
    beta1: np.ndarray  # float64 [R]
    beta2: np.ndarray
    batch_size: np.ndarray  # int64
    clip_index: np.ndarray  # int64, into spec.axis_values()["clip"]
    lr: np.ndarray
    seed: np.ndarray  # int64
    grid_index: np.ndarray  # int64 [R, len(spec.axes())]: standard axes, then extras

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def take(self, rows: np.ndarray) -> RunTable:
        return RunTable(
            index=self.index[rows],
            beta1=self.beta1[rows],
            beta2=self.beta2[rows],
            batch_size=self.batch_size[rows],
            clip_index=self.clip_index[rows],
            lr=self.lr[rows],
            seed=self.seed[rows],
            grid_index=self.grid_index[rows],
        )


def runs_at(spec: SweepSpec, flat_index: np.ndarray | list[int]) -> RunTable:
    """The runs at the given flat grid indices, in that order."""
    flat = np.asarray(flat_index, dtype=np.int64).reshape(-1)
    sizes = spec.axis_sizes()
    total = int(np.prod(sizes, dtype=np.int64))
    if flat.size and (flat.min() < 0 or flat.max() >= total):
        raise IndexError(f"run index out of range [0, {total})")
    values = spec.axis_values()
    tables = {a: np.asarray(values[a], dtype=dtype) for a, dtype in _VALUES.items()}
    if kernel_pass(flat.size):  # one numba pass (experiments/run_kernels.py)
        return _runs_at_kernel(flat, sizes, tables)
    grid = np.stack(np.unravel_index(flat, sizes), axis=1).astype(np.int64)
    return RunTable(
        index=flat,
        clip_index=grid[:, AXES.index("clip")],
        grid_index=grid,
        **{a: t[grid[:, AXES.index(a)]] for a, t in tables.items()},
    )


# the RunTable's columns of axis values, by dtype, in the order run_kernels.grid_runs
# fills them
_VALUES = {
    "beta1": np.float64,
    "beta2": np.float64,
    "batch_size": np.int64,
    "lr": np.float64,
    "seed": np.int64,
}


def _runs_at_kernel(
    flat: np.ndarray, sizes: tuple[int, ...], tables: dict[str, np.ndarray]
) -> RunTable:
    from experiments.run_kernels import grid_runs

    n = flat.size
    flat = np.ascontiguousarray(flat)
    grid = np.empty((n, len(sizes)), dtype=np.int64)
    cols = {a: np.empty(n, dtype=t.dtype) for a, t in tables.items()}
    grid_runs(
        flat, np.asarray(sizes, dtype=np.int64), tuple(tables.values()), grid, tuple(cols.values())
    )
    return RunTable(index=flat, clip_index=grid[:, AXES.index("clip")], grid_index=grid, **cols)


def all_runs(spec: SweepSpec) -> RunTable:
    return runs_at(spec, np.arange(spec.total_runs(), dtype=np.int64))


def clip_columns(spec: SweepSpec, table: RunTable) -> tuple[list[str], list[float | None]]:
    """(clip_mode, clip_threshold) per run, as the CSV and the database store them."""
    clips = spec.axis_values()["clip"]
    modes = [c.mode for c in clips]
    thresholds = [getattr(c, "threshold", None) for c in clips]
    idx = table.clip_index.tolist()
    return [modes[i] for i in idx], [thresholds[i] for i in idx]
