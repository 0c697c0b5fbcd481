"""The papers' claims, reproduced by the engine (DESIGN section 12).

Reddi's theorem has closed-form end points; Zhang's boundary is held to an
independent reimplementation of the experiment (tests/experiments/paper.py).
"""

from __future__ import annotations

import numpy as np

from experiments import analysis
from experiments.engine import run_chunk
from experiments.outcomes import DIVERGED
from experiments.presets import preset
from experiments.runs import all_runs, runs_at
from experiments.spec import parse_spec

from . import paper

C = 3.0


def test_reddi2018_theorem1_small_beta2_drifts_to_plus_one() -> None:
    """Reddi et al. 2018, Theorem 1: with beta1 = 0 and beta2 = 1/(1+C^2), Adam on
    f_t = C x (t mod 3 = 1), -x otherwise, ends at the worst point x = +1; a
    large beta2 averages the rare large gradient and converges to x* = -1."""
    beta2 = [1.0 / (1.0 + C * C), 0.999]
    lrs = [0.5 * float(np.sqrt(1.0 - b)) for b in beta2]  # the theorem's alpha / sqrt(t) scale
    spec = parse_spec(
        {
            "name": "Reddi et al. 2018, Theorem 1",
            "problem": {"kind": "reddi2018", "C": C, "x0": 0.0},
            "optimizer": {"schedule": "inv_sqrt", "bias_correction": False},
            "steps": 30_000,
            "grid": {"beta1": [0.0], "beta2": beta2, "lr": lrs},
        }
    )
    # each beta2 with its own lr: the diagonal of the (beta2, lr) grid, in one call
    rows = [np.ravel_multi_index((0, i, 0, 0, i, 0), spec.axis_sizes()) for i in range(2)]
    result = run_chunk(spec, runs_at(spec, rows))
    x = result.x_final[:, 0]
    o = result.outcomes
    reference = "reference: x_T = [+1.0, -0.99990], final_gap = [2.0, 9.5e-5]"
    got = f"got x_T = {x.tolist()}, outcomes {o.labels}, final_gap {o.final_gap.tolist()}"
    assert x[0] == 1.0, f"{got}; {reference}"
    assert o.labels[0] == "not_converged" and o.final_gap[0] == 2.0, f"{got}; {reference}"
    assert o.final_rel[0] == 2.0, f"{got}; {reference}"
    assert o.labels[1] == "converged" and x[1] < -0.999, f"{got}; {reference}"


def test_reddi2018_amsgrad_converges_where_adam_drifts_to_plus_one() -> None:
    """Reddi et al. 2018: AMSGrad fixes Theorem 1. At beta1 = 0, beta2 = 1/(1+C^2)
    (the reddi2018-amsgrad preset's problem, lr and schedule), Adam ends at x = +1
    and AMSGrad within 0.05 of x* = -1; over the preset's whole (beta1, beta2)
    grid AMSGrad converges in every cell, where Adam does not."""
    doc = preset("reddi2018-amsgrad")
    assert doc["optimizer"]["amsgrad"] is True and doc["problem"]["C"] == C
    theorem = {**doc, "grid": {"beta1": [0.0], "beta2": [1.0 / (1.0 + C * C)]}}
    ends = {}
    for amsgrad in (False, True):
        spec = parse_spec({**theorem, "optimizer": {**doc["optimizer"], "amsgrad": amsgrad}})
        ends[amsgrad] = float(run_chunk(spec, all_runs(spec)).x_final[0, 0])
    assert ends[False] == 1.0, ends
    assert abs(ends[True] - -1.0) <= 0.05, ends
    labels = {}
    for amsgrad in (False, True):
        spec = parse_spec({**doc, "optimizer": {**doc["optimizer"], "amsgrad": amsgrad}})
        labels[amsgrad] = set(run_chunk(spec, all_runs(spec)).outcomes.labels)
    assert labels[True] == {"converged"}, labels
    assert "not_converged" in labels[False], labels


BETA1 = [0.0, 0.3, 0.5, 0.7, 0.8]
SEEDS = 9  # an odd count, and enough that a boundary cell's majority is not a coin toss


