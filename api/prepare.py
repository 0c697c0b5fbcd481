"""A sweep that just finished is read warm: each API process prepares its reads first.

A finished sweep's first reads in a process cost what later reads do not: its
cells assembled from every chunk's record (20 ms for 10^5 runs), each phase map
made from them (about 3 ms a slice), its status and first runs page (8 and 10
ms). A dashboard opens a sweep the moment it finishes, so these all landed on
the first burst of reads; with `betascope serve --workers 4` on two cores,
every process paid them at once and the requests in flight waited: p95 125-155
ms over the routes at 50 in flight, against 13-16 ms once warm (docs/performance.md).

So every API process looks for sweeps that finished, and prepares each one the
moment it sees it, before a client asks. On Postgres the transaction that
finishes a sweep sends a notice (NOTIFY betascope_finished, api.db.chunks) that
each process listens for on a connection of its own, so it looks at once, and
every POLL_SECONDS besides (a notice missed while that connection was down);
on SQLite, one process and a local file, it looks every SQLITE_POLL_SECONDS.

What it prepares: first, through the application itself as warm.warm_reads
does, what a polling client reads first: the sweep's outcome map, status,
first runs page and boundary, and the sweeps list (kept as bytes by the read cache;
the map and boundary shared with other processes by api.answers); then the
sweep's maps over (beta1, beta2), every metric of every slice while they fit in
MAP_CELLS (kept as bytes by api.services.results whatever the URL that asks for
them), each map after the requests this process is answering, if any, are
answered. A sweep is prepared once per process for each time it finishes (a retried sweep
finishes again), the latest finished first. Failures are only logged: a
read makes what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import make_url, select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from api import warm
from api.db.chunks import FINISHED_CHANNEL
from api.db.models import Sweep
from api.db.session import Database, libpq_conninfo
from api.routes.analysis import map_body
from api.services import cells
from api.services.sweeps import stored_spec
from experiments import analysis

log = logging.getLogger("betascope.api")

POLL_SECONDS = 5.0  # Postgres: a look without a notice, this often
SQLITE_POLL_SECONDS = 0.25  # SQLite: a look at the local file (about 0.2 ms)
# cells of maps prepared per sweep, one map at least: a 10^5-run sweep's 28 maps (4
# slices x 7 metrics of 158 x 158), four of a 500 x 500 grid, one of 1000 x 1000
MAP_CELLS = 1_000_000
LOOK_ROWS = 32  # sweeps a look reads, newest finished first
SKEW_SECONDS = 60.0  # a look goes back this far from the newest finish seen
PAUSE_SECONDS = 1.0  # a map waits at most this long for requests in flight to end
_in_flight = 0  # HTTP requests this process is answering (InFlight)
# what the sweep page and clients ask first: its map (the cells assembled first: a
# client's map read meanwhile waits for them), status and runs pages, the sweeps list
# (kept by the list's rows, which the sweep's finish changed), then its boundary
READS = (("{sweep}/phase-map", b"metric=outcome"), ("{sweep}", b""),
         ("{sweep}/runs", b"limit=50"), ("{sweep}/runs", b""), ("", b""),
         ("", b"limit=20"), ("{sweep}/boundary", b""))


def finished_since(db: Database, since: datetime | None) -> list[tuple[int, datetime]]:
    """(id, finished_at) of done sweeps that finished at or after SKEW_SECONDS before
    `since` (any time, for None), newest first, at most LOOK_ROWS."""
    with db.session(read_only=True) as session:
        query = select(Sweep.id, Sweep.finished_at).where(
            Sweep.status == "done", Sweep.hidden.is_(False), Sweep.finished_at.is_not(None))
        if since is not None:
            query = query.where(Sweep.finished_at >= since - timedelta(seconds=SKEW_SECONDS))
        rows = session.execute(
            query.order_by(Sweep.finished_at.desc(), Sweep.id.desc()).limit(LOOK_ROWS))
        return [(int(i), at) for i, at in rows]


def prepare_results(db: Database, sweep_id: int) -> int:
    """The sweep's cells and its (beta1, beta2) maps, made and kept by this process;
    returns how many maps. Each map in a transaction of its own: one held across the
    pauses would hold SQLite's log (and Postgres's vacuum) at its snapshot."""
    with db.session(read_only=True) as session:
        sweep = _done(session, sweep_id)
        if sweep is None:
            return 0
        spec = stored_spec(sweep)
        cells.sweep_cells(session, sweep, spec)
    values = spec.axis_values()
    budget = max(1, MAP_CELLS // (len(values["beta1"]) * len(values["beta2"])))
    slices = analysis.available(spec)
    maps = itertools.product(itertools.product(*slices.values()), analysis.METRICS)
    made = 0
    for point, metric in itertools.islice(maps, budget):
        quiet()
        with db.session(read_only=True) as session:
            sweep = _done(session, sweep_id)
            if sweep is None:
                break
            map_body(session, sweep, metric, dict(zip(slices, point, strict=True)))
        made += 1
    return made


def _done(session: Session, sweep_id: int) -> Sweep | None:
    """The sweep, while it is done and not deleted (not retried or deleted meanwhile)."""
    sweep = session.get(Sweep, sweep_id)
    return sweep if sweep is not None and not sweep.hidden and sweep.status == "done" else None


def quiet() -> None:
    """Wait while this process answers requests (at most PAUSE_SECONDS): they make
    what they read themselves, and the maps made here would take their cores."""
    deadline = time.monotonic() + PAUSE_SECONDS
    while _in_flight > 0 and time.monotonic() < deadline:
        time.sleep(0.01)


class InFlight:
    """Pure ASGI: counts the HTTP requests this process is answering for clients (not
    the warm-ups' own, warm.get), for quiet()."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        global _in_flight
        if scope["type"] != "http" or warm.IN_PROCESS in scope.get("extensions", {}):
            await self.app(scope, receive, send)
            return
        _in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            _in_flight -= 1


class FinishedSweeps:
    """This process's watch over sweeps that finish (module docstring)."""

    def __init__(self, app: FastAPI, db: Database):
        self.app, self.db = app, db
        self.prepared: dict[int, datetime] = {}  # sweep id -> the finish it was prepared for
        self.ready: list[int] = []  # sweeps whose preparing ended, the latest LOOK_ROWS
        self.postgres = make_url(db.url).get_backend_name() == "postgresql"
        self.conninfo = libpq_conninfo(db.url)
        self.poll = POLL_SECONDS if self.postgres else SQLITE_POLL_SECONDS
        self.notice = asyncio.Event()

    async def listen(self) -> None:
        """Postgres: set `notice` at each NOTIFY on FINISHED_CHANNEL (and once connected,
        for what finished while this was not); reconnects after a failure."""
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    await conn.execute(f"LISTEN {FINISHED_CHANNEL}")
                    self.notice.set()
                    async for _ in conn.notifies():
                        self.notice.set()
            except Exception as exc:
                log.info("listening for finished sweeps: %r", exc)
            await asyncio.sleep(self.poll)

    async def run(self) -> None:
        """Look at each notice or poll, from the newest finish when the process
        started (warm.warm_reads reads that sweep's status and runs page)."""
        while True:
            try:
                found = await run_in_threadpool(finished_since, self.db, None)
                break
            except Exception as exc:  # database down at start: wait for it
                log.info("looking for finished sweeps: %r", exc)
                await asyncio.sleep(self.poll)
        since = found[0][1] if found else None  # newest first
        self.prepared = {i: at for i, at in found
                         if since is not None and at >= since - timedelta(seconds=SKEW_SECONDS)}
        listening = asyncio.create_task(self.listen()) if self.postgres else None
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.notice.wait(), self.poll)
                self.notice.clear()
                since = await self.look(since)
        finally:
            if listening is not None:
                listening.cancel()

    async def look(self, since: datetime | None) -> datetime | None:
        """Prepare what finished since the last look, newest first; returns the newest
        finish seen, where the next look starts (SKEW_SECONDS before it: finish times
        come from the clocks of the processes that stored the sweeps' last chunks)."""
        try:
            found = await run_in_threadpool(finished_since, self.db, since)
        except Exception as exc:  # database down: the next look tries again
            log.info("looking for finished sweeps: %r", exc)
            return since
        for sweep_id, at in found:
            since = at if since is None else max(since, at)
            if self.prepared.get(sweep_id) != at:
                self.prepared[sweep_id] = at
                await self.prepare(sweep_id)
        if since is not None:  # what the next look can still return
            oldest = since - timedelta(seconds=SKEW_SECONDS)
            self.prepared = {i: a for i, a in self.prepared.items() if a >= oldest}
        return since

    async def prepare(self, sweep_id: int) -> None:
        try:
            # the reads a polling client makes first, then what its maps are made from
            codes = [(await warm.get(self.app, "/api/v1/sweeps" + path.format(
                sweep=f"/{sweep_id}"), query))[0] for path, query in READS]
            maps = await run_in_threadpool(prepare_results, self.db, sweep_id)
            log.info("sweep %s finished: %d maps and reads %s prepared", sweep_id, maps, codes)
        except Exception as exc:
            log.warning("preparing sweep %s's reads failed: %r", sweep_id, exc)
        self.ready = [*self.ready[-LOOK_ROWS + 1:], sweep_id]


def watch(app: FastAPI, db: Database) -> asyncio.Task[Any]:
    """Start this process's watch; app.state.finished_sweeps is it."""
    app.state.finished_sweeps = FinishedSweeps(app, db)
    return asyncio.create_task(app.state.finished_sweeps.run())
