"""A chunk whose engine call raises, every time (BETASCOPE_FAULT_INJECT).

It is retried max_attempts times with backoff and then marked failed, with
the error shown by GET /sweeps/{id}; the sweep's other chunks finish. Once the
fault is gone, POST /sweeps/{id}/retry runs that one chunk again and nothing
else: the other runs keep their results and their computed_at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.helpers import all_runs, spec, submit
from tests.faults.stack import Stack

pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]

MAX_ATTEMPTS = 3


def test_a_failing_chunk_fails_alone_and_retry_reruns_only_it(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    fault = tmp_path / "fault"
    fault.write_text("explodes")
    stack = make_stack(fault_inject=str(fault), max_attempts=MAX_ATTEMPTS)
    client = stack.start_api()
    stack.start_worker()
    sweep = submit(client, spec("explodes in chunk 0", steps=3000, beta1=[0.0], batch_size=[1],
                                seed=[0, 1]))
    sweep_id = sweep["id"]
    assert sweep["n_chunks"] == 4

    failed = stack.wait_finished(sweep_id, timeout=180)
    assert failed["status"] == "failed", failed
    assert (failed["done_runs"], failed["failed_runs"]) == (6, 2), failed
    assert failed["chunks"] == {"done": 3, "failed": 1}, failed
    (error,) = failed["errors"]
    assert (error["seq"], error["status"], error["attempts"]) == (0, "failed", MAX_ATTEMPTS)
    assert f"attempt {MAX_ATTEMPTS}: RuntimeError: injected fault" in error["last_error"], error
    bad = error["chunk_id"]
    # bounded: exactly max_attempts tries, each one logged by the worker
    tries = re.findall(rb"chunk %d attempt (\d) failed" % bad, stack.workers[0].log())
    assert tries == [str(n).encode() for n in range(1, MAX_ATTEMPTS + 1)], stack.logs()

    before = {r["run_key"]: r["computed_at"] for r in all_runs(client, sweep_id)}
    assert len(before) == 6 and all(before.values())

    fault.unlink()
    resp = client.post(f"/api/v1/sweeps/{sweep_id}/retry")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] in ("queued", "running"), resp.json()
    done = stack.wait_finished(sweep_id, timeout=180)
    assert done["status"] == "done" and done["errors"] == [], done
    assert (done["done_runs"], done["failed_runs"]) == (8, 0), done
    stack.assert_one_result_per_run(done)

    after = {r["run_key"]: r["computed_at"] for r in all_runs(client, sweep_id)}
    assert len(after) == 8
    assert {k: after[k] for k in before} == before, "runs outside the failed chunk were redone"
    chunks = {c["id"]: c for c in stack.chunks(sweep_id)}
    assert chunks[bad]["status"] == "done" and chunks[bad]["attempts"] == 1, chunks[bad]
    assert stack.stored_counts() == {c: 1 for c in chunks}, stack.logs()