def test_zhang2022_critical_beta2_matches_an_independent_reference() -> None:
    """Zhang et al. 2022 (extended): Adam on eq. 2.5 diverges for small beta2 and
    converges for large beta2, and the critical beta2 falls as the batch grows
    (smaller batches need larger beta2). The zhang2022-batch preset at five beta1,
    against tests/experiments/paper.py: the same experiment written from the
    paper's definitions with numpy's own random numbers. beta2* must agree within
    one grid step at every (beta1, batch size); both use fixed random numbers,
    so this is deterministic."""
    doc = preset("zhang2022-batch")
    doc["grid"]["beta1"] = BETA1
    doc["grid"]["seed"] = list(range(SEEDS))
    spec = parse_spec(doc)
    assert spec.axis_values()["batch_size"] == [1, 2, 4, 8] and spec.steps == 20_000
    beta2 = np.asarray(spec.axis_values()["beta2"])
    # the preset's grid: 1 - beta2 log-spaced from 1 down to 0.01, 24 values
    np.testing.assert_allclose(1.0 - beta2, np.logspace(0, -2, 24), rtol=1e-12)
    runs = all_runs(spec)
    result = run_chunk(spec, runs)
    cells = analysis.cells(
        spec, analysis.ResultFrame.from_outcomes(runs.grid_index, result.outcomes)
    )
    grid = [float(b) for b in beta2]
    opt = spec.optimizer
    rng = np.random.default_rng(2022)
    engine, ref = {}, {}
    for bi, b in enumerate(spec.axis_values()["batch_size"]):
        stars = analysis.beta2_star(spec, cells, {"batch_size": bi, "clip": 0, "lr": 0})
        engine[b] = [None if s is None else grid.index(s) for s in stars]
        rel = paper.zhang_adam_final_rel(
            n=20, x0=-0.5, lr=opt.lr, eps=opt.eps, steps=spec.steps, beta1=np.asarray(BETA1),
            beta2=beta2, batch_size=b, n_seeds=SEEDS, rng=rng,
        )
        ref[b] = paper.beta2_star_index(paper.converged_cells(rel))
    message = f"index of beta2* in the grid, per batch size and beta1 {BETA1}: engine {engine}, "
    message += f"reference {ref}"
    # the reference shows the paper's claim on its own: beta2* falls with the batch
    at_0 = [ref[b][0] for b in (1, 2, 4, 8)]
    assert None not in at_0 and at_0[0] > at_0[1] > at_0[2] >= at_0[3], message
    for b in (1, 2, 4, 8):
        for j in range(len(BETA1)):
            e, r = engine[b][j], ref[b][j]
            assert e is not None and r is not None and abs(e - r) <= 1, message
    # small beta2 with small beta1 diverges: the (0, 0) cell at batch 1, by majority
    assert grid[0] == 0.0
    assert cells.outcome[0, 0, 0, 0, 0] == DIVERGED, message


def test_zhang2022_divergence_region_grows_with_n() -> None:
    """Zhang et al. 2022: the larger the finite sum (n), the larger beta2 must be
    for Adam to converge, so at batch size 1 the diverged share of the (beta1, beta2)
    plane grows with n. The zhang2022-n preset as it ships: n = 5, 10, 20, 50 as an
    extra axis, one engine call."""
    spec = parse_spec(preset("zhang2022-n"))
    assert spec.axis_values()["problem.n"] == [5, 10, 20, 50]
    assert spec.axis_values()["batch_size"] == [1]
    runs = all_runs(spec)
    result = run_chunk(spec, runs)
    cells = analysis.cells(
        spec, analysis.ResultFrame.from_outcomes(runs.grid_index, result.outcomes)
    )
    # cells: [beta1, beta2, batch, clip, lr, n]; the plane's diverged share per n
    share = [float(cells.diverged_frac[..., i].mean()) for i in range(4)]
    majority = [float((cells.outcome[..., i] == DIVERGED).mean()) for i in range(4)]
    measured = f"diverged share per n = 5, 10, 20, 50: {share}; by majority {majority}"
    # measured when written: 0.011, 0.046, 0.132, 0.263
    assert all(a < b for a, b in zip(share, share[1:], strict=False)), measured
    assert all(a <= b for a, b in zip(majority, majority[1:], strict=False)), measured
    assert share[-1] > 5 * share[0] and share[-1] > 0.15, measured
