"""Bulk inserts and upserts, non-finite floats, and a 100,000-run sweep in seconds."""

from __future__ import annotations

import math
import time

import pytest
from sqlalchemy import func, select

from api.db.bulk import insert_ignore, upsert
from api.db.codec import decode_curve, encode_curve, join_float, split_float, split_floats
from api.db.models import Chunk, Run, Sweep, SweepRun
from api.db.session import get_database
from api.services.sweeps import create_sweep, delete_sweep
from api.settings import Settings
from experiments.spec import parse_spec

AXES = ("run_key", "beta1", "beta2", "batch_size", "clip_mode", "clip_threshold", "lr", "seed",
        "steps")


def _axes(key: str) -> tuple:
    return (key, 0.5, 0.9, 1, "none", None, 0.1, 0, 10)


@pytest.mark.parametrize("v", [1.5, -0.0, 1e-308, math.inf, -math.inf, math.nan, None])
def test_float_codec_round_trips(v: float | None) -> None:
    value, kind = split_float(v)
    back = join_float(value, kind)
    if v is None:
        assert back is None and kind is None
    elif math.isnan(v):
        assert kind == "nan" and value is None and math.isnan(back)
    else:
        assert back == v and (kind is None) == math.isfinite(v)
    curve = [0.25, math.inf, -math.inf, math.nan, 1e300]
    assert encode_curve(curve) == [0.25, "+inf", "-inf", "nan", 1e300]
    decoded = decode_curve(encode_curve(curve))
    assert decoded[:3] == curve[:3] and math.isnan(decoded[3]) and decoded[4] == 1e300


@pytest.mark.parametrize("n", [5, 500])  # executemany path and COPY path (Postgres)
def test_insert_ignore_and_upsert_keep_one_row_per_key(db_url: str, n: int) -> None:
    db = get_database(db_url)
    keys = [f"{i:064x}" for i in range(n)]
    with db.session() as s:
        assert insert_ignore(s, Run.__table__, AXES, [_axes(k) for k in keys]) == set(keys)
        assert insert_ignore(s, Run.__table__, AXES, [_axes(k) for k in keys]) == set()
    cols = (*AXES, "outcome", "final_loss", "final_loss_kind", "final_rel", "final_rel_kind",
            "curve")
    kinds = [(None, "nan"), (None, "+inf"), (None, "-inf"), (2.5, None)]
    rows = [(*_axes(k), "diverged", *kinds[i % 4], 1.0, None, encode_curve([1.0, math.nan]))
            for i, k in enumerate(keys)]
    for _ in range(2):  # written twice, as by a chunk that ran twice
        with db.session() as s:
            upsert(s, Run.__table__, cols, rows + rows[:3], update=cols[len(AXES):])
    with db.session(read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(Run)) == n
        got = {r.run_key: r for r in s.scalars(select(Run))}
    for i, k in enumerate(keys):
        r = got[k]
        value = join_float(r.final_loss, r.final_loss_kind)
        want = [math.nan, math.inf, -math.inf, 2.5][i % 4]
        assert (math.isnan(value) and math.isnan(want)) or value == want
        assert r.outcome == "diverged" and r.curve == [1.0, "nan"]


def test_split_floats_marks_only_non_finite() -> None:
    import numpy as np

    values, kinds = split_floats(np.array([1.0, np.nan, np.inf, -np.inf]))
    assert values == [1.0, None, None, None] and kinds == [None, "nan", "+inf", "-inf"]


def test_a_100k_run_sweep_is_created_in_seconds(db_url: str) -> None:
    doc = {"name": "big", "problem": {"kind": "zhang2022", "n": 20}, "steps": 100,
           "grid": {"beta1": {"start": 0, "stop": 0.9, "num": 50},
                    "beta2": {"start": 0, "stop": 0.99, "num": 50},
                    "batch_size": [1, 2, 4, 8], "seed": list(range(10))}}
    spec = parse_spec(doc)
    settings = Settings(database_url=db_url, chunk_runs=10_000)
    db = get_database(db_url)
    t0 = time.perf_counter()
    with db.session() as s:
        sweep, chunk_ids = create_sweep(session=s, spec=spec, settings=settings)
    elapsed = time.perf_counter() - t0
    print(f"\n100,000-run sweep created in {elapsed:.1f} s ({db_url.split(':')[0]})")
    assert elapsed < 30, elapsed  # a few seconds on a quiet machine; generous for CI noise
    assert len(chunk_ids) == 10
    with db.session(read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(SweepRun)) == 100_000
        assert s.scalar(select(func.count()).select_from(Run)) == 100_000
        assert s.scalar(select(func.sum(Chunk.n_runs))) == 100_000
    with db.session() as s:
        delete_sweep(session=s, sweep=s.get(Sweep, sweep.id))
    with db.session(read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 0

