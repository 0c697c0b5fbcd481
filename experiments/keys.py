"""From a run_key back to the run: which grid point of a sweep has this key.

A run_key's last 32 hex digits are two sums over the axes of per-axis value
hashes (experiments.spec.run_keys). Splitting the axes into two groups whose
grids are each about the square root of the sweep's size, the key's sums minus
one group's partial sums must equal the other group's: a sorted search finds
the run in O(sqrt(runs) log runs) work, so looking a run up in a sweep of 10^7
runs touches a few thousand values, never the whole grid.
"""

from __future__ import annotations

import numpy as np

from experiments.spec import SweepSpec, axis_hashes, program_digest


def parse_key(key: str) -> tuple[bytes, np.ndarray] | None:
    """(program digest prefix, lanes uint64 [2]) of a run_key; None if malformed."""
    if len(key) != 64:
        return None
    try:
        raw = bytes.fromhex(key)
    except ValueError:
        return None
    return raw[:16], np.frombuffer(raw[16:], dtype=">u8").astype(np.uint64)


def find_run(spec: SweepSpec, key: str, *, kernel: str = "eager") -> int | None:
    """The flat grid index of the run with this key, or None if the sweep has none."""
    parsed = parse_key(key)
    if parsed is None or parsed[0] != program_digest(spec, kernel)[:16]:
        return None
    target = parsed[1]
    hashes = axis_hashes(spec)
    sizes = spec.axis_sizes()
    left, right = _split(sizes)
    axes = spec.axes()
    sums_l, idx_l = _partial(hashes, axes, sizes, left)
    sums_r, idx_r = _partial(hashes, axes, sizes, right)
    order = np.argsort(sums_l[:, 0], kind="stable")
    sorted0 = sums_l[order, 0]
    want = target[None, :] - sums_r  # uint64 wraps, as the sums did
    lo = np.searchsorted(sorted0, want[:, 0], side="left")
    hi = np.searchsorted(sorted0, want[:, 0], side="right")
    for r in np.flatnonzero(hi > lo).tolist():  # almost always exactly one candidate
        for pos in range(int(lo[r]), int(hi[r])):
            li = int(order[pos])
            if sums_l[li, 1] == want[r, 1]:
                grid = [0] * len(axes)
                for a, v in zip(left, idx_l[li], strict=True):
                    grid[a] = int(v)
                for a, v in zip(right, idx_r[r], strict=True):
                    grid[a] = int(v)
                return int(np.ravel_multi_index(tuple(grid), sizes))
    return None


def _split(sizes: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Axes into two groups with grids of about equal size (largest axes first)."""
    left: list[int] = []
    right: list[int] = []
    pl = pr = 1
    for a in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        if pl <= pr:
            left.append(a)
            pl *= sizes[a]
        else:
            right.append(a)
            pr *= sizes[a]
    return left, right


def _partial(
    hashes: dict[str, np.ndarray],
    names: tuple[str, ...],
    sizes: tuple[int, ...],
    axes: list[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Lane sums [P, 2] over every combination of the given axes' values, and the
    combinations' indices [P, len(axes)]."""
    if not axes:
        return np.zeros((1, 2), dtype=np.uint64), np.zeros((1, 0), dtype=np.int64)
    shape = tuple(sizes[a] for a in axes)
    idx = np.stack(np.unravel_index(np.arange(int(np.prod(shape))), shape), axis=1)
    sums = np.zeros((idx.shape[0], 2), dtype=np.uint64)
    for j, a in enumerate(axes):
        sums += hashes[names[a]][idx[:, j]]
    return sums, idx
