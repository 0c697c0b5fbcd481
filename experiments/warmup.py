"""Loading the engine's kernels before the first chunk needs them.

A process's first chunk on the fused kernel pays for importing numba and
loading each of the kernel's machine-code specialisations from numba's on-disk
cache (about 1 s per process on two cores; compiling them, once per machine,
takes minutes). A worker process or the embedded engine process calls warm()
when it starts, so a sweep submitted later does not wait for that: every
(problem, dtype) the fused kernel supports runs one 2-run, 2-step chunk, and
runs_at's numba pass (experiments/run_kernels.py) is loaded.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np

from experiments.kernels import FUSED_PROBLEMS

# the smallest spec of each problem the fused kernel supports
_PROBLEMS: dict[str, dict[str, Any]] = {
    "zhang2022": {"kind": "zhang2022", "n": 4},
    "lstsq": {"kind": "lstsq", "n_samples": 4, "block_scales": [1.0], "block_dim": 1},
}
assert tuple(_PROBLEMS) == FUSED_PROBLEMS


def warm(dtypes: tuple[str, ...] = ("float64", "float32")) -> dict[str, float]:
    """Run the fused kernel once per (problem, dtype) and load runs_at's pass; returns
    the seconds each took (empty where numba is not installed: the fused kernel is
    then never chosen)."""
    if importlib.util.find_spec("numba") is None:
        return {}
    from experiments.engine import run_chunk
    from experiments.runs import runs_at
    from experiments.spec import parse_spec

    took: dict[str, float] = {}
    for kind, problem in _PROBLEMS.items():
        for dtype in dtypes:
            spec = parse_spec(
                {
                    "name": "warm-up",
                    "problem": problem,
                    "steps": 2,
                    "dtype": dtype,
                    "optimizer": {"kind": "adam", "lr": 0.01},
                    "grid": {"beta1": [0.0, 0.9], "beta2": [0.999], "batch_size": [1]},
                },
                max_runs=2,
            )
            t0 = time.perf_counter()
            run_chunk(spec, runs_at(spec, np.arange(spec.total_runs())), kernel="fused")
            took[f"{kind} {dtype}"] = time.perf_counter() - t0
    from experiments import run_kernels  # runs_at's pass for the chunks (numba is loaded)

    t0 = time.perf_counter()
    run_kernels.load()
    took["runs_at"] = time.perf_counter() - t0
    return took
