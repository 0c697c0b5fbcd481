"""How many torch threads the engine uses, and how they wait.

torch's CPU kernels run on an OpenMP pool whose idle threads spin by default
(OMP_WAIT_POLICY=ACTIVE). On a machine whose cores are also busy with anything
else (the API, another worker, a second sweep) the spinning threads take the
cores the working ones need: a 10^6-run sweep on two threads beside one other
busy process took 9 to 58 s instead of 1.3 to 10.7 s with passive threads (two
cores, side by side; docs/performance.md). With passive waiting the engine can
use every core it is given without starving its neighbours, so the executor
no longer keeps a core back for the API. The policy is read once, when the
OpenMP runtime loads with torch: `passive_waits` must run before torch is
imported, so the worker command and the embedded executor call it first.
"""

from __future__ import annotations

import os
import sys
import threading

_configured = False


def passive_waits() -> None:
    """Idle OpenMP threads sleep instead of spinning (unless the environment says
    otherwise). Child processes inherit it."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def engine_threads(slots: int = 1) -> int:
    """Give each of `slots` engines in this machine's processes an equal share of the
    cores (OMP_NUM_THREADS, when set, wins); returns the thread count. Idempotent."""
    global _configured
    passive_waits()
    import torch

    if not _configured:
        if "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, slots)))
        _configured = True
    return int(torch.get_num_threads())


def yield_to_engine() -> None:
    """Lower the calling thread's scheduling priority to nice 19 (Linux, where a thread
    has its own), for work that runs beside the engine: storing the last chunk, merging
    cells for a watched map.

    The engine computes a chunk on every core. Work at equal priority takes a core
    from one of the fused kernel's threads, and its parallel loop then waits for its
    slowest thread: chunks computed beside a store took 40-150 ms instead of 25-35
    (2-core machine). Behind the engine such work runs in the time the engine leaves
    a core idle (its single-threaded set-up and classification)."""
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:  # not allowed here: the thread keeps the process's priority
            pass
