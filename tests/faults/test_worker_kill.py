"""Workers killed with SIGKILL in the middle of chunks, again and again.

Each round starts a fresh worker, waits until it is computing a chunk (a lease
this test has not seen, with progress written by its heartbeat), and kills its
whole process group: no handler runs, the message stays unacked, the lease is
left to expire. The reconciler in the API process must queue the chunk again.
At the end one last worker finishes the sweep, and the database must hold
exactly one result per run, every chunk stored exactly once, and no chunk
claimed more often than it was killed plus the claim that finished it.

CI runs KILLS = 3; BETASCOPE_FAULT_FULL=1 runs the full ten.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.api.helpers import spec, submit
from tests.faults.stack import Stack

pytestmark = [pytest.mark.services, pytest.mark.timeout(900)]

FULL = os.environ.get("BETASCOPE_FAULT_FULL") == "1"
KILLS = 10 if FULL else 3
# where in a chunk each kill lands (share of its steps), in turn
KILL_AT = (0.05, 0.4, 0.75)


def test_a_sweep_survives_workers_killed_mid_chunk(make_stack: Callable[..., Stack]) -> None:
    # every kill may land on the same chunk: lost workers do not use up the engine's
    # attempts (max_attempts stays at its default), only the larger max_worker_losses
    stack = make_stack()
    client = stack.start_api()
    # 12 runs in 6 chunks (each a cell: both seeds of one point) of a few seconds each
    # (one torch thread per worker does 2 runs x 12,000 steps in half a second)
    sweep = submit(client, spec("kill -9", steps=60_000, beta1=[0.0], batch_size=[1],
                                beta2={"log1m": [0.01, 1.0], "num": 6}, seed=[0, 1]))
    assert sweep["n_chunks"] == 6
    sweep_id = sweep["id"]

    killed: Counter[int] = Counter()  # chunk id -> times its worker died under it
    dead_leases: set[str] = set()
    deadline = time.monotonic() + 120 + 60 * KILLS
    rounds = 0
    while sum(killed.values()) < KILLS:
        assert time.monotonic() < deadline, f"only {killed} kills in time\n{stack.logs()}"
        worker = stack.start_worker()
        at = KILL_AT[rounds % len(KILL_AT)]
        rounds += 1

        def computing(at: float = at) -> dict[str, Any] | None:
            for c in stack.chunks(sweep_id):
                if c["status"] == "running" and c["lease_token"] not in dead_leases \
                        and c["progress"] >= at:
                    return c
            return None

        stack.wait(computing, 120, f"worker {rounds} to be {at:.0%} into a chunk", interval=0.05)
        worker.kill()
        # the chunks the dead worker held: normally the one seen, but it may have
        # finished that one and claimed the next in the meantime
        held = [c for c in stack.chunks(sweep_id)
                if c["status"] == "running" and c["lease_token"] not in (None, *dead_leases)]
        for c in held:
            killed[c["id"]] += 1
            dead_leases.add(c["lease_token"])

    stack.start_worker()
    done = stack.wait_finished(sweep_id, timeout=240)
    assert done["status"] == "done", done
    assert done["done_runs"] == done["total_runs"] == 12 and done["failed_runs"] == 0
    stack.assert_one_result_per_run(done)

    chunks = stack.chunks(sweep_id)
    # computed no more than needed: each chunk's results were written once, and
    # each chunk was claimed once per worker killed under it, plus once to finish
    assert stack.stored_counts() == {c["id"]: 1 for c in chunks}, stack.stored_counts()
    attempts = {c["id"]: c["attempts"] for c in chunks}
    assert attempts == {c["id"]: 1 + killed[c["id"]] for c in chunks}, (attempts, killed)
    assert sum(attempts.values()) == len(chunks) + sum(killed.values())
    assert all(c["status"] == "done" and c["lease_token"] is None for c in chunks)
