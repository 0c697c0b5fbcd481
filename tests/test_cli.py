"""`betascope run` and `betascope presets` as a user runs them (DESIGN section 10)."""

from __future__ import annotations

import base64
import csv
import gzip
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from api.cli import app
from experiments.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]

# DESIGN section 10's columns in its order, then the spike columns (extra columns after)
DESIGN_RUN_COLUMNS = (
    "run_key,beta1,beta2,batch_size,clip_mode,clip_threshold,lr,seed,steps,outcome,"
    "final_loss,final_rel,final_gap,div_step,clip_fraction"
).split(",") + ["max_rise", "spiky"]

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
    out["output"] = tmp / "output.txt"
    out["output"].write_text(result.stdout)
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


def page_figures(page: str) -> dict[str, Any]:
    """The Plotly figures of a `run --html` page, by element id."""
    found = re.search(r"<script id='figures-gz'[^>]*>(.*?)</script>", page, re.S)
    assert found, "no figure data in the page"
    return json.loads(gzip.decompress(base64.b64decode(found.group(1))))


def _is_map(fig: dict[str, Any]) -> bool:
    return bool(fig["data"]) and fig["data"][0]["type"] == "heatmap"


def page_plotly(page: str) -> str:
    found = re.search(r"<script id='plotly-gz'[^>]*>(.*?)</script>", page, re.S)
    assert found, "no plotly.js in the page"
    return gzip.decompress(base64.b64decode(found.group(1))).decode()


def test_run_writes_cells_and_a_self_contained_page(small_run: dict[str, Path]) -> None:
    header, cells = _read(small_run["cells"])
    assert header[:5] == ["beta1", "beta2", "batch_size", "clip", "lr"]
    assert len(cells) == SMALL_RUNS // 2  # two seeds per cell
    assert all(int(c["n_runs"]) == 2 for c in cells)
    page = small_run["html"].read_text(encoding="utf-8")
    # plotly.js once, gzipped: the page is well under half of plotly.js's own size
    assert page_plotly(page) == get_plotlyjs()
    assert page.count("plotly.js v") == 0 and len(page) < 0.5 * len(get_plotlyjs())
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert "<title>cli test · betascope</title>" in page
    figs = page_figures(page)
    maps = [f for f in figs.values() if _is_map(f)]
    scaling = [f for f in figs.values() if not _is_map(f)]
    assert len(maps) == 2 * 2 and len(scaling) == 2  # a map per slice, a chart per (clip, lr)
    # each caption once, and no second title inside the figure
    assert page.count("<h3>batch size 1</h3>") == 2 and page.count("clip none · lr 0.1") == 1
    assert all("title" not in f["layout"] or not f["layout"]["title"].get("text")
               for f in figs.values())


def test_run_html_draws_the_sweep_page_map(small_run: dict[str, Path]) -> None:
    page = small_run["html"].read_text(encoding="utf-8")
    for fig in page_figures(page).values():
        if not _is_map(fig):
            continue
        # the beta2* line where some column has one (an all-null line is left out, and
        # its legend entry with it, as on the page)
        heat, sqrt, *rest = fig["data"]
        star = rest[0] if rest else {"name": ""}
        assert len(rest) <= 1
        x, y = fig["layout"]["xaxis"], fig["layout"]["yaxis"]
        # beta2 is log-spaced: spaced by log10(1 - beta2) on a reversed axis, as the page
        assert y["title"]["text"] == "β2  (spaced by log(1 − β2))" and x["title"]["text"] == "β1"
        assert y["range"][0] > y["range"][1] and "0.99" in y["ticktext"]
        b2 = [1 - 10**u for u in heat["y"]]
        assert b2 == pytest.approx([0.0, 1 - 0.1**(2 / 3), 1 - 0.1**(4 / 3), 0.99])
        # whole cells: the range ends half a step beyond the first and last grid point
        assert x["range"] == pytest.approx([-0.45, 1.35])
        assert y["range"] == pytest.approx([heat["y"][0] - (heat["y"][1] - heat["y"][0]) / 2,
                                            heat["y"][3] + (heat["y"][3] - heat["y"][2]) / 2])
        # beta1 = sqrt(beta2) as a smooth curve: at beta1 = 0.2 it is at beta2 = 0.04
        assert sqrt["name"].startswith("β1 = √β2") and len(sqrt["x"]) > 100
        curve_b2 = [1 - 10**u for u in sqrt["y"]]
        assert curve_b2 == pytest.approx([b * b for b in sqrt["x"]], abs=1e-12)
        near = min(range(len(sqrt["x"])), key=lambda i: abs(sqrt["x"][i] - 0.2))
        assert sqrt["x"][near] == pytest.approx(0.2, abs=0.01)
        assert curve_b2[near] == pytest.approx(0.04, abs=0.005)
        assert not rest or star["name"].startswith("β2*(β1)")
        assert not rest or any(v is not None for v in star["y"])
        # people's labels: no snake_case names anywhere a reader sees
        seen = json.dumps([heat["text"], heat["colorbar"], sqrt["name"], star["name"], x, y],
                          ensure_ascii=False)
        assert not re.search(r"beta[12]|not_converged|beta2_star", seen), seen


