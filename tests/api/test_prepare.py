"""Each API process prepares a sweep's reads the moment it finishes (api/prepare.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from api import prepare, warm
from api.db.chunks import notify_finished_without_commit
from api.db.models import Sweep
from api.db.session import get_database
from api.services import results
from experiments.analysis import METRICS
from tests.api.conftest import Backend
from tests.api.helpers import spec, submit, wait_prepared, wait_status
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


def test_each_finish_is_prepared_once_the_latest_first(client: Any) -> None:
    """A look prepares what finished since the last one, the latest first, once; a sweep
    that finishes again (retried) is prepared again, even with a finish time a little
    older than one seen before (another machine's clock); a deleted one is not."""
    db = client.app.state.db
    done = [submit(client, spec(f"order {i}"))["id"] for i in range(3)]
    for sweep_id in done:
        wait_status(client, sweep_id, "done")
    with db.session() as session:  # finished in a known order, a second apart, in the past
        first = session.get(Sweep, done[0]).finished_at - timedelta(seconds=30)
        for i, sweep_id in enumerate(done):
            session.execute(update(Sweep).where(Sweep.id == sweep_id).values(
                finished_at=first + timedelta(seconds=i)))
    watch = prepare.FinishedSweeps(client.app, db)
    seen: list[int] = []

    async def record(sweep_id: int) -> None:
        seen.append(sweep_id)

    watch.prepare = record  # type: ignore[method-assign]  # what was looked at, in order

    def looked(since: Any) -> tuple[Any, list[int]]:
        seen.clear()
        since = client.portal.call(watch.look, since)
        return since, [i for i in seen if i in done]  # Postgres: other tests' sweeps too

    since, got = looked(first - timedelta(seconds=1))
    assert got == done[::-1]
    since, got = looked(since)
    assert got == []
    with db.session() as session:
        session.execute(update(Sweep).where(Sweep.id == done[0]).values(
            finished_at=first + timedelta(seconds=1.5)))  # before done[2]'s finish
        session.execute(update(Sweep).where(Sweep.id == done[1]).values(
            finished_at=first + timedelta(seconds=3), hidden=True))
    _, got = looked(since)
    assert got == [done[0]]


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


def test_maps_are_prepared_after_the_requests_in_flight(client: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request is counted while the process answers it, and a map waits for the
    count to fall to zero (at most PAUSE_SECONDS): the requests make what they read."""
    seen: list[int] = []
    real = results.list_runs

    def counting(*args: Any, **kw: Any) -> Any:
        seen.append(prepare._in_flight)
        return real(*args, **kw)

    sweep = submit(client, spec("counted"))
    wait_status(client, sweep["id"], "done")
    wait_prepared(client, sweep["id"])  # its own reads are not counted; its maps wait
    monkeypatch.setattr(results, "list_runs", counting)
    assert client.get(f"/api/v1/sweeps/{sweep['id']}/runs", params={"limit": 7}).status_code \
        == 200
    assert seen and seen[0] >= 1 and prepare._in_flight == 0
    path = f"/api/v1/sweeps/{sweep['id']}/runs"  # the warm-ups' own reads are not counted
    assert client.portal.call(warm.get, client.app, path, b"limit=8")[0] == 200
    assert seen[-1] == 0
    monkeypatch.setattr(prepare, "PAUSE_SECONDS", 0.3)
    t0 = time.monotonic()
    prepare.quiet()
    assert time.monotonic() - t0 < 0.1
    monkeypatch.setattr(prepare, "_in_flight", 1)
    t0 = time.monotonic()
    prepare.quiet()
    assert 0.3 <= time.monotonic() - t0 < 1.0
