"""Embedded mode: chunks run inside `betascope serve` (no broker), in a child process.

The same `process_chunk` as in Celery; transient errors are retried here with
backoff, as Celery's autoretry would. By default (BETASCOPE_EMBEDDED_PROCESS) the
engine runs in a spawned child process: its Python step loop then holds the
child's GIL, not the API's, and reads are not queued behind it (see
docs/performance.md for the figures). One thread per slot here waits on the
child; with the setting off, those threads run the chunks themselves. On
shutdown running chunks stop at their next step block and are handed back
(queued), to be picked up on next start.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from api.settings import Settings
from workers.chunks import process_chunk
from workers.errors import TRANSIENT
from workers.threads import engine_threads, passive_waits
from workers.warmup import settle_heap, warm_engine

log = logging.getLogger("betascope.embedded")
TRANSIENT_RETRIES = 8
SLOW_WARMUP_S = 5.0  # a warm-up still loading after this long is said to be (log, /readyz)
WARMING = ("loading its kernels; after a fresh install it compiles them for this machine, "
           "once (a minute or two on 2 cores), and sweeps wait queued meanwhile")


class EmbeddedExecutor:
    def __init__(self, settings: Settings):
        self.settings = settings
        # with engine processes, two waiting threads per process: the next chunk is
        # queued to the process while one runs, so it starts as soon as that one is
        # handed to the store, not after a round trip through this process
        waiters = settings.embedded_workers * (2 if settings.embedded_process else 1)
        self._pool = ThreadPoolExecutor(waiters, thread_name_prefix="betascope-chunk")
        self._stopping = threading.Event()
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._children = _Children(settings) if settings.embedded_process else None

    def enqueue(self, chunk_ids: Sequence[int], countdown: float = 0.0) -> list[int]:
        for chunk_id in chunk_ids:
            self._enqueue_one(chunk_id, countdown)
        return []

    def _enqueue_one(self, chunk_id: int, countdown: float = 0.0) -> None:
        if self._stopping.is_set():
            return
        if countdown > 0:
            timer = threading.Timer(countdown, self._submit, (chunk_id,))
            timer.daemon = True
            with self._lock:
                self._timers.add(timer)
            timer.start()
        else:
            self._submit(chunk_id)

    def _submit(self, chunk_id: int) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive()}
        if not self._stopping.is_set():
            try:
                self._pool.submit(self._run, chunk_id, uuid.uuid4().hex)
            except RuntimeError:  # pool already shut down
                pass

    def _run(self, chunk_id: int, token: str) -> None:
        delay = 1.0
        for _ in range(TRANSIENT_RETRIES):
            if self._stopping.is_set():
                return
            try:
                if self._children is not None:
                    for again, countdown in self._children.run(chunk_id, token):
                        self._enqueue_one(again, countdown)
                else:
                    engine_threads(self.settings.embedded_workers)
                    process_chunk(chunk_id, token=token, settings=self.settings,
                                  enqueue=self._enqueue_one, stopping=self._stopping.is_set)
                return
            except TRANSIENT as exc:
                log.warning("chunk %s: transient error, retrying in %.0fs: %r",
                            chunk_id, delay, exc)
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, 60.0)
            except BrokenProcessPool:  # killed twice (out of memory?): leave it to the lease
                log.error("chunk %s: the engine process died; the reconciler resends the "
                          "chunk when its lease expires", chunk_id)
                return
            except Exception:
                log.exception("chunk %s: unexpected error", chunk_id)
                return
        log.error("chunk %s: giving up after %d transient errors; the reconciler will "
                  "resend it when its lease expires", chunk_id, TRANSIENT_RETRIES)

    def check(self) -> str | None:
        return "executor stopped" if self._stopping.is_set() else None

    def engine_note(self) -> str | None:
        """What a sweep submitted now waits for, if anything: the engine process
        loading (the first start after an install compiles its kernels)."""
        if self._children is not None and self._children.warming:
            return WARMING
        return None

    def broker_id(self) -> str | None:
        return None

    def start(self) -> None:
        """Start the engine process now, loading its kernels (settings.engine_warmup),
        so the first sweep does not wait for torch and numba to load."""
        if self._children is not None and self.settings.engine_warmup:
            threading.Thread(target=self._children.warm, name="betascope-warm",
                             daemon=True).start()

    def shutdown(self) -> None:
        self._stopping.set()
        if self._children is not None:
            self._children.stop()
        with self._lock:
            for timer in self._timers:
                timer.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._children is not None:
            self._children.shutdown()


class _Children:
    """The spawned engine processes (started on first use), one per executor slot."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self.warming = False

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                passive_waits()  # inherited by the spawned child, before its torch loads
                self._pool = ProcessPoolExecutor(
                    self.settings.embedded_workers, mp_context=self._context,
                    initializer=_child_init,
                    initargs=(self.settings.embedded_workers, self.settings))
            return self._pool

    def warm(self) -> None:
        """Spawn the engine processes (their initializer loads the kernels). One that
        takes a while says so in the log, and in /readyz meanwhile (engine_note): on a
        fresh install it compiles the kernels, and a sweep waits queued for it."""
        self.warming = True
        start = time.monotonic()
        slow = threading.Timer(SLOW_WARMUP_S, lambda: log.info(
            "the engine process is still loading its kernels: %s", WARMING))
        slow.daemon = True
        slow.start()
        try:
            pool = self._get_pool()
            for f in [pool.submit(os.getpid) for _ in range(self.settings.embedded_workers)]:
                f.result()
        except Exception:  # shut down meanwhile, or the child died: chunks start it again
            log.warning("the engine process did not start ahead of the first chunk",
                        exc_info=True)
        finally:
            slow.cancel()
            self.warming = False
        took = time.monotonic() - start
        if took >= SLOW_WARMUP_S:
            log.info("the engine process is ready after %.0f s", took)

    def run(self, chunk_id: int, token: str) -> list[tuple[int, float]]:
        """process_chunk in a child; returns the (chunk, countdown) re-enqueues it asked for.
        A child that died is replaced and the chunk tried once more: if the dead one had
        claimed it, the claim fails until its lease expires and the reconciler resends it."""
        for _ in range(2):
            pool = self._get_pool()
            try:
                return pool.submit(_child_run, chunk_id, token, self.settings).result()
            except BrokenProcessPool:
                log.error("chunk %s: the engine process died; starting another", chunk_id)
                with self._lock:
                    if self._pool is pool:
                        pool.shutdown(wait=False, cancel_futures=True)
                        self._pool = None
        raise BrokenProcessPool("the engine process died twice")

    def stop(self) -> None:
        """Tell the children to stop at their next step block (SIGUSR1: a signal, not a
        shared semaphore, which would outlive the process and be reported leaked)."""
        with self._lock:
            pool = self._pool
        for pid in list(getattr(pool, "_processes", None) or {}):
            try:
                os.kill(pid, signal.SIGUSR1)
            except OSError:  # already gone
                pass

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


_child_stopping = threading.Event()


def _child_init(slots: int, settings: Settings) -> None:
    # Ctrl-C or SIGTERM to the process group is for the API process: it sends
    # SIGUSR1, and this process then hands its chunk back and exits
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, lambda *_: _child_stopping.set())
    engine_threads(slots)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch  # noqa: F401  (loaded now, not under a lease; the engine loads it on first use)

    import experiments.engine  # noqa: F401
    import workers.results  # noqa: F401  (and what storing needs)

    warm_engine(settings)
    settle_heap()


_again: list[tuple[int, float]] = []  # re-enqueues asked for since the last _child_run
_again_lock = threading.Lock()


def _ask_again(chunk_id: int, countdown: float) -> None:
    with _again_lock:
        _again.append((chunk_id, countdown))


def _child_run(chunk_id: int, token: str, settings: Settings) -> list[tuple[int, float]]:
    """process_chunk, its results stored behind (while the next chunk computes); returns
    the re-enqueues asked for meanwhile, this chunk's or an earlier one's store's."""
    process_chunk(chunk_id, token=token, settings=settings, enqueue=_ask_again,
                  stopping=_child_stopping.is_set, store_behind=True)
    with _again_lock:
        again = list(_again)
        _again.clear()
    return again
