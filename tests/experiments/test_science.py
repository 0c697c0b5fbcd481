"""The papers' claims, reproduced by the engine (DESIGN section 12).

Reference numbers (this engine, float64, CPU) are in the failure messages, so
a change that moves them shows how far.
"""

from __future__ import annotations

import numpy as np

from experiments import analysis
from experiments.engine import run_chunk
from experiments.outcomes import DIVERGED
from experiments.presets import preset
from experiments.runs import all_runs, runs_at
from experiments.spec import parse_spec

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


# Reference values: beta2*(beta1 = 0) by batch size, and the beta2 = 0 cell's
# diverged fraction at each batch size.
ZHANG_REFERENCE = {
    "beta2_star": {1: 0.90953, 2: 0.75379, 4: 0.45156, 8: 0.18145},
    "diverged_frac_at_beta2_0": {1: 1.0, 2: 1.0, 4: 1.0, 8: 1 / 3},
}


def test_zhang2022_critical_beta2_falls_with_batch_size() -> None:
    """Zhang et al. 2022 (extended): Adam on eq. 2.5 diverges for small beta2 and
    converges for large beta2, and the critical beta2 falls as the batch grows
    (smaller batches need larger beta2). The zhang2022-batch preset at beta1 = 0."""
    doc = preset("zhang2022-batch")
    doc["grid"]["beta1"] = [0.0]
    spec = parse_spec(doc)
    assert spec.axis_values()["batch_size"] == [1, 2, 4, 8] and spec.steps == 20_000
    runs = all_runs(spec)
    result = run_chunk(spec, runs)
    cells = analysis.cells(
        spec, analysis.ResultFrame.from_outcomes(runs.grid_index, result.outcomes)
    )
    batches = spec.axis_values()["batch_size"]
    stars, diverged_at_0 = {}, {}
    for bi, b in enumerate(batches):
        sl = {"batch_size": bi, "clip": 0, "lr": 0}
        stars[b] = analysis.beta2_star(spec, cells, sl)[0]
        diverged_at_0[b] = float(cells.diverged_frac[0, 0, bi, 0, 0])
    message = (
        f"beta2* by batch {stars}, diverged share at beta2 = 0 {diverged_at_0}; "
        f"reference {ZHANG_REFERENCE}"
    )
    assert all(stars[b] is not None for b in batches), message
    series = [stars[b] for b in batches]
    assert all(a > b for a, b in zip(series, series[1:], strict=False)), message
    # small beta2 with small beta1 diverges: the (0, 0) cell at batch 1, by majority
    assert spec.axis_values()["beta2"][0] == 0.0
    assert cells.outcome[0, 0, 0, 0, 0] == DIVERGED, message
    # the boundary sits where the reference has it, within a grid step or two
    for b in batches:
        ref = ZHANG_REFERENCE["beta2_star"][b]
        assert abs(np.log1p(-stars[b]) - np.log1p(-ref)) < 0.5, message
