"""Giving memory back after a large read in the API process.

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
from typing import Any

_trim: Any = None


def release() -> None:
    """Return Arrow's and malloc's free memory to the system."""
    global _trim
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if _trim is None:
        name = ctypes.util.find_library("c")
        try:
            _trim = getattr(ctypes.CDLL(name), "malloc_trim", False) if name else False
        except OSError:  # no C library by that name: nothing to trim
            _trim = False
    if _trim:
        _trim(0)  # glibc: give back the free top of every heap
