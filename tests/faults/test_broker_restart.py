"""Redis restarts in the middle of a sweep and comes back empty.

The throwaway Redis keeps nothing on disk, so a restart loses every message
still queued: the worst case for the broker. The worker must reconnect by
itself and store the chunk it was computing; the reconciler must notice the
restart (a new Redis run_id) and send the lost chunks again at once, not
after BETASCOPE_REQUEUE_AFTER_SECONDS (300 s here, beyond the test's
deadline). A sweep submitted while Redis is down is accepted and runs once
it is back. Nothing may be computed twice: duplicate messages are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.api.helpers import spec, submit
from tests.faults.stack import Stack

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]


def test_a_sweep_survives_a_redis_restart(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    client = stack.start_api()
    worker = stack.start_worker()
    sweep = submit(client, spec("redis restart", steps=40_000, beta1=[0.0], batch_size=[1],
                                seed=[0, 1]))
    sweep_id = sweep["id"]
    assert sweep["n_chunks"] == 4

    stack.wait_mid_sweep(sweep_id)
    assert stack.redis is not None
    stack.redis.stop()
    try:
        ready = client.get("/api/v1/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["broker"].startswith("broker unreachable"), ready.text
        t0 = time.monotonic()
        meanwhile = submit(client, spec("sent while redis is down", steps=100, beta1=[0.0],
                                        batch_size=[1], seed=[0]))
        assert time.monotonic() - t0 < 20, "accepting a sweep must not wait for the broker"
        assert meanwhile["status"] == "queued"
        time.sleep(2)
    finally:
        stack.redis.start()

    done = stack.wait_finished(sweep_id, timeout=90)
    assert done["status"] == "done", done
    assert done["done_runs"] == done["total_runs"] == 8
    stack.assert_one_result_per_run(done)
    assert worker.alive() and len(stack.workers) == 1, "the same worker reconnects"
    assert client.get("/api/v1/readyz").status_code == 200
    assert stack.wait_finished(meanwhile["id"], timeout=60)["status"] == "done"
    # the sweep sent while Redis was down reached the worker: it reconnected (its
    # first chunks may have finished from messages it already held)
    assert worker.log().count(b"Connected to redis://") == 2, worker.tail()
    chunks = stack.chunks(sweep_id) + stack.chunks(meanwhile["id"])
    assert stack.stored_counts() == {c["id"]: 1 for c in chunks}, stack.logs()
    assert all(c["attempts"] == 1 for c in chunks), chunks
    # new work flows through the restarted broker
    after = submit(client, spec("after the restart", steps=100, beta1=[0.0], batch_size=[1],
                                seed=[0]))
    assert stack.wait_finished(after["id"], timeout=120)["status"] == "done"
