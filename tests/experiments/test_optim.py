"""The vectorized engine against per-configuration references, in float64 and float32.

One engine call runs every configuration of a row of tests/experiments/configs.py
at once (thousands of runs share one tensor program in production, so the
test must too); each run is then replayed alone by torch.optim (bias
correction on, constant lr) or by the hand-written loop of reference.py, and
parameters, Adam's moments and the clip count must agree. float32 rows are held
to torch.optim in float32 (configs.RTOL_FLOAT32 says why that tolerance). A
subset of the rows runs again through the compiled kernel.
"""

from __future__ import annotations

import numpy as np
import pytest

from experiments.engine import run_chunk
from experiments.runs import runs_at
from experiments.spec import AXES, parse_spec

from .configs import (
    FAMILY_LOOP_CASES,
    FAMILY_TORCH_CASES,
    FLOAT32_CASES,
    LOOP_CASES,
    TORCH_CASES,
    Case,
    spec_document,
)
from .reference import Final, FullBatch, loop_reference, torch_reference


def _diagonal_runs(spec):
    """Config i = (beta1[i], beta2[i], lr[i]) under every clip setting, as one RunTable."""
    sizes = dict(zip(AXES, spec.axis_sizes(), strict=True))
    n = sizes["lr"]

    def at(axis: str, i: int) -> int:  # an axis of one value (an unused beta) stays at 0
        return i if sizes[axis] > 1 else 0

    rows = [
        np.ravel_multi_index((at("beta1", i), at("beta2", i), 0, j, i, 0), spec.axis_sizes())
        for j in range(sizes["clip"])
        for i in range(n)
    ]
    return runs_at(spec, rows)


def _relative_error(actual: np.ndarray, expected: np.ndarray, floor_share: float = 1e-6) -> float:
    # Elementwise relative error; a moment that happens to sit at zero is
    # measured against the size of its run's vector instead of against zero.
    # float32 rows measure every element against that size (floor_share = 1):
    # lstsq's small-scale gradients are differences of far larger terms, so
    # their float32 rounding is relative to the largest element, not their own.
    floor = floor_share * float(np.max(np.abs(expected), initial=0.0)) + 1e-300
    return float(np.max(np.abs(actual - expected) / np.maximum(np.abs(expected), floor)))


def _check_against(case: Case, reference, kernel: str = "eager") -> None:
    spec = parse_spec(spec_document(case))
    runs = _diagonal_runs(spec)
    result = run_chunk(spec, runs, kernel=kernel)
    rtol = case.rtol
    floor_share = 1e-6 if case.dtype == "float64" else 1.0
    fb = FullBatch(spec)
    clips = spec.axis_values()["clip"]
    assert len(runs) == case.n_configs * len(clips)
    failures = []
    for i in range(len(runs)):
        clip = clips[int(runs.clip_index[i])]
        config = (
            f"beta1={runs.beta1[i]!r} beta2={runs.beta2[i]!r} lr={runs.lr[i]!r} "
            f"clip={clip.model_dump()} optimizer={spec.optimizer.model_dump()}"
        )
        ref: Final = reference(
            spec,
            fb,
            beta1=float(runs.beta1[i]),
            beta2=float(runs.beta2[i]),
            lr=float(runs.lr[i]),
            clip=clip,
        )
        assert np.all(np.isfinite(ref.x)), f"reference diverged, a bad table row: {config}"
        for name, got, want in (
            ("x", result.x_final[i], ref.x),
            ("m (exp_avg, momentum buffer)", result.m_final[i], ref.m),
            ("v (exp_avg_sq, square_avg, sum)", result.v_final[i], ref.v),
        ):
            if want is None:  # the kind keeps no such moment: the engine reports NaN
                if not np.all(np.isnan(got)):
                    failures.append(f"{name}: the reference keeps none, the engine {got}")
                continue
            err = _relative_error(got, want, floor_share)
            if not err <= rtol:
                failures.append(f"{name}: relative error {err:.2e} > {rtol} at {config}")
        clip_fraction = ref.n_clipped / spec.steps
        if result.outcomes.clip_fraction[i] != clip_fraction:
            failures.append(
                f"clip_fraction {result.outcomes.clip_fraction[i]} != reference "
                f"{clip_fraction} at {config}"
            )
    assert not failures, "\n".join(failures)
    # A row whose thresholds never bite would compare unclipped runs only.
    if case.clip_mode != "none":
        assert result.outcomes.clip_fraction.max() > 0.0, f"{case.id}: no run ever clipped"


@pytest.mark.parametrize("case", TORCH_CASES, ids=[c.id for c in TORCH_CASES])
def test_engine_matches_torch_optim(case: Case) -> None:
    _check_against(case, torch_reference)


@pytest.mark.parametrize("case", LOOP_CASES, ids=[c.id for c in LOOP_CASES])
def test_engine_matches_hand_written_loop(case: Case) -> None:
    _check_against(case, loop_reference)


@pytest.mark.parametrize("case", FAMILY_TORCH_CASES, ids=[c.id for c in FAMILY_TORCH_CASES])
def test_optimizer_family_matches_torch_optim(case: Case) -> None:
    _check_against(case, torch_reference)


@pytest.mark.parametrize("case", FAMILY_LOOP_CASES, ids=[c.id for c in FAMILY_LOOP_CASES])
def test_optimizer_family_matches_the_papers_loops(case: Case) -> None:
    _check_against(case, loop_reference)


@pytest.mark.parametrize("case", FLOAT32_CASES, ids=[c.id for c in FLOAT32_CASES])
def test_float32_engine_matches_torch_optim_in_float32(case: Case) -> None:
    _check_against(case, torch_reference)


# The compiled kernel (torch.compile over blocks of steps) on a subset of the
# tables: lstsq's several tensors under AdaGC, Reddi's projection with the
# family's named dict state (rmsprop centered, value clipping), and float32.
# No bias correction with inv_sqrt is test_engine's compiled test. Each row
# compiles two graphs (5-65 s each on two cores) and `auto` never picks this
# kernel, so the subset stays small.
COMPILED_IDS = (
    "loop-adagc-lstsq",
    "torch-adam-global_norm-zhang2022-float32",
    "torch-rmsprop-centered-value-reddi2018",
)
_BY_ID = {
    c.id: c
    for c in (*TORCH_CASES, *LOOP_CASES, *FLOAT32_CASES, *FAMILY_TORCH_CASES, *FAMILY_LOOP_CASES)
}


@pytest.mark.slow
@pytest.mark.parametrize("case_id", COMPILED_IDS)
def test_compiled_kernel_matches_the_references(case_id: str) -> None:
    case = _BY_ID[case_id]
    _check_against(case, torch_reference if case.reference == "torch" else loop_reference,
                   kernel="compiled")
