"""Fault tests: each test gets its own Postgres cluster, Redis server, API server
and workers (tests/faults/stack.py), so it may kill or stop any of them."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.faults.servers import postgres_available, redis_available
from tests.faults.stack import Stack


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Stack factory; every stack it made is torn down after the test, pass or fail."""
    need(postgres_available(), "PostgreSQL binaries (initdb, pg_ctl)")
    need(redis_available(), "redis-server")
    need(importlib.util.find_spec("celery") is not None, "celery")
    stacks: list[Stack] = []

    def make(**overrides: Any) -> Stack:
        stack = Stack(tmp_path, **overrides)
        stacks.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in stacks:
            stack.close()
