"""run_key: computed without a hash per run, equal to its definition written out
per run, and found again from the key alone (DESIGN section 2, storage at scale)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import experiments.run_kernels  # noqa: F401  (numba loaded: large tables take its pass)
from experiments.keys import find_run, parse_key
from experiments.presets import preset
from experiments.reuse import axis_maps, chunk_bounds, grid_digest, map_runs
from experiments.runs import all_runs, runs_at
from experiments.spec import (
    KERNEL_RUNS,
    _run_prefix,
    canonical_json,
    kernel_pass,
    parse_spec,
    run_keys,
)

DOC = {
    "problem": {"kind": "zhang2022", "n": 20},
    "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
    "steps": 50,
    "grid": {"beta1": [0.0, 0.5, 0.9], "beta2": {"log1m": [0.001, 1.0], "num": 5},
             "batch_size": [1, 4],
             "clip": [{"mode": "none"}, {"mode": "global_norm", "threshold": 1.0}],
             "lr": [0.1, 0.05], "seed": [0, 1, 7]},
}


def reference_keys(spec, runs, kernel: str = "eager") -> list[str]:  # type: ignore[no-untyped-def]
    """The definition, one run at a time with Python integers: sha256 of the program
    (first 16 bytes) and, per lane, the sum mod 2**64 of each axis value's hash."""
    program = hashlib.sha256(canonical_json(_run_prefix(spec, kernel)).encode()).digest()[:16]
    values = spec.axis_values()
    axes = spec.axes()  # the six standard axes, then any extra axes
    keys = []
    for g in runs.grid_index.tolist():
        lanes = [0, 0]
        for axis, i in zip(axes, g, strict=True):
            v = values[axis][i]
            text = json.dumps(v.model_dump(mode="json") if axis == "clip" else v,
                              sort_keys=True, separators=(",", ":"))
            digest = hashlib.sha256(f'["{axis}",{text}]'.encode()).digest()
            for j in range(2):
                lanes[j] = (lanes[j] + int.from_bytes(digest[8 * j: 8 * j + 8], "little")) % 2**64
        keys.append(program.hex() + "".join(f"{x:016x}" for x in lanes))
    return keys


@pytest.mark.parametrize("kernel", ["eager", "compiled"])
def test_vectorized_keys_equal_the_per_run_definition(kernel: str) -> None:
    spec = parse_spec(DOC)
    runs = all_runs(spec)
    keys = run_keys(spec, runs, kernel=kernel).astype(str).tolist()
    assert keys == reference_keys(spec, runs, kernel)
    assert len(set(keys)) == len(keys) == spec.total_runs()


@pytest.mark.parametrize("extra", [False, True])
def test_keys_of_a_large_table_come_from_the_kernel_and_equal_the_definition(
    extra: bool,
) -> None:
    """From KERNEL_RUNS runs on, where numba is loaded, run_keys writes the keys in one
    numba pass (experiments/run_kernels.py): every key equals the per-run definition, in any
    order of flat indices (the sums of random 64-bit hashes wrap modulo 2**64), and
    the numpy path gives the same keys for a few of them."""
    doc = json.loads(json.dumps(DOC))
    doc["grid"]["beta1"] = {"start": 0.0, "stop": 0.99, "num": 12 if extra else 36}
    if extra:  # one more term in the sum, and a split between the two tables elsewhere
        doc["grid"]["problem.n"] = [10, 20]
        doc["grid"]["optimizer.eps"] = [1e-8, 1e-6, 1e-3]
    spec = parse_spec(doc, max_runs=10**6)
    assert spec.total_runs() >= KERNEL_RUNS and kernel_pass(spec.total_runs())
    flat = np.random.default_rng(0).permutation(spec.total_runs())
    runs = runs_at(spec, flat)
    keys = run_keys(spec, runs, kernel="fused")
    assert keys.dtype == np.dtype("S64") and keys.shape == flat.shape
    assert keys.astype(str).tolist() == reference_keys(spec, runs, "fused")
    few = runs_at(spec, flat[:KERNEL_RUNS - 1])  # below the threshold: numpy
    assert (run_keys(spec, few, kernel="fused") == keys[:KERNEL_RUNS - 1]).all()


def test_a_run_has_the_same_key_in_any_sweep_that_holds_it() -> None:
    full = parse_spec(DOC)
    sub_doc = json.loads(json.dumps(DOC))
    sub_doc["grid"]["beta1"], sub_doc["grid"]["seed"] = [0.9, 0.0], [7]
    sub = parse_spec(sub_doc)
    maps = axis_maps(full, sub)
    assert maps is not None
    flat = np.arange(full.total_runs())
    inside, sub_flat = map_runs(full, sub, maps, flat)
    assert inside.sum() == sub.total_runs()
    full_keys = run_keys(full, runs_at(full, flat[inside]))
    sub_keys = run_keys(sub, runs_at(sub, sub_flat[inside]))
    assert (full_keys == sub_keys).all()
    assert axis_maps(sub, full) is None  # the smaller grid does not contain the larger
    overlap = json.loads(json.dumps(DOC))
    overlap["grid"]["seed"] = [0, 99]  # shares seed 0 only
    assert axis_maps(full, parse_spec(overlap)) is None


