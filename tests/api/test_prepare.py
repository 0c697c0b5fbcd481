"""Each API process prepares a sweep's reads the moment it finishes (api/prepare.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from api import prepare
from api.db.chunks import notify_finished_without_commit
from api.db.models import Sweep
from api.db.session import get_database
from api.services import results
from experiments.analysis import METRICS
from tests.api.conftest import Backend
from tests.api.helpers import spec, submit, wait_status
from tests.services import wait_for


def _maps_kept(url: str, sweep_id: int) -> set[tuple[Any, ...]]:
    """(metric, slice) of the maps this process keeps for the sweep."""
    with results._maps_lock:
        return {(k[1], k[4]) for k in results._maps_cache if k[0][:2] == (url, sweep_id)}


def test_a_finished_sweep_has_its_maps_made_before_any_map_read(client: Any) -> None:
    """Nothing but its status is read, and the process holds every map of every slice:
    the batch sizes' maps for each metric (2 x 7 fit in MAP_CELLS)."""
    sweep = submit(client, spec("prepared"))
    wait_status(client, sweep["id"], "done")
    want = {(m, (("batch_size", b), ("clip", 0), ("lr", 0))) for m in METRICS for b in (0, 1)}
    url = str(client.app.state.db.engine.url)
    wait_for(lambda: _maps_kept(url, sweep["id"]) == want, 20, "the sweep's maps prepared")
    # a read of any of them is the kept answer, whatever the URL says
    before = dict(results._maps_cache)
    for query in ({"metric": "final_rel", "batch_size": 4},
                  {"batch_size": "4.0", "clip": "none", "metric": "final_rel"}):
        got = client.get(f"/api/v1/sweeps/{sweep['id']}/phase-map", params=query)
        assert got.status_code == 200, got.text
        assert got.content in before.values()
        assert got.json()["slice"]["batch_size"] == 4


def test_each_finish_is_prepared_once_in_the_order_sweeps_finished(client: Any) -> None:
    """A look prepares what finished since the last one, oldest first, once; a sweep
    that finishes again (retried) is prepared again; a deleted one is not."""
    db = client.app.state.db
    done = [submit(client, spec(f"order {i}"))["id"] for i in range(3)]
    for sweep_id in done:
        wait_status(client, sweep_id, "done")
    with db.session() as session:  # finish them in a known order, a second apart
        first = session.get(Sweep, done[0]).finished_at
        for i, sweep_id in enumerate(done):
            session.execute(update(Sweep).where(Sweep.id == sweep_id).values(
                finished_at=first + timedelta(seconds=10 + i)))
    watch = prepare.FinishedSweeps(client.app, db)
    seen: list[int] = []

    async def record(sweep_id: int) -> None:
        seen.append(sweep_id)

    watch.prepare = record  # type: ignore[method-assign]  # what was looked at, in order
    since = client.portal.call(watch.look, first + timedelta(seconds=5))
    assert seen == done
    assert client.portal.call(watch.look, since) == since and seen == done
    with db.session() as session:
        session.execute(update(Sweep).where(Sweep.id == done[0]).values(
            finished_at=first + timedelta(seconds=20)))
        session.execute(update(Sweep).where(Sweep.id == done[1]).values(
            finished_at=first + timedelta(seconds=21), hidden=True))
    client.portal.call(watch.look, since)
    assert seen == [*done, done[0]]


def test_postgres_tells_each_process_at_once_when_a_sweep_finishes(pg_stack: Backend
                                                                   ) -> None:
    """The finishing transaction's NOTIFY reaches a listening process at its commit,
    long before its next poll (POLL_SECONDS)."""
    db = get_database(pg_stack.settings["database_url"])
    watch = prepare.FinishedSweeps(None, db)  # type: ignore[arg-type]  # listens only

    async def go() -> None:
        listening = asyncio.create_task(watch.listen())
        try:
            await asyncio.wait_for(watch.notice.wait(), 10)  # set once listening
            watch.notice.clear()
            await asyncio.sleep(0.2)
            assert not watch.notice.is_set()

            def finish() -> None:
                with db.session() as session:
                    notify_finished_without_commit(session)

            await asyncio.to_thread(finish)
            await asyncio.wait_for(watch.notice.wait(), prepare.POLL_SECONDS / 2)
        finally:
            listening.cancel()

    asyncio.run(go())
