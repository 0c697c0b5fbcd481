"""A bounded loopback load generator shared by tests/api/test_load.py and benchmarks/load.py.

Reads of a finished sweep (status, the sweeps list, phase maps of varying slices,
a runs page) with a fixed number in flight, from one asyncio client run in a
fresh thread (so it works from inside any event loop, e.g. after playwright
tests in the same session). Conditional reads send back the ETag of an earlier
answer and expect 304.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

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


async def timed(http: httpx.AsyncClient, route: str, url: str, **kw: Any) -> Result:
    t0 = time.perf_counter()
    for attempt in range(2):
        try:
            resp = await http.get(url, **kw)
            code = resp.status_code
            await resp.aclose()
            break
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            # a kept-alive connection the server closed as it was reused: sent again
            # once, as browsers do for a GET; counted, and a second failure is an error
            print(f"{route} {url}: {exc!r}, attempt {attempt + 1}", file=sys.stderr)
            RETRIED.append(route)
            code = 599
        except httpx.HTTPError as exc:  # a timeout counts as an error, like a 5xx
            print(f"{route} {url}: {exc!r}", file=sys.stderr)
            code = 599
            break
    return route, time.perf_counter() - t0, code


def read_jobs(http: httpx.AsyncClient, sweep_id: int, spec: dict[str, Any], n: int,
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


async def collect_etags(http: httpx.AsyncClient, sweep_id: int, spec: dict[str, Any]
                        ) -> dict[str, str]:
    """The ETag of every URL read_jobs may ask for (those that send one)."""
    urls = [f"/api/v1/sweeps/{sweep_id}"]
    for metric in ["outcome", "diverged_frac", "converged_frac", "final_rel", "div_step"]:
        for b in spec["grid"]["batch_size"]:
            urls.append(str(httpx.URL(f"/api/v1/sweeps/{sweep_id}/phase-map",
                                      params={"metric": metric, "batch_size": b})))
    out = {}
    for url in urls:
        resp = await http.get(url)
        if "etag" in resp.headers:
            out[url] = resp.headers["etag"]
    return out


def client(base: str, in_flight: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    return httpx.AsyncClient(base_url=base, timeout=60, limits=limits)


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
