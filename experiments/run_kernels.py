"""numba functions over many runs at once: the runs at flat grid indices, and their
run keys' hex text.

A piece of an export (50,000 runs) needs each run's grid position, axis values and
run key. Written with numpy these took a dozen passes over the piece: numpy's
unravel_index divides by every axis's size, each value column is a gather through a
strided view, and a key took a division, two gathers, a sum, a byte swap and a
lookup of 16 digit pairs. On the 2-core machine that was about 4 ms (runs_at) and
6 ms (run_keys) per piece, a third of a Parquet export's CPU; one pass each takes
about 1 ms. Like the CSV kernels these are plain njit functions that release the
GIL and are cached on disk by numba. experiments.runs.runs_at and
experiments.spec.run_keys call them for large tables where numba is loaded already
(`experiments.spec.kernel_pass`), and keep the numpy code they are tested against.
"""

from __future__ import annotations

import numpy as np
from numba import njit

HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@njit(cache=True, nogil=True)
def grid_runs(flat, sizes, values, grid, out):  # type: ignore[no-untyped-def]
    """grid[i] = the C-order position of flat[i] in a grid of `sizes` (flat in range),
    and out[j][i] = values[j][grid[i, axis j]] for the value columns (beta1, beta2,
    batch_size, lr, seed: AXES 0, 1, 2, 4, 5; clip is an index). An axis of one value
    costs no division."""
    last = sizes.shape[0] - 1
    for i in range(flat.shape[0]):
        f = flat[i]
        for a in range(last, 0, -1):
            s = sizes[a]
            if s == 1:
                grid[i, a] = 0
            else:
                q = f // s
                grid[i, a] = f - q * s
                f = q
        grid[i, 0] = f
        out[0][i] = values[0][grid[i, 0]]
        out[1][i] = values[1][grid[i, 1]]
        out[2][i] = values[2][grid[i, 2]]
        out[3][i] = values[3][grid[i, 4]]
        out[4][i] = values[4][grid[i, 5]]


@njit(cache=True, nogil=True)
def write_keys(flat, inner_size, outer, inner, prefix, digits, out):  # type: ignore[no-untyped-def]
    """out[i] (uint8 [64]) = prefix (32 ASCII digits) + the big-endian hex of lanes
    0 and 1 of outer[flat[i] // inner_size] + inner[flat[i] % inner_size] (uint64
    sums wrap, as the definition's do)."""
    fifteen = np.uint64(15)
    four = np.uint64(4)
    for i in range(flat.shape[0]):
        o = flat[i] // inner_size
        k = flat[i] - o * inner_size
        for j in range(32):
            out[i, j] = prefix[j]
        for lane in range(2):
            v = outer[o, lane] + inner[k, lane]
            end = 32 + 16 * lane + 15
            for d in range(16):
                out[i, end - d] = digits[v & fifteen]
                v >>= four


def load() -> None:
    """Load both functions (from numba's cache, or compiled once per machine: about
    2 s) with the argument types runs_at and run_keys pass, ahead of a first export or
    chunk."""
    one, real = np.zeros(1, dtype=np.int64), np.zeros(1)
    columns = (real, real, one, real, one)
    grid_runs(one, np.ones(6, dtype=np.int64), columns, np.empty((1, 6), np.int64), columns)
    lanes = np.zeros((1, 2), dtype=np.uint64)
    key = np.empty((1, 64), dtype=np.uint8)
    write_keys(one, 1, lanes, lanes, np.frombuffer(b"0" * 32, np.uint8), HEX_DIGITS, key)
