"""The allocator policy of betascope's own processes (api/memory.py): freed
multi-megabyte arrays are reused, not faulted in afresh for every chunk or piece."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or "libc.so" not in (ctypes.util.find_library("c") or ""),
    reason="glibc's malloc only")

# page faults of 40 rounds of a 50,000-run piece's short-lived arrays (2.4 MB grids
# made and dropped, as runs_at and the exports do), after `setup`
PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    {setup}
    flat = np.arange(50_000, 100_000)
    def piece():
        return np.stack(np.unravel_index(flat, (500, 500, 4, 1, 1, 1)), axis=1).sum()
    piece()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(40):
        piece()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(setup: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], check=True,
                         capture_output=True, text=True, timeout=120)
    return int(out.stdout.strip())


def test_processes_reuse_freed_memory() -> None:
    # glibc's default: each round's arrays are fresh pages (a few thousand faults)
    default = _faults("")
    assert default > 40 * 500
    for setup in ("from api import memory; memory.keep_freed_memory()",
                  "from api import memory; memory.configure()",  # every API process
                  "from workers.warmup import settle_heap; settle_heap()"):  # engines
        kept = _faults(setup)
        assert kept < default / 20, (setup, kept, default)
