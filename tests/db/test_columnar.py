"""Columnar chunk records, and sweeps of ten million runs created as a few hundred rows."""

from __future__ import annotations

import math

import numpy as np
from sqlalchemy import func, select

from api.db import columnar
from api.db.models import Chunk, Sweep
from api.db.session import get_database
from api.services.sweeps import create_sweep, delete_sweep
from api.settings import Settings
from experiments.analysis import CellStats
from experiments.spec import parse_spec

TEN_MILLION = {
    "name": "ten million", "problem": {"kind": "zhang2022", "n": 20},
    "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False}, "steps": 100,
    "grid": {"beta1": {"start": 0.0, "stop": 0.99, "num": 1000},
             "beta2": {"log1m": [1e-4, 1.0], "num": 1000}, "seed": list(range(10))},
}


def test_run_records_round_trip_nan_inf_and_partial_ranges() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    cols = {
        "outcome": rng.integers(0, 3, n).astype(np.int8),
        "final_loss": np.r_[math.inf, -math.inf, math.nan, rng.standard_normal(n - 3)],
        "final_rel": rng.standard_normal(n), "final_gap": np.full(n, math.nan),
        "div_step": rng.integers(-1, 100, n), "clip_fraction": rng.random(n),
        columnar.CURVE: np.r_[np.full((1, 33), np.inf), rng.random((n - 1, 33))],
        columnar.FINAL_X: rng.standard_normal((n, 2)),
    }
    offset = np.sort(rng.choice(5000, n, replace=False))
    back = columnar.decode_runs(columnar.encode_runs(cols, offset=offset))
    assert np.array_equal(back[columnar.OFFSET], offset)
    for name, values in cols.items():
        want = values.astype(np.float32) if name == columnar.CURVE else values
        assert np.array_equal(back[name], want, equal_nan=True), name
    only = columnar.decode_runs(columnar.encode_runs(cols, offset=None), ("outcome",))
    assert set(only) == {"outcome"}
    stats = CellStats(rng.integers(0, 5, (10, 3)), rng.random(10), np.full(10, math.nan))
    again = columnar.decode_cells(columnar.encode_cells(stats))
    assert np.array_equal(again.counts, stats.counts)
    assert np.array_equal(again.final_rel, stats.final_rel)
    assert np.isnan(again.div_step).all()


def test_records_without_the_spike_columns_still_read() -> None:
    """Records stored before max_rise was measured: the run column is absent (a reader
    gets nan through store.gather), and cells have no spike counts (spiky None)."""
    n = 5
    cols = {"outcome": np.zeros(n, np.int8), "final_loss": np.ones(n), "final_rel": np.ones(n),
            "final_gap": np.ones(n), "div_step": np.full(n, -1), "clip_fraction": np.zeros(n),
            columnar.CURVE: np.ones((n, 3))}
    old = columnar.decode_runs(columnar.encode_runs(cols, offset=None))
    assert "max_rise" not in old and set(old) == set(cols)
    rise = np.array([1.0, 12.5, np.inf, 1.5, 3.0])
    new = columnar.decode_runs(columnar.encode_runs({**cols, "max_rise": rise}, offset=None))
    assert np.array_equal(new["max_rise"], rise)
    counts = np.ones((4, 3), dtype=np.int64)
    plain = columnar.decode_cells(columnar.encode_cells(
        CellStats(counts, np.zeros(4), np.full(4, math.nan))))
    assert plain.spiky is None and plain.max_rise is None
    spiky = np.array([[1.0, 0.0], [2.0, 1.0], [math.nan, math.nan], [0.0, 0.0]])
    full = columnar.decode_cells(columnar.encode_cells(
        CellStats(counts, np.zeros(4), np.full(4, math.nan), spiky, np.arange(4.0))))
    assert np.array_equal(full.spiky, spiky, equal_nan=True)
    assert np.array_equal(full.max_rise, np.arange(4.0))


def test_a_ten_million_run_sweep_is_a_few_hundred_rows(db_url: str) -> None:
    settings = Settings(database_url=db_url, max_runs=10**7)
    spec = parse_spec(TEN_MILLION)
    db = get_database(db_url)
    with db.session() as s:
        sweep, ids = create_sweep(session=s, spec=spec, settings=settings)
        sweep_id = sweep.id
    assert 100 <= len(ids) <= 500
    with db.session(read_only=True) as s:
        rows = s.execute(select(Chunk.lo, Chunk.hi).where(Chunk.sweep_id == sweep_id)
                         .order_by(Chunk.lo)).all()
        assert s.scalar(select(func.count()).select_from(Sweep)) == 1
    lo = np.array([r.lo for r in rows])
    hi = np.array([r.hi for r in rows])
    assert lo[0] == 0 and hi[-1] == 10**7 and (lo[1:] == hi[:-1]).all()
    assert ((hi - lo) % 10 == 0).all()  # whole cells: all ten seeds of a point together
    with db.session() as s:
        delete_sweep(session=s, sweep=s.get(Sweep, sweep_id))
    with db.session(read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(Chunk)) == 0


def test_a_stored_spec_refused_today_still_reads() -> None:
    """Every read and every chunk of a sweep parses its stored spec (store.spec_of): a
    float32 sweep stored before lr 1e39 was refused reads back as it was computed."""
    from api.db.store import spec_of

    doc = {"problem": {"kind": "zhang2022"}, "steps": 10, "dtype": "float32",
           "grid": {"beta1": [0.0], "beta2": [0.9, 0.99], "lr": [0.1, 1e39]}}
    assert spec_of(-1, "stored before", doc).axis_values()["lr"] == [0.1, 1e39]
