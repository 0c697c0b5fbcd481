"""The randomness contract (DESIGN section 3): minibatch indices are a pure
function of (seed, batch_size, sampling, step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.sampling import batch_indices, stream_key

# (seed, batch_size, n): batches that divide n, straddle epochs, equal n, and b = 1.
STREAMS = [(0, 1, 20), (3, 3, 20), (11, 7, 10), (5, 10, 10), (2**31 - 1, 4, 64)]
SAMPLINGS = ("with_replacement", "reshuffle")


def _indices(seed: int, b: int, n: int, sampling: str, steps: list[int] | range) -> np.ndarray:
    ks = torch.as_tensor(list(steps), dtype=torch.int64)
    return batch_indices(seed=seed, batch_size=b, sampling=sampling, steps=ks, n=n).numpy()


@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize(("seed", "b", "n"), STREAMS)
def test_indices_do_not_depend_on_how_steps_are_requested(
    sampling: str, seed: int, b: int, n: int
) -> None:
    steps = 600
    whole = _indices(seed, b, n, sampling, range(1, steps + 1))
    assert whole.shape == (steps, b)
    assert whole.min() >= 0 and whole.max() < n
    # in uneven blocks, as the engine's stats blocks end at checkpoints
    cuts = [0, 1, 2, 9, 256, 300, 599, steps]
    blocks = [
        _indices(seed, b, n, sampling, range(lo + 1, hi + 1))
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)
    ]
    assert np.array_equal(np.concatenate(blocks), whole)
    # one step at a time, in a random order, and far-away steps alone
    order = np.random.default_rng(seed % 1000).permutation(steps)[:50] + 1
    singles = _indices(seed, b, n, sampling, order.tolist())
    assert np.array_equal(singles, whole[order - 1])


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_streams_differ_by_seed_batch_size_and_sampling(sampling: str) -> None:
    base = _indices(0, 4, 50, sampling, range(1, 101))
    assert not np.array_equal(base, _indices(1, 4, 50, sampling, range(1, 101)))
    other = "reshuffle" if sampling == "with_replacement" else "with_replacement"
    assert not np.array_equal(base, _indices(0, 4, 50, other, range(1, 101)))
    # a different batch size is a different stream, not a re-cut of the same one
    five = _indices(0, 5, 50, sampling, range(1, 81)).ravel()
    assert not np.array_equal(five[:400], base.ravel())
    assert stream_key(0, 4, sampling) != stream_key(0, 5, sampling)


@pytest.mark.parametrize(("seed", "n"), [(0, 20), (9, 7), (4, 64)])
def test_reshuffle_with_full_batch_gives_every_index_once_per_step(seed: int, n: int) -> None:
    idx = _indices(seed, n, n, "reshuffle", range(1, 201))
    assert np.array_equal(np.sort(idx, axis=1), np.broadcast_to(np.arange(n), idx.shape))
    # and the order changes between epochs (it is a reshuffle, not one fixed order)
    assert len({tuple(row) for row in idx}) > 150


@pytest.mark.parametrize(("seed", "b", "n"), [(0, 3, 20), (1, 7, 10), (2, 6, 64)])
def test_reshuffle_visits_every_index_once_per_epoch(seed: int, b: int, n: int) -> None:
    epochs = 30
    steps = epochs * n // b + 1
    stream = _indices(seed, b, n, "reshuffle", range(1, steps + 1)).ravel()[: epochs * n]
    per_epoch = np.sort(stream.reshape(epochs, n), axis=1)
    assert np.array_equal(per_epoch, np.broadcast_to(np.arange(n), per_epoch.shape))


@pytest.mark.parametrize(("n", "b"), [(20, 1), (20, 8), (7, 3)])
def test_with_replacement_is_roughly_uniform(n: int, b: int) -> None:
    draws = _indices(42, b, n, "with_replacement", range(1, 100_000 // b + 1)).ravel()
    counts = np.bincount(draws, minlength=n)
    expected = draws.size / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    df = n - 1
    # A fair sampler exceeds df + 6 sqrt(2 df) far less than once in 10^4; the
    # draws are fixed by the seed, so this cannot flake.
    assert chi2 < df + 6 * np.sqrt(2 * df), (chi2, counts.tolist())
    # positions within a batch are not copies of each other
    if b > 1:
        rows = draws.reshape(-1, b)
        assert np.mean(rows[:, 0] == rows[:, 1]) < 2.0 / n


@pytest.mark.parametrize("sampling", ["with_replacement", "reshuffle"])
@pytest.mark.parametrize("n", [10, 24])
def test_stream_indices_are_each_streams_batch_indices(sampling: str, n: int) -> None:
    # the fused kernel draws every (seed, batch size) stream in one call
    from experiments.sampling import stream_indices, stream_keys

    # (numpy, on the host) against the per-stream torch function
    seeds = np.array([0, 7, 3, 0, 5])
    sizes = np.array([1, 3, 8, 10, 24])
    for steps in (np.arange(250, 530), np.arange(1, 2)):
        idx, valid = stream_indices(seeds=seeds, batch_sizes=sizes, sampling=sampling,
                                    steps=steps, n=n)
        assert idx.dtype == np.int64 and valid.dtype == bool
        for g in range(len(seeds)):
            b = int(sizes[g])
            want = batch_indices(seed=int(seeds[g]), batch_size=b, sampling=sampling,
                                 steps=torch.from_numpy(steps), n=n)
            assert np.array_equal(idx[:, g, :b], want.numpy()), (g, b)
            assert bool(valid[0, g, :b].all()) and not bool(valid[0, g, b:].any())
            assert int(stream_keys(seeds, sizes, sampling)[g]) == stream_key(int(seeds[g]), b,
                                                                             sampling)
