"""runs_at: the runs at flat grid indices, the same from the numba pass it takes for
large tables (experiments/run_kernels.py) as from its definition."""

from __future__ import annotations

import numpy as np
import pytest

import experiments.run_kernels  # noqa: F401  (numba loaded: large tables take its pass)
from experiments.runs import runs_at
from experiments.spec import AXES, KERNEL_RUNS, kernel_pass, parse_spec

GRIDS = {
    # every axis swept, and two extra axes after them
    "all axes": {"beta1": {"start": 0.0, "stop": 0.99, "num": 7},
                 "beta2": {"log1m": [1e-3, 1.0], "num": 6}, "batch_size": [1, 4, 8],
                 "clip": [{"mode": "none"}, {"mode": "global_norm", "threshold": 1.0}],
                 "lr": [0.1, 0.03], "seed": [0, 5, 9], "problem.n": [10, 20],
                 "optimizer.eps": [1e-8, 1e-3]},
    # axes of one value between swept ones (no division for them)
    "some single": {"beta1": {"start": 0.0, "stop": 0.99, "num": 80},
                    "beta2": {"log1m": [1e-3, 1.0], "num": 70}, "seed": [3, 4]},
}


@pytest.mark.parametrize("grid", GRIDS)
def test_runs_at_is_the_same_from_the_kernel_and_from_its_definition(grid: str) -> None:
    spec = parse_spec({"problem": {"kind": "zhang2022", "n": 20}, "steps": 10,
                       "grid": GRIDS[grid]}, max_runs=10**6)
    total = spec.total_runs()
    assert total >= KERNEL_RUNS and kernel_pass(total)
    flat = np.random.default_rng(1).permutation(total)[:KERNEL_RUNS + 17]
    runs = runs_at(spec, flat)  # the kernel
    grid_index = np.stack(np.unravel_index(flat, spec.axis_sizes()), axis=1)
    assert runs.grid_index.dtype == np.int64
    assert (runs.grid_index == grid_index).all() and (runs.index == flat).all()
    values = spec.axis_values()
    for axis in ("beta1", "beta2", "batch_size", "lr", "seed"):
        want = np.asarray(values[axis])[grid_index[:, AXES.index(axis)]]
        got = getattr(runs, axis)
        assert got.dtype == want.dtype and (got == want).all(), axis
    assert (runs.clip_index == grid_index[:, AXES.index("clip")]).all()
    few = runs_at(spec, flat[:100])  # numpy's passes
    for field in ("index", "beta1", "beta2", "batch_size", "clip_index", "lr", "seed",
                  "grid_index"):
        assert (getattr(few, field) == getattr(runs, field)[:100]).all(), field
    with pytest.raises(IndexError):
        runs_at(spec, np.append(flat, total))
