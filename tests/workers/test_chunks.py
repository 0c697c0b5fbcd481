"""One chunk's life without a broker: lease, idempotent writes, failures, the
reconciler, cancellation, and non-finite results."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

from api.db.base import utcnow
from api.db.chunks import claim_chunk_without_commit
from api.db.models import Chunk, Sweep
from api.db.session import get_database
from api.db.store import Stored, gather
from api.services.sweeps import cancel_sweep, create_sweep
from api.settings import Settings
from experiments.spec import parse_spec
from tests.services import FAST
from workers.chunks import process_chunk
from workers.reconcile import reconcile_once


def _doc(steps: int = 50, **grid: Any) -> dict[str, Any]:
    g = {"beta1": [0.0, 0.9], "beta2": [0.5, 0.99], "seed": [0, 1]}
    g.update(grid)
    return {"name": "chunk test", "problem": {"kind": "zhang2022", "n": 20},
            "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
            "steps": steps, "grid": g}


def _settings(url: str, **kw: Any) -> Settings:
    return Settings(**{**FAST, "database_url": url, "chunk_runs": 100, **kw})


def _create(settings: Settings, doc: dict[str, Any]) -> tuple[int, list[int]]:
    with get_database(settings.database_url).session() as s:
        sweep, ids = create_sweep(session=s, spec=parse_spec(doc), settings=settings)
        return sweep.id, ids


def _chunk(settings: Settings, chunk_id: int) -> Chunk:
    with get_database(settings.database_url).session(read_only=True) as s:
        return s.get(Chunk, chunk_id)


def _sweep(settings: Settings, sweep_id: int) -> Sweep:
    with get_database(settings.database_url).session(read_only=True) as s:
        return s.get(Sweep, sweep_id)


def _results(settings: Settings) -> dict[tuple[int, int], tuple]:
    """(sweep, flat index) -> stored results, for every sweep in the database."""
    out = {}
    with get_database(settings.database_url).session(read_only=True) as s:
        for sweep_id in s.scalars(select(Sweep.id)):
            stored = Stored.load(s, sweep_id)
            flat = np.arange(stored.spec.total_runs())
            found, rec = gather(s, stored, flat, ("outcome", "final_loss", "final_rel", "curve"))
            for i in np.flatnonzero(found).tolist():
                out[(sweep_id, i)] = (int(rec["outcome"][i]), float(rec["final_loss"][i]),
                                      float(rec["final_rel"][i]), rec["curve"][i].tobytes())
    return out


class Sent:
    def __init__(self) -> None:
        self.calls: list[tuple[int, float]] = []

    def __call__(self, chunk_id: int, countdown: float = 0.0) -> None:
        self.calls.append((chunk_id, countdown))

    def enqueue(self, ids: Any, countdown: float = 0.0) -> list[int]:
        self.calls += [(i, countdown) for i in ids]
        return []


def test_a_chunk_run_twice_leaves_one_identical_result_per_run(db_url: str) -> None:
    settings = _settings(db_url)
    sweep_id, (chunk_id,) = _create(settings, _doc())
    assert process_chunk(chunk_id, token="a", settings=settings, enqueue=Sent()) == "done"
    first = _results(settings)
    assert _sweep(settings, sweep_id).status == "done"
    # the message is delivered again (say the ack was lost): the chunk is done, so skip
    assert process_chunk(chunk_id, token="b", settings=settings, enqueue=Sent()) == "skipped"
    # and if it really runs twice (lease expired under a slow worker) the upsert keeps one row
    with get_database(db_url).session() as s:
        s.execute(update(Chunk).where(Chunk.id == chunk_id).values(status="queued"))
    assert process_chunk(chunk_id, token="c", settings=settings, enqueue=Sent()) == "done"
    assert _results(settings) == first and len(first) == 8


def test_a_late_store_of_a_chunk_already_done_writes_nothing(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A worker whose lease ran out (its store retried through an outage) while another
    claim computed and stored the chunk: its late store writes nothing and says so,
    and the chunk keeps the results stored first."""
    import logging

    from workers import chunks

    settings = _settings(db_url)
    sweep_id, (chunk_id,) = _create(settings, _doc())
    held: dict[str, Any] = {}
    real = chunks._store

    def hold(*args: Any) -> str:  # the first claim's store is held back
        held["args"] = args
        return "held"

    chunks._store = hold  # type: ignore[assignment]
    try:
        assert process_chunk(chunk_id, token="a", settings=settings, enqueue=Sent()) == "held"
    finally:
        chunks._store = real  # type: ignore[assignment]
    with get_database(db_url).session() as s:  # its lease runs out: another claim runs it
        s.execute(update(Chunk).where(Chunk.id == chunk_id)
                  .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert process_chunk(chunk_id, token="b", settings=settings, enqueue=Sent()) == "done"
    first = _results(settings)
    with caplog.at_level(logging.INFO, logger="betascope.worker"):
        assert real(*held["args"]) == "skipped"
    assert "these results were not stored" in caplog.text
    assert "stored 8 results" not in caplog.text
    assert _results(settings) == first and _sweep(settings, sweep_id).status == "done"


def test_the_lease_is_exclusive_until_it_expires(db_url: str) -> None:
    settings = _settings(db_url)
    _, (chunk_id,) = _create(settings, _doc())
    db = get_database(db_url)
    now = utcnow()
    kw = {"chunk_id": chunk_id, "lease_seconds": 10, "max_worker_losses": 3}
    with db.session() as s:
        assert claim_chunk_without_commit(s, token="a", now=now, **kw) is not None
    with db.session() as s:
        assert claim_chunk_without_commit(s, token="b", now=now, **kw) is None
    with db.session() as s:  # the same task, retried after a lost connection
        again = claim_chunk_without_commit(s, token="a", now=now, **kw)
        assert again is not None and again.attempts == 1
    later = now + timedelta(seconds=11)
    with db.session() as s:
        taken = claim_chunk_without_commit(s, token="b", now=later, **kw)
        assert taken is not None and taken.attempts == 2 and taken.hi - taken.lo == 8


def test_engine_errors_use_up_attempts_then_fail(db_url: str, tmp_path: Path) -> None:
    fault = tmp_path / "fault"
    fault.write_text("chunk test")
    settings = _settings(db_url, fault_inject=str(fault))
    sweep_id, (chunk_id,) = _create(settings, _doc())
    sent = Sent()
    assert process_chunk(chunk_id, token="a", settings=settings, enqueue=sent) == "retry"
    assert sent.calls == [(chunk_id, settings.retry_backoff_seconds)]
    chunk = _chunk(settings, chunk_id)
    assert chunk.status == "queued" and "injected fault" in chunk.last_error
    assert process_chunk(chunk_id, token="b", settings=settings, enqueue=sent) == "failed"
    chunk = _chunk(settings, chunk_id)
    assert chunk.status == "failed" and chunk.attempts == 2 and len(sent.calls) == 1
    assert chunk.last_error.startswith("attempt 2: RuntimeError: injected fault")
    assert _sweep(settings, sweep_id).status == "failed"


def test_reconciler_requeues_expired_leases_and_unsent_chunks(db_url: str) -> None:
    settings = _settings(db_url, chunk_runs=2)
    _, ids = _create(settings, _doc())
    db = get_database(db_url)
    past = utcnow() - timedelta(seconds=60)
    with db.session() as s:
        claim_chunk_without_commit(s, chunk_id=ids[0], token="dead", now=past, lease_seconds=1,
                                   max_worker_losses=2)
        s.execute(update(Chunk).where(Chunk.id == ids[1]).values(enqueued_at=None))
        claim_chunk_without_commit(s, chunk_id=ids[2], token="dead", now=past, lease_seconds=1,
                                   max_worker_losses=2)
        s.execute(update(Chunk).where(Chunk.id == ids[2]).values(attempts=2))
    sent = Sent()
    assert sorted(reconcile_once(settings=settings, dispatcher=sent)) == [ids[0], ids[1]]
    assert _chunk(settings, ids[0]).status == "queued"
    lost = _chunk(settings, ids[2])
    assert lost.status == "failed" and "lease expired" in lost.last_error
    assert reconcile_once(settings=settings, dispatcher=sent) == []  # nothing twice


def test_cancel_stops_a_chunk_between_step_blocks(db_url: str) -> None:
    settings = _settings(db_url)
    sweep_id, (chunk_id,) = _create(settings, _doc(steps=3_000_000, seed=[0]))
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(
        process_chunk(chunk_id, token="a", settings=settings, enqueue=Sent())))
    thread.start()
    deadline = time.monotonic() + 60
    while _chunk(settings, chunk_id).progress == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    with get_database(db_url).session() as s:
        cancel_sweep(session=s, sweep=s.get(Sweep, sweep_id))
    t0 = time.monotonic()
    thread.join(timeout=30)
    assert outcome == ["canceled"] and time.monotonic() - t0 < 10
    assert _chunk(settings, chunk_id).status == "canceled"
    assert _results(settings) == {}  # nothing stored