def test_run_prints_what_it_wrote_and_the_outcomes(small_run: dict[str, Path]) -> None:
    out = small_run["output"].read_text()
    lines = out.splitlines()
    assert re.match(rf"{SMALL_RUNS} runs x 200 steps = 1\.28e\+04 run-steps$", lines[0]), out
    assert lines[1].startswith("estimated duration here: "), out
    for key in ("runs", "cells", "html"):
        assert any(line.startswith(f"wrote {small_run[key]}") for line in lines), out
    assert re.search(rf"^{SMALL_RUNS} runs: \d+ converged, \d+ not converged, \d+ diverged$", out,
                     re.M), out
    table = out[out.index("β2*: "):]
    assert "clip none · lr 0.1" in table and "clip value:0.05 · lr 0.1" in table
    assert re.search(r"^ +β1 +batch 1 +batch 4 +slope$", table, re.M), table


def test_an_estimate_that_takes_a_while_says_why(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh install compiles the fused kernel in its first estimate (27 s on two
    cores): past SLOW_ESTIMATE_S the command says what it is doing; a quick one does not."""
    import time as clock

    import yaml

    import api.cli
    import experiments.local
    from experiments.spec import parse_spec

    # measured once beforehand: the timed estimate below takes exactly `pause`
    measured = experiments.local.estimate(parse_spec(yaml.safe_load(SMALL_SPEC)), device="cpu")
    monkeypatch.setattr(api.cli, "SLOW_ESTIMATE_S", 0.2)
    small = tmp_path / "small.yaml"
    small.write_text(SMALL_SPEC)
    for pause, says in ((1.0, True), (0.0, False)):
        def slow(*args: Any, pause: float = pause, **kwargs: Any) -> Any:
            clock.sleep(pause)
            return measured

        monkeypatch.setattr(experiments.local, "estimate", slow)
        result = _invoke("run", str(small), "--dry-run", "--device", "cpu")
        assert result.exit_code == 0, result.output
        assert ("measuring this machine's speed" in result.stderr) is says, result.stderr
        assert "estimated duration here: " in result.stdout


def test_dry_run_warns_above_a_day(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    # a hundred times the 2 x 10^13 run-steps: 200,000,000 runs of 10^7 steps, over
    # a day below 2.3e10 run-steps/s (the fused kernel warms up at 2-2.5e9 on two cores,
    # which put a tenth of this, 22-28 hours, on the line)
    spec.write_text("name: huge\nproblem: {kind: zhang2022, n: 20}\nsteps: 10000000\n"
                    "grid: {beta1: {start: 0.0, stop: 0.99, num: 200},\n"
                    "       beta2: {log1m: [0.0001, 1.0], num: 1000}, batch_size: [1, 2, 3, 4, 5,"
                    f" 6, 7, 8, 9, 10], seed: {list(range(100))}}}\n")
    result = _invoke("run", str(spec), "--dry-run", "--device", "cpu", "--max-runs",
                     "1000000000", "--out", str(tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    assert "200000000 runs x 10000000 steps = 2e+15 run-steps" in result.stdout
    assert re.search(r"estimated duration here: [\d.]+ days", result.stdout), result.stdout
    assert "warning: this sweep would take about" in result.stderr
    assert not (tmp_path / "r.csv").exists()
    small = tmp_path / "small.yaml"
    small.write_text(SMALL_SPEC)
    quick = _invoke("run", str(small), "--dry-run", "--device", "cpu")
    assert quick.exit_code == 0 and "warning" not in quick.output


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
        "fused-unsupported",
        "problem: {kind: reddi2018}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\n",
        ("--kernel", "fused"),
        "problem.kind",
    ),
    (
        "bad-device",
        "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\n",
        ("--device", "tpu"),
        "--device",
    ),
    (
        "key-twice",  # was merged silently: the second steps won
        "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\nsteps: 9\n",
        (),
        "line 4, column 1: the key 'steps' appears twice in one mapping (first on line 2)",
    ),
    (
        "spec-and-preset",  # the preset ran and the file was ignored
        "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\n",
        ("--preset", "zhang2022-batch"),
        "give a SPEC file or --preset NAME, not both",
    ),
    # outputs are checked before the sweep runs: a bad path once lost the whole sweep
    # to a traceback after it had computed
    (
        "cells-in-a-missing-directory",
        "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\n",
        ("--cells", "/nonexistent-betascope/cells.csv"),
        "--cells: the directory /nonexistent-betascope does not exist",
    ),
    (
        "html-is-a-directory",
        "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\n",
        ("--html", "/"),
        "--html: / is a directory",
    ),
    (
        "cells-as-parquet",
        "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\n",
        ("--cells", "cells.parquet"),
        "--cells: betascope run writes CSV",
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


def test_outputs_may_not_overwrite_the_spec_or_each_other(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    text = "problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [0.5]}\n"
    spec.write_text(text)
    for args, says in (
        (("--out", str(spec)), "--out: "),
        (("--out", str(tmp_path / "a.csv"), "--cells", str(tmp_path / "a.csv")), "--cells: "),
        (("--out", str(tmp_path / "a.csv"), "--html", str(tmp_path / "x" / ".." / "a.csv")),
         "--html: "),
    ):
        result = _invoke("run", str(spec), *args)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: " + says), result.stderr
        assert "give each output a file of its own" in result.stderr
    assert spec.read_text() == text and not (tmp_path / "a.csv").exists()


def test_submit_says_what_is_wrong_with_a_spec_before_a_server_out_of_reach(
        tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("problem: {kind: zhang2022}\nsteps: 5\ngrid: {beta1: [0.0], beta2: [1.0]}\n")
    result = _invoke("submit", str(spec), "--url", "http://127.0.0.1:9")  # nothing listens
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("note: the spec is not valid here: grid.beta2: every beta "
                               "must lie in [0, 1); got 1.0"), lines
    assert lines[-1].startswith("error: cannot reach http://127.0.0.1:9"), lines
    broken = tmp_path / "broken.yaml"
    broken.write_text("problem: {kind: zhang2022\nsteps: 5\n")
    result = _invoke("submit", str(broken), "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        f"error: invalid spec: {broken} is not valid YAML or JSON: line 2, column 6: "
        "expected ',' or '}', but got ':'"], result.stderr


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


def test_run_with_an_extra_axis_writes_its_columns_and_a_table_per_value(
    tmp_path: Path,
) -> None:
    doc = {"name": "n axis", "problem": {"kind": "zhang2022", "x0": -0.5},
           "optimizer": {"schedule": "inv_sqrt", "bias_correction": False}, "steps": 100,
           "grid": {"beta1": [0.0, 0.9], "beta2": {"log1m": [0.01, 1.0], "num": 3},
                    "seed": [0, 1], "problem.n": [5, 20]}}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(doc))
    out, cells, page = tmp_path / "runs.csv", tmp_path / "cells.csv", tmp_path / "map.html"
    res = _invoke("run", str(spec_file), "--out", str(out), "--cells", str(cells),
                  "--html", str(page), "--device", "cpu")
    assert res.exit_code == 0, res.output
    header, rows = _read(out)
    assert header[-1] == "problem.n" and len(rows) == 2 * 3 * 2 * 2
    assert {r["problem.n"] for r in rows} == {"5", "20"}
    cell_header, cell_rows = _read(cells)
    assert cell_header[-1] == "problem.n" and len(cell_rows) == 2 * 3 * 2
    # the beta2* table and the page: one per value of n
    assert "lr 0.1 · problem.n 5" in res.output and "lr 0.1 · problem.n 20" in res.output
    html = page.read_text()
    assert "problem.n 5" in html and "problem.n 20" in html


# --- plug-in problems ------------------------------------------------------------------------

LOGREG_SPEC = """\
name: plug-in logreg
problem: {kind: logreg, n_samples: 32, dim: 3, l2: 0.05}
optimizer: {lr: 0.05}
steps: 100
grid:
  beta1: [0.0, 0.9]
  beta2: [0.9, 0.999]
  batch_size: [1, 8]
"""


def test_problems_lists_kinds_their_origin_and_failed_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import experiments.problems as problems

    result = _invoke("problems")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert set(rows) == set(problems.KINDS)
    assert rows["quadratic"][:2] == ["built-in", "experiments.problems.quadratic"]
    assert rows["logreg"][:2] == ["plug-in", "betascope-logreg"]
    monkeypatch.setitem(problems._derived, "PLUGIN_ERRORS",
                        {"broken": "broken-pkg (broken.spec:Spec): ImportError: no torch_xyz"})
    result = _invoke("problems")
    assert "broken" in result.stdout and "failed" in result.stdout
    assert "ImportError: no torch_xyz" in result.stdout


def test_run_a_spec_naming_a_plugin_problem_in_a_real_process(tmp_path: Path) -> None:
    spec = tmp_path / "logreg.yaml"
    spec.write_text(LOGREG_SPEC)
    out = tmp_path / "runs.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "api.cli", "run", str(spec), "--out", str(out), "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    header, rows = _read(out)
    assert header[: len(DESIGN_RUN_COLUMNS)] == DESIGN_RUN_COLUMNS
    assert len(rows) == 8
    assert {r["outcome"] for r in rows} <= {"converged", "not_converged", "diverged"}
    # the plug-in knows its optimum, so every run has a gap to it
    assert all(float(r["final_gap"]) >= 0 for r in rows)
    assert all(float(r["final_rel"]) < 1 for r in rows)
