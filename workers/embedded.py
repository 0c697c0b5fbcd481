"""Embedded mode: chunks run in a thread pool inside the API process (no broker).

The same `process_chunk` as in Celery; transient errors are retried here with
backoff, as Celery's autoretry would. On shutdown running chunks stop at their
next step block and are handed back (queued), to be picked up on next start.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from api.settings import Settings
from workers.chunks import process_chunk
from workers.errors import TRANSIENT

log = logging.getLogger("betascope.embedded")
TRANSIENT_RETRIES = 8


class EmbeddedExecutor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._pool = ThreadPoolExecutor(settings.embedded_workers,
                                        thread_name_prefix="betascope-chunk")
        self._stopping = threading.Event()
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()

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
                process_chunk(chunk_id, token=token, settings=self.settings,
                              enqueue=self._enqueue_one, stopping=self._stopping.is_set)
                return
            except TRANSIENT as exc:
                log.warning("chunk %s: transient error, retrying in %.0fs: %r",
                            chunk_id, delay, exc)
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, 60.0)
            except Exception:
                log.exception("chunk %s: unexpected error", chunk_id)
                return
        log.error("chunk %s: giving up after %d transient errors; the reconciler will "
                  "resend it when its lease expires", chunk_id, TRANSIENT_RETRIES)

    def check(self) -> str | None:
        return "executor stopped" if self._stopping.is_set() else None

    def broker_id(self) -> str | None:
        return None

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        self._stopping.set()
        with self._lock:
            for timer in self._timers:
                timer.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