def test_diverging_runs_store_non_finite_values(db_url: str) -> None:
    settings = _settings(db_url)
    doc = {"name": "blow up", "problem": {"kind": "lstsq", "n_samples": 8, "block_dim": 2},
           "optimizer": {"lr": 1e300, "schedule": "constant"}, "steps": 40,
           "grid": {"beta1": [0.0], "beta2": [0.0, 0.5], "batch_size": [8]}}
    _, (chunk_id,) = _create(settings, doc)
    assert process_chunk(chunk_id, token="a", settings=settings, enqueue=Sent()) == "done"
    results = _results(settings)
    assert len(results) == 2
    for outcome, loss, _rel, curve in results.values():
        assert outcome == 2  # diverged
        assert not math.isfinite(loss)
        assert not np.isfinite(np.frombuffer(curve, dtype=np.float32)).all()


def test_worker_with_other_engine_keys_fails_the_chunk_at_once(db_url: str) -> None:
    settings = _settings(db_url)
    sweep_id, (chunk_id,) = _create(settings, _doc())
    with get_database(db_url).session() as s:  # as if created by another engine version
        s.execute(update(Sweep).where(Sweep.id == sweep_id).values(kernel="compiled"))
    assert process_chunk(chunk_id, token="a", settings=settings, enqueue=Sent()) == "failed"
    assert "engine version differs" in _chunk(settings, chunk_id).last_error


