"""A new API process loads what reads need before its first request (api/warm.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from api import warm
from tests.api.helpers import spec, submit, wait_status


def test_warm_reads_go_through_the_whole_app(make_client: Any) -> None:
    """The warm-up's reads pass the Host check and the routes: 200s, not a 400 that
    would leave every path cold; the newest sweep's status and runs are read."""
    client = make_client()
    assert client.portal.call(warm.warm_reads, client.app)[0] == ("/api/v1/sweeps", 200)
    sweep = submit(client, spec("warm"))
    wait_status(client, sweep["id"], "done")
    path = f"/api/v1/sweeps/{sweep['id']}"
    assert client.portal.call(warm.warm_reads, client.app) == [
        ("/api/v1/sweeps", 200), (path, 200), (f"{path}/runs", 200)]


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
