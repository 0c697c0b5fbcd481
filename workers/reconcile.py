"""The reconciler: re-enqueue chunks whose lease expired or whose message was lost.

Runs as a thread in one API process at a time (workers.leader): with several
API processes, the others wait to take the role over. A lease expires when its
worker died or stalled; the chunk is queued again, or failed once it has used
up its attempts. A queued chunk that was never sent (broker down when the
sweep was created) or sent long ago is sent again; duplicates are harmless,
since only one claimant can win a chunk. When the broker restarted (a new
Redis run_id), every queued chunk is sent again at once: a broker that keeps
nothing on disk lost their messages, and waiting requeue_after_seconds for
them would stall every sweep for minutes.
"""

from __future__ import annotations

import logging
import threading

from api.db.base import utcnow
from api.db.chunks import (
    expire_leases_without_commit,
    mark_unsent_without_commit,
    stale_queued_without_commit,
)
from api.db.session import get_database
from api.settings import Settings
from workers.dispatch import Dispatcher
from workers.leader import Leadership

log = logging.getLogger("betascope.reconciler")


def reconcile_once(
    *, settings: Settings, dispatcher: Dispatcher, requeue_after: float | None = None
) -> list[int]:
    """One pass; returns the chunk ids sent."""
    db = get_database(settings.database_url)
    after = settings.requeue_after_seconds if requeue_after is None else requeue_after
    with db.session() as session:
        now = utcnow()
        ids = expire_leases_without_commit(
            session, now=now, max_worker_losses=settings.max_worker_losses)
        ids += stale_queued_without_commit(session, now=now, older_than=after)
    if not ids:
        return []
    log.info("re-enqueueing %d chunks: %s", len(ids), ids[:20])
    unsent = dispatcher.enqueue(ids)
    if unsent:
        with db.session() as session:
            mark_unsent_without_commit(session, unsent)
    return [i for i in ids if i not in set(unsent)]


class Reconciler:
    """Calls reconcile_once every reconcile_seconds until stopped, while this process
    holds the reconciler's role; asks for the role every period until then."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher, *, first_requeue_after: float
                 | None = None):
        self.settings, self.dispatcher = settings, dispatcher
        self.first_requeue_after = first_requeue_after
        self.leadership = Leadership(settings.database_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="betascope-reconciler",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.leadership.release()

    def _loop(self) -> None:
        after = self.first_requeue_after
        broker = self.dispatcher.broker_id()
        leading = False
        while not self._stop.is_set():
            if not self.leadership.held():
                leading = False
                self._stop.wait(self.settings.reconcile_seconds)
                continue
            if not leading:  # taken over: its holder may have died with chunks unsent
                leading, after = True, self.first_requeue_after
            now = self.dispatcher.broker_id()
            if now is not None and broker is not None and now != broker:
                log.warning("the broker restarted: sending every queued chunk again")
                after = 0.0
            broker = now or broker
            try:
                reconcile_once(settings=self.settings, dispatcher=self.dispatcher,
                               requeue_after=after)
                after = None
            except Exception as exc:  # the database may be briefly down; try again later
                log.warning("reconcile pass failed: %r", exc)
                # chunks whose messages were dropped while it was down (workers give
                # up retrying after a while) are sent again as soon as it is back
                after = 0.0
            self._stop.wait(self.settings.reconcile_seconds)
