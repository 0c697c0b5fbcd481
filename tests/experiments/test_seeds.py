"""Every run sees its own seed's minibatches, exactly as the randomness contract
(DESIGN section 3, experiments/sampling.py) defines them.

The reference here is a plain per-run float64 loop: it computes the
contract's hash in Python integers (C. Wellons' lowbias32, keyed by seed,
batch size and sampling), draws its own minibatch indices from it, averages
the component gradients of the paper's definitions, and applies Adam. The
engine's result for every (seed, batch size, beta) run must equal it. A sweep
whose runs all used one seed's samples, or samples of the wrong step, or of
another batch size, fails here; so does any change to the contract itself.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from experiments.engine import run_chunk
from experiments.runs import all_runs
from experiments.sampling import batch_indices
from experiments.spec import parse_spec

M32 = 0xFFFFFFFF
SAMPLING_IDS = {"with_replacement": 1, "reshuffle": 2}


def _mix32(x: int) -> int:
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def _stream_key(seed: int, batch_size: int, sampling: str) -> int:
    h = 0x9E3779B9
    for p in (seed, batch_size, SAMPLING_IDS[sampling]):
        h = _mix32(h ^ _mix32(p + 0x632BE5AB))
    return h


def _hash2(key: int, a: int, b: int) -> int:
    return _mix32(_mix32(a + (key ^ 0x5BD1E995)) ^ _mix32(b + 0x27D4EB2F))


def _bits(seed: int, b: int, sampling: str, k: int) -> list[int]:
    key = _stream_key(seed, b, sampling)
    return [_hash2(key, k, j) for j in range(b)]


def contract_indices(seed: int, b: int, sampling: str, steps: int, n: int) -> list[list[int]]:
    """Minibatch indices of steps 1..steps, written from the contract's definition."""
    if sampling == "with_replacement":
        return [[u % n for u in _bits(seed, b, sampling, k)] for k in range(1, steps + 1)]
    key = _stream_key(seed, b, sampling)
    perms: dict[int, list[int]] = {}

    def perm(epoch: int) -> list[int]:
        if epoch not in perms:  # a stable sort of the items by their hash
            perms[epoch] = sorted(range(n), key=lambda i: (_hash2(key, epoch, i), i))
        return perms[epoch]

    out = []
    for k in range(1, steps + 1):
        pos = [(k - 1) * b + j for j in range(b)]
        out.append([perm(p // n)[p % n] for p in pos])
    return out


def _adam(grad: Any, project: Any, x0: float, steps: int, b1: float, b2: float, lr: float,
          eps: float) -> float:
    """Adam with bias correction and a constant lr (Kingma & Ba 2015), one run, float64."""
    x, m, v = x0, 0.0, 0.0
    for k in range(1, steps + 1):
        g = grad(x, k)
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g * g
        x = project(x - lr * (m / (1.0 - b1**k)) / (math.sqrt(v / (1.0 - b2**k)) + eps))
    return x


def _zhang_reference(doc: dict[str, Any], seed: int, b: int, b1: float, b2: float) -> float:
    n, steps = doc["problem"]["n"], doc["steps"]
    a = 1.0 / (n - 1) ** 2
    idx = contract_indices(seed, b, doc["sampling"], steps, n)

    def grad(x: float, k: int) -> float:
        h = 1.0 if x >= -1 else x + 2.0  # f_i'(x) = c_i * h(x), eq. 2.5
        return sum(((1.0 + (n - 1) * a) if i == 0 else -a) * h for i in idx[k - 1]) / b

    opt = doc["optimizer"]
    return _adam(grad, lambda x: x, doc["problem"]["x0"], steps, b1, b2, opt["lr"], opt["eps"])


def _reddi_reference(doc: dict[str, Any], seed: int, b: int, b1: float, b2: float) -> float:
    c, delta = doc["problem"]["C"], doc["problem"]["delta"]
    p = (1.0 + delta) / (c + 1.0)
    steps = doc["steps"]
    draws = [_bits(seed, b, doc["sampling"], k) for k in range(1, steps + 1)]

    def grad(x: float, k: int) -> float:
        # Theorem 3: a sample is C x with probability p (a 32-bit draw below p * 2**32)
        return sum(c if u < p * 2.0**32 else -1.0 for u in draws[k - 1]) / b

    opt = doc["optimizer"]
    return _adam(grad, lambda x: min(1.0, max(-1.0, x)), doc["problem"]["x0"], steps, b1, b2,
                 opt["lr"], opt["eps"])


GRID = {"beta1": [0.0, 0.9], "beta2": [0.9, 0.999], "batch_size": [1, 3], "seed": [0, 1, 5]}
CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "zhang2022-with-replacement": (
        {
            "problem": {"kind": "zhang2022", "n": 10, "x0": -0.5},
            "optimizer": {"lr": 0.02, "eps": 1e-8, "bias_correction": True},
            "sampling": "with_replacement",
            "steps": 300,
            "grid": GRID,
        },
        _zhang_reference,
    ),
    "zhang2022-reshuffle": (
        {
            "problem": {"kind": "zhang2022", "n": 10, "x0": -0.5},
            "optimizer": {"lr": 0.02, "eps": 1e-8, "bias_correction": True},
            "sampling": "reshuffle",
            "steps": 300,
            "grid": GRID,
        },
        _zhang_reference,
    ),
    "reddi2018-stochastic": (
        {
            "problem": {"kind": "reddi2018_stochastic", "C": 3.0, "delta": 0.1, "x0": 0.0},
            "optimizer": {"lr": 0.01, "eps": 1e-8, "bias_correction": True},
            "sampling": "with_replacement",
            "steps": 300,
            "grid": GRID,
        },
        _reddi_reference,
    ),
}


@pytest.mark.parametrize("sampling", ["with_replacement", "reshuffle"])
@pytest.mark.parametrize(
    ("seed", "b", "n"), [(0, 1, 10), (1, 3, 10), (5, 4, 7), (2**31 - 1, 10, 10)]
)
def test_sampler_is_the_contract(sampling: str, seed: int, b: int, n: int) -> None:
    steps = 40
    got = batch_indices(
        seed=seed, batch_size=b, sampling=sampling, steps=torch.arange(1, steps + 1), n=n
    )
    assert got.tolist() == contract_indices(seed, b, sampling, steps, n)


def test_contract_values_are_pinned() -> None:
    # A change to the hash changes every result: it must come with a new engine version.
    ks = torch.arange(1, 4)
    wr = batch_indices(seed=0, batch_size=4, sampling="with_replacement", steps=ks, n=10)
    assert wr.tolist() == [[8, 9, 2, 7], [8, 6, 8, 0], [1, 6, 0, 5]]
    rs = batch_indices(seed=1, batch_size=4, sampling="reshuffle", steps=ks, n=10)
    assert rs.tolist() == [[7, 0, 9, 1], [6, 8, 4, 2], [3, 5, 0, 9]]


@pytest.mark.parametrize("name", list(CASES))
def test_every_run_sees_its_own_seeds_samples(name: str) -> None:
    doc, reference = CASES[name]
    spec = parse_spec(doc)
    runs = all_runs(spec)
    x = run_chunk(spec, runs).x_final[:, 0]
    refs: dict[tuple[int, int, float, float], float] = {}
    for i in range(len(runs)):
        key = (int(runs.seed[i]), int(runs.batch_size[i]), float(runs.beta1[i]),
               float(runs.beta2[i]))
        refs[key] = reference(doc, *key)
        assert x[i] == pytest.approx(refs[key], rel=1e-9, abs=1e-12), (key, x[i], refs[key])
    # Guard: the samples matter, far beyond the tolerance. Every pair of seeds
    # ends apart on every (batch, beta) point, so a run on another seed's samples
    # could not pass.
    seeds = GRID["seed"]
    for b in GRID["batch_size"]:
        for b1 in GRID["beta1"]:
            for b2 in GRID["beta2"]:
                ends = [refs[(s, b, b1, b2)] for s in seeds]
                gaps = [abs(p - q) for j, p in enumerate(ends) for q in ends[j + 1:]]
                assert min(gaps) > 1e-6, (b, b1, b2, ends)


def test_seeds_do_not_share_minibatches_in_a_sweep() -> None:
    # Same config, different seeds: different loss curves at every batch size.
    doc, _ = CASES["zhang2022-with-replacement"]
    spec = parse_spec(doc)
    runs = all_runs(spec)
    curves = run_chunk(spec, runs).curves
    for b in GRID["batch_size"]:
        for b1 in GRID["beta1"]:
            rows = np.flatnonzero((runs.batch_size == b) & (runs.beta1 == b1) & (runs.beta2 == 0.9))
            assert len(rows) == len(GRID["seed"])
            distinct = {tuple(curves[r].tolist()) for r in rows}
            assert len(distinct) == len(rows), (b, b1)
