"""Engine processes load the fused kernel (and the store's record codecs) when they
start, not in their first chunk.

A Celery prefork child warms up in worker_process_init, a solo or threads
worker before it starts consuming, the embedded engine process in its
initializer (experiments/warmup.py says what that costs and does). Off with
BETASCOPE_ENGINE_WARMUP=false. A GPU worker skips it: its fused kernel is
compiled for the GPU at its first fused chunk.
"""

from __future__ import annotations

import gc
import logging

from api import memory
from api.settings import Settings

log = logging.getLogger("betascope.worker")


def warm_engine(settings: Settings) -> None:
    if not settings.engine_warmup:
        return
    try:  # the store's record codecs, whatever the device (api.db.columnar.warm_up)
        from api.db import columnar

        columnar.warm_up()
    except Exception:
        log.exception("loading the record codecs failed")
    if settings.device.startswith("cuda"):
        return
    if settings.device == "auto":
        import torch

        if torch.cuda.is_available():
            return
    from experiments.warmup import warm

    try:
        took = warm()
    except Exception:  # a warm-up that fails costs the first chunk its load, nothing more
        log.exception("engine warm-up failed")
        return
    if took:
        log.info("engine warm: fused kernel loaded in %.2f s (%s)", sum(took.values()),
                 ", ".join(f"{k} {v:.2f} s" for k, v in took.items()))


def settle_heap() -> None:
    """Move everything allocated so far (torch, numba, SQLAlchemy, the kernels: a quarter
    of a million objects) out of the cyclic garbage collector's reach. Those objects
    live as long as the process; without this every full collection walks them all,
    and a chunk's store set off collections that took a quarter of its time (perf,
    2-core machine). Call once the process has loaded what it keeps. From then on
    malloc keeps what it frees for the next chunk's arrays (api.memory)."""
    gc.collect()
    gc.freeze()
    memory.keep_freed_memory()
