"""A sweep's cells are merged a chunk at a time: each chunk's record is read once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from api.db.models import Sweep
from api.db.session import get_database
from api.services import cells
from api.services.sweeps import create_sweep, stored_spec
from api.settings import Settings
from experiments import analysis
from experiments.local import run_local
from experiments.spec import parse_spec
from tests.services import FAST
from workers.chunks import process_chunk

DOC = {"name": "cells", "problem": {"kind": "zhang2022", "n": 20},
       "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
       "steps": 60, "grid": {"beta1": [0.0, 0.5, 0.9], "beta2": [0.5, 0.9, 0.99, 0.999],
                             "batch_size": [1, 4], "seed": [0, 1, 2]}}


def _read(url: str, sweep_id: int) -> tuple[tuple[Any, ...], analysis.Cells, int]:
    with get_database(url).session(read_only=True) as s:
        sweep = s.get(Sweep, sweep_id)
        return cells.sweep_cells(s, sweep, stored_spec(sweep))


def test_cells_merge_each_chunk_once_and_equal_the_cli(db_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(**{**FAST, "database_url": db_url, "chunk_runs": 18})
    spec = parse_spec(DOC)
    with get_database(db_url).session() as s:
        sweep, chunk_ids = create_sweep(session=s, spec=spec, settings=settings)
        sweep_id = sweep.id
    assert len(chunk_ids) == 4
    fetched: list[list[int]] = []
    records = cells.cell_records
    monkeypatch.setattr(cells, "cell_records",
                        lambda session, ids: fetched.append(sorted(ids)) or records(session, ids))

    version0, none, n0 = _read(db_url, sweep_id)
    assert n0 == 0 and (none.n_runs == 0).all() and (none.outcome == -1).all()
    for chunk_id in chunk_ids[:2]:
        process_chunk(chunk_id, token="t", settings=settings, enqueue=lambda *a: None)
    version1, half, n1 = _read(db_url, sweep_id)
    again = _read(db_url, sweep_id)
    assert fetched == [sorted(chunk_ids[:2])]  # read once; the second read merged nothing
    assert again[0] == version1 != version0 and n1 == spec.total_runs() // 2
    # half merged: the cells of the chunks not done yet have no runs
    runs = half.n_runs.reshape(-1)
    assert (runs[: len(runs) // 2] == 3).all() and (runs[len(runs) // 2:] == 0).all()
    for chunk_id in chunk_ids[2:]:
        process_chunk(chunk_id, token="t", settings=settings, enqueue=lambda *a: None)
    version2, whole, n2 = _read(db_url, sweep_id)
    assert fetched[1:] == [sorted(chunk_ids[2:])]  # only the chunks that landed since
    assert version2 != version1 and n2 == spec.total_runs()
    assert _read(db_url, sweep_id)[0] == version2 and len(fetched) == 2  # done: no query

    # merged a chunk at a time equals what `betascope run` computes from every run
    local = run_local(spec, device="cpu").cells()
    for name in ("n_runs", "outcome", "regime"):
        assert np.array_equal(getattr(whole, name), getattr(local, name)), name
    for name in ("diverged_frac", "converged_frac", "final_rel", "div_step", "max_rise"):
        assert np.array_equal(getattr(whole, name), getattr(local, name), equal_nan=True), name


def test_empty_cell_fields_are_the_fields_of_cells_without_runs() -> None:
    stats = analysis.CellStats(counts=np.zeros((5, 3), dtype=np.int64),
                               final_rel=np.full(5, np.nan), div_step=np.full(5, np.nan),
                               spiky=np.full((5, 2), np.nan), max_rise=np.full(5, np.nan))
    with np.errstate(invalid="ignore"):
        derived = analysis.cell_fields(stats)
    empty = analysis.empty_cell_fields(5)
    assert derived.keys() == empty.keys()
    for name, values in empty.items():
        assert values.dtype == derived[name].dtype, name
        assert np.array_equal(values, derived[name], equal_nan=True), name


def test_a_watched_running_sweep_is_merged_as_its_chunks_land(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a client read a running sweep, its chunks' cells are merged without
    another read; once the sweep is done the follower lets it go."""
    import time

    monkeypatch.setattr(cells, "FOLLOW_PERIOD", 0.05)
    settings = Settings(**{**FAST, "database_url": db_url, "chunk_runs": 18})
    with get_database(db_url).session() as s:
        sweep, chunk_ids = create_sweep(session=s, spec=parse_spec(DOC), settings=settings)
        cells.follow(db_url, sweep)

    def merged() -> frozenset[int]:
        entries = [a for k, a in cells._cache.items() if k[1:] == (sweep.id, sweep.created_at)]
        return entries[0].merged if entries else frozenset()

    for k, chunk_id in enumerate(chunk_ids):
        process_chunk(chunk_id, token="t", settings=settings, enqueue=lambda *a: None)
        deadline = time.monotonic() + 10
        while merged() != frozenset(chunk_ids[: k + 1]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert merged() == frozenset(chunk_ids[: k + 1])
    deadline = time.monotonic() + 10
    while (db_url, sweep.id) in cells._follower._watched and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (db_url, sweep.id) not in cells._follower._watched  # done: no longer followed
