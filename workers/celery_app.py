"""The Celery application: one task per chunk, late acks, prefetch 1.

`celery -A workers.celery_app worker` and `betascope worker` both use `app`.
The API builds its own instance with `make_celery(settings)` only to send
tasks by name, so it never imports the task module (or torch).
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from celery.signals import worker_process_init

from api.settings import Settings, get_settings

TASK_NAME = "betascope.run_chunk"


def make_celery(settings: Settings) -> Celery:
    app = Celery("betascope", broker=settings.broker_url or "memory://",
                 include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,  # a chunk's message is acked only after it is stored
        task_reject_on_worker_lost=True,  # a killed worker's chunk is redelivered
        worker_prefetch_multiplier=1,  # chunks are long: never hoard them
        task_default_queue=settings.queue,
        task_ignore_result=True,  # results live in the database, not the broker
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        # publishing must fail fast when the broker is down: the chunk stays queued
        # in the database and the reconciler sends it later
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0,
                                   "interval_step": 0.5, "interval_max": 1},
        # redelivery of unacked messages (worker died) when no reconciler runs
        broker_transport_options={"visibility_timeout": 6 * 3600},
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_send_task_events=False,
        # a prefork child loads torch's threads and the fused kernel in
        # worker_process_init (workers/warmup.py): 1-4 s, longer than the default 4
        worker_proc_alive_timeout=120,
        worker_hijack_root_logger=False,
    )
    return app


@lru_cache(maxsize=4)
def celery_for(broker_url: str, queue: str) -> Celery:
    """A cached sender for the API (one per broker and queue)."""
    return make_celery(Settings(broker_url=broker_url, queue=queue))


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    # a forked pool child must not share the parent's database sockets
    from api.db.session import forget_databases

    forget_databases()


app = make_celery(get_settings())
