"""The column-at-a-time CSV writer (service exports) against the row-at-a-time one
(`betascope run`) and against Python's own repr."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import export
from experiments.outcomes import Outcomes
from experiments.presets import PRESETS
from experiments.runs import all_runs, clip_columns
from experiments.spec import parse_spec, run_keys


def _awkward_floats(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        x = rng.standard_normal(n) * 10.0 ** rng.uniform(-320, 310, n)
        x[::7] = np.round(x[::7] * 1e3)  # integral values: "100.0"
    x[::5] = rng.standard_normal(len(x[::5]))
    x[::11] = rng.standard_normal(len(x[::11])) * 1e-5  # "1.5e-05", not "0.000015"
    x[::13] = rng.uniform(1e10, 1e16, len(x[::13]))  # positional in Python, not in Arrow
    k = min(4000, n // 2)
    x[:k] = np.frombuffer(rng.bytes(8 * k), dtype=np.float64)  # any bit pattern
    edges = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1e-4, 9.999999999999999e-05, 1e16,
             9999999999999998.0, 1e10, 9999999999.999998, 1e-7, 1.5e-6, 1e21, 1e22]
    edges = edges[: n - k]
    x[k : k + len(edges)] = edges
    return x


@pytest.mark.parametrize("seed", [0, 1])
def test_float_reprs_are_pythons_repr(seed: int) -> None:
    x = _awkward_floats(200_000, seed)
    assert export.float_reprs(x).to_pylist() == list(map(float.__repr__, x.tolist()))


@pytest.mark.parametrize("preset_name", sorted(PRESETS))
def test_run_csv_bytes_equal_the_row_writer(preset_name: str) -> None:
    spec = parse_spec(PRESETS[preset_name])
    runs = all_runs(spec)
    n = len(runs)
    rng = np.random.default_rng(len(preset_name))
    floats = _awkward_floats(4 * n, 3).reshape(4, n)
    # max_rise: any float, nan (stored before it was measured) among them
    rise = np.where(rng.random(n) < 0.2, np.nan, np.abs(floats[3]))
    outcomes = Outcomes(
        code=rng.integers(0, 3, n).astype(np.int8),
        final_loss=floats[0],
        final_rel=floats[1],
        final_gap=np.where(rng.random(n) < 0.3, np.nan, floats[2]),
        div_step=np.where(rng.random(n) < 0.5, -1, rng.integers(1, spec.steps + 1, n)),
        clip_fraction=rng.integers(0, spec.steps + 1, n) / spec.steps,
        max_rise=rise,
        spiky=rise >= 10.0,
    )
    modes, thresholds = clip_columns(spec, runs)
    keys = run_keys(spec, runs).astype(str).tolist()
    rows = export.run_rows(keys=keys, runs=runs, clip_modes=modes, clip_thresholds=thresholds,
                           steps=spec.steps, outcomes=outcomes,
                           extras=[spec.axis_values()[a] for a in spec.extra_axes()])
    assert export.run_csv(spec, runs, outcomes, kernel="eager") == export.csv_lines(list(rows))


@pytest.mark.parametrize("preset_name", sorted(PRESETS))
def test_cell_csv_bytes_equal_the_row_writer(preset_name: str) -> None:
    from experiments.analysis import ResultFrame, cells

    spec = parse_spec(PRESETS[preset_name])
    runs = all_runs(spec)
    n = len(runs)
    rng = np.random.default_rng(7)
    keep = rng.random(n) < 0.8  # some cells without runs
    frame = ResultFrame(
        grid=runs.grid_index[keep], code=rng.integers(0, 3, n).astype(np.int8)[keep],
        final_rel=_awkward_floats(n, 4)[keep],
        div_step=np.where(rng.random(n) < 0.5, np.nan, rng.integers(1, 99, n))[keep],
        spiky=np.where(rng.random(n) < 0.1, np.nan, rng.random(n) < 0.3)[keep],
        max_rise=np.where(rng.random(n) < 0.1, np.nan, np.abs(_awkward_floats(n, 5)))[keep],
    )
    c = cells(spec, frame)
    want = export.csv_lines(list(export.cell_rows(spec, c)))
    assert b"".join(export.cell_csv(spec, c, piece=97)) == want
