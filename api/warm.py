"""What a new API process does before its first requests: load what reading results
needs, while the server is idle, so that no user's read pays for it.

Measured on the 2-core machine, a fresh process's first reads of a finished
100,000-run sweep on Postgres cost 45 ms (status), 15 ms (list), 110-170 ms (the
first phase map) and 45-65 ms (a runs page), against 2-10 ms each from then on.
With `betascope serve --workers 4` every process paid that once, and the requests
queued behind those first reads made the p95 at 50 in flight 190 ms. What those
first reads paid for, and what is now done at start:

- importing Arrow's compute and Parquet modules, pandas (which pyarrow loads on
  its first conversion) and the CSV writer's numba functions (about a second);
- Arrow's IPC reader and its LZ4 codec, first used by a record's decoding: 290 of
  the 310 ms the first cells of a sweep took (columnar.warm_up encodes and decodes
  a record of each kind; engine processes do the same for their first store);
- FastAPI's first call of each endpoint reads and tokenizes the endpoint's source
  file (for its error reports), on the event loop: about 3 ms per route, every
  request in flight waiting;
- the database connection, and SQLAlchemy's compiling of the statements reads use:
  the sweeps list, a sweep's status and a runs page of the newest sweep are asked
  for through the application itself, as a client would (nothing is asked when
  there is no sweep but the list).
"""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI

log = logging.getLogger("betascope.api")


def preload_readers(app: FastAPI) -> None:
    """The imports, codecs and endpoint contexts above (run in a thread at start)."""
    try:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        import experiments.analysis  # noqa: F401
        import experiments.export
        from api.db import columnar

        pa.array(np.zeros(1)).to_numpy()
        experiments.export.load_kernels()
        columnar.warm_up()
        _endpoint_contexts(app)
    except Exception:  # only a warm-up: the first request loads what is missing
        log.exception("preloading the readers failed")
    from workers.warmup import settle_heap

    settle_heap()  # what the server loaded stays: full collections need not walk it


def _endpoint_contexts(app: FastAPI) -> None:
    from fastapi import routing

    extract = getattr(routing, "_extract_endpoint_context", None)  # FastAPI >= 0.120
    if extract is not None:
        for endpoint in api_endpoints(app):
            extract(endpoint)


def api_endpoints(app: FastAPI) -> list[Any]:
    """The functions behind the app's API routes, in the routers it includes too."""
    from fastapi import routing

    out, routes = [], list(app.routes)
    while routes:
        route = routes.pop()
        if isinstance(route, routing.APIRoute):
            out.append(route.dependant.call or route.endpoint)
        included = getattr(route, "original_router", None)  # an included router
        if included is not None:
            routes += included.routes
    return out


async def warm_reads(app: FastAPI) -> list[tuple[str, int]]:
    """The sweeps list, then the newest sweep's status and first runs page, asked of
    the application in-process (its middleware, the database and the serializers
    used once); returns (path, status) of each. Failures are only logged: a
    database still down at start is the first real request's to report."""
    asked: list[tuple[str, int]] = []
    try:
        status, body = await _get(app, "/api/v1/sweeps", b"limit=20")
        asked.append(("/api/v1/sweeps", status))
        items = json.loads(body).get("items", []) if status == 200 else []
        if items:
            path = f"/api/v1/sweeps/{int(items[0]['id'])}"
            for read, query in ((path, b""), (f"{path}/runs", b"limit=50")):
                asked.append((read, (await _get(app, read, query))[0]))
    except Exception as exc:
        log.info("warming the read paths stopped: %r", exc)
    return asked


async def _get(app: FastAPI, path: str, query: bytes = b"") -> tuple[int, bytes]:
    """One GET through the whole application, as from a loopback client (no socket)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 80)}
    status, body = 0, bytearray()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(body)
