"""Several API processes on one Postgres database make each finished sweep's phase
maps and boundary once between them (api.answers): the first to need one claims it
and makes it, the others wait for its bytes or read them, and a claim whose maker
died is taken over. Two applications in this process stand for two processes: each
has its own event loop, lookup connection and kept answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from api import answers
from tests.api.helpers import spec, submit, wait_status
from tests.conftest import need
from tests.services import FAST, pg_schema_url, postgres_ok, wait_for

pytestmark = pytest.mark.services
BASE = "/api/v1/sweeps/{}"


@pytest.fixture(scope="module")
def url() -> str:
    need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
    from api.db.migrate import upgrade

    url = pg_schema_url("answers")
    upgrade(url)
    return url


@pytest.fixture
def two(url: str) -> Iterator[tuple[Any, Any]]:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    # no preparing of finished sweeps (api/prepare.py): what is counted is the reads'
    settings = Settings(**dict(FAST, database_url=url, prepare_finished=False))
    clients = [TestClient(create_app(settings)) for _ in range(2)]
    for c in clients:
        c.__enter__()
    yield clients[0], clients[1]
    for c in clients:
        c.__exit__(None, None, None)


class Made:
    """Counts the phase maps and boundaries the applications make, optionally slowly."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0):
        from api.services import results

        self.n = 0
        self.lock = threading.Lock()
        for name in ("phase_map_body", "boundary"):
            real = getattr(results, name)

            def counted(*args: Any, _real: Any = real, **kw: Any) -> Any:
                with self.lock:
                    self.n += 1
                time.sleep(delay)
                return _real(*args, **kw)

            monkeypatch.setattr(results, name, counted)


def connect(url: str) -> psycopg.Connection[Any]:
    """A plain connection to the schema of `url`, as the read cache makes its own."""
    from api.readcache import Rows

    return psycopg.connect(Rows(url).conninfo, autocommit=True)


def rows(url: str, sweep_id: int) -> list[tuple[Any, ...]]:
    with connect(url) as conn:
        return conn.execute("SELECT key, body IS NOT NULL FROM answer WHERE sweep_id = %s",
                            (sweep_id,)).fetchall()


def at_once(a: Any, b: Any, path: str) -> dict[str, Any]:
    """GET path from a, and 0.1 s later (a has claimed it) from b, both at once."""
    got: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda c=c, n=n: got.__setitem__(n, c.get(path)))
               for n, c in (("a", a), ("b", b))]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    return got


def finished(client: Any, name: str) -> int:
    sweep = submit(client, spec(name, steps=20))
    wait_status(client, sweep["id"], "done", timeout=120)
    return int(sweep["id"])


def test_a_finished_sweeps_maps_are_made_by_one_process_for_all(
        two: tuple[Any, Any], url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two
    sweep_id = finished(a, "made once")
    base = BASE.format(sweep_id)
    reads = ["/phase-map", "/phase-map?metric=final_rel", "/boundary"]
    made = Made(monkeypatch)
    first = {p: a.get(base + p) for p in reads}
    assert all(r.status_code == 200 for r in first.values()) and made.n == 3
    assert sorted(body for _, body in rows(url, sweep_id)) == [True] * 3
    for p, answer in first.items():  # the other process: no map made, the same bytes
        got = b.get(base + p)
        assert got.status_code == 200 and got.content == answer.content, p
        assert got.headers["etag"] == answer.headers["etag"]
        assert got.headers["content-type"] == answer.headers["content-type"]
        assert b.get(base + p, headers={"If-None-Match": got.headers["etag"]}).status_code \
            == 304
    assert made.n == 3
    # what is not a sweep's boundary or map over beta1 x beta2 stays each process's own
    assert b.get(base).status_code == 200 and b.get(base + "/runs?limit=3").status_code == 200
    for c in (a, b):
        assert c.get(base + "/phase-map?x=beta1&y=beta2").status_code == 200
    assert len(rows(url, sweep_id)) == 3 and made.n == 5
    # an error is not kept, and leaves no claim behind
    bad = b.get(base + "/phase-map?metric=nope")
    assert bad.status_code == 422 and "metric" in bad.text
    assert len(rows(url, sweep_id)) == 3
    # rows go with their sweep
    assert a.delete(base).status_code in (200, 204)
    assert rows(url, sweep_id) == []


def test_a_process_waits_for_the_answer_another_is_making(
        two: tuple[Any, Any], url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two
    sweep_id = finished(a, "made while waited for")
    path = BASE.format(sweep_id) + "/phase-map?metric=converged_frac"
    from api.services import cells

    # as in a process that holds none of the sweep's cells (once the thread that
    # merged them while the sweep ran has stopped)
    wait_for(lambda: cells._follower._thread is None, 30, "the cells follower to stop")
    cells._cache.clear()
    made = Made(monkeypatch, delay=0.5)
    got = at_once(a, b, path)
    assert got["a"].status_code == got["b"].status_code == 200
    assert got["a"].content == got["b"].content
    assert made.n == 1


def test_a_claim_whose_maker_died_is_taken_over(
        two: tuple[Any, Any], url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two
    sweep_id = finished(a, "claim taken over")
    base = BASE.format(sweep_id)
    sweep = a.get(base).json()
    assert sweep["status"] == "done"
    key = (base + "/boundary", b"")
    state = answers._state(tuple(_sweep_row(url, sweep_id)[0]))
    with connect(url) as conn:
        conn.execute("INSERT INTO answer (sweep_id, key, version, claimed_at) VALUES "
                     "(%s, %s, %s, clock_timestamp() - make_interval(secs => %s))",
                     (sweep_id, answers._name(key), state, answers.CLAIM_SECONDS + 1))
    made = Made(monkeypatch)
    t0 = time.monotonic()
    assert b.get(base + "/boundary").status_code == 200
    assert time.monotonic() - t0 < answers.CLAIM_SECONDS  # taken over, not waited out
    assert made.n == 1 and rows(url, sweep_id) == [(answers._name(key), True)]


def test_a_process_holding_the_cells_makes_the_map_rather_than_wait(
        two: tuple[Any, Any], url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two
    sweep_id = finished(a, "made where the cells are")
    base = BASE.format(sweep_id)
    assert a.get(base + "/phase-map").status_code == 200  # the cells are merged here
    from api.services import cells

    created = _sweep_row(url, sweep_id)[0][0]
    assert cells.assembled(sweep_id, created)
    path = base + "/phase-map?metric=div_step"
    made = Made(monkeypatch, delay=0.5)
    got = at_once(a, b, path)
    assert got["a"].content == got["b"].content and made.n == 2


def test_without_the_table_each_process_makes_its_own(
        two: tuple[Any, Any], url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing query costs the sharing, never a read."""
    a, b = two
    sweep_id = finished(a, "no table")
    with connect(url) as conn:
        conn.execute("ALTER TABLE answer RENAME TO answer_away")
    try:
        made = Made(monkeypatch)
        for c in (a, b):
            assert c.get(BASE.format(sweep_id) + "/phase-map").status_code == 200
        assert made.n == 2
    finally:
        with connect(url) as conn:
            conn.execute("ALTER TABLE answer_away RENAME TO answer")


def _sweep_row(url: str, sweep_id: int) -> list[tuple[Any, ...]]:
    """The row as api.readcache.Rows reads it: its version of a finished sweep."""
    with connect(url) as conn:
        return conn.execute("SELECT created_at, status, finished_at, n_chunks FROM sweep "
                            "WHERE id = %s", (sweep_id,)).fetchall()
