"""One chunk, start to finish: claim, compute, store. The same code runs in a
Celery worker and in the API's in-process executor.

    claim (lease)  ->  run_chunk with a heartbeat  ->  one transaction: the
                                                       chunk's columnar results,
                                                       chunk done, sweep status
Transient database errors propagate, so the caller retries the whole chunk
with the same token (it may re-claim its own lease at once). Engine errors use
up an attempt: the chunk is queued again with backoff, and fails for good
after `max_attempts`, with its last error visible through the API.

With `store_behind` (workers and the embedded engine process) the last step,
encoding and storing, runs in this process's store thread while the caller
goes on to its next chunk, so the engine computes chunk k+1 while chunk k is
written (POST -> done of a large sweep lost ~80 ms a chunk otherwise). At most
one chunk waits to be stored: the next hand-off waits for it. A transient
error there retries the store alone; a process killed before the store
committed leaves the chunk running under its lease, which expires and sends
it again, so no result is lost and none is stored twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from api.db.base import utcnow
from api.db.chunks import (
    ClaimedChunk,
    claim_chunk_without_commit,
    fail_attempt_without_commit,
    finish_chunk_without_commit,
    heartbeat_without_commit,
    lock_sweep_without_commit,
    release_chunk_without_commit,
)
from api.db.session import Database, get_database
from api.settings import Settings
from workers.errors import TRANSIENT, EngineMismatch
from workers.results import ChunkPlan, encode_chunk, plan_chunk
from workers.threads import yield_to_engine

log = logging.getLogger("betascope.worker")
Enqueue = Callable[[int, float], None]  # (chunk_id, countdown seconds)


def process_chunk(
    chunk_id: int, *, token: str, settings: Settings, enqueue: Enqueue,
    stopping: Callable[[], bool] = lambda: False, store_behind: bool = False,
) -> str:
    """Run one chunk; returns done, skipped, canceled, released, retry, failed or lost,
    or storing (store_behind: the store thread has the results)."""
    # torch is loaded at process start (workers/tasks.py, workers/embedded.py), before
    # any claim: importing it can outlast a short lease
    from experiments.engine import Canceled, run_chunk

    db = get_database(settings.database_url)
    t0 = time.perf_counter()
    with db.session() as session:
        claim = claim_chunk_without_commit(
            session, chunk_id=chunk_id, token=token, now=utcnow(),
            lease_seconds=settings.lease_seconds, max_worker_losses=settings.max_worker_losses,
        )
    if claim is None:
        log.info("chunk %s: not claimable (done, canceled, or leased elsewhere)", chunk_id)
        return "skipped"
    log.info("chunk %s (sweep %s, seq %s, attempt %s): runs [%s, %s)", chunk_id,
             claim.sweep_id, claim.seq, claim.attempts, claim.lo, claim.hi)
    t1 = time.perf_counter()
    beat = Heartbeat(db, claim, token, settings, stopping)
    beat.start()
    try:
        plan = plan_chunk(db, claim)
        result = None
        if len(plan.compute):
            result = run_chunk(plan.spec, plan.runs, device=settings.device,
                               kernel=claim.kernel, progress=beat.progress,
                               should_stop=beat.should_stop)
    except TRANSIENT:
        raise
    except Exception as exc:
        beat.stop()
        if isinstance(exc, Canceled):
            return _stopped(db, claim, token, stopping)
        return _failed(db, claim, token, exc, settings, enqueue)
    finally:
        beat.stop()
    t2 = time.perf_counter()
    if store_behind:
        STORE.submit(lambda: _store_retrying(db, claim, token, plan, result, settings, enqueue))
        log.info("chunk %s: claimed in %.3f s, computed in %.3f s, handed to the store "
                 "after %.3f s", claim.id, t1 - t0, t2 - t1, time.perf_counter() - t2)
        return "storing"
    log.info("chunk %s: claimed in %.3f s, computed in %.3f s", claim.id, t1 - t0, t2 - t1)
    return _store(db, claim, token, plan, result, settings, enqueue)


def _store(db: Database, claim: ClaimedChunk, token: str, plan: ChunkPlan, result: Any,
           settings: Settings, enqueue: Enqueue) -> str:
    """Encode the chunk's results and store them with the chunk done, in one transaction."""
    t0 = time.perf_counter()
    try:
        runs_data, cells_data, curves_data = encode_chunk(plan, result)
        t1 = time.perf_counter()
        with db.session() as session:
            if lock_sweep_without_commit(session, claim.sweep_id) is None:
                return "lost"  # the sweep was deleted meanwhile: store nothing
            stored = finish_chunk_without_commit(
                session, chunk_id=claim.id, sweep_id=claim.sweep_id, now=utcnow(),
                runs_data=runs_data, cells_data=cells_data, curves_data=curves_data,
                n_compute=len(plan.compute))
    except TRANSIENT:
        raise
    except Exception as exc:
        return _failed(db, claim, token, exc, settings, enqueue)
    if not stored:  # a lost lease that came back: another claim stored it first
        log.info("chunk %s: already done or canceled; these results were not stored",
                 claim.id)
        return "skipped"
    log.info("chunk %s: stored %d results (%d bytes) in %.3f s (encoded in %.3f s)", claim.id,
             len(plan.compute), len(runs_data) + len(cells_data) + len(curves_data),
             time.perf_counter() - t0, t1 - t0)
    return "done"