def test_lost_workers_do_not_use_up_engine_attempts(db_url: str) -> None:
    # pre-empted hosts kill workers through no fault of the chunk: only
    # max_worker_losses (not max_attempts, for engine errors) may fail it
    settings = _settings(db_url, chunk_runs=2, max_attempts=2, max_worker_losses=4)
    _, ids = _create(settings, _doc())
    db = get_database(db_url)
    for loss in range(1, 5):
        past = utcnow() - timedelta(seconds=60)
        with db.session() as s:
            claim = claim_chunk_without_commit(s, chunk_id=ids[0], token=f"dead-{loss}",
                                               now=past, lease_seconds=1, max_worker_losses=4)
            assert claim is not None and claim.attempts == loss
        reconcile_once(settings=settings, dispatcher=Sent())
        chunk = _chunk(settings, ids[0])
        if loss < 4:
            assert chunk.status == "queued", (loss, chunk.last_error)
    assert chunk.status == "failed" and "lease expired on attempt 4" in chunk.last_error
    assert chunk.failures == 0


def test_chunks_stored_behind_equal_chunks_stored_in_line(db_url: str) -> None:
    """store_behind hands each chunk's store to the store thread and goes on: the
    chunks computed meanwhile, once drained, hold what an in-line store holds."""
    from workers.chunks import STORE

    settings = _settings(db_url, chunk_runs=64)
    doc = _doc(batch_size=[1, 2, 4, 8])  # 128 runs: two chunks of the minimum size
    doc["grid"]["beta1"] = [0.0, 0.5, 0.9, 0.99]
    doc["grid"]["beta2"] = [0.5, 0.9, 0.99, 0.999]
    # both created before either is done, so neither reads the other's results
    inline_id, inline_chunks = _create(settings, doc)
    behind_id, behind_chunks = _create(settings, {**doc, "name": "behind"})
    assert len(behind_chunks) > 1
    for chunk_id in inline_chunks:
        assert process_chunk(chunk_id, token="a", settings=settings, enqueue=Sent()) == "done"
    for chunk_id in behind_chunks:
        assert process_chunk(chunk_id, token="b", settings=settings, enqueue=Sent(),
                             store_behind=True) == "storing"
    STORE.drain()
    assert _sweep(settings, behind_id).status == "done"
    assert all(_chunk(settings, c).status == "done" for c in behind_chunks)
    got = _results(settings)
    inline = {i: v for (s, i), v in got.items() if s == inline_id}
    behind = {i: v for (s, i), v in got.items() if s == behind_id}
    assert behind == inline and len(inline) == 128


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are Linux's")
def test_the_store_thread_runs_behind_the_engine() -> None:
    """The store thread yields the cores to the engine computing the next chunk
    (nice 19), while the engine's own thread keeps its priority."""
    from workers.chunks import STORE

    seen: list[int] = []
    STORE.submit(lambda: seen.append(os.getpriority(os.PRIO_PROCESS,
                                                    threading.get_native_id())))
    STORE.drain()
    assert seen == [19]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 19


def test_a_superset_answers_only_the_runs_of_its_done_chunks(db_url: str) -> None:
    """Its runs that a source holds are its results once the chunk they fall in is
    done, not before: a canceled or running superset exported them all (219 rows beside
    done_runs 189 and a map of 189), and answered /runs/{key} for canceled chunks."""
    settings = _settings(db_url, chunk_runs=4)
    _, source_chunks = _create(settings, _doc())
    for chunk_id in source_chunks:
        assert process_chunk(chunk_id, token="s", settings=settings, enqueue=Sent()) == "done"
    sweep_id, chunk_ids = _create(settings, _doc(beta1=[0.0, 0.5, 0.9]))  # 12 runs, 8 held
    assert len(chunk_ids) >= 3
    assert process_chunk(chunk_ids[0], token="c", settings=settings, enqueue=Sent()) == "done"
    first = _chunk(settings, chunk_ids[0])
    with get_database(db_url).session(read_only=True) as s:
        stored = Stored.load(s, sweep_id)
        assert stored is not None and stored.source_id is not None
        found, _ = gather(s, stored, np.arange(12), ("outcome",))
    assert np.flatnonzero(found).tolist() == list(range(first.lo, first.hi))
    with get_database(db_url).session() as s:
        cancel_sweep(session=s, sweep=s.get(Sweep, sweep_id))
    with get_database(db_url).session(read_only=True) as s:
        found, _ = gather(s, Stored.load(s, sweep_id), np.arange(12), ("outcome",))
    assert np.flatnonzero(found).tolist() == list(range(first.lo, first.hi))
