"""A finished 250,000-run sweep, written straight through the data layer.

Submitting it over the API works too, but takes minutes of database writes on
SQLite; the browser test only needs a real sweep of that size in the database.
The results are real: the engine runs every grid point (a cheap spec, 20 steps),
and the rows are built by the same code a worker uses to store a chunk.
"""

from __future__ import annotations

import time
from typing import Any

BIG_SPEC: dict[str, Any] = {
    "name": "Zhang et al. 2022 at scale: 50 x 50 (beta1, beta2) x 4 batch sizes x 25 seeds",
    "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
    "optimizer": {"kind": "adam", "lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
    "steps": 20,
    "grid": {
        "beta1": {"start": 0.0, "stop": 0.98, "num": 50},
        "beta2": {"log1m": [0.001, 1.0], "num": 50},
        "batch_size": [1, 2, 4, 8],
        "clip": [{"mode": "none"}],
        "seed": list(range(25)),
    },
}


def build_finished_sweep(
    url: str, doc: dict[str, Any] = BIG_SPEC, *, curves: bool = False
) -> tuple[int, dict[str, float]]:
    """Insert a done sweep with every result into the database at `url`; (id, timings).

    Loss curves are left out unless asked for: encoding 250,000 of them as JSON
    would triple the set-up time, and a phase map never reads them.
    """
    from api.db.base import utcnow
    from api.db.bulk import insert_rows, upsert
    from api.db.models import Chunk, Run, Sweep, SweepRun
    from api.db.session import get_database
    from api.services.sweeps import MEMBER_COLUMNS
    from experiments.engine import run_chunk
    from experiments.runs import all_runs
    from experiments.spec import parse_spec, run_keys
    from experiments.version import engine_version
    from workers.results import COLUMNS, RESULT_COLUMNS, result_rows

    timings: dict[str, float] = {}
    t = time.perf_counter()
    spec = parse_spec(doc)
    runs = all_runs(spec)
    keys = run_keys(spec, runs, kernel="eager")
    timings["keys"] = time.perf_counter() - t
    t = time.perf_counter()
    result = run_chunk(spec, runs, device="cpu", kernel="eager")
    timings["engine"] = time.perf_counter() - t
    t = time.perf_counter()
    now = utcnow()
    rows = result_rows(spec=spec, runs=runs, keys=keys, result=result, now=now)
    if not curves:
        blank = [COLUMNS.index("curve_steps"), COLUMNS.index("curve")]
        rows = [tuple(None if i in blank else v for i, v in enumerate(r)) for r in rows]
    with get_database(url).session() as session:
        sweep = Sweep(
            name=spec.name, spec=spec.model_dump(mode="json"), kernel="eager",
            engine_version=engine_version("eager"), status="done", total_runs=len(runs),
            cached_runs=0, n_chunks=1, created_at=now, started_at=now, finished_at=now,
        )
        session.add(sweep)
        session.flush()
        chunk = Chunk(
            sweep_id=sweep.id, seq=0, status="done", n_runs=len(runs), n_compute=len(runs),
            progress=1.0, attempts=1, enqueued_at=now, started_at=now, finished_at=now,
        )
        session.add(chunk)
        session.flush()
        upsert(session, Run.__table__, COLUMNS, rows, update=RESULT_COLUMNS)
        insert_rows(session, SweepRun.__table__, MEMBER_COLUMNS, [
            (sweep.id, fi, k, chunk.id, *g)
            for fi, k, g in zip(runs.index.tolist(), keys, runs.grid_index.tolist(), strict=True)
        ])
        sweep_id = sweep.id
    timings["write"] = time.perf_counter() - t
    return sweep_id, timings
