"""A new API process loads what reads need before its first request (api/warm.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from api import warm
from api.deps import MAX_ID
from tests.api.helpers import spec, submit, wait_status


def test_warm_reads_go_through_the_whole_app(make_client: Any) -> None:
    """The warm-up's reads pass the Host check and the routes: 200s, not a 400 that
    would leave every path cold; the newest sweep's status and runs are read, and
    every GET route of a sweep is routed once (a 404 for a sweep that is not there)."""
    client = make_client()
    routed = [(p, 404) for p in warm.absent_reads(client.app)]
    assert routed and all(str(MAX_ID) in p for p, _ in routed)
    first = client.portal.call(warm.warm_reads, client.app)  # Postgres: other tests' sweeps
    assert first[0] == ("/api/v1/sweeps", 200) and first[-len(routed):] == routed, first
    sweep = submit(client, spec("warm"))
    wait_status(client, sweep["id"], "done")
    path = f"/api/v1/sweeps/{sweep['id']}"
    assert client.portal.call(warm.warm_reads, client.app) == [
        ("/api/v1/sweeps", 200), (path, 200), (f"{path}/runs", 200), *routed]


def test_every_read_of_a_sweep_is_routed_ahead(client: Any) -> None:
    """What a dashboard reads of a sweep created after the server started: its status,
    maps, boundary, runs pages and one run, the exports, and its page."""
    got = set(warm.sweep_read_paths(client.app))
    base = "/api/v1/sweeps/{sweep_id}"
    assert {base, f"{base}/phase-map", f"{base}/boundary", f"{base}/runs",
            f"{base}/runs/{{run_key}}", f"{base}/export.csv", f"{base}/export.parquet",
            "/sweeps/{sweep_id}"} <= got, got
    assert all("{sweep_id}" in p for p in got)


def test_a_streamed_answer_ends_when_asked_in_process(client: Any) -> None:
    """A warm-up read of an export streams to its end: the request's receive says the
    client left once the request was read, so Starlette's wait for a disconnect
    neither spins nor waits (a receive always answering the request never suspended
    and held the event loop forever)."""
    sweep = submit(client, spec("warm export"))
    wait_status(client, sweep["id"], "done")
    path = f"/api/v1/sweeps/{sweep['id']}/export.csv"
    out: list[Any] = []
    reader = threading.Thread(target=lambda: out.append(asyncio.run(warm.get(client.app, path))),
                              daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "the in-process export did not end"
    assert out and out[0][0] == 200


def test_preload_readers_fills_what_first_reads_paid_for(
        make_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    from fastapi import routing

    client = make_client()
    with caplog.at_level(logging.ERROR, logger="betascope.api"):
        warm.preload_readers(client.app)
    assert not caplog.records, caplog.text
    cache = getattr(routing, "_endpoint_context_cache", None)
    if cache is not None:  # FastAPI's per-endpoint source lookup, done ahead
        endpoints = warm.api_endpoints(client.app)
        assert len(endpoints) > 20 and all(id(e) in cache for e in endpoints)
