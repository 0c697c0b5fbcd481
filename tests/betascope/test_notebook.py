"""`betascope.run(...)` as a notebook user calls it: DataFrames with the CSVs' columns,
the boundary in the REST shape, and the sweep page's phase map as a Plotly figure."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest
import yaml

import betascope
from experiments import export
from experiments.presets import PRESETS
from experiments.spec import parse_spec
from tests.test_cli import DESIGN_RUN_COLUMNS, SMALL_RUNS, SMALL_SPEC


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread: None) -> None:
    """The engine runs here on one torch thread (conftest.one_thread)."""


@pytest.fixture(scope="module")
def result() -> Any:
    return betascope.run(yaml.safe_load(SMALL_SPEC), device="cpu", progress=False)


def test_runs_and_cells_are_dataframes_with_the_csv_columns(result: Any, tmp_path: Path) -> None:
    runs, cells = result.runs, result.cells
    assert list(runs.columns) == DESIGN_RUN_COLUMNS and len(runs) == SMALL_RUNS
    assert list(cells.columns) == list(export.CELL_COLUMNS) and len(cells) == SMALL_RUNS // 2
    assert (cells["n_runs"] == 2).all()
    assert set(runs["clip_mode"]) == {"none", "value"}  # "none" is text, not a missing value
    assert runs["batch_size"].dtype.kind == "i" and runs["beta2"].dtype.kind == "f"
    # the values are the CSV's, to the last bit
    path = result.to_csv(tmp_path / "runs.csv")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["beta2"]) for r in rows] == runs["beta2"].tolist()
    assert [r["run_key"] for r in rows] == runs["run_key"].tolist()
    want = parse_spec(yaml.safe_load(SMALL_SPEC)).axis_values()["beta2"]
    assert sorted(set(runs["beta2"])) == sorted(want)
    counts = runs["outcome"].value_counts().to_dict()
    assert counts == {k: v for k, v in result.outcome_counts().items() if v}


def test_boundary_has_the_rest_shape(result: Any) -> None:
    b = result.boundary()
    assert set(b) == {"slices", "by_batch", "sqrt_curve"}
    assert len(b["slices"]) == 2 * 2  # batch x clip
    assert {"batch_size", "clip", "lr", "beta1", "beta2_star"} <= set(b["slices"][0])
    row = b["by_batch"][0]
    assert row["batch_size"] == [1, 4] and len(row["beta2_star"]) == 2 and "fit" in row


def test_phase_map_is_the_pages_figure(result: Any) -> None:
    fig = result.phase_map(batch_size=4, clip="value:0.05")
    assert isinstance(fig, go.Figure)
    heat, sqrt, *rest = fig.data
    # the beta2* line where some column of the slice has one (as on the page)
    want = result._local.phase_map("outcome", batch_size=4, clip="value:0.05")["beta2_star"]
    assert len(rest) == (1 if any(v is not None for v in want) else 0), want
    assert heat.type == "heatmap" and sqrt.name.startswith("β1 = √β2")
    assert all(t.name.startswith("β2*(β1)") for t in rest)
    assert fig.layout.yaxis.title.text == "β2  (spaced by log(1 − β2))"
    assert fig.layout.xaxis.title.text == "β1"
    assert "diverged:" in heat.text[0][0] and "β1 = 0" in heat.text[0][0]
    linear = result.phase_map("diverged_frac", scale="linear", show_star=False, show_sqrt=False)
    assert len(linear.data) == 1 and linear.layout.yaxis.title.text == "β2"
    assert linear.layout.yaxis.range[0] < linear.layout.yaxis.range[1]
    scaling = result.scaling()
    assert isinstance(scaling, go.Figure) and scaling.layout.xaxis.title.text == "batch size"
    with pytest.raises(ValueError, match="batch_size"):
        result.phase_map(batch_size=3)


def test_a_preset_a_file_and_yaml_text_all_run(tmp_path: Path) -> None:
    r = betascope.run("reddi2018-theorem1", device="cpu", progress=False)
    doc = PRESETS["reddi2018-theorem1"]
    assert len(r.runs) == doc["grid"]["beta1"]["num"] * doc["grid"]["beta2"]["num"]
    assert "Reddi" in repr(r)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SMALL_SPEC)
    assert len(betascope.run(spec, device="cpu", progress=False).runs) == SMALL_RUNS
    assert len(betascope.run(str(spec), device="cpu", progress=False).runs) == SMALL_RUNS
    assert len(betascope.run(SMALL_SPEC, device="cpu", progress=False).cells) == SMALL_RUNS // 2


def test_bad_specs_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="zhang2022-batch"):  # lists the presets
        betascope.run("zhang2099")
    bad = yaml.safe_load(SMALL_SPEC)
    bad["grid"]["beta1"] = [0.0, 1.5]
    with pytest.raises(ValueError, match="grid.beta1"):
        betascope.run(bad)
    with pytest.raises(ValueError, match="YAML"):
        betascope.run("name: x\ngrid: [unclosed\n")


# what `betascope run` refuses as --device, --kernel, --chunk-runs (and --max-runs)
BAD_OPTIONS = [
    ("device", "gpu"), ("device", "cuda:x"), ("device", None),
    ("kernel", "numba"), ("kernel", None),
    ("chunk_runs", 0), ("chunk_runs", -1), ("chunk_runs", 1.5), ("chunk_runs", True),
    ("chunk_runs", "10"),
    ("max_runs", None), ("max_runs", 0), ("max_runs", 2.0e6), ("max_runs", False),
]


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS)
def test_a_bad_option_is_one_error_naming_it(option: str, value: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import local

    def no_work(*_: Any, **__: Any) -> None:
        raise AssertionError("ran before checking its options")

    monkeypatch.setattr(local, "run_local", no_work)
    with pytest.raises(ValueError, match=rf"^{option}: must be .*; got {re.escape(repr(value))}"):
        betascope.run(SMALL_SPEC, progress=False, **{option: value})


def test_a_path_is_read_as_a_file_name_is(tmp_path: Path) -> None:
    for spec in (tmp_path / "missing.yaml", str(tmp_path / "missing.yaml"), tmp_path,
                 str(tmp_path)):
        with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
            betascope.run(spec, progress=False)
    with pytest.raises(ValueError, match="directory"):
        betascope.run(tmp_path, progress=False)
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe name: [")
    with pytest.raises(ValueError, match="bad.yaml"):
        betascope.run(tmp_path / "bad.yaml", progress=False)


def test_the_html_page_from_a_notebook(result: Any, tmp_path: Path) -> None:
    page = result.to_html(tmp_path / "map.html").read_text(encoding="utf-8")
    assert "<h3>batch size 4</h3>" in page and "plotly-gz" in page


def test_yaml_text_is_read_as_every_reader_of_a_spec_reads_it() -> None:
    """One line naming the position (it was PyYAML's message of several lines), and a
    key given twice refused (it was merged, the last one winning)."""
    with pytest.raises(ValueError) as caught:
        betascope.run("problem: {kind: zhang2022\nsteps: 20", progress=False)
    assert str(caught.value) == ("the spec is not valid YAML or JSON: line 2, column 6: "
                                 "expected ',' or '}', but got ':'")
    with pytest.raises(ValueError, match="line 3, column 1: the key 'steps' appears twice"):
        betascope.run("problem: {kind: zhang2022}\nsteps: 5\nsteps: 6\n"
                      "grid: {beta1: [0.0], beta2: [0.5]}", progress=False)


def test_to_csv_refuses_a_parquet_name(tmp_path: Path) -> None:
    r = betascope.run(SMALL_SPEC, progress=False)
    with pytest.raises(ValueError, match=r"path: to_csv writes CSV.*r\.cells\.to_parquet"):
        r.to_csv(tmp_path / "cells.parquet", level="cells")
    assert not (tmp_path / "cells.parquet").exists()
