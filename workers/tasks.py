"""The Celery task: payload = chunk id only; the task re-fetches everything."""

from __future__ import annotations

from typing import Any

# torch loads at worker start, not in a chunk's lease (the engine would load it on first
# use, and a fused zhang2022 chunk never does, but a worker serves every problem)
import torch  # noqa: F401
from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

import experiments.engine  # noqa: F401
from api.settings import get_settings
from workers.celery_app import TASK_NAME, app
from workers.chunks import STORE, process_chunk
from workers.errors import TRANSIENT
from workers.warmup import settle_heap, warm_engine


def enqueue_chunk(chunk_id: int, countdown: float = 0.0) -> None:
    """Send a chunk (again) from inside a worker, e.g. after a failed attempt."""
    settings = get_settings()
    app.send_task(TASK_NAME, args=[chunk_id], queue=settings.queue,
                  countdown=countdown or None)


@app.task(
    name=TASK_NAME,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,  # only lost database/broker connections are retried here
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=10,
)
def run_chunk(self: Any, chunk_id: int) -> str:
    """Claim, compute and store one chunk (idempotent: a second run is a no-op)."""
    # the task id survives retries, so a retry may re-claim its own lease at once
    return process_chunk(int(chunk_id), token=self.request.id, settings=get_settings(),
                         enqueue=enqueue_chunk, store_behind=True)


@worker_shutdown.connect
@worker_process_shutdown.connect
def _finish_stores(**_: Any) -> None:
    """A worker going down stores what it computed first (prefork children exit
    without waiting for their threads)."""
    STORE.drain()


@worker_process_init.connect
def _warm(**_: Any) -> None:
    """A prefork child loads the fused kernel before its first chunk (a solo or
    threads worker does in `betascope worker`, before it consumes)."""
    warm_engine(get_settings())
    settle_heap()


@worker_ready.connect
def _settle(**_: Any) -> None:
    """A solo or threads worker runs its chunks in this process: what it loaded so far
    stays loaded (workers.warmup.settle_heap)."""
    settle_heap()
