"""The fused kernel (numba, experiments/fused.py) against the per-run references, against
eager, across chunkings; its max_rise against a per-run loop; `kernel: auto`; and the
kernel's shortcuts that must leave every number as it is (max_rise's skipped division,
the running products' floor, the one-pass curve summary, the driver's stream grouping).

Every row of the equivalence tables that the fused kernel supports (adam and
adamw on zhang2022 and lstsq, every clip mode and schedule, float64 and float32)
runs through it and is held to the same per-run references and tolerances as
eager. Against eager itself the two agree to rounding, not bit for bit: torch's
float64 sqrt on this CPU (MKL's vector sqrt) is not correctly rounded in about 1 %
of cases, numba's is; lstsq's products are summed in another order than BLAS's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from experiments.engine import run_chunk
from experiments.kernels import AUTO_MIN_RUN_STEPS, fused_unsupported, resolve_kernel
from experiments.local import run_local
from experiments.outcomes import relative
from experiments.runs import all_runs
from experiments.spec import SpecError, parse_spec, run_keys

from .configs import (
    FAMILY_LOOP_CASES,
    FAMILY_TORCH_CASES,
    FLOAT32_CASES,
    LOOP_CASES,
    TORCH_CASES,
    Case,
    spec_document,
)
from .reference import FullBatch, loop_reference, torch_reference
from .test_engine import (
    INVARIANCE_SPECS,
    LSTSQ_SPEC,
    _arrays,
    _assert_bit_identical,
    _family_spec,
    _in_chunks,
    _layouts,
)
from .test_optim import _check_against

ALL_CASES = [*TORCH_CASES, *LOOP_CASES, *FLOAT32_CASES, *FAMILY_TORCH_CASES, *FAMILY_LOOP_CASES]
FUSED_CASES = [c for c in ALL_CASES if fused_unsupported(parse_spec(spec_document(c))) is None]


def test_the_tables_cover_what_fused_supports() -> None:
    covered = {(c.problem, c.optimizer.get("kind", "adam"), c.clip_mode, c.dtype)
               for c in FUSED_CASES}
    for problem in ("zhang2022", "lstsq"):
        for clip in ("none", "global_norm", "value", "adagc"):
            assert (problem, "adam", clip, "float64") in covered, (problem, clip)
        assert (problem, "adamw", "none", "float64") in covered
        assert any(c[0] == problem and c[3] == "float32" for c in covered)


@pytest.mark.parametrize("case", FUSED_CASES, ids=[c.id for c in FUSED_CASES])
def test_fused_kernel_matches_the_references(case: Case) -> None:
    _check_against(case, torch_reference if case.reference == "torch" else loop_reference,
                   kernel="fused")


F64_CASES = [c for c in FUSED_CASES if c.dtype == "float64"]


@pytest.mark.parametrize("case", F64_CASES, ids=[c.id for c in F64_CASES])
def test_fused_kernel_matches_eager_in_the_approach_phase(case: Case) -> None:
    spec = parse_spec(spec_document(case))
    runs = all_runs(spec)
    eager = _arrays(run_chunk(spec, runs))
    fused = _arrays(run_chunk(spec, runs, kernel="fused"))
    for name in ("x_final", "m_final", "v_final", "curves", "final_loss", "final_gap"):
        np.testing.assert_allclose(fused[name], eager[name], rtol=1e-11, atol=1e-300,
                                   err_msg=name)
    for name in ("code", "div_step", "clip_fraction"):
        np.testing.assert_array_equal(fused[name], eager[name], err_msg=name)


# --- chunk invariance -----------------------------------------------------------------------

_INVARIANCE = {
    **{k: v for k, v in INVARIANCE_SPECS.items() if k.startswith("zhang2022")},
    "family-adam": _family_spec("adam"),
    "family-adamw": _family_spec("adamw"),
    "lstsq": LSTSQ_SPEC,
    "lstsq-reshuffle-float32": {**LSTSQ_SPEC, "sampling": "reshuffle", "dtype": "float32",
                                "grid": {**LSTSQ_SPEC["grid"], "batch_size": [1, 5, 24]}},
}


@pytest.mark.parametrize("name", list(_INVARIANCE))
def test_fused_results_are_bit_identical_whatever_the_chunking(name: str) -> None:
    spec = parse_spec(_INVARIANCE[name])
    runs = all_runs(spec)
    whole_result = run_chunk(spec, runs, kernel="fused")
    whole = {**_arrays(whole_result), "max_rise": whole_result.outcomes.max_rise}
    assert whole["clip_fraction"].max() > 0
    for order, sizes in _layouts(len(runs), seed=len(name), both=True):
        other = _in_chunks(spec, order, sizes, kernel="fused")
        rise = np.empty(len(runs))
        lo = 0
        for size in sizes:  # max_rise is not among _arrays' fields: gather it here
            rows = order[lo : lo + size]
            lo += size
            part = run_chunk(spec, runs.take(rows), kernel="fused").outcomes.max_rise
            assert part is not None
            rise[rows] = part
        _assert_bit_identical(whole, {**other, "max_rise": rise})


def test_fused_and_eager_keys_differ_and_each_kernel_is_its_own() -> None:
    spec = parse_spec(INVARIANCE_SPECS["zhang2022-with-replacement"])
    runs = all_runs(spec)
    assert set(run_keys(spec, runs)).isdisjoint(run_keys(spec, runs, kernel="fused"))


# --- max_rise -------------------------------------------------------------------------------


def _max_rise_loop(spec: Any, beta1: float, beta2: float, lr: float) -> float:
    """One full-batch run of Adam (bias correction, constant lr), numpy float64; rel at
    every step from the problem's own loss and DESIGN section 5's relative()."""
    fb = FullBatch(spec)
    problem = fb.problem
    x = fb.x0()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    f0 = float(problem.loss(torch.from_numpy(x)[None, :])[0])
    rel_min, rise = math.inf, 1.0
    floor = max(spec.criteria.converge_rel, float(np.finfo(np.float64).tiny))
    for k in range(1, spec.steps + 1):
        g = fb.grad(x, k)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        step = lr * (m / (1 - beta1**k)) / (np.sqrt(v / (1 - beta2**k)) + spec.optimizer.eps)
        x = x - step
        f = float(problem.loss(torch.from_numpy(x)[None, :])[0])
        rel = float(relative(np.array([f]), f0, problem.f_star)[0])
        if not math.isfinite(rel):
            continue
        rel_min = min(rel_min, rel)
        rise = max(rise, rel / max(rel_min, floor))
    return rise


@pytest.mark.parametrize("problem", ["zhang2022", "lstsq"])
def test_max_rise_matches_a_per_run_loop(problem: str) -> None:
    # Full batch (reshuffle, b = n), constant lr large enough to overshoot x* and
    # come back: rel falls, rises, falls. The steps keep the runs short of the
    # oscillation that would amplify last bits, and rel far above the 1e-16 at
    # which f - f* is all rounding (lstsq: rel stays above 1e-6).
    if problem == "zhang2022":
        doc_problem: dict[str, Any] = {"kind": "zhang2022", "n": 10, "x0": -0.5}
        batch, lrs, steps = 10, [0.05, 0.2], 120
    else:
        doc_problem = {"kind": "lstsq", "n_samples": 16, "block_scales": [1.0, 3.0],
                       "block_dim": 2, "x0": 5.0}
        batch, lrs, steps = 16, [0.03, 0.1], 80
    doc = {
        "problem": doc_problem,
        "optimizer": {"lr": lrs[0]},
        "sampling": "reshuffle",
        "steps": steps,
        # a low threshold, so that the rises of these short runs clear the floor
        "criteria": {"converge_rel": 1e-10},
        "grid": {"beta1": [0.0, 0.9], "beta2": [0.9, 0.999], "batch_size": [batch], "lr": lrs},
    }
    spec = parse_spec(doc)
    runs = all_runs(spec)
    result = run_chunk(spec, runs, kernel="fused")
    assert result.outcomes.max_rise is not None
    want = np.array([
        _max_rise_loop(spec, float(runs.beta1[i]), float(runs.beta2[i]), float(runs.lr[i]))
        for i in range(len(runs))
    ])
    assert (want > 1.0 + 1e-6).sum() >= 2, want  # the rule is exercised, not just 1.0
    assert np.all(result.outcomes.max_rise >= 1.0)
    np.testing.assert_allclose(result.outcomes.max_rise, want, rtol=1e-9)


def test_max_rise_is_one_for_monotone_runs_and_skips_non_finite() -> None:
    doc = {
        "problem": {"kind": "zhang2022", "n": 10, "x0": -0.5},
        "optimizer": {"lr": 1e-4},
        "sampling": "reshuffle",
        "steps": 50,
        "grid": {"beta1": [0.0], "beta2": [0.999], "batch_size": [10], "lr": [1e-4, 1e300]},
    }
    spec = parse_spec(doc)
    result = run_chunk(spec, all_runs(spec), kernel="fused")
    assert result.outcomes.max_rise is not None
    assert result.outcomes.max_rise[0] == 1.0  # rel only falls
    assert np.isfinite(result.outcomes.max_rise[1])  # the diverged run's inf/nan steps are skipped
    assert result.outcomes.labels[1] == "diverged"


# --- kernel: auto ---------------------------------------------------------------------------


def _sized(runs_side: int, steps: int, **over: Any) -> Any:
    doc = {
        "problem": {"kind": "zhang2022", "n": 10, "x0": -0.5},
        "optimizer": {"lr": 0.01},
        "steps": steps,
        "grid": {"beta1": {"start": 0.0, "stop": 0.9, "num": runs_side},
                 "beta2": {"start": 0.5, "stop": 0.999, "num": runs_side}},
    }
    doc.update(over)
    return parse_spec(doc)


def test_auto_picks_fused_for_large_supported_sweeps_only() -> None:
    big = _sized(317, 1000)
    assert big.total_runs() * big.steps >= AUTO_MIN_RUN_STEPS["zhang2022"]
    assert resolve_kernel(big, "auto", "cpu") == "fused"
    assert resolve_kernel(big, "auto", "auto") == "fused"
    assert resolve_kernel(big, "auto", "cuda") == "fused"  # the same choice on a GPU
    small = _sized(100, 1000)
    assert resolve_kernel(small, "auto", "cpu") == "eager"
    assert resolve_kernel(small, "auto", "cuda") == "eager"
    lstsq = {"kind": "lstsq", "n_samples": 16, "block_scales": [1.0], "block_dim": 2}
    assert resolve_kernel(_sized(100, 1000, problem=lstsq), "auto", "cpu") == "fused"
    assert resolve_kernel(_sized(100, 1000, problem=lstsq), "auto", "cuda") == "fused"
    sgd = _sized(317, 1000, optimizer={"kind": "sgd", "lr": 0.01},
                 grid={"beta1": {"start": 0.0, "stop": 0.9, "num": 317}, "beta2": [0.0],
                       "lr": [float(v) for v in np.geomspace(1e-3, 1e-2, 317)]})
    assert resolve_kernel(sgd, "auto", "cpu") == "eager"
    for kernel in ("eager", "compiled"):
        assert resolve_kernel(big, kernel, "cpu") == kernel


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"optimizer": {"kind": "lion", "lr": 0.01}, "grid": {"beta1": [0.9], "beta2": [0.99]}},
         "optimizer.kind"),
        ({"problem": {"kind": "reddi2018", "C": 3.0}, "grid": {"beta1": [0.9], "beta2": [0.99]}},
         "problem.kind"),
    ],
)
def test_explicit_fused_on_an_unsupported_spec_names_the_field(over: dict, field: str) -> None:
    spec = _sized(2, 10, **over)
    with pytest.raises(SpecError) as info:
        resolve_kernel(spec, "fused", "cpu")
    assert info.value.errors[0][0] == field
    assert resolve_kernel(spec, "auto", "cpu") == "eager"
    assert resolve_kernel(_sized(2, 10), "fused", "cuda") == "fused"
    with pytest.raises(SpecError) as on_gpu:
        resolve_kernel(spec, "fused", "cuda")
    assert on_gpu.value.errors[0][0] == field
    with pytest.raises(SpecError, match="kernel"):
        resolve_kernel(_sized(2, 10), "turbo", "cpu")


def test_run_local_resolves_auto_before_computing_keys() -> None:
    spec = _sized(3, 40)  # small: auto -> eager
    auto = run_local(spec, device="cpu")
    assert auto.kernel == "eager"
    assert auto.keys == run_keys(spec, all_runs(spec), kernel="eager").astype(str).tolist()
    fused = run_local(spec, device="cpu", kernel="fused", chunk_runs=4)
    assert fused.kernel == "fused"
    assert fused.keys == run_keys(spec, all_runs(spec), kernel="fused").astype(str).tolist()
    np.testing.assert_array_equal(fused.outcomes.code, auto.outcomes.code)


# --- exactness of the kernel's shortcuts --------------------------------------------------


def test_curve_summary_matches_outcomes() -> None:
    from experiments import fused_kernels as fk
    from experiments.outcomes import curve_summary

    rng = np.random.default_rng(5)
    curves = rng.standard_normal((400, 33)) * 10.0 ** rng.integers(-3, 8, (400, 33))
    for value, share in ((np.nan, 0.02), (np.inf, 0.01), (-np.inf, 0.01), (0.0, 0.01)):
        curves[rng.random(curves.shape) < share] = value
    for f0, f_star in ((1.5, -0.075), (1.5, None), (-0.075, -0.075), (0.0, None)):
        shift = 0.0 if f_star is None else f_star
        den = f0 if f_star is None else f0 - f_star
        with np.errstate(all="ignore"):
            want = curve_summary(curves, f0, f_star, 1e3)
        got = fk.curve_summary(curves, shift, den, 1e3)
        for w, g in zip(want, got, strict=True):
            np.testing.assert_array_equal(g, w)


def test_stream_groups_match_np_unique_over_rows() -> None:
    from experiments.fused import stream_groups

    rng = np.random.default_rng(6)
    for seeds in (rng.integers(0, 5, 1000), rng.integers(0, 2**40, 1000), np.zeros(0, np.int64)):
        batch = rng.integers(1, 65, len(seeds))
        want_streams, want_group = np.unique(np.stack([seeds, batch], 1), axis=0,
                                             return_inverse=True)
        streams, group = stream_groups(seeds, batch)
        np.testing.assert_array_equal(streams.reshape(-1, 2), want_streams)
        np.testing.assert_array_equal(group, want_group.reshape(-1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_rise_skips_a_division_only_where_it_cannot_raise(dtype: type) -> None:
    # _fold_min skips rel / max(low, floor) where rel <= fl(fl(max_rise * D) * safe):
    # there the division would have left max_rise as it was, bit for bit
    from experiments.fused import exact_shortcuts

    eps = np.finfo(dtype).eps
    safe = dtype(exact_shortcuts(dtype)[1])
    rng = np.random.default_rng(7)
    n = 200_000
    top = (1.0 + rng.exponential(3.0, n) * 10.0 ** rng.integers(0, 30, n)).astype(dtype)
    low = (10.0 ** rng.uniform(np.log10(np.finfo(dtype).tiny), 10, n)).astype(dtype)
    floor = dtype(np.finfo(dtype).tiny)
    d = np.maximum(low, floor)
    with np.errstate(all="ignore"):
        rel = top * d * (1 + rng.integers(-12, 13, n) * eps).astype(dtype)
        skipped = ~(rel > (top * d) * safe)
        assert skipped.sum() > n // 4 and (~skipped).sum() > n // 4
        raised = np.maximum(top, rel / d)
    kept = skipped & np.isfinite(rel)
    np.testing.assert_array_equal(raised[kept], top[kept])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_running_products_below_the_floor_leave_one_minus_them_at_one(dtype: type) -> None:
    # _power stores beta^k as 0 below eps / 4: 1 - p is 1 there (and, beta < 1, for
    # every later product), so bias correction is unchanged bit for bit
    from experiments.fused import exact_shortcuts

    floor = dtype(exact_shortcuts(dtype)[0])
    below = np.concatenate([
        np.nextafter(floor, dtype(0)) * np.linspace(0, 1, 1001, dtype=dtype),
        np.array([np.finfo(dtype).smallest_subnormal, np.finfo(dtype).tiny], dtype=dtype),
    ]).astype(dtype)
    assert np.all(below < floor)
    np.testing.assert_array_equal(dtype(1) - below, np.ones_like(below))
    assert dtype(1) - floor == dtype(1)  # kept as it is, but 1 - it is 1 as well
    assert dtype(1) - np.nextafter(floor, dtype(1)) < dtype(1)


# --- the driver's host-side inputs, in numpy, against the problems' torch code -------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sampling", ["with_replacement", "reshuffle"])
def test_minibatch_summaries_are_the_problems_own_bit_for_bit(dtype: str, sampling: str) -> None:
    # the fused driver computes every stream's summary in numpy (a zhang2022 sweep never
    # loads torch); each must be the problem's torch batch_stats exactly, or fused results
    # would drift from what their run_keys name
    from experiments.fused import lstsq_weights, zhang_summaries
    from experiments.problems import build_problem
    from experiments.sampling import stream_indices

    tdt = getattr(torch, dtype)
    seeds, sizes = np.array([0, 7, 3, 0, 11]), np.array([1, 3, 5, 20, 7])
    steps = np.arange(37, 37 + 300)
    for kind, extra in (("zhang2022", {"n": 20}), ("lstsq", {"n_samples": 24, "block_dim": 2,
                                                             "block_scales": [1.0, 5.0]})):
        problem = build_problem(parse_spec({**_tiny(kind, extra)}).problem, dtype=tdt,
                                device=torch.device("cpu"))
        idx, valid = stream_indices(seeds=seeds, batch_sizes=sizes, sampling=sampling,
                                    steps=steps, n=problem.n)
        fsizes = sizes.astype(dtype)
        got = (zhang_summaries(problem, idx, valid, fsizes) if kind == "zhang2022"
               else lstsq_weights(problem.n, idx, valid, fsizes))
        assert got.dtype == np.dtype(dtype)
        for g in range(len(seeds)):
            want = problem.batch_stats(seed=int(seeds[g]), batch_size=int(sizes[g]),
                                       sampling=sampling, steps=torch.from_numpy(steps))
            np.testing.assert_array_equal(got[:, g].reshape(want.shape), want.numpy(),
                                          err_msg=f"{kind} stream {g}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_zhang_loss_on_the_host_is_the_problems_loss_bit_for_bit(dtype: str) -> None:
    # f(x0) sets every run's rel, so the host's value must be torch's exactly
    from experiments.fused import zhang_loss
    from experiments.problems import build_problem

    for n in (3, 20, 977):
        problem = build_problem(parse_spec(_tiny("zhang2022", {"n": n})).problem,
                                dtype=getattr(torch, dtype), device=torch.device("cpu"))
        for x0 in (-0.5, -1.0, -1.0000001, -3.3, 0.1, 7.123456789, -1e6, 1e-300):
            want = float(problem.loss(torch.tensor([[x0]], dtype=getattr(torch, dtype)))[0])
            assert zhang_loss(x0, n, getattr(np, dtype)) == want, (n, x0)


def test_a_zhang2022_sweep_on_the_fused_kernel_never_loads_torch() -> None:
    # torch's import is a second of `betascope run`'s two on a 10^5-run sweep; the
    # sweep, its runs CSV and its beta2* table must not need it, nor pandas, plotly or
    # httpx (which a plug-in problem's import of betascope.problems used to load)
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    spec = {"name": "t", "problem": {"kind": "zhang2022", "n": 20}, "steps": 300,
            "optimizer": {"kind": "adam", "lr": 0.01, "schedule": "inv_sqrt"},
            "grid": {"beta1": [0.0, 0.5, 0.9], "beta2": [0.9, 0.999], "batch_size": [1, 4],
                     "seed": [0, 1]}}
    # the command itself, which leaves through os._exit: the modules are listed there
    code = """
