"""Small specs and polling helpers shared by the API tests."""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

from tests.services import wait_for

_tags = itertools.count(1)


def spec(name: str = "test sweep", *, steps: int = 200, **grid: Any) -> dict[str, Any]:
    """A small zhang2022 sweep. Each call differs in criteria.converge_rel (part of
    every run_key, not of the trajectory), so tests sharing a database never hit
    each other's cache unless they submit the very same document."""
    doc_grid = {"beta1": [0.0, 0.5], "beta2": {"log1m": [0.01, 1.0], "num": 4},
                "batch_size": [1, 4], "seed": [0, 1]}
    doc_grid.update(grid)
    return {
        "name": name,
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {"kind": "adam", "lr": 0.1, "schedule": "inv_sqrt",
                      "bias_correction": False},
        "steps": steps,
        "grid": doc_grid,
        "criteria": {"converge_rel": 0.05 + next(_tags) * 1e-9, "diverge_rel": 10.0},
    }


def submit(client: Any, doc: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/api/v1/sweeps", json=doc)
    assert resp.status_code == 201, resp.text
    return resp.json()


def get(client: Any, sweep_id: int) -> dict[str, Any]:
    resp = client.get(f"/api/v1/sweeps/{sweep_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_status(client: Any, sweep_id: int, *statuses: str, timeout: float = 120) -> dict:
    def ready() -> dict[str, Any] | None:
        s = get(client, sweep_id)
        return s if s["status"] in statuses else None

    return wait_for(ready, timeout, f"sweep {sweep_id} to be {statuses}", interval=0.1)


def wait_prepared(client: Any, sweep_id: int, timeout: float = 30) -> None:
    """Until the app's process has prepared the finished sweep's reads (api/prepare.py):
    what a test counts afterwards is its own reads' work, not that."""
    wait_for(lambda: sweep_id in client.app.state.finished_sweeps.ready, timeout,
             f"sweep {sweep_id}'s reads prepared")


def all_runs(client: Any, sweep_id: int, limit: int = 1000, **filters: Any) -> list[dict]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = dict(filters, limit=limit, **({"cursor": cursor} if cursor else {}))
        resp = client.get(f"/api/v1/sweeps/{sweep_id}/runs", params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def same_float(a: Any, b: Any) -> bool:
    """Bitwise-equal floats, with nan equal to nan; the API writes nan as 'NaN'."""
    a, b = _num(a), _num(b)
    if a is None or b is None:
        return a is None and b is None
    return (math.isnan(a) and math.isnan(b)) or a == b


def _num(v: Any) -> float | None:
    if v is None:
        return None
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(v, v) \
        if isinstance(v, str) else float(v)


def sleep_until_progress(client: Any, sweep_id: int, timeout: float = 60) -> dict[str, Any]:
    def moving() -> dict[str, Any] | None:
        s = get(client, sweep_id)
        return s if s["status"] == "running" and s["progress"] > 0 else None

    s = wait_for(moving, timeout, f"sweep {sweep_id} to make progress", interval=0.05)
    time.sleep(0.05)
    return s
