"""Finished sweeps' reads are answered from kept bytes (api.readcache), and only they:
the route is not run again until the sweep's row changes, in this process or another."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from api.db.models import Sweep
from api.db.session import get_database
from tests.api.helpers import spec, submit, wait_prepared, wait_status
from tests.conftest import need
from tests.services import pg_schema_url, postgres_ok

READS = ["", "/phase-map", "/phase-map?metric=final_rel&batch_size=1", "/boundary",
         "/runs?limit=5"]


class Calls:
    """Counts the calls of the services behind the cached routes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from api.services import results
        from api.services import sweeps as service

        self.n = 0
        for module, name in ((service, "sweep_stats"), (results, "phase_map_body"),
                             (results, "boundary"), (results, "list_runs")):
            monkeypatch.setattr(module, name, self.counted(getattr(module, name)))

    def counted(self, fn: Any) -> Any:
        def wrapper(*args: Any, **kw: Any) -> Any:
            self.n += 1
            return fn(*args, **kw)
        return wrapper


def test_finished_reads_are_kept_until_the_row_changes(client: Any, backend: Any,
                                                        fault_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    marker = f"inject-{time.monotonic_ns()}"
    fault_file.write_text(marker)
    try:
        sweep = submit(client, spec(f"kept {marker}", steps=30))
        failed = wait_status(client, sweep["id"], "failed", "done", timeout=60)
    finally:
        fault_file.unlink()
    assert failed["status"] == "failed"
    base = f"/api/v1/sweeps/{sweep['id']}"
    first = {p: client.get(base + p) for p in READS}
    listed = client.get("/api/v1/sweeps", params={"limit": 1})
    assert all(r.status_code == 200 for r in first.values()) and listed.status_code == 200
    calls = Calls(monkeypatch)
    for _ in range(2):
        for path, answer in first.items():
            again = client.get(base + path)
            assert again.status_code == 200 and again.content == answer.content, path
            assert again.headers["etag"] == answer.headers["etag"]
            assert again.headers["x-content-type-options"] == "nosniff"
            tagged = client.get(base + path, headers={"If-None-Match": answer.headers["etag"]})
            assert tagged.status_code == 304 and tagged.content == b""
            head = client.head(base + path)
            assert head.status_code == 200 and head.content == b""
        assert client.get("/api/v1/sweeps", params={"limit": 1}).content == listed.content
    assert calls.n == 0  # every answer above came from the kept bytes

    # a retry changes the row: answered by the routes again, never stale
    assert client.post(base + "/retry").status_code == 200
    moving = client.get(base)
    assert moving.json()["status"] in ("queued", "running", "done")
    assert calls.n > 0
    done = wait_status(client, sweep["id"], "done", timeout=60)
    assert done["finished_at"] != failed["finished_at"] and done["failed_runs"] == 0
    now = client.get(base)
    assert now.json()["status"] == "done" and now.headers["etag"] != first[""].headers["etag"]
    assert client.get(base + "/phase-map").content != first["/phase-map"].content
    page = client.get("/api/v1/sweeps", params={"limit": 1}).json()["items"][0]
    assert page["status"] == "done" and page["failed_runs"] == 0

    # a change made by another process (here: straight in the database) is seen at once
    with get_database(backend.settings["database_url"]).session() as session:
        session.execute(update(Sweep).where(Sweep.id == sweep["id"]).values(hidden=True))
    assert client.get(base).status_code == 404
    assert client.get(base + "/phase-map").status_code == 404
    assert all(s["id"] != sweep["id"] for s in client.get("/api/v1/sweeps").json()["items"])


def test_running_sweeps_are_answered_from_kept_bytes_for_half_a_second_at_most(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running sweep's status (and a list page holding it) is made once per
    LIVE_SECONDS however many clients poll it; a new sweep or a cancel, which change
    the rows, are seen at once."""
    import time

    from api.readcache import LIVE_SECONDS

    done = submit(client, spec("kept list", steps=20))
    wait_status(client, done["id"], "done")
    wait_prepared(client, done["id"])
    before = client.get("/api/v1/sweeps").json()["items"]
    assert before[0]["id"] == done["id"]
    slow = submit(client, spec("kept running", steps=3000,
                               beta2={"log1m": [0.01, 1.0], "num": 12}))
    items = client.get("/api/v1/sweeps").json()["items"]
    assert [s["id"] for s in items[:2]] == [slow["id"], done["id"]]  # the list moved on
    calls = Calls(monkeypatch)
    t0 = time.monotonic()
    answers = [client.get(f"/api/v1/sweeps/{slow['id']}") for _ in range(5)]
    quick = time.monotonic() - t0 < LIVE_SECONDS / 2  # within one live period at most twice
    if all(a.json()["status"] in ("queued", "running") for a in answers) and quick:
        assert 1 <= calls.n <= 2 and all("etag" not in a.headers for a in answers)
        time.sleep(LIVE_SECONDS * 1.2)
        client.get(f"/api/v1/sweeps/{slow['id']}")
        assert calls.n in (2, 3)  # made again once it was half a second old
    canceled = client.post(f"/api/v1/sweeps/{slow['id']}/cancel").json()
    assert client.get(f"/api/v1/sweeps/{slow['id']}").json()["status"] == canceled["status"]
    assert client.get("/api/v1/sweeps").json()["items"][0]["status"] == canceled["status"]


def test_postgres_lookups_share_a_query_only_if_it_starts_after_them() -> None:
    need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
    from api.db.migrate import upgrade
    from api.readcache import Rows

    url = pg_schema_url("readcache")
    upgrade(url)
    rows = Rows(url)
    queries: list[tuple[Any, ...]] = []
    real = rows._query

    async def main() -> None:
        sent = asyncio.Event()

        async def counted(sql: str, args: tuple[Any, ...]) -> list[Any]:
            queries.append(args)
            sent.set()
            return await real(sql, args)

        rows._query = counted  # type: ignore[method-assign]
        first = asyncio.gather(*(rows.sweep(1) for _ in range(50)))
        await sent.wait()  # a query is in flight: a lookup begun now needs another
        late = asyncio.gather(*(rows.sweep(1) for _ in range(50)))
        assert await first == [None] * 50 and await late == [None] * 50
        await rows.aclose()

    # a thread of its own: Playwright's sync API (tests/web) leaves an event loop
    # running in this one when both run in one session
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result()
    assert queries == [(1,), (1,)]
