"""A plug-in problem (the example package examples/betascope-logreg, installed by
`bash scripts/setup dev`) through the service as a built-in goes: validated by the
API, run by the embedded executor or a real Celery worker process, its results
equal to what `betascope run` computes here."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.api.helpers import all_runs, spec, submit, wait_status

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]


def _logreg_sweep() -> dict[str, Any]:
    doc = spec("plug-in logreg", steps=150, beta1=[0.0, 0.9], beta2=[0.9, 0.999],
               batch_size=[1, 8], seed=[0, 1])
    doc["problem"] = {"kind": "logreg", "n_samples": 32, "dim": 3, "l2": 0.05}
    doc["optimizer"] = {"kind": "adam", "lr": 0.05}
    return doc


def test_a_plugin_problem_runs_like_a_builtin(client: Any) -> None:
    from experiments.local import run_local
    from experiments.spec import parse_spec

    doc = _logreg_sweep()
    sweep = submit(client, doc)
    done = wait_status(client, sweep["id"], "done", "failed", timeout=240)
    assert done["status"] == "done", done
    local = run_local(parse_spec(json.loads(json.dumps(doc))), device="cpu")
    runs = {r["run_key"]: r for r in all_runs(client, sweep["id"])}
    assert len(runs) == local.total == 16
    for i, key in enumerate(local.keys):
        r = runs[key]
        assert r["outcome"] == local.outcomes.labels[i]
        # rounding level: torch.func's batched products may round by chunk size
        for col in ("final_loss", "final_rel", "final_gap"):
            assert math.isclose(r[col], float(getattr(local.outcomes, col)[i]), rel_tol=1e-9,
                                abs_tol=1e-14), (col, r)
    cells = client.get(f"/api/v1/sweeps/{sweep['id']}/phase-map",
                       params={"metric": "converged_frac", "batch_size": 8})
    assert cells.status_code == 200, cells.text
    assert len(cells.json()["z"]) == 2


def test_an_unregistered_kind_is_422_listing_the_registered_ones(client: Any) -> None:
    from experiments.problems import KINDS

    doc = {**spec(), "problem": {"kind": "mnist_transformer"}}
    resp = client.post("/api/v1/sweeps", json=doc)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert [e["field"] for e in detail] == ["problem.kind"], detail
    msg = detail[0]["msg"]
    for kind in KINDS:
        assert kind in msg, (kind, msg)
    assert "logreg" in msg and "quadratic" in msg and "poly" in msg