import os, sys
from api.cli import main
leave = os._exit
def listed(status):
    sys.stdout.flush()
    print("loaded:", sorted(m for m in ("torch", "pandas", "plotly", "httpx")
                            if m in sys.modules))
    sys.stdout.flush()
    leave(status)
os._exit = listed
sys.argv = ["betascope", "run", sys.argv[1], "--out", sys.argv[2], "--kernel", "fused",
            "--device", "cpu"]
main()
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec))
        out = subprocess.run([sys.executable, "-c", code, str(path), str(Path(tmp) / "r.csv")],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert (Path(tmp) / "r.csv").read_text().count("\n") == 25
    assert "β2*" in out.stdout and "loaded: []" in out.stdout, out.stdout + out.stderr


def test_device_auto_asks_torch_only_where_a_gpu_can_be() -> None:
    # without a GPU driver resolve_device answers without torch; where it says there
    # is none, torch must agree (on a GPU machine both say there is one)
    from experiments.engine import _gpu_driver_present, resolve_device

    if not _gpu_driver_present():
        assert not torch.cuda.is_available()
        assert resolve_device("auto") == "cpu"
    else:
        assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def _tiny(kind: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"name": "t", "problem": {"kind": kind, **extra}, "steps": 2,
            "optimizer": {"kind": "adam", "lr": 0.01},
            "grid": {"beta1": [0.9], "beta2": [0.999]}}
