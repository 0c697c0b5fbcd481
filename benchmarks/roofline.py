"""The divider roofline of benchmarks/engine.py --peers (docs/engine.md derives it)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

LANES = 64


@njit(parallel=True, cache=True, error_model="numpy")
def divider_bound(a, b, steps):  # type: ignore[no-untyped-def]
    """steps x (4 divisions + 1 square root) per element, vectorized over lanes of 64
    elements held in L1, as many independent lanes as threads: nothing but the
    division and square-root work of one Adam run-step, at the divider's throughput."""
    n_blocks = (a.shape[0] + LANES - 1) // LANES
    for blk in prange(n_blocks):
        lo = blk * LANES
        hi = min(lo + LANES, a.shape[0])
        x = a[lo:hi].copy()
        y = b[lo:hi].copy()
        one = y[0] / y[0]
        for _ in range(steps):
            for r in range(hi - lo):
                p = x[r] / y[r]
                q = y[r] / (x[r] + one)
                x[r] = q / (np.sqrt(p / q) + one)
        a[lo:hi] = x
    return a
