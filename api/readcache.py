"""Finished sweeps' answers, kept as bytes per process and served without the framework.

A finished sweep's status, phase maps, boundary and runs pages never change
until it is retried or deleted, and both change its row (status and finish
time, or hidden): the same fact the ETags stand on (api.etag). So each API
process keeps the bytes of such answers, keyed by path and query string, with
the row they were made from. A read whose sweep row still says the same is
answered from them, or with 304 when If-None-Match names their ETag, without
routing, dependencies, a session, a thread hand-off or serialization: what it
costs is one primary-key lookup of the row, made on the event loop (SQLite: a
file in WAL mode, whose readers never wait for writers; Postgres: an
asynchronous psycopg connection of the process's own). The sweeps list is kept
the same way, keyed by its page's rows while every one of them is finished.

A queued or running sweep's answers (its status, progress and ETA, its maps as
chunks land) and a list page that holds one change all the time, so they are kept
for LIVE_SECONDS at most: many clients polling a running sweep cost one answer
made per half second, and what they see is at most that old (a change of status,
a cancel say, is seen at once: it changes the row). Everything else goes to the
app as before: hidden or missing sweeps, errors, other routes. An answer is kept
only when the row read before the app answered is the row read after it (finish
times only move forward, so nothing changed in between). When the lookup fails
(database unreachable, locked) the request goes to the app too, which answers it
or says 503, and lookups pause a while.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import make_url
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import answers, etag
from api.db.session import libpq_conninfo
from api.etag import FINISHED

log = logging.getLogger("betascope.api")

SWEEP_PATH = re.compile(r"^/api/v1/sweeps/([1-9][0-9]{0,9})(/phase-map|/boundary|/runs)?$")
LIST_PATH = "/api/v1/sweeps"
LIST_LIMIT = (1, 200, 50)  # the list route's bounds and default for ?limit=
CURSOR = re.compile(r"^[0-9]{1,18}$")
ENTRY_BYTES = 8 << 20  # larger answers are not kept (the maps' own cache still is)
CACHE_BYTES = 64 << 20  # kept per process, least recently used dropped first
PAUSE_SECONDS = 5.0  # lookups paused after one failed
LIVE_SECONDS = 0.5  # a running sweep's answers (and list pages holding one) kept this long
LOOKUP_TIMEOUT = 2.0  # seconds a Postgres lookup may take (statement_timeout)

Version = tuple[Any, ...]


@dataclass(frozen=True)
class Entry:
    version: Version
    headers: list[tuple[bytes, bytes]]
    body: bytes
    tag: str | None


class ReadCache:
    """Pure ASGI: answers GETs of finished sweeps from kept bytes; the rest passes through."""

    def __init__(self, app: ASGIApp, database_url: str):
        self.app = app
        self.rows = Rows(database_url)
        self.shared = answers.answers_for(self.rows)  # made once for all processes
        self.entries: OrderedDict[tuple[str, bytes], Entry] = OrderedDict()
        self.size = 0
        self._lock = threading.Lock()  # TestClient portals may share one app across loops
        # answers being made, by loop, key and version: one request makes each
        self._filling: dict[tuple[int, tuple[str, bytes], Version], asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing(send))
            return
        lookup = self._lookup(scope) if scope["type"] == "http" and scope["method"] == "GET" \
            else None
        if lookup is None:
            await self.app(scope, receive, send)
            return
        version = await self.rows.guarded(lookup)
        if version is None:  # hidden, not there, or the lookup failed
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope["query_string"])
        entry = self._get(key, version)
        flight = (id(asyncio.get_running_loop()), key, version)
        if entry is None and flight in self._filling:
            # the same answer is being made: wait for it rather than make it again
            await self._filling[flight].wait()
            entry = self._get(key, version)
        if entry is not None:
            await _answer(entry, scope, send)
            return
        done = self._filling.setdefault(flight, asyncio.Event())
        shared = self.shared
        claimed = None  # the sweep whose answer this process claimed, to make for all
        try:
            sweep_id = None if shared is None else shared_sweep(key, version)
            if shared is not None and sweep_id is not None:
                made = await shared.take(sweep_id, key, version)
                if isinstance(made, tuple):  # another process made it
                    entry = Entry(version, *made)
                    self._keep(key, entry)
                    await _answer(entry, scope, send)
                    return
                claimed = sweep_id if made == answers.MINE else None
            got = await _through(self.app, scope, receive, send)
            if got is None:
                return
            headers, body = got
            tag = _header(headers, b"etag")
            if key[0] != LIST_PATH and tag is None and not is_live(version):
                return  # the app did not see it finished
            if await self.rows.guarded(lookup) == version:
                entry = Entry(version, headers, body, tag)
                self._keep(key, entry)
                if shared is not None and claimed is not None:
                    await shared.put(claimed, key, version, (headers, body, tag))
                    claimed = None
        finally:
            if self._filling.get(flight) is done:
                del self._filling[flight]
                done.set()
            if shared is not None and claimed is not None:
                # not an answer to keep (an error, too large, the row moved): the next
                # reader makes it; a release cut short leaves a claim that expires
                await shared.release(claimed, key, version)

    def _get(self, key: tuple[str, bytes], version: Version) -> Entry | None:
        with self._lock:
            entry = self.entries.get(key)
            if entry is None or entry.version != version:
                return None
            self.entries.move_to_end(key)
            return entry

    def _closing(self, send: Send) -> Send:
        async def closing_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.rows.aclose()
            await send(message)
        return closing_send

    def _lookup(self, scope: Scope) -> Callable[[], Awaitable[Version | None]] | None:
        path = scope["path"]
        if path == LIST_PATH:
            page = _list_query(scope["query_string"])
            if page is None:
                return None
            return lambda: self.rows.page(*page)
        m = SWEEP_PATH.match(path)
        if m is None:
            return None
        sweep_id = int(m.group(1))
        return lambda: self.rows.sweep(sweep_id)

    def _keep(self, key: tuple[str, bytes], entry: Entry) -> None:
        n = len(entry.body) + len(key[0]) + len(key[1])
        with self._lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.size -= len(old.body) + len(key[0]) + len(key[1])
            self.entries[key] = entry
            self.size += n
            while self.size > CACHE_BYTES and len(self.entries) > 1:
                k, e = self.entries.popitem(last=False)
                self.size -= len(e.body) + len(k[0]) + len(k[1])


def _live_now() -> tuple[str, int]:
    """The version's part that ends a live answer's keeping after LIVE_SECONDS."""
    return ("live", int(time.monotonic() // LIVE_SECONDS))


def shared_sweep(key: tuple[str, bytes], version: Version) -> int | None:
    """The sweep id when this read's answer is made once for all processes
    (api.answers): a finished sweep's boundary, or a phase map over beta1 x beta2
    (so what is stored stays within a few bytes per cell of the sweep, whatever is
    asked: a map over other axes is made by each process that is asked for it)."""
    m = SWEEP_PATH.match(key[0])
    if m is None or m.group(2) not in answers.SHARED or is_live(version):
        return None
    if m.group(2) == "/phase-map":
        try:
            names = {k for k, _ in parse_qsl(key[1].decode("ascii"), keep_blank_values=True)}
        except UnicodeDecodeError:
            return None
        if names & {"x", "y"}:
            return None
    return int(m.group(1))


def is_live(version: Version) -> bool:
    return len(version) >= 2 and version[-2] == "live"


def _list_query(query: bytes) -> tuple[int, int | None] | None:
    """(limit, cursor) of a list query as the route reads it; None for anything else
    (the route answers it, 422 included)."""
    limit, cursor = LIST_LIMIT[2], None
    seen = set()
    try:
        pairs = parse_qsl(query.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return None
    for name, value in pairs:
        if name in seen:
            return None
        seen.add(name)
        if name == "limit" and value.isascii() and value.isdigit() \
                and LIST_LIMIT[0] <= int(value) <= LIST_LIMIT[1]:
            limit = int(value)
        elif name == "cursor" and CURSOR.match(value):
            cursor = int(value)
        else:
            return None
    return limit, cursor


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v.decode("latin-1")
    return None


async def _answer(entry: Entry, scope: Scope, send: Send) -> None:
    if entry.tag is not None:
        inm = None
        for k, v in scope["headers"]:
            if k == b"if-none-match":
                inm = v.decode("latin-1")
                break
        if etag.header_matches(inm, entry.tag):
            # as etag.not_modified answers it
            await send({"type": "http.response.start", "status": 304, "headers": [
                (b"etag", entry.tag.encode("latin-1")),
                (b"cache-control", etag.CACHE_CONTROL.encode())]})
            await send({"type": "http.response.body", "body": b""})
            return
    await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
    await send({"type": "http.response.body", "body": entry.body})


async def _through(app: ASGIApp, scope: Scope, receive: Receive, send: Send
                   ) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
    """Runs the app, passing its answer on; returns (headers, body) of a whole 200
    answer of at most ENTRY_BYTES, else None."""
    state: dict[str, Any] = {"ok": False, "parts": [], "size": 0, "done": False}

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            state["ok"] = message["status"] == 200
            state["headers"] = list(message.get("headers") or [])
        elif message["type"] == "http.response.body" and state["ok"]:
            body = message.get("body", b"")
            state["size"] += len(body)
            if state["size"] > ENTRY_BYTES:
                state["ok"], state["parts"] = False, []
            else:
                state["parts"].append(body)
                state["done"] = not message.get("more_body", False)
        await send(message)

    await app(scope, receive, capture)
    if not (state["ok"] and state["done"]):
        return None
    return state["headers"], b"".join(state["parts"])


class Rows:
    """The rows answers are kept by, read on the event loop: a sweep's version while
    it is finished and visible, a list page's rows while all are finished."""

    SWEEP = "SELECT created_at, status, finished_at, n_chunks, hidden FROM sweep WHERE id = %s"
    PAGE = ("SELECT id, created_at, status, finished_at FROM sweep WHERE NOT hidden{} "
            "ORDER BY id DESC LIMIT %s")

    def __init__(self, database_url: str):
        url = make_url(database_url)
        self.sqlite = url.get_backend_name() == "sqlite"
        self.path = url.database if self.sqlite else None
        self.conninfo = libpq_conninfo(database_url)
        self.off = self.sqlite and self.path in (None, "", ":memory:")
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None
        self._pg_loop: asyncio.AbstractEventLoop | None = None
        self._paused_until = 0.0
        # Postgres: lookups waiting for the next query of their key, and its drainer
        self._waiting: dict[tuple[Any, ...], list[asyncio.Future[list[Any]]]] = {}
        self._draining: dict[tuple[Any, ...], asyncio.Task[None]] = {}

    async def guarded(self, lookup: Callable[[], Awaitable[Version | None]]) -> Version | None:
        """lookup(), or None when it fails (and lookups pause for PAUSE_SECONDS)."""
        if self.off or time.monotonic() < self._paused_until:
            return None
        try:
            return await lookup()
        except Exception as exc:  # the app answers instead (or says 503)
            log.info("read cache: row lookup failed (%r); pausing it %g s", exc, PAUSE_SECONDS)
            self._paused_until = time.monotonic() + PAUSE_SECONDS
            self.close()
            return None

    async def sweep(self, sweep_id: int) -> Version | None:
        rows = await self._shared(("sweep", sweep_id), self.SWEEP, (sweep_id,))
        if not rows:
            return None
        created, status, finished, n_chunks, hidden = rows[0]
        if hidden:
            return None
        live = () if status in FINISHED else _live_now()
        return (created, status, finished, n_chunks, *live)

    async def page(self, limit: int, cursor: int | None) -> Version | None:
        q = self.PAGE.format(" AND id < %s" if cursor is not None else "")
        args = (cursor, limit + 1) if cursor is not None else (limit + 1,)
        rows = await self._shared(("page", limit, cursor), q, args)
        live = _live_now() if any(r[2] not in FINISHED for r in rows[:limit]) else ()
        # the row past the page only decides next_cursor
        return (*(tuple(r) for r in rows[:limit]), len(rows) > limit, *live)

    async def _shared(self, key: tuple[Any, ...], sql: str, args: tuple[Any, ...]
                      ) -> list[Any]:
        """_query(sql, args). On Postgres the lookups of one key waiting at once share
        one query, sent after every one of them began: a query in flight when a
        lookup begins does not answer it (it may predate a change its client saw)."""
        if self.sqlite:  # a lookup is microseconds, and never leaves the loop
            return await self._query(sql, args)
        loop = asyncio.get_running_loop()
        key = (id(loop), *key)
        fut: asyncio.Future[list[Any]] = loop.create_future()
        self._waiting.setdefault(key, []).append(fut)
        if key not in self._draining:
            task = loop.create_task(self._drain(key, sql, args))
            self._draining[key] = task
        return await fut

    async def _drain(self, key: tuple[Any, ...], sql: str, args: tuple[Any, ...]) -> None:
        try:
            while batch := self._waiting.pop(key, None):
                try:
                    rows = await self._query(sql, args)
                except Exception as exc:
                    for f in batch:
                        if not f.done():
                            f.set_exception(exc)
                else:
                    for f in batch:
                        if not f.done():
                            f.set_result(rows)
        finally:
            del self._draining[key]

    async def query(self, sql: str, args: tuple[Any, ...], binary: bool = False) -> list[Any]:
        """One statement on this process's lookup connection (api.answers); binary:
        results in Postgres's binary format (a bytea as its bytes, not hex text)."""
        return await self._query(sql, args, binary)

    async def _query(self, sql: str, args: tuple[Any, ...], binary: bool = False) -> list[Any]:
        if self.sqlite:
            if self._sqlite is None:
                # autocommit: every lookup reads the latest committed state; read-only,
                # and never waiting long (WAL readers do not wait for writers)
                conn = sqlite3.connect(self.path or "", timeout=0.2, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA query_only=ON")
                self._sqlite = conn
            return self._sqlite.execute(sql.replace("%s", "?"), args).fetchall()
        loop = asyncio.get_running_loop()
        if self._pg is None or self._pg_loop is not loop or self._pg.closed:
            import psycopg

            self._pg = await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=True, connect_timeout=int(LOOKUP_TIMEOUT) + 1)
            await self._pg.execute(f"SET statement_timeout = {int(LOOKUP_TIMEOUT * 1000)}")
            # what this connection writes is api.answers' rows, answers that a crash
            # may lose (they are made again): no wait for the log's flush at commit
            await self._pg.execute("SET synchronous_commit = off")
            self._pg_loop = loop
        cur = await self._pg.execute(sql, args, binary=binary)
        return list(await cur.fetchall())

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        self._sqlite = None
        self._pg = None  # dropped after a failure: closing it needs its loop

    async def aclose(self) -> None:
        """At shutdown: the connection closed on the loop it was made on."""
        pg, same_loop = self._pg, self._pg_loop is asyncio.get_running_loop()
        self.close()
        if pg is not None and same_loop and not pg.closed:
            await pg.close()
