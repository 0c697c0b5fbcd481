"""A bounded loopback load generator shared by tests/api/test_load.py and benchmarks/load.py.

Reads of a finished sweep (status, the sweeps list, phase maps of varying slices,
a runs page) with a fixed number in flight, from one asyncio client run in a
fresh thread (so it works from inside any event loop, e.g. after playwright
tests in the same session). Conditional reads send back the ETag of an earlier
answer and expect 304.

The reads go through `Lean`, a few dozen lines of HTTP/1.1 over asyncio streams
(keep-alive, Content-Length or chunked bodies), not httpx: the generator shares
the machine's cores with the server, and httpx's client cost 4-5 ms of CPU a
request, five times what the server spends on a kept answer, so the latencies
measured were the client's more than the server's. Lean costs about a tenth.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np

T = TypeVar("T")
Result = tuple[str, float, int]  # (route, seconds, HTTP status)
RETRIED: list[str] = []  # GETs sent again after the server closed their connection


def run_in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run(make()) in a new thread: never 'called from a running event loop'."""
    box: dict[str, Any] = {}

    def main() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=main, name="betascope-load")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def bounded(jobs: list[Callable[[], Awaitable[T]]], limit: int, deadline: float
                  ) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.wait_for(asyncio.gather(*(one(j) for j in jobs)), deadline)


class Lean:
    """A minimal HTTP/1.1 client over keep-alive loopback connections (see above)."""

    def __init__(self, base: str, size: int):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._gate = asyncio.Semaphore(size)

    async def __aenter__(self) -> Lean:
        return self

    async def __aexit__(self, *_: Any) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None, body: Any = None
                      ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body)."""
        if params:
            path = f"{path}?{urlencode(params)}"
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        message = ("\r\n".join(head) + "\r\n\r\n").encode() + data
        async with self._gate:
            if self._idle:
                reader, writer = self._idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(message)
                status, got, payload, keep = await _response(reader)
            except BaseException:
                writer.close()
                raise
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return status, got, payload


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes, bool]:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        payload = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        payload = b"".join(parts)
    else:
        payload = b""
    return status, headers, payload, headers.get("connection", "").lower() != "close"


async def timed(http: Lean, route: str, url: str, **kw: Any) -> Result:
    t0 = time.perf_counter()
    for attempt in range(2):
        try:
            code = (await http.request("GET", url, **kw))[0]
            break
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # a kept-alive connection the server closed as it was reused: sent again
            # once, as browsers do for a GET; counted, and a second failure is an error
            print(f"{route} {url}: {exc!r}, attempt {attempt + 1}", file=sys.stderr)
            RETRIED.append(route)
            code = 599
        except OSError as exc:
            print(f"{route} {url}: {exc!r}", file=sys.stderr)
            code = 599
            break
    return route, time.perf_counter() - t0, code


def read_jobs(http: Lean, sweep_id: int, spec: dict[str, Any], n: int,
              etags: dict[str, str] | None = None, seed: int = 0
              ) -> list[Callable[[], Awaitable[Result]]]:
    """n reads of sweep_id spread over status, list, phase-map slices and a runs page;
    with etags ({url: etag}), each read whose URL has one is made conditional."""
    rng = random.Random(seed)
    base = f"/api/v1/sweeps/{sweep_id}"
    batches = spec["grid"]["batch_size"]
    metrics = ["outcome", "diverged_frac", "converged_frac", "final_rel", "div_step"]
    jobs = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            route, url, params = "status", base, None
        elif kind == 1:
            route, url, params = "list", "/api/v1/sweeps", {"limit": 20}
        elif kind == 2:
            route, url = "phase-map", f"{base}/phase-map"
            params = {"metric": rng.choice(metrics), "batch_size": rng.choice(batches)}
        else:
            route, url, params = "runs", f"{base}/runs", {"limit": 50}
        headers = {}
        full = str(httpx.URL(url, params=params))
        if etags is not None and full in etags:
            route, headers = f"{route} (If-None-Match)", {"If-None-Match": etags[full]}
        jobs.append(lambda r=route, u=url, p=params, h=headers: timed(
            http, r, u, params=p, headers=h))
    return jobs


async def collect_etags(http: Lean, sweep_id: int, spec: dict[str, Any]
                        ) -> dict[str, str]:
    """The ETag of every URL read_jobs may ask for (those that send one)."""
    urls = [f"/api/v1/sweeps/{sweep_id}"]
    for metric in ["outcome", "diverged_frac", "converged_frac", "final_rel", "div_step"]:
        for b in spec["grid"]["batch_size"]:
            urls.append(str(httpx.URL(f"/api/v1/sweeps/{sweep_id}/phase-map",
                                      params={"metric": metric, "batch_size": b})))
    out = {}
    for url in urls:
        _, headers, _ = await http.request("GET", url)
        if "etag" in headers:
            out[url] = headers["etag"]
    return out


def client(base: str, in_flight: int) -> Lean:
    return Lean(base, in_flight)


def table(results: list[Result]) -> str:
    """p50/p95/max per route, in ms, with the status codes seen."""
    by: dict[str, list[Result]] = {}
    for r in results:
        by.setdefault(r[0], []).append(r)
    lines = [f"{'route':28s} {'n':>5s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}  codes"]
    for route in sorted(by):
        ms = np.array([r[1] for r in by[route]]) * 1000
        codes = sorted({r[2] for r in by[route]})
        lines.append(f"{route:28s} {len(ms):5d} {np.percentile(ms, 50):8.1f} "
                     f"{np.percentile(ms, 95):8.1f} {ms.max():8.1f}  {codes}")
    if RETRIED:
        lines.append(f"({len(RETRIED)} GETs sent again: connection closed as it was reused)")
    return "\n".join(lines)


def percentile(results: list[Result], route: str, q: float) -> float:
    ms = [r[1] * 1000 for r in results if r[0] == route]
    return float(np.percentile(ms, q)) if ms else float("nan")
