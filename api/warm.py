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
  there is no sweep but the list);
- FastAPI's routing of each route, built on the route's first request (its
  dependencies and parameters analysed, on the event loop): 14 ms for the first
  phase map, 25 ms for the first status, in a process started before the sweep
  existed. Every GET route of a sweep is asked once for a sweep that does not
  exist (a 404 after routing, dependencies and the sweep's lookup). Without it,
  with four API processes on two cores, each process built its routes in the
  first burst of reads of a sweep created after the server started, and the
  requests in flight waited for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI

from api.deps import MAX_ID

log = logging.getLogger("betascope.api")
IN_PROCESS = "betascope.in_process"  # the scope extension that marks get()'s requests


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


def api_routes(app: FastAPI) -> list[tuple[str, Any]]:
    """(full path, route) of the app's API routes, in the routers it includes too."""
    from fastapi import routing

    out: list[tuple[str, Any]] = []
    routes: list[tuple[str, Any]] = [("", r) for r in app.routes]
    while routes:
        prefix, route = routes.pop()
        if isinstance(route, routing.APIRoute):
            out.append((prefix + route.path, route))
        included = getattr(route, "original_router", None)  # an included router
        if included is not None:
            # a route's path holds its own router's prefix; the context, those above it
            above = getattr(getattr(route, "include_context", None), "prefix", prefix)
            routes += [(above, r) for r in included.routes]
    return out


def api_endpoints(app: FastAPI) -> list[Any]:
    """The functions behind the app's API routes."""
    return [route.dependant.call or route.endpoint for _, route in api_routes(app)]


def sweep_read_paths(app: FastAPI) -> list[str]:
    """The paths of the app's GET routes of one sweep (/api/v1/sweeps/{sweep_id}...)."""
    return sorted({path for path, route in api_routes(app)
                   if "GET" in route.methods and "/sweeps/{sweep_id}" in path})


def absent_reads(app: FastAPI) -> list[str]:
    """sweep_read_paths for the last id there can be: ids count up from 1, so it names
    no sweep (one created meanwhile would be read, and its export streamed)."""
    return [path.replace("{sweep_id}", str(MAX_ID)).replace("{run_key}", "0" * 16)
            for path in sweep_read_paths(app)]


async def warm_reads(app: FastAPI) -> list[tuple[str, int]]:
    """The sweeps list, then the newest sweep's status and first runs page, then every
    GET route of a sweep for one that does not exist (404), asked
    of the application in-process (its middleware, routing, the database and the
    serializers used once); returns (path, status) of each. Failures are only
    logged: a database still down at start is the first real request's to report."""
    asked: list[tuple[str, int]] = []
    try:
        status, body = await get(app, "/api/v1/sweeps", b"limit=20")
        asked.append(("/api/v1/sweeps", status))
        items = json.loads(body).get("items", []) if status == 200 else []
        if items:
            path = f"/api/v1/sweeps/{int(items[0]['id'])}"
            for read, query in ((path, b""), (f"{path}/runs", b"limit=50")):
                asked.append((read, (await get(app, read, query))[0]))
        for read in absent_reads(app):
            asked.append((read, (await get(app, read))[0]))
    except Exception as exc:
        log.info("warming the read paths stopped: %r", exc)
    return asked


async def get(app: FastAPI, path: str, query: bytes = b"") -> tuple[int, bytes]:
    """One GET through the whole application, as from a loopback client (no socket)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 80),
             "extensions": {IN_PROCESS: {}}}
    status, body = 0, bytearray()

    received = False

    async def receive() -> dict[str, Any]:
        # the request, then the client gone: an answer that streams until the client
        # leaves (or listens for it) ends, rather than wait or spin on requests
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(body)
