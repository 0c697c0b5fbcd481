"""Outcome rules (DESIGN section 5) on hand-made loss curves."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.outcomes import CONVERGED, DIVERGED, NOT_CONVERGED, checkpoint_steps, classify
from experiments.spec import Criteria

INF, NAN = float("inf"), float("nan")
CKPTS = [1, 10, 100, 1000]
F0, F_STAR = 1.0, -1.0  # rel = (f + 1) / 2

# (id, curve of f at CKPTS, x finite at the end, outcome, div_step)
CURVES = [
    ("converged", [1.0, 0.0, -0.9, -0.95], True, CONVERGED, -1),
    ("not-converged", [1.0, 0.5, 0.0, -0.5], True, NOT_CONVERGED, -1),
    ("final-rel-over-diverge-rel", [1.0, 5.0, 25.0, 25.0], True, DIVERGED, 100),
    # a finite excursion above diverge_rel that comes back is not divergence
    ("excursion-then-converged", [1.0, 50.0, 0.0, -0.95], True, CONVERGED, -1),
    ("nan-midway", [1.0, NAN, -0.95, -0.95], True, DIVERGED, 10),
    ("inf-at-the-end", [1.0, 2.0, 3.0, INF], True, DIVERGED, 1000),
    ("minus-inf", [1.0, -INF, -INF, -INF], True, DIVERGED, 10),
    ("x-not-finite", [1.0, 0.0, -0.9, -0.95], False, DIVERGED, 1000),
    ("nan-from-the-start", [NAN, NAN, NAN, NAN], True, DIVERGED, 1),
]


def _classify(curves: np.ndarray, x_finite: np.ndarray, f_star: float | None = F_STAR, **kw):
    n = len(curves)
    return classify(
        curves=curves,
        ckpts=CKPTS,
        x_finite=x_finite,
        gap=kw.get("gap", np.arange(n, dtype=np.float64)),
        f0=F0,
        f_star=f_star,
        criteria=Criteria(converge_rel=0.05, diverge_rel=10.0),
        n_clipped=kw.get("n_clipped", np.zeros(n, dtype=np.int64)),
        steps=1000,
        max_rise=kw.get("max_rise", np.ones(n)),
    )


def test_outcome_rules_on_hand_made_curves() -> None:
    curves = np.array([c[1] for c in CURVES])
    x_finite = np.array([c[2] for c in CURVES])
    o = _classify(curves, x_finite)
    for i, (name, _, _, code, div) in enumerate(CURVES):
        assert (int(o.code[i]), int(o.div_step[i])) == (code, div), name
    np.testing.assert_array_equal(o.final_loss, curves[:, -1])
    np.testing.assert_allclose(o.final_rel, (curves[:, -1] - F_STAR) / (F0 - F_STAR))
    labels = dict(zip([c[0] for c in CURVES], o.labels, strict=True))
    assert labels["converged"] == "converged" and labels["not-converged"] == "not_converged"
    assert labels["nan-midway"] == "diverged"


def test_rel_without_a_known_optimum_is_f_over_f0() -> None:
    o = _classify(
        np.array([[1.0, 0.5, 0.1, 0.04], [1.0, 2.0, 5.0, 11.0]]), np.array([True] * 2), f_star=None
    )
    np.testing.assert_allclose(o.final_rel, [0.04, 11.0])
    assert o.code.tolist() == [CONVERGED, DIVERGED]


def test_thresholds_are_inclusive() -> None:
    # With f* unknown and f(x0) = 1, rel is f itself: the thresholds exactly.
    ends = [0.05, np.nextafter(0.05, 1.0), 10.0, np.nextafter(10.0, 11.0)]
    curves = np.array([[1.0, 1.0, 1.0, f] for f in ends])
    o = _classify(curves, np.array([True] * 4), f_star=None)
    assert o.code.tolist() == [CONVERGED, NOT_CONVERGED, NOT_CONVERGED, DIVERGED]


def test_clip_fraction_and_gap_pass_through() -> None:
    o = _classify(
        np.zeros((2, 4)),
        np.array([True, True]),
        n_clipped=np.array([0, 250]),
        gap=np.array([0.5, np.nan]),
    )
    np.testing.assert_array_equal(o.clip_fraction, [0.0, 0.25])
    np.testing.assert_array_equal(o.final_gap, [0.5, np.nan])


def test_spiky_is_max_rise_at_least_spike_rise_and_unknown_is_not_spiky() -> None:
    rise = np.array([1.0, 9.999999, 10.0, 1e300, np.inf, np.nan])
    o = _classify(np.zeros((6, 4)), np.ones(6, dtype=bool), max_rise=rise)
    np.testing.assert_array_equal(o.max_rise, rise)
    np.testing.assert_array_equal(o.spiky, [False, False, True, True, True, False])


@pytest.mark.parametrize("steps", [1, 2, 5, 31, 32, 33, 100, 1000, 20_000, 10_000_000])
def test_checkpoints_are_log_spaced_and_end_at_the_last_step(steps: int) -> None:
    ckpts = checkpoint_steps(steps)
    assert ckpts[0] == 1 and ckpts[-1] == steps
    assert ckpts == sorted(set(ckpts))
    assert len(ckpts) >= min(steps, 32)
    if steps >= 1000:
        # log-spaced: the ratio between neighbours is bounded (past the first
        # few integers, which rounding spaces by at least 1), not the gap
        late = np.asarray([c for c in ckpts if c >= 10])
        assert np.diff(np.log(late)).max() < 3 * np.log(steps) / 31
