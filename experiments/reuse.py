"""Which runs two sweeps share, and how a sweep is cut into chunks.

Runs are identified by the sweep's program (everything its runs share) and
their axis values, so a sweep whose every axis holds an earlier sweep's values
(same program) contains that sweep's grid: the shared runs are found by
mapping axis indices, never by comparing runs one by one.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from experiments.spec import SEED, SweepSpec, axis_value_json, program_digest

TARGET_CHUNKS = 16  # so that a map fills in visibly, even for a few thousand runs
MIN_CHUNK_RUNS = 64


def grid_digest(spec: SweepSpec, kernel: str) -> str:
    """sha256 hex of the program and every axis's values in order: equal digests,
    identical grids (and identical flat indices)."""
    h = hashlib.sha256(program_digest(spec, kernel))
    for axis, values in spec.axis_values().items():
        h.update(f'["{axis}",[{",".join(axis_value_json(axis, v) for v in values)}]]'.encode())
    return h.hexdigest()


def axis_maps(outer: SweepSpec, inner: SweepSpec) -> list[np.ndarray] | None:
    """Per axis, each outer value's index in inner's axis (-1 if absent); None when
    inner's grid is not contained in outer's (same program assumed)."""
    maps = []
    if outer.axes() != inner.axes():
        return None
    ov, iv = outer.axis_values(), inner.axis_values()
    for axis in outer.axes():
        where = {axis_value_json(axis, v): i for i, v in enumerate(iv[axis])}
        m = np.array([where.get(axis_value_json(axis, v), -1) for v in ov[axis]], dtype=np.int64)
        if int((m >= 0).sum()) != len(iv[axis]):
            return None
        maps.append(m)
    return maps


def map_runs(
    outer: SweepSpec, inner: SweepSpec, maps: list[np.ndarray], flat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For outer flat indices: (in inner's grid? bool [n], inner flat index [n], -1 if not)."""
    grid = np.unravel_index(np.asarray(flat, dtype=np.int64), outer.axis_sizes())
    mapped = [m[g] for m, g in zip(maps, grid, strict=True)]
    inside = np.logical_and.reduce([m >= 0 for m in mapped])
    inner_flat = np.full(len(inside), -1, dtype=np.int64)
    if inside.any():
        inner_flat[inside] = np.ravel_multi_index(
            tuple(m[inside] for m in mapped), inner.axis_sizes()
        )
    return inside, inner_flat


def chunk_unit(spec: SweepSpec) -> int:
    """Runs in the smallest whole number of cells that is a range of flat indices:
    the sizes of the seed axis and of every (extra) axis after it multiplied. With
    extra axes a cell's seeds are not consecutive, but such a block holds each of
    its cells whole."""
    return math.prod(spec.axis_sizes()[SEED:])


def cells_per_unit(spec: SweepSpec) -> int:
    """Cells in one chunk_unit: the product of the extra axes' sizes."""
    return math.prod(spec.axis_sizes()[SEED + 1 :])


def cell_index(spec: SweepSpec, flat: np.ndarray) -> np.ndarray:
    """Each run's cell: its flat index over every axis but seed (analysis.Cells order)."""
    flat = np.asarray(flat, dtype=np.int64)
    per = cells_per_unit(spec)
    return (flat // chunk_unit(spec)) * per + flat % per


def chunk_bounds(spec: SweepSpec, max_runs: int, kernel: str | None = None) -> np.ndarray:
    """Chunk boundaries [0, ..., total] over flat indices: about TARGET_CHUNKS chunks,
    at most max_runs runs each, every chunk a whole number of chunk_units (so every
    cell's runs are in one chunk, which computes its medians).

    On the eager and compiled kernels a chunk holds at least the problem's
    eager_chunk_runs (fewer chunks, down to one): each step of a chunk's program has
    a fixed cost that more chunks would pay again without showing a map any sooner.
    Without a kernel (as the columnar migration cut older sweeps) MIN_CHUNK_RUNS."""
    total = spec.total_runs()
    per_cell = chunk_unit(spec)
    least = MIN_CHUNK_RUNS
    if kernel in ("eager", "compiled"):
        least = max(least, spec.problem.eager_chunk_runs)
    size = min(max_runs, max(least, math.ceil(total / TARGET_CHUNKS)))
    size = max(per_cell, size // per_cell * per_cell)
    return np.append(np.arange(0, total, size, dtype=np.int64), np.int64(total))
