"""Extra axes (DESIGN section 2): problem.<field> and optimizer.<field> swept like
the standard axes, validated as the field itself, in flat order, CSV columns and
run_key; cells with one dimension per axis but seed; maps over any two axes."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from typing import Any

import numpy as np
import pytest

from experiments import analysis, export
from experiments.engine import run_chunk
from experiments.keys import find_run
from experiments.local import run_local
from experiments.reuse import cell_index, chunk_bounds, chunk_unit
from experiments.runs import all_runs, runs_at
from experiments.spec import SpecError, canonical_json, parse_spec, run_keys
from experiments.version import engine_version

DOC: dict[str, Any] = {
    "problem": {"kind": "zhang2022", "x0": -0.5},
    "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
    "steps": 400,
    "grid": {
        "beta1": [0.0, 0.9],
        "beta2": [0.5, 0.9, 0.99],
        "seed": [0, 1, 2],
        "problem.n": [5, 10, 20],
        "optimizer.eps": [1e-8, 1e-3],
    },
}


def doc(**grid: Any) -> dict[str, Any]:
    d = copy.deepcopy(DOC)
    d["grid"] = {"beta1": [0.0], "beta2": [0.5], **grid}
    return d


def errors_of(d: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(d)
    return info.value.errors


# --- the spec ----------------------------------------------------------------------------


def test_flat_order_is_the_standard_axes_then_the_extras_as_written() -> None:
    spec = parse_spec(DOC)
    assert spec.axes() == (
        "beta1", "beta2", "batch_size", "clip", "lr", "seed", "problem.n", "optimizer.eps",
    )
    assert spec.axis_sizes() == (2, 3, 1, 1, 1, 3, 3, 2)
    assert spec.total_runs() == 2 * 3 * 3 * 3 * 2
    assert spec.axis_values()["problem.n"] == [5, 10, 20]  # the field's own type
    reordered = copy.deepcopy(DOC)
    reordered["grid"] = {
        "optimizer.eps": [1e-8, 1e-3], **{k: v for k, v in DOC["grid"].items() if "." not in k},
        "problem.n": {"start": 5, "stop": 20, "num": 4},
    }
    spec = parse_spec(reordered)
    assert spec.axes()[6:] == ("optimizer.eps", "problem.n")
    assert spec.axis_values()["problem.n"] == [5, 10, 15, 20]


def test_beta_axes_are_optional() -> None:
    d = copy.deepcopy(DOC)
    d["grid"] = {"problem.n": [5, 10]}
    spec = parse_spec(d)
    assert spec.axis_values()["beta1"] == [0.9] and spec.axis_values()["beta2"] == [0.999]


@pytest.mark.parametrize(
    ("axis", "value", "field_doc"),
    [
        ("problem.n", 2, {"problem": {"kind": "zhang2022", "n": 2}}),
        ("problem.n", 5.5, {"problem": {"kind": "zhang2022", "n": 5.5}}),
        ("optimizer.eps", -1.0, {"optimizer": {"eps": -1.0}}),
        ("optimizer.weight_decay", 0.1, {"optimizer": {"weight_decay": 0.1}}),
    ],
)
def test_an_extra_axis_value_is_rejected_with_the_fields_own_message(
    axis: str, value: Any, field_doc: dict[str, Any]
) -> None:
    own = errors_of({**copy.deepcopy(DOC), **field_doc})
    assert len(own) == 1
    got = errors_of(doc(**{axis: [value]}))
    assert got == [(f"grid.{axis}[0]", own[0][1])]


@pytest.mark.parametrize(
    ("axis", "values", "says"),
    [
        ("problem.m", [1], "zhang2022 has no field 'm'"),
        ("optimizer.momentum_typo", [0.5], "has no field 'momentum_typo'"),
        ("optimizer.schedule", [1], "optimizer.schedule is not a numeric field"),
        ("optimizer.bias_correction", [1], "optimizer.bias_correction is not a numeric field"),
        ("problem.kind", [1], "has no field 'kind'"),
        ("optimizer.lr", [0.1], "with the lr axis"),
        ("problem.n", [5, 5], "values must be distinct"),
        ("problem.n", [], "must not be empty"),
        ("problem.n", ["5"], "every value must be a number"),
        ("solver.n", [5], "Extra inputs are not permitted"),
    ],
)
def test_a_bad_extra_axis_is_one_error_naming_it(axis: str, values: Any, says: str) -> None:
    got = errors_of(doc(**{axis: values}))
    assert len(got) == 1, got
    assert got[0][0] == f"grid.{axis}" and says in got[0][1], got


def test_a_swept_field_must_not_be_set_to_another_value() -> None:
    d = doc(**{"problem.n": [5, 10]})
    d["problem"]["n"] = 20
    assert errors_of(d) == [
        ("problem.n", "is also swept by grid.problem.n; set it in one place")
    ]
    d["problem"]["n"] = 10  # one of the axis's values says nothing else
    assert parse_spec(d).axis_values()["problem.n"] == [5, 10]


def test_every_problem_of_an_n_axis_must_take_the_batch_sizes() -> None:
    got = errors_of(doc(**{"problem.n": [5, 50], "batch_size": [8]}))
    assert got == [("grid.batch_size", "8 exceeds the problem's 5 samples")]


def test_errors_elsewhere_are_reported_together_with_an_extra_axis_error() -> None:
    d = doc(**{"problem.n": [2]})
    d["steps"] = 0
    fields = {loc for loc, _ in errors_of(d)}
    assert fields == {"steps", "grid.problem.n[0]"}


# --- run_key --------------------------------------------------------------------------------


def test_keys_of_specs_without_extra_axes_are_unchanged() -> None:
    """The key's lanes (the per-axis sum) computed before extra axes existed, and
    its program part from the documented definition: a sweep written before this
    change keeps its run keys."""
    d = {"problem": {"kind": "zhang2022", "n": 10}, "optimizer": {"eps": 1e-6}, "steps": 100,
         "grid": {"beta1": [0.0, 0.9], "beta2": {"log1m": [0.01, 1.0], "num": 3},
                  "batch_size": [1, 2], "clip": [{"mode": "none"},
                                                 {"mode": "value", "threshold": 0.5}],
                  "lr": [0.1, 0.01], "seed": [0, 1]}}
    spec = parse_spec(d)
    keys = run_keys(spec, runs_at(spec, [0, 17, 95])).astype(str).tolist()
    assert [k[32:] for k in keys] == [
        "39aaa4598c7b342c530f55bb6df31779",
        "661ef08f6eb51d53ba0d67228ce39325",
        "9c0c446c312477d4e727229c6d7e1f1a",
    ]
    program = {
        "engine": engine_version("eager"),
        "problem": {"kind": "zhang2022", "n": 10, "x0": -0.5},
        "optimizer": {"kind": "adam", "schedule": "constant", "eps": 1e-6,
                      "bias_correction": True, "weight_decay": 0.0},
        "sampling": "with_replacement", "steps": 100, "dtype": "float64",
        "criteria": {"converge_rel": 0.05, "diverge_rel": 10.0},
    }
    program["optimizer"] = {**spec.optimizer.model_dump(mode="json", exclude={"lr"})}
    prefix = hashlib.sha256(canonical_json(program).encode()).hexdigest()[:32]
    assert {k[:32] for k in keys} == {prefix}


def test_an_extra_axis_is_one_more_term_of_the_keys_sum() -> None:
    spec = parse_spec(DOC)
    runs = all_runs(spec)
    keys = run_keys(spec, runs).astype(str).tolist()
    assert len(set(keys)) == spec.total_runs()
    values = spec.axis_values()
    for flat in (0, 41, spec.total_runs() - 1):
        g = runs.grid_index[flat]
        lanes = [0, 0]
        for axis, i in zip(spec.axes(), g.tolist(), strict=True):
            v = values[axis][i]
            text = canonical_json(v.model_dump(mode="json") if axis == "clip" else v)
            digest = hashlib.sha256(f'["{axis}",{text}]'.encode()).digest()
            for j in range(2):
                lanes[j] = (lanes[j] + int.from_bytes(digest[8 * j: 8 * j + 8], "little")) % 2**64
        assert keys[flat][32:] == "".join(f"{x:016x}" for x in lanes)
        assert find_run(spec, keys[flat]) == flat
    # the swept fields are per-run values, not part of the program every run shares
    one = copy.deepcopy(DOC)
    one["problem"]["n"] = 10
    one["grid"]["problem.n"] = [10, 20]
    assert run_keys(parse_spec(one), runs_at(parse_spec(one), [0]))[0][:32] == \
        run_keys(spec, runs_at(spec, [0]))[0][:32]


# --- the engine and cells -----------------------------------------------------------------


def test_each_run_of_an_extra_axis_equals_the_same_run_without_it() -> None:
    """A chunk mixing n and eps values runs each point as its own program: every run
    equals the run of a sweep that fixes that n and eps, whatever the chunk holds."""
    spec = parse_spec(DOC)
    runs = all_runs(spec)
    rows = np.random.default_rng(0).permutation(len(runs))[:50]
    mixed = run_chunk(spec, runs.take(rows))
    values = spec.axis_values()
    for j, r in enumerate(rows.tolist()):
        g = runs.grid_index[r]
        fixed = copy.deepcopy(DOC)
        fixed["grid"] = {k: v for k, v in DOC["grid"].items() if "." not in k}
        fixed["problem"]["n"] = values["problem.n"][g[6]]
        fixed["optimizer"]["eps"] = values["optimizer.eps"][g[7]]
        one = parse_spec(fixed)
        alone = run_chunk(one, runs_at(one, [int(np.ravel_multi_index(tuple(g[:6]),
                                                                     one.axis_sizes()))]))
        np.testing.assert_array_equal(mixed.curves[j], alone.curves[0])
        assert mixed.outcomes.code[j] == alone.outcomes.code[0]


def test_chunks_hold_whole_cells_when_extra_axes_follow_seed() -> None:
    spec = parse_spec(DOC)
    unit = chunk_unit(spec)
    assert unit == 3 * 3 * 2  # seed, problem.n, optimizer.eps
    bounds = chunk_bounds(spec, 40)
    assert (bounds[:-1] % unit == 0).all() and bounds[-1] == spec.total_runs()
    runs = all_runs(spec)
    cell = cell_index(spec, runs.index)
    shape = analysis.cell_shape(spec)
    keep = [i for i, a in enumerate(spec.axes()) if a != "seed"]
    want = np.ravel_multi_index(tuple(runs.grid_index[:, i] for i in keep), shape)
    np.testing.assert_array_equal(cell, want)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        inside = set(cell[lo:hi].tolist())
        outside = set(cell[:lo].tolist()) | set(cell[hi:].tolist())
        assert not inside & outside  # no cell is split between two chunks


def test_maps_over_any_two_axes_and_csv_columns() -> None:
    spec = parse_spec(DOC)
    result = run_local(spec, device="cpu", chunk_runs=25)
    c = result.cells()
    assert c.outcome.shape == (2, 3, 1, 1, 1, 3, 2)
    frac = c.diverged_frac
    pm = result.phase_map("diverged_frac", x="problem.n", y="beta2", beta1=0.9,
                          **{"optimizer.eps": 1e-3})
    assert pm["x"] == {"name": "problem.n", "values": [5, 10, 20]}
    assert pm["y"]["name"] == "beta2" and pm["beta2_star"] is None
    assert pm["slice"] == {"beta1": 0.9, "batch_size": 1, "clip": "none", "lr": 0.1,
                           "optimizer.eps": 1e-3}
    assert set(pm["available"]) == {"beta1", "batch_size", "clip", "lr", "optimizer.eps"}
    np.testing.assert_array_equal(np.array(pm["z"], dtype=float), frac[1, :, 0, 0, 0, :, 1])
    default = result.phase_map("diverged_frac", **{"problem.n": 20})
    np.testing.assert_array_equal(np.array(default["z"], dtype=float),
                                  frac[:, :, 0, 0, 0, 2, 0].T)
    assert default["slice"]["problem.n"] == 20 and default["beta2_star"] is not None
    with pytest.raises(KeyError, match="problem.n"):
        result.phase_map(**{"problem.n": 7})
    with pytest.raises(KeyError, match="batch_size"):
        result.phase_map(x="batch_size")  # one value: no map
    with pytest.raises(KeyError, match="problem.n"):
        result.phase_map(x="problem.n", y="beta2", **{"problem.n": 5})  # mapped, not sliced
    # CSV: the extra columns follow the standard ones, by path, in both tables
    text = b"".join(result.run_csv()).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == export.RUN_COLUMNS + ("problem.n", "optimizer.eps")
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["problem.n"] == "5" and first["optimizer.eps"] == "1e-08"
    assert rows[1:] == list(result.run_rows())
    assert result.cell_columns == export.CELL_COLUMNS + ("problem.n", "optimizer.eps")
    cells = list(result.cell_rows())
    assert len(cells) == int(np.prod(c.outcome.shape))
    # boundary: a slice per point of the extra axes, tagged with its values
    slices = result.boundary()["slices"]
    assert len(slices) == 3 * 2 and {(s["problem.n"], s["optimizer.eps"]) for s in slices} == {
        (n, e) for n in (5, 10, 20) for e in (1e-8, 1e-3)
    }
    assert json.dumps(pm)  # JSON-ready


def test_the_html_page_draws_a_map_for_each_point_of_the_extra_axes() -> None:
    d = copy.deepcopy(DOC)
    d["grid"] = {"beta1": [0.0, 0.9], "beta2": [0.5, 0.99], "problem.n": [5, 20]}
    d["steps"] = 50
    from web.standalone import sweep_page

    page = sweep_page(run_local(parse_spec(d), device="cpu"))
    assert page.count("problem.n 5") >= 1 and page.count("problem.n 20") >= 1


def test_an_unknown_grid_key_is_reported_with_the_grids_other_errors() -> None:
    d = doc(**{"bta1": [0.5]})
    d["grid"]["beta1"] = [1.5]
    assert {loc for loc, _ in errors_of(d)} == {"grid.beta1", "grid.bta1"}


def test_a_spec_with_extra_axes_round_trips_through_its_stored_document() -> None:
    d = copy.deepcopy(DOC)
    d["grid"]["problem.n"] = {"start": 5, "stop": 20, "num": 4}
    spec = parse_spec(d)
    again = parse_spec(json.loads(json.dumps(spec.model_dump(mode="json"))))
    assert again == spec and again.axis_values() == spec.axis_values()
    assert run_keys(again, all_runs(again)).tolist() == run_keys(spec, all_runs(spec)).tolist()
