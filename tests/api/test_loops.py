"""API processes sharing one listening socket take a few connections per turn of
their loop (api/loops.py), not every connection waiting: a burst of clients is
spread over the processes instead of landing on whichever woke first."""

from __future__ import annotations

import asyncio
import socket

from api.loops import ACCEPT_PER_TURN, FairAcceptLoop


def test_a_turn_accepts_at_most_a_few_of_the_waiting_connections() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(7)]
    loop = FairAcceptLoop()
    try:
        made: list[asyncio.BaseProtocol] = []

        def factory() -> asyncio.Protocol:
            made.append(asyncio.Protocol())
            return made[-1]

        loop._accept_connection(factory, listener, backlog=2048)  # one readable turn
        left = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                break
            conn.close()
            left += 1
        assert left == 7 - ACCEPT_PER_TURN  # the rest wait for the next turn, anyone's
        loop.run_until_complete(asyncio.sleep(0.05))
        assert len(made) == ACCEPT_PER_TURN
    finally:
        for c in clients:
            c.close()
        listener.close()
        loop.close()
