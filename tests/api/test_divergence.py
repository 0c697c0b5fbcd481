"""Divergence is data: runs whose loss overflows to inf or nan, in float32 and float64,
are stored, served and exported as diverged with their div_step, on both backends.

JSON has no inf or nan, so the API sends them as the strings "Infinity" and "NaN"
(and "-Infinity"); CSV writes inf, nan and -inf. Nothing is null, nothing crashes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from functools import lru_cache
from typing import Any

import pytest

from tests.api.helpers import all_runs, spec, submit, wait_status

pytestmark = pytest.mark.services

# (problem, dtype) -> learning rates: the first overflows the loss to inf, the second
# (inf - inf inside the update) to nan. Found by running the engine; the test checks
# against the engine again rather than trusting these numbers.
CASES = {
    ("zhang2022", "float32"): [1e38, 3e38],  # an lr float32 holds (1e200 is refused)
    ("zhang2022", "float64"): [1e305, 1.7e308],
    ("lstsq", "float32"): [1e30, 1e38],
    ("lstsq", "float64"): [1e305, 1.7e308],
}
PROBLEMS = {"zhang2022": {"kind": "zhang2022", "n": 20, "x0": -0.5},
            "lstsq": {"kind": "lstsq", "n_samples": 8, "block_dim": 2}}
JSON_NONFINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def overflow_spec(problem: str, dtype: str) -> dict[str, Any]:
    doc = spec(f"overflow {problem} {dtype}", steps=30, beta1=[0.0, 0.9], beta2=[0.5, 0.999],
               batch_size=[1], seed=[0], lr=CASES[problem, dtype])
    doc["problem"] = PROBLEMS[problem]
    doc["dtype"] = dtype
    doc["optimizer"]["schedule"] = "constant"
    return doc


@lru_cache(maxsize=8)
def engine(doc_json: str) -> dict[str, tuple[str, float, int]]:
    """run_key -> (outcome, final_loss, div_step) from the engine alone (`betascope run`)."""
    from experiments.local import run_local
    from experiments.spec import parse_spec

    r = run_local(parse_spec(json.loads(doc_json)), device="cpu")
    o = r.outcomes
    return {k: (o.labels[i], float(o.final_loss[i]), int(o.div_step[i]))
            for i, k in enumerate(r.keys)}


def strict_json(text: str) -> Any:
    """Parse JSON that must not use the non-standard NaN/Infinity tokens."""
    def refuse(token: str) -> Any:
        raise AssertionError(f"bare {token} in a JSON response")

    return json.loads(text, parse_constant=refuse)


def kind(x: float) -> str:
    return "nan" if math.isnan(x) else "inf" if math.isinf(x) else "finite"


def api_float(v: Any) -> float:
    assert v is not None, "a diverged run's final value must not be null"
    return JSON_NONFINITE[v] if isinstance(v, str) else float(v)


@pytest.mark.parametrize(("problem", "dtype"), list(CASES), ids=[f"{p}-{d}" for p, d in CASES])
def test_overflow_is_stored_served_and_exported(client: Any, problem: str, dtype: str) -> None:
    doc = overflow_spec(problem, dtype)
    sweep = submit(client, doc)
    done = wait_status(client, sweep["id"], "done", "failed")
    assert done["status"] == "done", done["errors"]  # overflow is a result, not a failure
    want = engine(json.dumps(doc))
    assert {kind(v[1]) for v in want.values()} >= {"inf", "nan"}, want  # the case still bites

    url = f"/api/v1/sweeps/{sweep['id']}"
    runs = all_runs(client, sweep["id"])
    assert len(runs) == len(want) == done["total_runs"]
    for r in runs:
        outcome, loss, div = want[r["run_key"]]
        assert r["outcome"] == outcome == "diverged"
        assert r["div_step"] == div and div >= 1
        assert kind(api_float(r["final_loss"])) == kind(loss)
        if kind(loss) == "inf":
            assert r["final_loss"] == "Infinity"
        elif kind(loss) == "nan":
            assert r["final_loss"] == "NaN"

        one = client.get(f"{url}/runs/{r['run_key']}")
        assert one.status_code == 200
        body = strict_json(one.text)
        assert body["final_loss"] == r["final_loss"] and body["div_step"] == div
        curve = [api_float(v) for v in body["curve"]["loss"]]
        assert len(curve) == len(body["curve"]["steps"]) > 0
        if kind(loss) != "finite":
            assert not math.isfinite(curve[-1])
    strict_json(client.get(f"{url}/runs", params={"limit": 1000}).text)

    # phase maps over the non-finite metrics answer, in strict JSON
    for metric in ("final_rel", "div_step", "diverged_frac", "outcome"):
        for lr in CASES[problem, dtype]:
            pm = client.get(f"{url}/phase-map", params={"metric": metric, "lr": lr})
            assert pm.status_code == 200, pm.text
            z = strict_json(pm.text)["z"]
            if metric == "diverged_frac":
                assert all(v == 1.0 for row in z for v in row)

    # CSV: every run a row, diverged, with its div_step; inf and nan as text
    resp = client.get(f"{url}/export.csv")
    assert resp.status_code == 200
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == len(want)
    for row in rows:
        outcome, loss, div = want[row["run_key"]]
        assert row["outcome"] == "diverged" and row["div_step"] == str(div)
        assert row["final_loss"] != "", row
        expected = {"inf": "inf", "nan": "nan"}.get(kind(loss), repr(loss))
        assert row["final_loss"] == expected, (row["final_loss"], loss)
        assert row["final_rel"] in ("inf", "nan") or math.isfinite(float(row["final_rel"]))
        # final_gap uses nan for "x* unknown" and writes it as an empty field (as
        # `betascope run` does), so a nan gap is empty; an infinite one is "inf"
        gap = row["final_gap"]
        assert gap == "inf" or (gap == "" and kind(loss) == "nan") or math.isfinite(float(gap))
    cells = client.get(f"{url}/export.csv", params={"level": "cells"})
    assert cells.status_code == 200
    cell_rows = list(csv.DictReader(io.StringIO(cells.text)))
    assert len(cell_rows) == len(want)  # one seed: a cell per run
    assert {c["outcome"] for c in cell_rows} == {"diverged"}
    assert {c["diverged_frac"] for c in cell_rows} == {"1.0"}
