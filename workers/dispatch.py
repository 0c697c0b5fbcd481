"""Sending chunks to whoever runs them: Celery (broker set) or the in-process executor."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from api.settings import Settings

log = logging.getLogger("betascope.dispatch")


class Dispatcher(Protocol):
    def enqueue(self, chunk_ids: Sequence[int], countdown: float = 0.0) -> list[int]:
        """Send chunks; return the ids that could not be sent."""
        ...

    def check(self) -> str | None:
        """None when ready, else what is wrong."""
        ...

    def broker_id(self) -> str | None:
        """Which broker instance is up (it changes when the broker restarts and may
        have lost its queued messages); None when unknown or unreachable."""
        ...

    def engine_note(self) -> str | None:
        """What a sweep submitted now waits for (the engine loading), if anything."""
        ...

    def start(self) -> None: ...

    def shutdown(self) -> None: ...


class CeleryDispatcher:
    """Publishes one message per chunk (task by name, so torch is never imported here)."""

    def __init__(self, settings: Settings):
        from workers.celery_app import celery_for

        assert settings.broker_url is not None
        self.settings = settings
        self.app = celery_for(settings.broker_url, settings.queue)

    def enqueue(self, chunk_ids: Sequence[int], countdown: float = 0.0) -> list[int]:
        from workers.celery_app import TASK_NAME

        sent = 0
        try:
            with self.app.producer_or_acquire() as producer:
                for chunk_id in chunk_ids:
                    self.app.send_task(TASK_NAME, args=[chunk_id], queue=self.settings.queue,
                                       countdown=countdown or None, producer=producer)
                    sent += 1
        except Exception as exc:
            log.warning("broker unreachable, %d chunks left for the reconciler: %r",
                        len(chunk_ids) - sent, exc)
            return list(chunk_ids[sent:])
        return []

    def check(self) -> str | None:
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
        except Exception as exc:
            return f"broker unreachable: {exc}"
        return None

    def engine_note(self) -> str | None:
        return None  # the workers' engines are theirs: each logs its own warm-up

    def broker_id(self) -> str | None:
        """Redis's run_id, new at every server start; None for other brokers (RabbitMQ
        keeps Celery's durable queues across restarts) or when unreachable."""
        if not (self.settings.broker_url or "").startswith(("redis://", "rediss://")):
            return None
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
                return str(conn.default_channel.client.info("server")["run_id"])
        except Exception:
            return None

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def make_dispatcher(settings: Settings) -> Dispatcher:
    if settings.embedded:
        from workers.embedded import EmbeddedExecutor

        return EmbeddedExecutor(settings)
    return CeleryDispatcher(settings)
