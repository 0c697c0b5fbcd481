"""The API processes' event loop: a few connections accepted per turn of the loop.

`betascope serve --workers N` runs N processes on one listening socket. asyncio
accepts every connection waiting on a listening socket each time it is readable
(up to the listen backlog, 2,048 with uvicorn), so the process that wakes first
takes a whole burst: with four processes and 50 clients connecting at once, one
process took 37–41 of the connections (`ss -tnp`), and with keep-alive it then
served that share of every request on one core while the others idled. Taking
ACCEPT_PER_TURN per turn leaves the rest to whichever process turns next: an idle
process turns quickly and takes more, a busy one takes fewer.
"""

from __future__ import annotations

import asyncio
from typing import Any

ACCEPT_PER_TURN = 2


class FairAcceptLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop, accepting at most ACCEPT_PER_TURN connections a turn
    (uvicorn's `loop=` setting takes this class as the loop factory)."""

    def _accept_connection(self, protocol_factory: Any, sock: Any, sslcontext: Any = None,
                           server: Any = None, backlog: int = 100, *args: Any,
                           **kwargs: Any) -> None:
        super()._accept_connection(  # type: ignore[misc]
            protocol_factory, sock, sslcontext, server, min(backlog, ACCEPT_PER_TURN),
            *args, **kwargs)
