"""CSV rows (DESIGN section 10): column order, exact floats, neutralised formulas."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from experiments import export
from experiments.local import run_local
from experiments.spec import parse_spec

DESIGN_RUN_COLUMNS = (
    "run_key,beta1,beta2,batch_size,clip_mode,clip_threshold,lr,seed,steps,outcome,"
    "final_loss,final_rel,final_gap,div_step,clip_fraction"
)

SPEC = {
    "problem": {"kind": "zhang2022", "n": 10},
    "optimizer": {"lr": 0.3},
    "steps": 60,
    "grid": {
        "beta1": {"start": 0.0, "stop": 0.9, "num": 3},  # 0.45: not a short decimal
        "beta2": {"log1m": [1e-3, 1.0], "num": 3},
        "batch_size": [1, 5],
        "clip": [{"mode": "none"}, {"mode": "global_norm", "threshold": 0.1}],
        "lr": [0.3, 1e6],  # 1e6 diverges: inf/nan and div_step are exercised
        "seed": [0, 1],
    },
}


@pytest.fixture(scope="module")
def result():
    return run_local(parse_spec(SPEC), device="cpu")


def _table(header, rows) -> list[dict[str, str]]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


def test_run_columns_are_design_order() -> None:
    # DESIGN's columns in its order, then the spike columns (extra columns come after)
    assert ",".join(export.RUN_COLUMNS) == DESIGN_RUN_COLUMNS + ",max_rise,spiky"


def test_run_rows_round_trip_every_value(result) -> None:
    rows = _table(export.RUN_COLUMNS, result.run_rows())
    assert len(rows) == result.total == parse_spec(SPEC).total_runs()
    assert [r["run_key"] for r in rows] == result.keys
    o, runs = result.outcomes, result.runs
    assert {"diverged", "converged"} <= set(r["outcome"] for r in rows)
    for i, r in enumerate(rows):
        # float() of the text gives back the very same double
        assert float(r["beta1"]) == runs.beta1[i] and float(r["beta2"]) == runs.beta2[i]
        assert float(r["lr"]) == runs.lr[i]
        assert int(r["batch_size"]) == runs.batch_size[i] and int(r["seed"]) == runs.seed[i]
        assert int(r["steps"]) == 60
        for col in ("final_loss", "final_rel", "final_gap", "clip_fraction", "max_rise"):
            want = float(getattr(o, col)[i])
            got = float(r[col])
            assert got == want or (math.isnan(got) and math.isnan(want)), (col, r[col], want)
        assert r["spiky"] == ("true" if o.spiky[i] else "false")
        diverged = r["outcome"] == "diverged"
        assert (r["div_step"] != "") == diverged
        if diverged:
            assert int(r["div_step"]) == o.div_step[i]
        if r["clip_mode"] == "none":
            assert r["clip_threshold"] == ""
        else:
            assert (r["clip_mode"], float(r["clip_threshold"])) == ("global_norm", 0.1)
    # a value that is not a short decimal survives exactly
    assert any(r["beta1"] == repr(0.45) for r in rows)


def test_missing_values_are_empty_and_non_finite_values_are_named() -> None:
    assert export.fmt(None) == ""
    assert [export.fmt(v) for v in (float("nan"), float("inf"), -float("inf"))] == [
        "nan",
        "inf",
        "-inf",
    ]
    assert math.isnan(float(export.fmt(float("nan"))))
    assert float(export.fmt(-float("inf"))) == -math.inf


@pytest.mark.parametrize(
    "value", [0.1, 1 / 3, 1e-300, 5e-324, 1.7976931348623157e308, -0.0, 0.9999999999999999]
)
def test_floats_round_trip(value: float) -> None:
    text = export.fmt(value)
    assert float(text) == value and math.copysign(1, float(text)) == math.copysign(1, value)
    assert export.fmt(np.float64(value)) == text
    assert float(export.fmt(np.float32(0.1))) == float(np.float32(0.1))


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("global_norm:1.0", "global_norm:1.0"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_text_that_a_spreadsheet_would_run_is_neutralised(text: str, want: str) -> None:
    assert export.fmt(text) == want


def test_numbers_and_flags_are_not_neutralised() -> None:
    assert export.fmt(-0.5) == "-0.5"
    assert export.fmt(-3) == "-3"
    assert export.fmt(np.int64(7)) == "7"
    assert export.fmt(True) == "true" and export.fmt(np.bool_(False)) == "false"


def test_cell_rows_one_per_cell_with_fractions(result) -> None:
    spec = parse_spec(SPEC)
    rows = _table(export.CELL_COLUMNS, result.cell_rows())
    assert len(rows) == spec.total_runs() // len(SPEC["grid"]["seed"])
    for r in rows:
        assert int(r["n_runs"]) == 2
        fracs = [float(r[k]) for k in ("converged_frac", "not_converged_frac", "diverged_frac")]
        assert sum(fracs) == pytest.approx(1.0)
        assert r["outcome"] in ("converged", "not_converged", "diverged")
        assert r["clip"] in ("none", "global_norm:0.1")
        assert (r["median_div_step"] == "") == (float(r["diverged_frac"]) == 0.0)
