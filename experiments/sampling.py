"""Counter-based sampling: minibatch indices as a pure function of
(seed, batch_size, sampling, step).

A stateful generator would make a run's samples depend on which chunk it ran
in and on how many steps came before in that process. Hashing the counters
instead gives every run that shares a seed and batch size the same samples
(common random numbers across the grid make the phase boundary crisp), on CPU
and CUDA alike, since only 64-bit integer arithmetic is involved.

The hash works on int64 torch tensors and numpy arrays alike. The per-stream
functions take torch tensors (the eager kernel's problems draw on the device);
stream_keys and stream_indices, which the fused kernel calls on the host, take
and return numpy arrays, so that a fused sweep never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    from experiments.lazy import torch

_MASK = 0xFFFFFFFF
_SAMPLING_IDS = {"with_replacement": 1, "reshuffle": 2}


def mix32(x: Any) -> Any:
    """The 'lowbias32' integer hash (C. Wellons), on int64 tensors or arrays holding
    32-bit values.

    Products may wrap past 2**63; the mask keeps the low 32 bits, which wrapping
    does not disturb.
    """
    x = x & _MASK
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    x = x ^ (x >> 16)
    return x


def stream_key(seed: int, batch_size: int, sampling: str) -> int:
    """One 32-bit key per (seed, batch size, sampling) stream."""
    parts = torch.tensor([seed, batch_size, _SAMPLING_IDS[sampling]], dtype=torch.int64)
    h = torch.tensor(0x9E3779B9, dtype=torch.int64)
    for p in parts:
        h = mix32(h ^ mix32(p + 0x632BE5AB))
    return int(h)


def _hash2(key: Any, a: Any, b: Any) -> Any:
    h = mix32(a + (key ^ 0x5BD1E995))
    return mix32(h ^ mix32(b + 0x27D4EB2F))


def uniform_bits(key: int, steps: Tensor, batch_size: int) -> Tensor:
    """Raw 32-bit draws, shape [K, b], for 1-based `steps` of shape [K]."""
    j = torch.arange(batch_size, dtype=torch.int64, device=steps.device)
    return _hash2(key, steps[:, None], j[None, :])


def batch_indices(*, seed: int, batch_size: int, sampling: str, steps: Tensor, n: int) -> Tensor:
    """Sample indices in [0, n), shape [K, batch_size], for 1-based `steps` [K].

    with_replacement: each index drawn independently.
    reshuffle: a stream of permutations of range(n), one per epoch; step k takes
    positions [(k-1)*b, k*b) of the stream (a batch may straddle two epochs), so
    batch_size = n gives the full batch at every step.
    """
    key = stream_key(seed, batch_size, sampling)
    if sampling == "with_replacement":
        return uniform_bits(key, steps, batch_size) % n
    pos = (steps[:, None] - 1) * batch_size + torch.arange(
        batch_size, dtype=torch.int64, device=steps.device
    )[None, :]
    epoch = pos // n
    lo, hi = int(epoch.min()), int(epoch.max())
    epochs = torch.arange(lo, hi + 1, dtype=torch.int64, device=steps.device)
    items = torch.arange(n, dtype=torch.int64, device=steps.device)
    perms = torch.argsort(_hash2(key, epochs[:, None], items[None, :]), dim=1, stable=True)
    return perms[epoch - lo, pos % n]


_NOISE_SALT = 0x2545F491  # keeps the noise stream apart from the index stream of a seed


def normals(*, seed: int, batch_size: int, steps: Tensor, n: int) -> Tensor:
    """Standard normal draws, float64 [K, n], for 1-based `steps` [K].

    Box-Muller on counter-based bits: coordinate i of step k takes the four 32-bit
    words (key, k, 4i .. 4i+3), two 53-bit uniforms u1, u2 (numpy's recipe: 27 and 26
    bits), and z = sqrt(-2 log(1 - u1)) cos(2 pi u2). A pure function of (seed,
    batch_size, step, i): a run sees the same noise in any chunk and any block of
    steps, and runs sharing a seed and batch size share their noise.
    """
    key = stream_key(seed, batch_size, "with_replacement") ^ _NOISE_SALT
    words = uniform_bits(key, steps, 4 * n).reshape(steps.shape[0], n, 4)
    scale = 1.0 / 9007199254740992.0  # 2**-53
    u1 = ((words[..., 0] >> 5) * 67108864 + (words[..., 1] >> 6)).to(torch.float64) * scale
    u2 = ((words[..., 2] >> 5) * 67108864 + (words[..., 3] >> 6)).to(torch.float64) * scale
    return torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos((2.0 * torch.pi) * u2)


def stream_keys(seeds: np.ndarray, batch_sizes: np.ndarray, sampling: str) -> np.ndarray:
    """stream_key for many streams at once: int64 [G] from seeds and batch sizes [G]."""
    seeds = np.asarray(seeds, dtype=np.int64)
    h = np.full_like(seeds, 0x9E3779B9)
    sid = np.full_like(seeds, _SAMPLING_IDS[sampling])
    for p in (seeds, np.asarray(batch_sizes, dtype=np.int64), sid):
        h = mix32(h ^ mix32(p + 0x632BE5AB))
    return h


def stream_indices(
    *, seeds: np.ndarray, batch_sizes: np.ndarray, sampling: str, steps: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """batch_indices of G streams at once, padded to the largest batch size:
    (indices int64 [K, G, b_max], valid bool [1, G, b_max]); entry (k, g, j) with
    j < batch_sizes[g] is batch_indices(seed=seeds[g], ...)[k, j], the rest is 0.

    The same integer arithmetic as batch_indices, element by element, in numpy (a
    stable sort orders equal hashes as torch's stable sort does), so the draws are
    those of the per-stream function exactly (tests/experiments/test_sampling.py
    holds them equal)."""
    batch_sizes = np.asarray(batch_sizes, dtype=np.int64)
    steps = np.asarray(steps, dtype=np.int64)
    keys = stream_keys(seeds, batch_sizes, sampling)[None, :, None]  # [1, G, 1]
    b = batch_sizes[None, :, None]
    j = np.arange(int(batch_sizes.max()), dtype=np.int64)
    valid = j[None, None, :] < b
    j = np.where(valid, j[None, None, :], 0)
    if sampling == "with_replacement":
        return _hash2(keys, steps[:, None, None], j) % n, valid
    pos = (steps[:, None, None] - 1) * b + j  # [K, G, b_max]
    epoch = pos // n
    lo = epoch[:, :, 0].min(axis=0)  # [G]: each stream's first epoch in the block
    span = int((epoch.max(axis=(0, 2)) - lo).max()) + 1
    epochs = lo[:, None] + np.arange(span, dtype=np.int64)
    items = np.arange(n, dtype=np.int64)
    hashed = _hash2(keys[0][:, :, None], epochs[:, :, None], items[None, None, :])
    perms = np.argsort(hashed, axis=2, kind="stable")  # [G, span, n]
    g = np.arange(len(batch_sizes))[None, :, None]
    return perms[g, epoch - lo[None, :, None], pos % n], valid
