"""`betascope run` and `betascope presets` as a user runs them (DESIGN section 10)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from api.cli import app
from experiments.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]

DESIGN_RUN_COLUMNS = (
    "run_key,beta1,beta2,batch_size,clip_mode,clip_threshold,lr,seed,steps,outcome,"
    "final_loss,final_rel,final_gap,div_step,clip_fraction"
).split(",")

SMALL_SPEC = """\
name: cli test
problem: {kind: zhang2022, n: 10, x0: -0.5}
optimizer: {lr: 0.1, schedule: inv_sqrt, bias_correction: false}
steps: 200
grid:
  beta1: [0.0, 0.9]
  beta2: {log1m: [0.01, 1.0], num: 4}
  batch_size: [1, 4]
  clip: [{mode: none}, {mode: value, threshold: 0.05}]
  seed: [0, 1]
"""
SMALL_RUNS = 2 * 4 * 2 * 2 * 2


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # as tests/experiments/conftest.py: tiny chunks only pay for a second thread
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    spec = tmp / "spec.yaml"
    spec.write_text(SMALL_SPEC)
    out = {"runs": tmp / "runs.csv", "cells": tmp / "cells.csv", "html": tmp / "map.html"}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = _invoke(
            "run",
            str(spec),
            "--out",
            str(out["runs"]),
            "--cells",
            str(out["cells"]),
            "--html",
            str(out["html"]),
            "--device",
            "cpu",
        )
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    assert f"{SMALL_RUNS} runs" in result.output
    return out


def test_run_writes_one_row_per_run_in_design_columns(small_run: dict[str, Path]) -> None:
    header, rows = _read(small_run["runs"])
    assert header == DESIGN_RUN_COLUMNS
    assert len(rows) == SMALL_RUNS
    assert len({r["run_key"] for r in rows}) == SMALL_RUNS
    assert {r["outcome"] for r in rows} <= {"converged", "not_converged", "diverged"}
    assert {(r["beta1"], r["batch_size"], r["clip_mode"], r["seed"]) for r in rows} == {
        (b1, b, c, s)
        for b1 in ("0.0", "0.9")
        for b in ("1", "4")
        for c in ("none", "value")
        for s in ("0", "1")
    }


def test_run_writes_cells_and_a_self_contained_page(small_run: dict[str, Path]) -> None:
    header, cells = _read(small_run["cells"])
    assert header[:5] == ["beta1", "beta2", "batch_size", "clip", "lr"]
    assert len(cells) == SMALL_RUNS // 2  # two seeds per cell
    assert all(int(c["n_runs"]) == 2 for c in cells)
    page = small_run["html"].read_text(encoding="utf-8")
    assert get_plotlyjs()[:2000] in page  # plotly.js itself, inlined
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", page, re.I)
    assert "cli test" in page
    # one phase map per (batch, clip, lr) slice
    assert page.count("<figure>") == 2 * 2


def test_run_preset(tmp_path: Path) -> None:
    out = tmp_path / "reddi.csv"
    result = _invoke("run", "--preset", "reddi2018-theorem1", "--out", str(out), "--device", "cpu")
    assert result.exit_code == 0, result.output
    header, rows = _read(out)
    assert header == DESIGN_RUN_COLUMNS
    doc = PRESETS["reddi2018-theorem1"]
    assert len(rows) == 10 * 24 == doc["grid"]["beta1"]["num"] * doc["grid"]["beta2"]["num"]
    assert {r["steps"] for r in rows} == {str(doc["steps"])}
    # Theorem 1 in the output: beta1 = 0 with the smallest beta2 never reaches x* = -1
    worst = next(r for r in rows if float(r["beta1"]) == 0.0 and float(r["beta2"]) == 0.0)
    assert worst["outcome"] != "converged"


BAD_INVOCATIONS = [
    (
        "beta-out-of-range",
        "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0, 1.0], beta2: [0.5]}\n",
        (),
        "grid.beta1",
    ),
    (
        "unknown-key",
        "problem: {kind: zhang2022, size: 3}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\n",
        (),
        "problem.size",
    ),
    (
        "batch-too-large",
        "problem: {kind: zhang2022, n: 5}\nsteps: 5\ngrid: {beta1: [0.0], "
        "beta2: [0.5], batch_size: [6]}\n",
        (),
        "grid.batch_size",
    ),
    ("yaml-syntax", "problem: {kind: zhang2022\nsteps: 5\n", (), "line 2"),
    (
        "over-the-cap",
        "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0, 0.5], beta2: [0.5, 0.9]}\n",
        ("--max-runs", "3"),
        "cap of 3",
    ),
    (
        "bad-kernel",
        "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\n",
        ("--kernel", "jit"),
        "--kernel",
    ),
    (
        "bad-device",
        "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\n",
        ("--device", "tpu"),
        "--device",
    ),
]


@pytest.mark.parametrize(
    ("text", "extra", "names"),
    [b[1:] for b in BAD_INVOCATIONS],
    ids=[b[0] for b in BAD_INVOCATIONS],
)
def test_invalid_input_is_one_readable_error(
    tmp_path: Path, text: str, extra: tuple[str, ...], names: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    out = tmp_path / "runs.csv"
    result = _invoke("run", str(spec), "--out", str(out), *extra)
    assert result.exit_code == 2, (result.exit_code, result.output)  # README: status 2
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and names in lines[0], lines
    assert "Traceback" not in result.output
    assert not out.exists()


def test_missing_spec_file_and_unknown_preset(tmp_path: Path) -> None:
    missing = _invoke("run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "r.csv"))
    assert missing.exit_code == 2 and "nope.yaml" in missing.stderr
    unknown = _invoke("run", "--preset", "zhang2099", "--out", str(tmp_path / "r.csv"))
    assert unknown.exit_code == 2
    assert "zhang2099" in unknown.stderr and "zhang2022-batch" in unknown.stderr


def test_invalid_spec_in_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("problem: {kind: zhang2022}\nsteps: 0\ngrid: {beta1: [0.0], beta2: [0.5]}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "api.cli", "run", str(spec), "--out", str(tmp_path / "r.csv")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.returncode
    assert proc.stderr.strip().splitlines() == [
        "error: invalid spec: steps: Input should be greater than or equal to 1"
    ], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_presets_lists_the_paper_reproductions() -> None:
    result = _invoke("presets")
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert {"zhang2022-batch", "reddi2018-theorem1"} <= set(names)
    assert set(names) == set(PRESETS)
    shown = _invoke("presets", "zhang2022-batch")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout) == PRESETS["zhang2022-batch"]
