"""Phase maps, cells, beta2* and the scaling fit (DESIGN section 6) on hand-made frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from experiments import analysis
from experiments.outcomes import CONVERGED as C
from experiments.outcomes import DIVERGED as D
from experiments.outcomes import NOT_CONVERGED as N
from experiments.spec import AXES, parse_spec


def _spec(**grid: Any) -> Any:
    g = {"beta1": [0.0, 0.5], "beta2": [0.5, 0.9, 0.99, 0.999], "seed": [0, 1, 2]}
    g.update(grid)
    return parse_spec({"problem": {"kind": "zhang2022"}, "steps": 10, "grid": g})


def _frame(spec: Any, outcome: Any, final_rel: Any = None, div_step: Any = None):
    """A ResultFrame over every run of `spec`; `outcome(index) -> code` etc. take the
    run's grid index (a dict axis -> position)."""
    sizes = spec.axis_sizes()
    grid = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    at = [dict(zip(AXES, row.tolist(), strict=True)) for row in grid]
    code = np.array([outcome(i) for i in at], dtype=np.int8)
    rel = np.array([final_rel(i) if final_rel else 0.0 for i in at], dtype=np.float64)
    div = np.array([div_step(i) if div_step else np.nan for i in at], dtype=np.float64)
    return analysis.ResultFrame(grid.astype(np.int64), code, rel, np.where(code == D, div, np.nan))


SLICE0 = {"batch_size": 0, "clip": 0, "lr": 0}

# seed outcomes of one cell -> majority (ties go to the worse outcome)
MAJORITY = [
    ((C, C, C), C),
    ((C, C, D), C),
    ((C, D, D), D),
    ((C, N, N), N),
    ((C, C, N), C),
    ((N, N, D), N),
    ((C, N, D), D),  # a three-way tie
]


@pytest.mark.parametrize(("seeds", "want"), MAJORITY)
def test_majority_over_seeds_with_pessimistic_ties(seeds: tuple[int, ...], want: int) -> None:
    spec = _spec()
    c = analysis.cells(spec, _frame(spec, lambda i: seeds[i["seed"]]))
    assert (c.outcome == want).all()
    assert c.converged_frac[0, 0, 0, 0, 0] == pytest.approx(seeds.count(C) / 3)
    assert c.not_converged_frac[0, 0, 0, 0, 0] == pytest.approx(seeds.count(N) / 3)
    assert c.diverged_frac[0, 0, 0, 0, 0] == pytest.approx(seeds.count(D) / 3)


def test_two_seed_ties_break_toward_the_worse_outcome() -> None:
    spec = _spec(seed=[0, 1])
    for pair, want in (((C, D), D), ((C, N), N), ((N, D), D)):
        c = analysis.cells(spec, _frame(spec, lambda i, pair=pair: pair[i["seed"]]))
        assert (c.outcome == want).all(), pair


def test_cells_medians_and_missing_cells() -> None:
    spec = _spec()
    frame = _frame(
        spec,
        lambda i: D if i["seed"] < 2 else C,
        final_rel=lambda i: [3.0, 1.0, 2.0][i["seed"]],
        div_step=lambda i: [100.0, 10.0, 999.0][i["seed"]],
    )
    c = analysis.cells(spec, frame)
    assert c.n_runs.shape == (2, 4, 1, 1, 1) and (c.n_runs == 3).all()
    assert (c.final_rel == 2.0).all()  # median of 3, 1, 2
    assert (c.div_step == 55.0).all()  # median over the two diverged seeds only
    # a frame that lacks some cells (a sweep still running): those have no runs
    half = analysis.ResultFrame(
        frame.grid[::2], frame.code[::2], frame.final_rel[::2], frame.div_step[::2]
    )
    partial = analysis.cells(spec, half)
    assert partial.n_runs.sum() == len(half.code)
    empty = partial.n_runs == 0
    assert (partial.outcome[empty] == -1).all()


