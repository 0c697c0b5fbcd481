"""A sweep that reads another's results (a resubmission, a superset) and a delete of
that source, at the same time, on Postgres (SQLite runs one writer at a time). Each
test holds one transaction open at the point of the race and runs the other in a
thread, which must wait for it: before the source's row was locked, the delete
counted the uncommitted reader as none and removed the source (a resubmission was
then done with no results), and two deletes of a hidden source's last readers each
counted the other and left it behind for good."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from api.db.models import Chunk, Sweep
from api.db.session import get_database
from api.db.store import Stored, gather
from api.services.sweeps import create_sweep, delete_sweep
from experiments.spec import parse_spec
from tests.conftest import need
from tests.services import pg_schema_url, postgres_ok
from tests.workers.test_chunks import Sent, _create, _doc, _settings
from workers.chunks import process_chunk

_schemas = itertools.count()


@pytest.fixture
def pg_url() -> str:
    """A Postgres schema at the latest revision (SQLite runs one writer at a time)."""
    from api.db.migrate import upgrade

    need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
    url = pg_schema_url(f"races{next(_schemas)}")
    upgrade(url)
    return url


def _done_source(url: str) -> tuple[Any, int]:
    settings = _settings(url)
    sweep_id, chunk_ids = _create(settings, _doc())
    for chunk_id in chunk_ids:
        assert process_chunk(chunk_id, token="s", settings=settings, enqueue=Sent()) == "done"
    return settings, sweep_id


def _waits_for(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run fn in a thread, which must still be waiting (for a row lock) after 0.5 s."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "it did not wait for the other transaction's lock"
    return thread, out


def _delete(url: str, sweep_id: int) -> None:
    with get_database(url).session() as s:
        delete_sweep(session=s, sweep=s.get(Sweep, sweep_id))


def _runs_found(url: str, sweep_id: int) -> int:
    with get_database(url).session(read_only=True) as s:
        stored = Stored.load(s, sweep_id)
        assert stored is not None
        found, _ = gather(s, stored, np.arange(stored.spec.total_runs()), ("outcome",))
        return int(found.sum())


def test_a_source_deleted_while_a_resubmission_is_created_is_kept_for_it(pg_url: str) -> None:
    settings, source = _done_source(pg_url)
    with get_database(pg_url).session() as s:
        again, chunks = create_sweep(session=s, spec=parse_spec({**_doc(), "name": "again"}),
                                     settings=settings)
        assert (again.source_id, chunks) == (source, [])
        thread, _ = _waits_for(lambda: _delete(pg_url, source))
    thread.join(30)
    assert not thread.is_alive()
    with get_database(pg_url).session(read_only=True) as s:
        assert s.get(Sweep, source).hidden
    assert _runs_found(pg_url, again.id) == 8


def test_a_resubmission_created_while_its_source_is_deleted_computes(pg_url: str) -> None:
    settings, source = _done_source(pg_url)

    def create() -> tuple[int, int | None, int]:
        with get_database(pg_url).session() as s:
            sweep, chunks = create_sweep(session=s, spec=parse_spec({**_doc(), "name": "x"}),
                                         settings=settings)
            return sweep.id, sweep.source_id, len(chunks)

    with get_database(pg_url).session() as s:
        delete_sweep(session=s, sweep=s.get(Sweep, source))
        thread, out = _waits_for(create)
    thread.join(30)
    sweep_id, source_id, n_chunks = out[0]
    assert source_id is None and n_chunks > 0  # computed, not read from a deleted sweep
    with get_database(pg_url).session(read_only=True) as s:
        assert s.get(Sweep, source) is None and s.get(Sweep, sweep_id).status == "queued"


def test_the_last_readers_deleted_at_once_take_their_hidden_source(pg_url: str) -> None:
    settings, source = _done_source(pg_url)
    readers = []
    for name in ("r1", "r2"):
        with get_database(pg_url).session() as s:
            sweep, _ = create_sweep(session=s, spec=parse_spec({**_doc(), "name": name}),
                                    settings=settings)
            readers.append(sweep.id)
    _delete(pg_url, source)
    with get_database(pg_url).session() as s:
        delete_sweep(session=s, sweep=s.get(Sweep, readers[0]))
        thread, _ = _waits_for(lambda: _delete(pg_url, readers[1]))
    thread.join(30)
    assert not thread.is_alive()
    with get_database(pg_url).session(read_only=True) as s:
        assert s.get(Sweep, source) is None
        assert s.query(Chunk).filter(Chunk.sweep_id == source).count() == 0
