"""A finished 250,000-run sweep, written straight through the data layer.

The browser test needs a finished sweep of that size, not a running server's
executor: the sweep is created by the service's own code and its results are
real (the engine runs every grid point, a cheap spec of 20 steps), stored by the
same code a worker uses to store a chunk.
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

    The sweep is created as the service creates it, and each chunk's engine output
    is stored as a worker stores it (without a broker or worker process).
    """
    import numpy as np
    from sqlalchemy import select

    from api.db.base import utcnow
    from api.db.chunks import finish_chunk_without_commit
    from api.db.models import Chunk
    from api.db.session import get_database
    from api.services.sweeps import create_sweep
    from api.settings import Settings
    from experiments.engine import run_chunk
    from experiments.runs import runs_at
    from experiments.spec import parse_spec
    from workers.results import ChunkPlan, encode_chunk

    del curves  # curves are always stored now (float32, in the chunk's curves record)
    timings: dict[str, float] = {"engine": 0.0, "write": 0.0}
    t = time.perf_counter()
    spec = parse_spec(doc, max_runs=10**8)
    settings = Settings(database_url=url, max_runs=10**8)
    db = get_database(url)
    with db.session() as session:
        sweep, chunk_ids = create_sweep(session=session, spec=spec, settings=settings)
        sweep_id = sweep.id
    timings["create"] = time.perf_counter() - t
    for chunk_id in chunk_ids:
        with db.session(read_only=True) as session:
            lo, hi = session.execute(select(Chunk.lo, Chunk.hi).where(Chunk.id == chunk_id)).one()
        flat = np.arange(lo, hi, dtype=np.int64)
        t = time.perf_counter()
        runs = runs_at(spec, flat)
        result = run_chunk(spec, runs, device="cpu", kernel="eager")
        timings["engine"] += time.perf_counter() - t
        t = time.perf_counter()
        plan = ChunkPlan(spec, int(lo), int(hi), flat, runs, np.zeros(0, dtype=np.int64), {})
        runs_data, cells_data, curves_data = encode_chunk(plan, result)
        with db.session() as session:
            finish_chunk_without_commit(session, chunk_id=chunk_id, sweep_id=sweep_id,
                                        now=utcnow(), runs_data=runs_data,
                                        cells_data=cells_data, curves_data=curves_data,
                                        n_compute=len(flat))
        timings["write"] += time.perf_counter() - t
    return sweep_id, timings