STORE_RETRIES = 8


def _store_retrying(db: Database, claim: ClaimedChunk, token: str, plan: ChunkPlan,
                    result: Any, settings: Settings, enqueue: Enqueue) -> None:
    """_store in the store thread: a lost database connection retries the store (not
    the computation) with backoff; past STORE_RETRIES the lease expires and the chunk
    is sent again."""
    delay = 1.0
    for _ in range(STORE_RETRIES):
        try:
            _store(db, claim, token, plan, result, settings, enqueue)
            return
        except TRANSIENT as exc:
            log.warning("chunk %s: storing failed, retrying in %.0fs: %r", claim.id, delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, 60.0)
    log.error("chunk %s: not stored after %d tries; it is sent again when its lease "
              "expires", claim.id, STORE_RETRIES)


class StoreThread:
    """One thread per process that stores computed chunks while the next computes.
    It is not a daemon (an exiting process finishes its store first) and ends
    when idle, so an idle process can still exit."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        self.drain()  # at most one chunk's results wait to be stored
        with self._lock:
            self._jobs.put(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="betascope-store")
                self._thread.start()

    def drain(self) -> None:
        """Wait until every handed-over chunk is stored (or given up)."""
        self._jobs.join()

    def _loop(self) -> None:
        yield_to_engine()  # the next chunk computes meanwhile
        while True:
            with self._lock:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    self._thread = None
                    return
            try:
                job()
            except Exception:
                log.exception("storing a chunk failed")
            finally:
                self._jobs.task_done()


STORE = StoreThread()


def _stopped(db: Database, claim: ClaimedChunk, token: str, stopping: Callable[[], bool]) -> str:
    if stopping():  # worker shutting down: hand the chunk back without using an attempt
        with db.session() as session:
            release_chunk_without_commit(session, chunk_id=claim.id, token=token)
        return "released"
    log.info("chunk %s: stopped (sweep canceled, deleted, or chunk taken over)", claim.id)
    return "canceled"


def _failed(
    db: Database, claim: ClaimedChunk, token: str, exc: BaseException, settings: Settings,
    enqueue: Enqueue,
) -> str:
    log.warning("chunk %s attempt %s failed: %r", claim.id, claim.attempts, exc)
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    with db.session() as session:
        outcome = fail_attempt_without_commit(
            session, chunk_id=claim.id, sweep_id=claim.sweep_id, token=token,
            error=f"attempt {claim.attempts}: {text}", now=utcnow(),
            max_attempts=settings.max_attempts, permanent=isinstance(exc, EngineMismatch),
        )
    if outcome == "retry":
        enqueue(claim.id, settings.retry_backoff_seconds * 2 ** (claim.attempts - 1))
    return outcome


class Heartbeat:
    """Writes progress and renews the lease every heartbeat_seconds from a side
    thread, and tells the engine to stop when the sweep is canceled or deleted,
    the chunk was taken over, or the worker is shutting down."""

    def __init__(self, db: Database, claim: ClaimedChunk, token: str, settings: Settings,
                 stopping: Callable[[], bool]):
        self.db, self.claim, self.token, self.settings = db, claim, token, settings
        self.stopping = stopping
        self.done = 0.0
        self.halt = False
        self._first = True
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{claim.id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def progress(self, done: int, total: int) -> None:
        self.done = done / total if total else 1.0
        if self._first:
            self._first = False
            _maybe_inject_fault(self.settings, self.claim)

    def should_stop(self) -> bool:
        return self.halt or self.stopping()

    def _loop(self) -> None:
        while not self._wake.wait(self.settings.heartbeat_seconds):
            try:
                with self.db.session() as session:
                    alive = heartbeat_without_commit(
                        session, chunk_id=self.claim.id, sweep_id=self.claim.sweep_id,
                        token=self.token, progress=min(self.done, 0.999), now=utcnow(),
                        lease_seconds=self.settings.lease_seconds,
                    )
            except Exception as exc:  # a missed beat is not fatal: the lease has slack
                log.warning("chunk %s: heartbeat failed: %r", self.claim.id, exc)
                continue
            if not alive:
                self.halt = True
                return


def _maybe_inject_fault(settings: Settings, claim: ClaimedChunk) -> None:
    """Test hook (BETASCOPE_FAULT_INJECT): while that file exists, the first chunk of
    every sweep whose name contains the file's text fails inside the engine."""
    path = settings.fault_inject
    if path is None or claim.seq != 0 or not path.exists():
        return
    needle = path.read_text(encoding="utf-8").strip()
    if needle and needle in claim.sweep_name:
        raise RuntimeError(f"injected fault (BETASCOPE_FAULT_INJECT) in chunk {claim.id}")