def test_everything_the_runs_share_is_in_the_key() -> None:
    spec = parse_spec(DOC)
    key = run_keys(spec, runs_at(spec, [5]))[0]
    for change in ({"steps": 51}, {"dtype": "float32"}, {"sampling": "reshuffle"},
                   {"criteria": {"converge_rel": 0.04}},
                   {"optimizer": {**DOC["optimizer"], "eps": 1e-7}}):
        other = parse_spec({**DOC, **change})
        assert run_keys(other, runs_at(other, [5]))[0] != key, change
        assert grid_digest(other, "eager") != grid_digest(spec, "eager")
    assert run_keys(spec, runs_at(spec, [5]), kernel="compiled")[0] != key
    for axis, values in (("seed", [0, 1, 8]), ("beta1", [0.0, 0.5]), ("lr", [0.1, 0.06])):
        other = parse_spec({**DOC, "grid": {**DOC["grid"], axis: values}})
        assert grid_digest(other, "eager") != grid_digest(spec, "eager"), axis


def test_find_run_inverts_the_key_on_a_grid_of_ten_million() -> None:
    doc = json.loads(json.dumps(DOC))
    doc["grid"] = {"beta1": {"start": 0.0, "stop": 0.99, "num": 1000},
                   "beta2": {"log1m": [1e-4, 1.0], "num": 1000}, "seed": list(range(10))}
    spec = parse_spec(doc)
    assert spec.total_runs() == 10**7
    rng = np.random.default_rng(0)
    flat = np.sort(rng.choice(spec.total_runs(), size=20, replace=False))
    keys = run_keys(spec, runs_at(spec, flat)).astype(str).tolist()
    assert [find_run(spec, k) for k in keys] == flat.tolist()
    other = parse_spec({**doc, "steps": 49})
    assert find_run(other, keys[0]) is None  # another program's key
    assert find_run(spec, keys[0][:32] + "0" * 32) is None
    assert parse_key("zz" * 32) is None and parse_key("ab") is None


def test_chunks_are_whole_cells_and_tile_the_grid() -> None:
    spec = parse_spec(DOC)  # 3 seeds a cell
    for max_runs in (1, 5, 64, 10**6):
        bounds = chunk_bounds(spec, max_runs)
        sizes = np.diff(bounds)
        assert bounds[0] == 0 and bounds[-1] == spec.total_runs() and (sizes > 0).all()
        assert (sizes % 3 == 0).all()
    assert len(chunk_bounds(spec, 10**6)) - 1 >= 5  # even 360 runs fill in visibly
    doc = json.loads(json.dumps(DOC))
    doc["grid"] = {"beta1": {"start": 0.0, "stop": 0.99, "num": 1000},
                   "beta2": {"log1m": [1e-4, 1.0], "num": 1000}, "seed": list(range(10))}
    assert len(chunk_bounds(parse_spec(doc), 50_000)) - 1 == 200


def test_eager_chunks_hold_enough_runs_to_outweigh_a_steps_fixed_cost() -> None:
    """16 chunks of zhang2022-batch took 58 s on the eager kernel against 4.9 s for one
    (each step of a chunk's program costs about as much as 8,000 of its runs): eager
    and compiled chunks hold at least the problem's eager_chunk_runs; fused keeps 16
    chunks, and a problem whose runs cost more than its steps (the MLP) its many."""
    batch = parse_spec(preset("zhang2022-batch"))  # 2,880 zhang2022 runs
    for kernel in ("eager", "compiled"):
        assert chunk_bounds(batch, 50_000, kernel).tolist() == [0, 2880]
    assert len(chunk_bounds(batch, 50_000, "fused")) - 1 == 16
    assert len(chunk_bounds(batch, 50_000)) - 1 == 16  # as the migration cut older sweeps
    assert len(chunk_bounds(batch, 100, "eager")) - 1 == 30  # the server's cap still holds
    big = json.loads(json.dumps(preset("zhang2022-batch")))
    big["grid"]["seed"] = list(range(30))  # 28,800 runs: 8,192 a chunk, to whole cells
    assert np.diff(chunk_bounds(parse_spec(big), 50_000, "eager")).tolist() == [8190] * 3 + [4230]
    digits = parse_spec(preset("zhang2022-digits"))  # 240 MLP runs
    assert len(chunk_bounds(digits, 50_000, "eager")) - 1 == 4
