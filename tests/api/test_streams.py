"""Exports' bodies are made ahead of the socket (api/streams.py): the next piece is
made while this one is sent, never more than DEPTH pieces wait, an error reaches the
response, and a client that goes away stops the making and closes the iterator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from api.streams import DEPTH, made_ahead


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
        assert await _wait(pieces.started[0])
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert pieces.closed.wait(5)
