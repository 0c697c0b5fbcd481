"""Finished sweeps' phase maps and boundary, made by one API process for all of them.

On Postgres, `betascope serve --workers N` runs N API processes on one
database. Each keeps the answers it made (api.readcache), but before this each
also made every one of them once: a finished 10^5-run sweep's twenty map slices
and its boundary, after assembling the sweep's cells from its chunks' records,
four times over with four processes, all at the moment a dashboard opened it.

So the first process to need such an answer claims it (a row of `answer`
without a body, api.db.models.Answer), makes it and stores its bytes there; a
process needing it meanwhile waits for those bytes (reading the row after 5 ms,
10 ms, then every 20 ms) rather than making it too, unless it holds the sweep's
cells already (a map is then a few ms to make: it makes it); a process needing
it later reads it in one query. The row names the sweep row's
state the answer was made from (status, finish time, chunks: what the ETags
stand on), so a retried sweep's new answers replace it; rows go with their
sweep. A claim older than CLAIM_SECONDS (its maker died, or takes that long) is
taken over, and a process that waited that long makes the answer itself. Every
query runs on the read cache's own asynchronous connection, on the event loop;
when one fails, the process makes its answers itself for PAUSE_SECONDS, as it
would with one process.

Only the boundary and phase maps over beta1 x beta2 are shared: they are what
costs a process its first reads of a sweep (the cells assembled, then a few ms a
slice), and all of them together take a few bytes per cell of the sweep, far less
than its results, whatever a client asks for (maps over other axis pairs would
multiply that by the number of pairs). Status, list and runs pages (keyed by
cursors without end) are made by each process, at a few ms each. SQLite serves
one process, which keeps its own answers: there the table stays empty.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from api import etag

if TYPE_CHECKING:
    from api.readcache import Rows

Made = tuple[list[tuple[bytes, bytes]], bytes, str | None]  # (headers, body, ETag)

log = logging.getLogger("betascope.api")

CLAIM_SECONDS = 5.0  # a claim this old is taken over; a waiter waits this long at most
POLL_SECONDS = (0.005, 0.02)  # a waiter reads the row after 5 ms, then 10, then every 20
PAUSE_SECONDS = 5.0  # after a failed query, answers are made here alone this long
SHARED = ("/phase-map", "/boundary")
MINE = "mine"  # take(): this process claimed the answer, and makes it

GET = ("SELECT version, tag, headers, body, "
       "claimed_at > clock_timestamp() - make_interval(secs => %s) "
       "FROM answer WHERE sweep_id = %s AND key = %s")
CLAIM = ("INSERT INTO answer (sweep_id, key, version, claimed_at) "
         "VALUES (%s, %s, %s, clock_timestamp()) "
         "ON CONFLICT (sweep_id, key) DO UPDATE SET version = excluded.version, "
         "claimed_at = excluded.claimed_at, tag = NULL, headers = NULL, body = NULL "
         "WHERE answer.version <> excluded.version OR (answer.body IS NULL AND "
         "answer.claimed_at <= clock_timestamp() - make_interval(secs => %s)) RETURNING 1")
# the body goes (psycopg sends bytes so anyway) and comes back (GET, binary=True) in
# Postgres's binary format: as text a bytea is hex, twice its size to encode, send and
# parse; the column is stored uncompressed (migration
# 20261207_answer_storage: pglz took 4.6 ms of the server's CPU per 50 kB map)
PUT = ("UPDATE answer SET tag = %s, headers = %s, body = %b "
       "WHERE sweep_id = %s AND key = %s AND version = %s RETURNING 1")
RELEASE = ("DELETE FROM answer WHERE sweep_id = %s AND key = %s AND version = %s "
           "AND body IS NULL RETURNING 1")


class Answers:
    """The `answer` rows of one database, read and written on `rows`' connection."""

    def __init__(self, rows: Rows):
        self.rows = rows
        self._paused_until = 0.0

    async def take(self, sweep_id: int, key: tuple[str, bytes], version: tuple[Any, ...]
                   ) -> Made | str | None:
        """Another process's answer (waiting while one makes it), MINE when this process
        claimed it, or None: make it here, unclaimed."""
        if time.monotonic() < self._paused_until:
            return None
        from api.services.cells import assembled

        # with the sweep's cells here a map is a few ms to make: quicker than waiting
        patient = not assembled(sweep_id, version[0])
        name, state = _name(key), _state(version)
        deadline, wait = time.monotonic() + CLAIM_SECONDS, POLL_SECONDS[0]
        try:
            while True:
                rows = await self.rows.query(GET, (CLAIM_SECONDS, sweep_id, name), binary=True)
                if rows:
                    made_for, tag, headers, body, fresh = rows[0]
                    if made_for == state and body is not None:
                        pairs = [(k.encode("latin-1"), v.encode("latin-1"))
                                 for k, v in json.loads(headers)]
                        return pairs, bytes(body), tag
                    if made_for == state and fresh:
                        if not patient or time.monotonic() > deadline:
                            return None
                        await asyncio.sleep(wait)
                        wait = min(2 * wait, POLL_SECONDS[1])
                        continue
                if await self.rows.query(CLAIM, (sweep_id, name, state, CLAIM_SECONDS)):
                    return MINE
                # claimed by another process between the two queries: wait for it
        except Exception as exc:
            self._failed("reading", exc)
            return None

    async def put(self, sweep_id: int, key: tuple[str, bytes], version: tuple[Any, ...],
                  made: Made) -> None:
        """Store the bytes of an answer this process claimed and made."""
        headers, body, tag = made
        pairs = json.dumps([(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers])
        try:
            await self.rows.query(PUT, (tag, pairs, body, sweep_id, _name(key), _state(version)))
        except Exception as exc:
            self._failed("storing", exc)

    async def release(self, sweep_id: int, key: tuple[str, bytes], version: tuple[Any, ...]
                      ) -> None:
        """Give up a claim (the answer was not one to keep): the next reader makes it."""
        try:
            await self.rows.query(RELEASE, (sweep_id, _name(key), _state(version)))
        except Exception as exc:
            self._failed("releasing", exc)

    def _failed(self, doing: str, exc: Exception) -> None:
        log.info("shared answers: %s failed (%r); made here alone for %g s", doing, exc,
                 PAUSE_SECONDS)
        self._paused_until = time.monotonic() + PAUSE_SECONDS


def _name(key: tuple[str, bytes]) -> str:
    """The row's key: a digest of path and query (queries can be long)."""
    return hashlib.blake2b(key[0].encode() + b"?" + key[1], digest_size=16).hexdigest()


def _state(version: tuple[Any, ...]) -> str:
    """The sweep row's state as text, with the server's version: an upgraded server
    does not answer with what an older one made."""
    return repr((etag.VERSION, *version))


def answers_for(rows: Rows) -> Answers | None:
    """Shared answers where several processes may serve the database: Postgres."""
    return None if rows.sqlite or rows.off else Answers(rows)
