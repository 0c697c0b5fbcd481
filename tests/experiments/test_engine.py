"""The engine as a whole: chunk invariance, the compiled kernel, and edge cases.

A run's result must not depend on which chunk it ran in, its position there,
or the chunk's size (DESIGN section 3): workers split sweeps arbitrarily and
results are shared between sweeps by run_key.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
import torch

from experiments.engine import Canceled, ChunkResult, run_chunk
from experiments.local import run_local
from experiments.optimizers import REGISTRY
from experiments.outcomes import DIVERGED
from experiments.runs import all_runs, runs_at
from experiments.spec import parse_spec, run_keys

# --- specs ----------------------------------------------------------------------------------

_CLIPS = [
    {"mode": "none"},
    {"mode": "global_norm", "threshold": 0.03},
    {"mode": "value", "threshold": 0.02},
    {"mode": "adagc", "threshold": 0.04, "ratio": 1.05, "beta": 0.9, "warmup": 20},
]

# 300 steps cross a stats block (256 steps), fused blocks of 8 with remainders
# before checkpoints, and AdaGC's warmup.
INVARIANCE_SPECS: dict[str, dict[str, Any]] = {
    "zhang2022-with-replacement": {
        "problem": {"kind": "zhang2022", "n": 10, "x0": -0.5},
        "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
        "sampling": "with_replacement",
        "steps": 300,
        "grid": {
            "beta1": [0.0, 0.5, 0.9],
            "beta2": [0.3, 0.9, 0.999],
            "batch_size": [1, 3, 8],
            "clip": _CLIPS,
            "seed": [0, 7],
        },
    },
    "zhang2022-reshuffle-adamw": {
        "problem": {"kind": "zhang2022", "n": 10, "x0": -0.5},
        "optimizer": {"kind": "adamw", "lr": 0.05, "weight_decay": 0.01},
        "sampling": "reshuffle",
        "steps": 300,
        "grid": {
            "beta1": [0.0, 0.9],
            "beta2": [0.5, 0.99],
            "batch_size": [1, 4, 10],
            "clip": [_CLIPS[1], _CLIPS[3]],
            "seed": [0, 1],
        },
    },
    "reddi2018": {
        "problem": {"kind": "reddi2018", "C": 3.0},
        "optimizer": {"lr": 0.5, "schedule": "inv_sqrt", "bias_correction": False},
        "steps": 300,
        "grid": {
            "beta1": [0.0, 0.5],
            "beta2": [0.1, 0.9, 0.999],
            "clip": [_CLIPS[0], {"mode": "value", "threshold": 2.0}, _CLIPS[3]],
            "lr": [0.05, 0.5],
        },
    },
    "reddi2018-stochastic": {
        "problem": {"kind": "reddi2018_stochastic", "C": 3.0, "delta": 0.1},
        "optimizer": {"lr": 0.2},
        "steps": 300,
        "grid": {
            "beta1": [0.0, 0.9],
            "beta2": [0.1, 0.99],
            "batch_size": [1, 2, 5],
            "clip": [_CLIPS[0], {"mode": "global_norm", "threshold": 1.5}],
            "seed": [0, 1, 2],
        },
    },
}

LSTSQ_SPEC: dict[str, Any] = {
    "problem": {"kind": "lstsq", "n_samples": 24, "block_scales": [1.0, 10.0, 0.3], "block_dim": 3},
    "optimizer": {"lr": 0.01},
    "sampling": "with_replacement",
    "steps": 300,
    "grid": {
        "beta1": [0.0, 0.9],
        "beta2": [0.9, 0.999],
        "batch_size": [1, 24],
        "clip": [{"mode": "global_norm", "threshold": 2.0}, _CLIPS[3]],
        "seed": [0, 1],
    },
}

# --- helpers --------------------------------------------------------------------------------

FIELDS = (
    "final_loss", "final_rel", "final_gap", "div_step", "clip_fraction", "code", "max_rise",
    "spiky",
)


def _arrays(r: ChunkResult) -> dict[str, np.ndarray]:
    out = {f: getattr(r.outcomes, f) for f in FIELDS}
    out.update(curves=r.curves, x_final=r.x_final, m_final=r.m_final, v_final=r.v_final)
    return out


@cache
def _whole(name: str) -> dict[str, np.ndarray]:
    """One INVARIANCE_SPECS sweep as a single chunk (shared by the tests that need it)."""
    spec = parse_spec(INVARIANCE_SPECS[name])
    return _arrays(run_chunk(spec, all_runs(spec)))


def _in_chunks(spec: Any, order: np.ndarray, sizes: list[int], **kw: Any) -> dict[str, np.ndarray]:
    """Run the sweep's runs in `order`, cut into chunks of `sizes`, and put every
    result back at its grid position."""
    runs = all_runs(spec)
    assert sum(sizes) == len(runs)
    out: dict[str, np.ndarray] = {}
    lo = 0
    for size in sizes:
        rows = order[lo : lo + size]
        lo += size
        for name, arr in _arrays(run_chunk(spec, runs.take(rows), **kw)).items():
            if name not in out:
                out[name] = np.empty((len(runs), *arr.shape[1:]), dtype=arr.dtype)
            out[name][rows] = arr
    return out


def _layouts(n: int, seed: int, both: bool = False) -> list[tuple[np.ndarray, list[int]]]:
    """Chunkings of n runs: a permutation cut into uneven chunks (one of a single
    run) and, with `both`, the reverse order in two halves."""
    perm = np.random.default_rng(seed).permutation(n)
    uneven = (perm, [1, 7, n - 1 - 7 - 13, 13])
    if not both:
        return [uneven]
    return [uneven, (np.arange(n)[::-1].copy(), [n // 2, n - n // 2])]


def _assert_bit_identical(whole: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> None:
    for name, arr in whole.items():
        same = np.array_equal(arr, other[name], equal_nan=arr.dtype.kind == "f")
        if not same:
            bad = np.flatnonzero(
                ~np.isclose(arr, other[name], rtol=0, atol=0, equal_nan=True)
                .reshape(len(arr), -1)
                .all(axis=1)
            )
            pytest.fail(f"{name} differs between chunkings at runs {bad[:10].tolist()}")


# --- chunk invariance -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(INVARIANCE_SPECS))
def test_results_are_bit_identical_whatever_the_chunking(name: str) -> None:
    spec = parse_spec(INVARIANCE_SPECS[name])
    runs = all_runs(spec)
    whole = _whole(name)
    # Guard: the spec must exercise what it claims (several outcomes, clipping).
    assert len(set(whole["code"].tolist())) >= 2 or name.startswith("reddi2018"), whole["code"]
    assert whole["clip_fraction"].max() > 0
    for order, sizes in _layouts(len(runs), seed=len(name), both=name == "reddi2018"):
        _assert_bit_identical(whole, _in_chunks(spec, order, sizes))


def _family_spec(kind: str) -> dict[str, Any]:
    """A sweep of one kind over every clip mode, its β axes where it uses them, and
    warmup_cosine (300 steps: the warm-up, the cosine, a stats block boundary)."""
    uses = REGISTRY[kind].uses
    optimizer: dict[str, Any] = {"kind": kind, "lr": 0.05, "schedule": "warmup_cosine",
                                 "warmup_steps": 30, "final_lr_ratio": 0.1}
    if kind in ("adam", "adamw"):
        optimizer["amsgrad"] = True
    return {
        "problem": {"kind": "zhang2022", "n": 10, "x0": -0.5},
        "optimizer": optimizer,
        "sampling": "with_replacement",
        "steps": 300,
        "grid": {
            "beta1": [0.0, 0.5, 0.9] if "beta1" in uses else [0.0],
            "beta2": [0.3, 0.99] if "beta2" in uses else [0.0],
            "batch_size": [1, 4],
            "clip": _CLIPS,
            "lr": [0.05, 0.5],
            "seed": [0, 3],
        },
    }


@pytest.mark.parametrize("kind", list(REGISTRY))
def test_every_kind_is_bit_identical_whatever_the_chunking(kind: str) -> None:
    spec = parse_spec(_family_spec(kind))
    runs = all_runs(spec)
    whole = _arrays(run_chunk(spec, runs))
    assert whole["clip_fraction"].max() > 0
    assert np.isfinite(whole["x_final"]).any()
    for order, sizes in _layouts(len(runs), seed=len(kind)):
        _assert_bit_identical(whole, _in_chunks(spec, order, sizes))


@pytest.mark.parametrize("kind", ["adam_mini", "lion", "sgd", "rmsprop"])
def test_every_kind_on_lstsq_chunkings_agree_to_1e_12(kind: str) -> None:
    # several parameter tensors: adam_mini's per-tensor v, the per-tensor clips
    doc = {**LSTSQ_SPEC, "optimizer": {"kind": kind, "lr": 0.01}, "steps": 150}
    if kind == "sgd":
        doc["grid"] = {**doc["grid"], "beta2": [0.0]}
        doc["optimizer"]["lr"] = 1e-3
    spec = parse_spec(doc)
    runs = all_runs(spec)
    whole = _arrays(run_chunk(spec, runs))
    for order, sizes in _layouts(len(runs), seed=4):
        other = _in_chunks(spec, order, sizes)
        for name in ("final_loss", "curves", "x_final", "m_final", "v_final"):
            np.testing.assert_allclose(other[name], whole[name], rtol=1e-12, atol=0, err_msg=name)


def test_lstsq_chunkings_agree_to_1e_12() -> None:
    # lstsq's matrix products are computed row by row and come out bit-identical
    # here, but the contract is rounding level: another BLAS need not keep that.
    # Runs oscillating about x* amplify any last-bit difference, which is what
    # this spec (batch 1, constant lr) would show.
    spec = parse_spec(LSTSQ_SPEC)
    runs = all_runs(spec)
    whole = _arrays(run_chunk(spec, runs))
    for order, sizes in _layouts(len(runs), seed=3):
        other = _in_chunks(spec, order, sizes)
        for name in ("final_loss", "final_rel", "final_gap", "curves", "x_final", "m_final"):
            np.testing.assert_allclose(other[name], whole[name], rtol=1e-12, atol=0, err_msg=name)
        np.testing.assert_array_equal(other["code"], whole["code"])


def test_thread_count_does_not_change_results() -> None:
    # The suite runs single-threaded (conftest.py); workers do not.
    spec = parse_spec({**LSTSQ_SPEC, "steps": 100})
    runs = all_runs(spec)
    one = _arrays(run_chunk(spec, runs))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two = _arrays(run_chunk(spec, runs))
    finally:
        torch.set_num_threads(before)
    _assert_bit_identical(one, two)


def test_sub_grid_sweep_shares_run_keys_and_results() -> None:
    full_doc = INVARIANCE_SPECS["zhang2022-with-replacement"]
    full = parse_spec(full_doc)
    values = full.axis_values()
    # Another sweep, named differently, listing a subset of every axis in another
    # order (and beta1 through a linspace that yields the same floats).
    sub_doc = {
        **full_doc,
        "name": "a different sweep",
        "grid": {
            "beta1": {"start": 0.0, "stop": 0.5, "num": 2},
            "beta2": [values["beta2"][2], values["beta2"][0]],
            "batch_size": [8, 1],
            "clip": [_CLIPS[3], _CLIPS[0]],
            "seed": [7],
        },
    }
    sub = parse_spec(sub_doc)
    full_runs, sub_runs = all_runs(full), all_runs(sub)
    full_keys = run_keys(full, full_runs)
    sub_keys = run_keys(sub, sub_runs)
    position = {k: i for i, k in enumerate(full_keys)}
    assert all(k in position for k in sub_keys), "a sub-grid run got a key the sweep lacks"
    rows = np.asarray([position[k] for k in sub_keys])
    # The key identifies the same grid point.
    for col in ("beta1", "beta2", "batch_size", "lr", "seed"):
        np.testing.assert_array_equal(getattr(sub_runs, col), getattr(full_runs, col)[rows])
    whole = _whole("zhang2022-with-replacement")
    part = _arrays(run_chunk(sub, sub_runs))
    for name, arr in part.items():
        assert np.array_equal(arr, whole[name][rows], equal_nan=arr.dtype.kind == "f"), name


def test_run_local_chunk_size_does_not_change_results() -> None:
    spec = parse_spec(INVARIANCE_SPECS["reddi2018-stochastic"])
    a = run_local(spec, device="cpu", chunk_runs=13)
    b = run_local(spec, device="cpu", chunk_runs=10_000)
    assert a.keys == b.keys
    assert np.array_equal(a.curves, b.curves)
    assert np.array_equal(a.outcomes.code, b.outcomes.code)


def test_compiled_kernel_matches_eager_and_is_chunk_invariant() -> None:
    # torch.compile takes 10-60 s here, so this is the one compiled test: a
    # single clip mode keeps it to two graphs (a fused block and a single step),
    # and global-norm clipping is the cheapest to compile that still reduces.
    doc = {
        "problem": {"kind": "zhang2022", "n": 10, "x0": -0.5},
        "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
        "steps": 100,
        "grid": {
            "beta1": [0.0, 0.5, 0.9],
            "beta2": [0.3, 0.99, 0.999],
            "batch_size": [1, 4],
            "clip": [{"mode": "global_norm", "threshold": 0.04}],
            "seed": [0, 1],
        },
    }
    spec = parse_spec(doc)
    runs = all_runs(spec)
    eager = _arrays(run_chunk(spec, runs))
    compiled = _arrays(run_chunk(spec, runs, kernel="compiled"))
    for name in ("x_final", "m_final", "v_final", "curves", "final_loss", "max_rise"):
        np.testing.assert_allclose(
            compiled[name], eager[name], rtol=1e-10, atol=1e-300, err_msg=name
        )
    np.testing.assert_array_equal(compiled["code"], eager["code"])
    np.testing.assert_array_equal(compiled["spiky"], eager["spiky"])
    assert eager["spiky"].any() and not eager["spiky"].all()
    order = np.random.default_rng(5).permutation(len(runs))
    _assert_bit_identical(compiled, _in_chunks(spec, order, [5, len(runs) - 5], kernel="compiled"))
    # The two kernels never share results: their run keys differ.
    assert set(run_keys(spec, runs)).isdisjoint(run_keys(spec, runs, kernel="compiled"))


# --- edge cases -----------------------------------------------------------------------------


def _zhang(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "problem": {"kind": "zhang2022", "n": 10, "x0": -0.5},
        "optimizer": {"lr": 0.1},
        "steps": 200,
        "grid": {"beta1": [0.0, 0.9], "beta2": [0.5, 0.999], "batch_size": [1, 2]},
    }
    for key, value in over.items():
        if key in ("beta1", "beta2", "batch_size", "clip", "lr", "seed"):
            doc["grid"][key] = value
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(
    ("dtype", "lr", "overflows"),
    [
        ("float64", 1e6, False),
        ("float32", 1e6, False),
        ("float32", 1e30, True),  # (x + 2)**2 overflows float32: the loss becomes inf
        ("float32", 3e38, True),  # near float32's largest (1e39 is refused): x overflows
        ("float64", 1e300, True),  # the loss overflows float64
    ],
)
def test_huge_lr_is_recorded_as_diverged(dtype: str, lr: float, overflows: bool) -> None:
    spec = parse_spec(_zhang(dtype=dtype, lr=[lr], clip=[{"mode": "none"}, _CLIPS[3]]))
    result = run_chunk(spec, all_runs(spec))
    o = result.outcomes
    assert o.labels == ["diverged"] * len(o.code), o.labels
    assert np.all((o.div_step >= 1) & (o.div_step <= spec.steps)), o.div_step
    assert np.all(np.isin(o.div_step, result.curve_steps))
    assert (not np.isfinite(result.curves).all()) == overflows


def test_float32_and_float64_agree_on_benign_runs() -> None:
    doc = _zhang(beta2=[0.99, 0.999], batch_size=[1], lr=[0.01], steps=300)
    r64 = run_chunk(parse_spec(doc), all_runs(parse_spec(doc)))
    spec32 = parse_spec({**doc, "dtype": "float32"})
    r32 = run_chunk(spec32, all_runs(spec32))
    assert r32.curves.dtype == np.float64  # results are stored in float64 whatever the dtype
    np.testing.assert_allclose(r32.x_final, r64.x_final, rtol=1e-4)
    np.testing.assert_array_equal(r32.outcomes.code, r64.outcomes.code)


def test_beta2_near_one_and_tiny_eps_stay_finite() -> None:
    spec = parse_spec(
        _zhang(beta2=[0.999999], optimizer={"lr": 0.01, "eps": 1e-16}, clip=_CLIPS, steps=300)
    )
    result = run_chunk(spec, all_runs(spec))
    assert np.isfinite(result.x_final).all() and np.isfinite(result.curves).all()
    assert DIVERGED not in result.outcomes.code.tolist()


def test_zero_size_chunk() -> None:
    spec = parse_spec(_zhang())
    calls: list[tuple[int, int]] = []
    result = run_chunk(spec, runs_at(spec, []), progress=lambda d, t: calls.append((d, t)))
    assert result.curves.shape == (0, len(result.curve_steps))
    assert result.x_final.shape == (0, 1)
    for name in FIELDS:
        assert getattr(result.outcomes, name).shape == (0,)
    assert result.outcomes.labels == []
    assert calls[-1] == (0, 0)


def test_single_run_chunk_equals_its_row_in_a_large_chunk() -> None:
    spec = parse_spec(_zhang(clip=_CLIPS))
    runs = all_runs(spec)
    whole = _arrays(run_chunk(spec, runs))
    for i in (0, len(runs) // 2, len(runs) - 1):
        one = _arrays(run_chunk(spec, runs.take(np.array([i]))))
        for name, arr in one.items():
            assert np.array_equal(arr[0], whole[name][i], equal_nan=True), (name, i)


def test_should_stop_cancels_between_blocks() -> None:
    spec = parse_spec(_zhang(steps=2000))
    asked = 0

    def should_stop() -> bool:
        nonlocal asked
        asked += 1
        return asked >= 3

    with pytest.raises(Canceled):
        run_chunk(spec, all_runs(spec), should_stop=should_stop)
    assert asked == 3  # stopped at the first True, long before 2,000 steps
    never = run_chunk(spec, all_runs(spec), should_stop=lambda: False)
    assert len(never.outcomes.code) == len(all_runs(spec))


def test_progress_is_monotone_and_reaches_total() -> None:
    spec = parse_spec(_zhang(clip=_CLIPS, steps=1000))
    runs = all_runs(spec)
    calls: list[tuple[int, int]] = []
    run_chunk(spec, runs, progress=lambda d, t: calls.append((d, t)))
    total = len(runs) * spec.steps
    done = [d for d, _ in calls]
    assert all(t == total for _, t in calls)
    assert done == sorted(done), done
    assert done[-1] == total and 0 <= done[0]
    assert len(calls) >= 2 * len(_CLIPS)  # reported within chunks, not only at the end
