"""How betascope's processes use memory: freed blocks kept for reuse while work runs
(`keep_freed_memory`: every API, engine and worker process and the `betascope`
command), and given back after a large read in the API process (`release`).

A cold phase map or an export piece of a 10^6-run sweep builds tens of
megabytes of short-lived arrays. Arrow's pool (mimalloc) keeps what it freed
for reuse and glibc's malloc keeps freed heap, so without this the process
kept its largest working set for good, and the working sets of a map, a CSV
and a Parquet export stacked up (about 90 MB left after one 50,000-run CSV
piece; 20 MB after `release()`, side by side). Releasing costs about a
millisecond, so it runs after every piece.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

_libc: dict[str, Any] = {}
# glibc's mallopt parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
# freed blocks up to this size are kept for reuse, not unmapped (glibc's largest)
MMAP_THRESHOLD = 32 << 20
# free memory at the top of a heap beyond this goes back to the system at once (the
# most glibc's own dynamic threshold reaches: a 50,000-run piece's or chunk's arrays
# stay below it, and no heap keeps more than this free at its top between releases)
TRIM_THRESHOLD = 64 << 20


def _c_function(name: str) -> Any:
    """The C library's function of that name, or None (no such library or function)."""
    if name not in _libc:
        lib = ctypes.util.find_library("c")
        try:
            _libc[name] = getattr(ctypes.CDLL(lib), name, None) if lib else None
        except OSError:  # no C library by that name
            _libc[name] = None
    return _libc[name]


def configure() -> None:
    """Allocators that give memory back, for an API process (call before it reads).

    Exports build each piece in a thread of their own, and glibc gives every thread
    that allocates an arena of its own (up to 8 per core), whose freed memory
    malloc_trim returns only in part; Arrow's default pool (mimalloc) keeps its own.
    With two arenas and Arrow on the system allocator, a map, a CSV and a Parquet
    export of a 10^6-run sweep one after the other grew the process by 173 MB at
    their peak and kept 150, against 216 and 216 (side by side, in one process).
    Arrow reads its choice from the environment when it first allocates. Freed
    blocks are kept for reuse between releases (keep_freed_memory)."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    mallopt = _c_function("mallopt")
    if mallopt is not None:
        mallopt(M_ARENA_MAX, 2)
    keep_freed_memory()


def keep_freed_memory() -> None:
    """Reuse freed blocks of up to 32 MB instead of giving them back to the system
    and faulting fresh pages in for the next (glibc only; elsewhere nothing).

    glibc unmaps a freed block above its mmap threshold and trims free memory above
    its trim threshold from the top of a heap; both start low (128 kB) and its dynamic
    threshold follows the largest block freed, so the multi-megabyte arrays of a
    50,000-run piece were, time and again, fresh pages that the kernel had to fault in
    and zero: about 0.6 ms per MB on the 2-core development machine (a virtual
    machine). Stacking a 50,000 x 6 grid took 2.4 ms there where the same work in
    reused memory took 0.8, and the engine alone took 0.44 s for a 10^6-run, 200-step
    sweep instead of 0.22 (docs/performance.md). What is kept is given back by
    `release()`."""
    mallopt = _c_function("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def release() -> None:
    """Return Arrow's and malloc's free memory to the system."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _c_function("malloc_trim")
    if trim is not None:
        trim(0)  # glibc: give back the free top of every heap
