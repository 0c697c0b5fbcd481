"""Shared test switches.

Tests that need a real service call `need(...)`: without the service they skip
on a developer's machine, and fail under BETASCOPE_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REQUIRE_SERVICES = os.environ.get("BETASCOPE_REQUIRE_SERVICES") == "1"
ARTIFACTS = Path(os.environ.get("BETASCOPE_ARTIFACTS", "artifacts"))
# the servers and workers tests start load the fused kernel on its first use only
# (tests/workers/test_warmup.py turns the warm-up on); inherited by their processes
os.environ.setdefault("BETASCOPE_ENGINE_WARMUP", "false")


def need(ok: bool, what: str) -> None:
    """Skip (or fail under BETASCOPE_REQUIRE_SERVICES=1) when a service is missing."""
    if ok:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (BETASCOPE_REQUIRE_SERVICES=1) but unavailable")
    pytest.skip(f"{what} unavailable")
