"""Exports' bodies are made ahead of the socket (api/streams.py): the next piece is
made while this one is sent, never more than DEPTH pieces wait, an error reaches the
response, and a client that goes away stops the making and closes the iterator."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.streams import DEPTH, THREAD_NAME, made_ahead
from tests.api.helpers import spec
from tests.api.live import LiveServer
from tests.services import FAST, wait_for


class Pieces:
    """A blocking iterator of n pieces that records what was made and when it closed."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.started: list[threading.Event] = [threading.Event() for _ in range(n)]
        self.closed = threading.Event()
        self.thread: str | None = None
        self.closed_in: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            for i in range(self.n):
                self.started[i].set()
                self.thread = threading.current_thread().name
                if i == self.fail_at:
                    raise ValueError(f"piece {i} failed")
                yield b"%d" % i
        finally:
            self.closed_in = threading.current_thread().name
            self.closed.set()


async def _wait(event: threading.Event, seconds: float = 5.0) -> bool:
    return await asyncio.to_thread(event.wait, seconds)


def test_the_next_piece_is_made_while_this_one_is_sent_and_no_further() -> None:
    pieces = Pieces(8)

    async def main() -> list[bytes]:
        got = []
        body = made_ahead(iter(pieces))
        got.append(await anext(body))
        # while the first piece is "sent" (the consumer does not ask), the next is made
        assert await _wait(pieces.started[1])
        # ... but no more than DEPTH pieces wait beyond the one being made
        assert not await _wait(pieces.started[DEPTH + 2], 0.3)
        async for piece in body:
            got.append(piece)
        return got

    assert asyncio.run(main()) == [b"%d" % i for i in range(8)]
    assert pieces.closed.is_set() and pieces.thread == "betascope-stream"


def test_an_error_while_making_a_piece_reaches_the_response() -> None:
    pieces = Pieces(5, fail_at=3)

    async def main() -> list[bytes]:
        got = []
        async for piece in made_ahead(iter(pieces)):
            got.append(piece)
        return got

    with pytest.raises(ValueError, match="piece 3 failed"):
        asyncio.run(main())
    assert pieces.closed.wait(5)


def test_a_client_gone_stops_the_making_and_closes_the_iterator() -> None:
    pieces = Pieces(1000)

    async def main() -> None:
        body = made_ahead(iter(pieces))
        assert await anext(body) == b"0"
        # the thread has made the pieces it may and waits for room to hand them over
        assert await _wait(pieces.started[DEPTH + 1])
        await asyncio.sleep(0.2)
        await body.aclose()  # what the response does when the client disconnects

    asyncio.run(main())
    assert pieces.closed.wait(5)
    assert not pieces.started[DEPTH + 3].is_set()
    # closed where it ran (its database session is used from that thread only)
    assert pieces.closed_in == "betascope-stream"


def test_a_cancelled_response_also_closes_the_iterator() -> None:
    pieces = Pieces(1000)

    async def main() -> None:
        async def send_all() -> None:
            async for _ in made_ahead(iter(pieces)):
                await asyncio.sleep(10)  # a client that stopped reading

        task = asyncio.create_task(send_all())
        assert await _wait(pieces.started[DEPTH + 1])
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert pieces.closed.wait(5)


def _stream_threads(pid: int) -> int:
    """The process's threads named as made_ahead names its own, by the operating system
    (threads it starts, the export's readers, inherit the name)."""
    name = THREAD_NAME[:15]
    count = 0
    for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
        try:
            count += comm.read_text().strip() == name
        except OSError:  # the thread ended meanwhile
            pass
    return count


def _checkpoint(path: Path) -> int:
    """Write to the database, then checkpoint its whole log: 1 (busy) while a reader
    holds a transaction open, else 0."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=10)) as db:
        db.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        db.execute("INSERT INTO probe VALUES (1)")
        return int(db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_client_gone_mid_export_leaves_no_thread_behind(tmp_path: Path) -> None:
    """A real `betascope serve`: a client that reads the start of a 200,000-run CSV
    export (eight pieces) holds no read transaction open while it does not read, and
    when it hangs up leaves no export thread behind, no error in the server's log, and
    the server answering."""
    settings = dict(FAST, database_url=f"sqlite:///{tmp_path}/gone.db", max_runs=200_000,
                    chunk_runs=50_000)
    server = LiveServer(settings, tmp_path / "serve.log").wait_ready()
    try:
        doc = spec("export gone", steps=20, beta1={"start": 0.0, "stop": 0.99, "num": 250},
                   beta2={"log1m": [0.001, 1.0], "num": 200})
        sweep = httpx.post(f"{server.url}/api/v1/sweeps", json=doc, timeout=60).json()
        url = f"{server.url}/api/v1/sweeps/{sweep['id']}"
        wait_for(lambda: httpx.get(url, timeout=30).json()["status"] == "done", 240,
                 "the sweep to finish", interval=0.5)
        whole = httpx.get(f"{url}/export.csv", timeout=120)
        assert whole.content.count(b"\n") == 200_001
        wait_for(lambda: _stream_threads(server.proc.pid) == 0, 30, "the export to end")
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(f"GET /api/v1/sweeps/{sweep['id']}/export.csv HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\n\r\n".encode())
            got = b""
            while len(got) < 200_000:
                more = sock.recv(65536)
                assert more, f"the server closed the export after {len(got)} bytes"
                got += more
            assert got.startswith(b"HTTP/1.1 200")
            # the export's thread (waiting for room to send) and the readers it started
            assert _stream_threads(server.proc.pid) >= 1
            # and no read transaction stays open while the export waits on the client:
            # a write and a whole checkpoint of SQLite's log go through (the session that
            # found the sweep ends when the handler returns, not after the response)
            wait_for(lambda: _checkpoint(tmp_path / "gone.db") == 0, 15,
                     "a checkpoint while the export waits on the client", interval=0.5)
        wait_for(lambda: _stream_threads(server.proc.pid) == 0, 30,
                 "the export's thread to end", interval=0.2)
        assert httpx.get(url, timeout=30).status_code == 200
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]
