"""The claims behind the quadratic and poly presets, run through the engine
(experiments.local.run_local, as `betascope run` does).

- 'Why Transformers Need Adam' (Zhang et al. 2024): on a block-heterogeneous
  Hessian, SGD with its best lr lags Adam with its best lr by far more than it does
  when every block spans the same spectrum.
- Bai et al. 2026: on x^4/4, Adam's (beta1, beta2) plane holds stable convergence,
  convergence through loss spikes and SignGD-like oscillation; the spikes are found
  by an independent per-run float64 loop that evaluates the loss at every step.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from experiments import analysis
from experiments.local import LocalResult, run_local
from experiments.outcomes import OUTCOMES, REGIMES
from experiments.presets import preset
from experiments.spec import parse_spec

STEPS = 2000
TINY = 1e-300  # a rel below this counts as this (a run that reached x* exactly)


@cache
def _local(name: str) -> LocalResult:
    return run_local(parse_spec(preset(name)), device="cpu")


def _best_rel(name: str) -> tuple[float, float]:
    """The smallest final rel over the sweep (every lr, and sgd's momentum), and its lr."""
    r = _local(name)
    assert r.spec.steps == STEPS
    rel = np.where(np.isfinite(r.outcomes.final_rel), r.outcomes.final_rel, np.inf)
    i = int(np.argmin(rel))
    lrs = r.spec.axis_values()["lr"]
    lr = lrs[int(r.runs.grid_index[i, 4])]
    # the best lr lies inside the grid, so the grid did not cut the optimum off
    assert lrs[0] < lr < lrs[-1], (name, lr)
    return max(float(rel[i]), TINY), lr


def _advantage(blocks: str) -> float:
    """Best-lr SGD's final rel over best-lr Adam's, the same 2,000 steps."""
    sgd, _ = _best_rel(f"{blocks}-quadratic-sgd")
    adam, _ = _best_rel(f"{blocks}-quadratic")
    return sgd / adam


def test_adam_advantage_is_far_larger_on_the_heterogeneous_quadratic() -> None:
    het, hom = _advantage("heterogeneous"), _advantage("homogeneous")
    print(
        f"Adam's advantage: heterogeneous {het:.3g}, homogeneous {hom:.3g}, ratio {het / hom:.3g}"
    )
    assert het / hom >= 1000.0
    # and Adam wins on the heterogeneous one outright
    assert het > 1e6


def test_the_two_quadratics_share_their_condition_number() -> None:
    # the comparison is about where the eigenvalues lie, not how spread they are
    specs = [parse_spec(preset(f"{b}-quadratic")).problem for b in ("heterogeneous", "homogeneous")]
    for s in specs:
        eigs = [e for b in s.blocks for e in b.eig]
        assert max(eigs) / min(eigs) == pytest.approx(1e5)
        assert [b.dim for b in s.blocks] == [8, 8, 8]


# --- Bai et al. 2026 on x^4/4 ---------------------------------------------------------------


def _adam_poly_loop(
    beta1: float, beta2: float, *, lr: float, eps: float, x0: float, k: int, steps: int,
    floor: float,
) -> tuple[float, float]:
    """Adam with bias correction on f(x) = x^k/k in plain Python floats, one run;
    (final rel, max_rise) with max_rise = max over steps j >= 1 of
    rel_j / max(min_{1 <= i <= j} rel_i, floor), the loss evaluated after every step
    (floor: the convergence threshold, DESIGN section 5)."""
    f0 = x0**k / k
    x, m, v = x0, 0.0, 0.0
    b1k = b2k = 1.0
    low, rise, rel = math.inf, 1.0, 1.0
    for _ in range(steps):
        g = x ** (k - 1)
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        b1k *= beta1
        b2k *= beta2
        x -= lr * (m / (1.0 - b1k)) / (math.sqrt(v / (1.0 - b2k)) + eps)
        if not math.isfinite(x) or abs(x) > 1e30:
            return math.inf, math.inf
        rel = (x**k / k) / f0
        low = min(low, rel)
        rise = max(rise, rel / max(low, floor))
    return rel, rise


def test_bai2026_poly_map_has_all_three_regimes() -> None:
    """The engine's regime map of the preset shows stable convergence, convergence
    through spikes and SignGD-like oscillation, and an independent per-run loop
    (max_rise measured after every step in plain floats) agrees run by run."""
    doc = preset("bai2026-poly")
    spec = parse_spec(doc)
    r = run_local(spec, device="cpu")
    prob, opt = spec.problem, spec.optimizer
    assert prob.k == 4 and opt.schedule == "constant"
    converged = OUTCOMES.index("converged")
    not_converged = OUTCOMES.index("not_converged")
    values = spec.axis_values()
    regimes: dict[str, list[tuple[float, float]]] = {"stable": [], "spiky": [], "oscillating": []}
    agree = total = 0
    for i in range(r.total):
        b1 = values["beta1"][int(r.runs.grid_index[i, 0])]
        b2 = values["beta2"][int(r.runs.grid_index[i, 1])]
        code = int(r.outcomes.code[i])
        if code not in (converged, not_converged):
            continue
        rel, rise = _adam_poly_loop(
            b1, b2, lr=opt.lr, eps=opt.eps, x0=prob.x0, k=prob.k, steps=spec.steps,
            floor=spec.criteria.converge_rel,
        )
        spiky = bool(r.outcomes.spiky[i])
        total += 1
        agree += spiky == (rise >= spec.criteria.spike_rise)
        if code == converged and not spiky:
            regimes["stable"].append((b1, b2))
            # a smooth run is not chaotic: the loop and the engine agree closely
            assert r.outcomes.final_rel[i] == pytest.approx(rel, rel=1e-6)
            assert r.outcomes.max_rise[i] == pytest.approx(rise, rel=1e-6)
        elif code == converged:
            regimes["spiky"].append((b1, b2))
        else:
            regimes["oscillating"].append((b1, b2))
            assert rel > spec.criteria.converge_rel  # the loop agrees it did not converge
    print({k: len(v) for k, v in regimes.items()}, f"spiky agrees on {agree}/{total}")
    # runs that oscillate are chaotic: last bits decide a few verdicts, not many
    assert agree >= 0.9 * total
    for name, cells in regimes.items():
        assert len(cells) >= 3, (name, regimes)
    # where they lie: spikes need momentum, the oscillation large beta1 and small
    # beta2 (beta2 = 0, v = g^2 with no memory, is a degenerate column of its own)
    assert min(b1 for b1, _ in regimes["spiky"]) > 0.5
    assert all(b1 > 0.5 and b2 < 0.99 for b1, b2 in regimes["oscillating"] if b2 > 0)
    assert any(b1 == 0.0 for b1, _ in regimes["stable"])
    # and the map the pages draw holds all four classes in one (beta1, beta2) plane
    z = analysis.phase_map(spec, r.cells(), "regime", {})["z"]
    shown = {REGIMES[int(v)] for row in z for v in row if v is not None}
    assert shown == set(REGIMES), shown