def test_seed_medians_of_consecutive_cells_equal_those_of_any_order() -> None:
    """A chunk's cells hold their seeds consecutively, and their medians take a sort
    along rows; the same runs in any order take the general sort by (cell, value):
    both ignore nan, average the middle pair without overflow, and keep infinities."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        size, k = int(rng.integers(1, 40)), int(rng.integers(1, 12))
        group = np.repeat(np.arange(size), k)
        v = rng.standard_normal(size * k)
        for share, value in ((0.3, np.nan), (0.05, np.inf), (0.05, -np.inf), (0.05, 1.7e308)):
            v[rng.random(v.size) < share] = value
        order = rng.permutation(len(group))
        consecutive = analysis._group_median(group, v, size)
        assert np.array_equal(consecutive, analysis._group_median(group[order], v[order], size),
                              equal_nan=True)
    assert analysis._group_median(np.array([0, 0, 1, 1]), np.array([1.7e308] * 2 + [1, 2.0]),
                                  2).tolist() == [1.7e308, 1.5]


# beta2 column (ascending beta2) -> beta2*
STAR_COLUMNS = [
    ((D, D, C, C), 0.9 + 0.09),
    ((C, D, C, C), 0.99),  # the converged run must reach the top without a gap
    ((C, C, C, C), 0.5),
    ((C, C, C, N), None),
    ((D, D, D, D), None),
    ((D, D, D, C), 0.999),
]


@pytest.mark.parametrize(("column", "want"), STAR_COLUMNS)
def test_beta2_star_on_hand_made_columns(column: tuple[int, ...], want: float | None) -> None:
    spec = _spec()
    frame = _frame(spec, lambda i: column[i["beta2"]] if i["beta1"] == 0 else C)
    c = analysis.cells(spec, frame)
    star = analysis.beta2_star(spec, c, SLICE0)
    assert star[0] == (pytest.approx(want) if want is not None else None)
    assert star[1] == 0.5


def test_beta2_star_does_not_depend_on_the_order_beta2_is_listed_in() -> None:
    # A spec may list beta2 in any order; "every cell above" means larger beta2.
    values = [0.999, 0.5, 0.99, 0.9]
    spec = _spec(beta2=values)
    converged_from = 0.9
    frame = _frame(spec, lambda i: C if values[i["beta2"]] >= converged_from else D)
    c = analysis.cells(spec, frame)
    assert analysis.beta2_star(spec, c, SLICE0) == [0.9, 0.9]


def test_phase_map_is_rows_over_beta2() -> None:
    spec = _spec(batch_size=[1, 4], clip=[{"mode": "none"}, {"mode": "value", "threshold": 0.5}])
    frame = _frame(
        spec,
        lambda i: C if i["beta2"] >= 2 else (D if i["beta1"] == 1 else N),
        final_rel=lambda i: 10.0 * i["beta1"] + i["beta2"],
    )
    c = analysis.cells(spec, frame)
    sl = analysis.slice_index(spec, batch_size=4, clip="value:0.5")
    assert sl == {"batch_size": 1, "clip": 1, "lr": 0}
    pm = analysis.phase_map(spec, c, "final_rel", sl)
    assert pm["x"] == {"name": "beta1", "values": [0.0, 0.5]}
    assert pm["y"] == {"name": "beta2", "values": [0.5, 0.9, 0.99, 0.999]}
    z = np.asarray(pm["z"])
    assert z.shape == (4, 2)  # one row per beta2, one column per beta1
    assert z[3, 1] == 13.0 and z[0, 1] == 10.0 and z[2, 0] == 2.0
    assert pm["slice"] == {"batch_size": 4, "clip": "value:0.5", "lr": 0.1}
    assert pm["available"]["clip"] == ["none", "value:0.5"]
    outcome = analysis.phase_map(spec, c, "outcome", sl)
    assert outcome["z"][0] == [N, D] and outcome["z"][3] == [C, C]
    assert outcome["outcomes"] == ["converged", "not_converged", "diverged"]


def test_phase_map_marks_empty_cells_and_rejects_unknown_metrics_and_slices() -> None:
    spec = _spec()
    frame = _frame(spec, lambda i: C)
    keep = frame.grid[:, AXES.index("beta2")] != 1  # no runs for beta2 = 0.9 yet
    partial = analysis.ResultFrame(
        frame.grid[keep], frame.code[keep], frame.final_rel[keep], frame.div_step[keep]
    )
    c = analysis.cells(spec, partial)
    assert analysis.phase_map(spec, c, "outcome", SLICE0)["z"][1] == [None, None]
    assert analysis.phase_map(spec, c, "div_step", SLICE0)["z"][0] == [None, None]
    with pytest.raises(KeyError, match="metric"):
        analysis.phase_map(spec, c, "loss", SLICE0)
    with pytest.raises(KeyError, match="batch_size"):
        analysis.slice_index(spec, batch_size=3)
    with pytest.raises(KeyError, match="clip"):
        analysis.slice_index(spec, clip="global_norm:1.0")


def test_scaling_fit_has_slope_exactly_one_for_the_half_life_rule() -> None:
    batches = [1, 2, 4, 8, 16]
    # Holding the half-life fixed in samples: 1 - beta2*(B) proportional to B.
    stars = [1.0 - 1e-3 * b for b in batches]
    fit = analysis.scaling_fit(batches, stars)
    assert fit is not None
    assert fit["slope"] == pytest.approx(1.0, abs=1e-12)
    assert fit["intercept"] == pytest.approx(np.log(1e-3), abs=1e-9)
    assert fit["stderr"] == pytest.approx(0.0, abs=1e-9)
    assert fit["half_life_slope"] == 1.0 and fit["n_points"] == 5
    # beta2 -> beta2**(B2/B1) is the same rule to first order in 1 - beta2
    power = analysis.scaling_fit(batches, [0.9999**b for b in batches])
    assert power is not None and power["slope"] == pytest.approx(1.0, abs=1e-3)


def test_scaling_fit_skips_missing_points_and_reports_uncertainty() -> None:
    rng = np.random.default_rng(0)
    batches = [1, 2, 4, 8, 16, 32]
    noisy = [1.0 - 1e-3 * b**0.5 * float(np.exp(rng.normal(0, 0.1))) for b in batches]
    fit = analysis.scaling_fit(batches, noisy)
    assert fit is not None and fit["slope"] == pytest.approx(0.5, abs=0.15)
    assert fit["stderr"] > 0
    # None (no converged beta2) and beta2* = 1 cannot enter a log
    assert analysis.scaling_fit([1, 2, 4], [None, 0.99, None]) is None
    assert analysis.scaling_fit([1, 2], [0.99, 0.9])["stderr"] is None  # two points: no spread
    assert analysis.scaling_fit([1, 2, 4], [0.99, None, 0.9])["n_points"] == 2


def test_boundary_and_by_batch_cover_every_slice() -> None:
    spec = _spec(batch_size=[1, 2, 4], lr=[0.1, 0.01])
    # converged from beta2 index = batch index on: beta2* falls with batch size
    frame = _frame(spec, lambda i: C if i["beta2"] >= 3 - i["batch_size"] else D)
    c = analysis.cells(spec, frame)
    b = analysis.boundary(spec, c)
    assert len(b["slices"]) == 3 * 2
    assert {s["batch_size"] for s in b["slices"]} == {1, 2, 4}
    series = [s for s in b["by_batch"] if s["beta1"] == 0.0 and s["lr"] == 0.1]
    assert len(series) == 1
    assert series[0]["batch_size"] == [1, 2, 4]
    assert series[0]["beta2_star"] == [0.999, 0.99, 0.9]
    # 1 - beta2* = 1e-3, 1e-2, 1e-1 at batch 1, 2, 4: exactly log(1 - beta2*) =
    # log(1e-3) + log2(10) log(batch), with no spread
    fit = series[0]["fit"]
    assert fit["slope"] == pytest.approx(np.log(10) / np.log(2), rel=1e-12)
    assert fit["intercept"] == pytest.approx(np.log(1e-3), rel=1e-12)
    assert fit["stderr"] == pytest.approx(0.0, abs=1e-9) and fit["n_points"] == 3
    assert fit["half_life_slope"] == 1.0


def test_sqrt_curve_overlay() -> None:
    curve = analysis.sqrt_curve([0.0, 0.25, 0.81])
    assert curve == {"beta2": [0.0, 0.25, 0.81], "beta1": [0.0, 0.5, 0.9]}


def test_censored_boundaries_are_marked_and_left_out_of_the_fit() -> None:
    # beta2 grid 0.5 < 0.9 < 0.99 < 0.999; at batch 1 every cell converges (beta2* =
    # 0.5 is only an upper bound), at batch 8 none does (missing: beyond the grid),
    # batches 2 and 4 have real values 0.99 and 0.9.
    spec = _spec(batch_size=[1, 2, 4, 8])
    first_ok = {0: 0, 1: 2, 2: 1, 3: 4}  # batch index -> first converged beta2 index
    frame = _frame(spec, lambda i: C if i["beta2"] >= first_ok[i["batch_size"]] else D)
    c = analysis.cells(spec, frame)
    b = analysis.boundary(spec, c)
    by_size = {s["batch_size"]: s for s in b["slices"]}
    assert by_size[1]["beta2_star"] == [0.5, 0.5] and by_size[1]["censored"] == ["below"] * 2
    assert by_size[8]["beta2_star"] == [None, None] and by_size[8]["censored"] == ["above"] * 2
    assert by_size[2]["censored"] == ["none", "none"]
    (row,) = [r for r in b["by_batch"] if r["beta1"] == 0.0]
    assert row["beta2_star"] == [0.5, 0.99, 0.9, None]  # the old field, unchanged
    assert row["censored"] == ["below", "none", "none", "above"]
    assert row["n_censored"] == 2
    fit = row["fit"]
    # only batches 2 and 4 are fitted: 1 - beta2* = 1e-2, 1e-1, slope log2(10)
    assert fit["n_points"] == 2 and fit["n_censored"] == 2
    assert fit["slope"] == pytest.approx(np.log(10) / np.log(2), rel=1e-12)
    # the old behaviour fitted the bound at batch 1 as a value: another slope
    naive = analysis.scaling_fit([1, 2, 4], [0.5, 0.99, 0.9], ["none"] * 3)
    assert naive["n_points"] == 3 and naive["slope"] != pytest.approx(fit["slope"])


def test_a_fit_with_too_few_values_still_says_how_many_were_bounds() -> None:
    spec = _spec(batch_size=[1, 2])
    frame = _frame(spec, lambda i: C)  # every cell converges at every batch
    (row, _) = analysis.boundary(spec, analysis.cells(spec, frame))["by_batch"]
    assert row["censored"] == ["below", "below"] and row["n_censored"] == 2
    assert row["fit"] is None
