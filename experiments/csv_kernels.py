"""CSV text without a Python call per run: two numba functions over byte buffers.

- `python_floats` rewrites Arrow's text of float64 values (its cast writes the
  shortest round-trip digits, as Python does, in other notations: "100",
  "0.0000015", "1e-7", "-0") into Python's repr ("100.0", "1.5e-06", "1e-07",
  "-0.0"): the digits and decimal exponent are read back from Arrow's text, so
  any notation it uses gives the same result.
- `join_lines` writes CSV lines from columns given as label tables and indices:
  an axis column is its few formatted values and each run's index into them,
  a per-run column its own labels with indices 0..n-1, so no column is copied
  before the lines are written.

Both are plain (single-threaded) njit functions that release the GIL, cached on
disk by numba like the fused kernel: an export formats two pieces at once in
threads of its own (api/services/results.py), never in numba's thread pool.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ZERO, _NINE, _DOT, _MINUS, _PLUS = 48, 57, 46, 45, 43


@njit(cache=True, inline="always")
def _float_text(src, i, n, out, o, digits):  # type: ignore[no-untyped-def]
    """Python's repr of the float whose Arrow text is src[i:n] (uint8), written at
    out[o:]; returns the end. `digits` is scratch space of at least n - i bytes."""
    if n == i:
        return o
    neg = src[i] == _MINUS
    if neg:
        i += 1
    if src[i] < _ZERO or src[i] > _NINE:  # nan, inf: the same text
        if neg:
            out[o] = _MINUS
            o += 1
        for j in range(i, n):
            out[o] = src[j]
            o += 1
        return o
    nd = 0
    int_len = 0
    seen_dot = False
    while i < n and src[i] != 101:  # 'e'
        c = src[i]
        if c == _DOT:
            seen_dot = True
        else:
            digits[nd] = c
            nd += 1
            if not seen_dot:
                int_len += 1
        i += 1
    exp = 0
    if i < n:  # e[+-]ddd
        i += 1
        sign = 1
        if src[i] == _MINUS or src[i] == _PLUS:
            sign = -1 if src[i] == _MINUS else 1
            i += 1
        while i < n:
            exp = exp * 10 + int(src[i] - _ZERO)
            i += 1
        exp *= sign
    start = 0
    while start < nd and digits[start] == _ZERO:
        start += 1
    end = nd
    while end > start and digits[end - 1] == _ZERO:
        end -= 1
    if neg:
        out[o] = _MINUS
        o += 1
    if start == end:  # zero
        out[o] = _ZERO
        out[o + 1] = _DOT
        out[o + 2] = _ZERO
        return o + 3
    m = end - start
    decpt = int_len + exp - start  # value = 0.d1d2...dm x 10^decpt
    if decpt <= -4 or decpt > 16:  # scientific, as float_repr_style 'short'
        out[o] = digits[start]
        o += 1
        if m > 1:
            out[o] = _DOT
            o += 1
            for j in range(start + 1, end):
                out[o] = digits[j]
                o += 1
        out[o] = 101
        e = decpt - 1
        out[o + 1] = _MINUS if e < 0 else _PLUS
        o += 2
        e = -e if e < 0 else e
        width = 2 if e < 100 else 3
        for j in range(width - 1, -1, -1):
            out[o + j] = _ZERO + e % 10
            e //= 10
        return o + width
    if decpt <= 0:  # 0.000ddd
        out[o] = _ZERO
        out[o + 1] = _DOT
        o += 2
        for _ in range(-decpt):
            out[o] = _ZERO
            o += 1
        for j in range(start, end):
            out[o] = digits[j]
            o += 1
        return o
    if decpt >= m:  # ddd000.0
        for j in range(start, end):
            out[o] = digits[j]
            o += 1
        for _ in range(decpt - m):
            out[o] = _ZERO
            o += 1
        out[o] = _DOT
        out[o + 1] = _ZERO
        return o + 2
    for j in range(start, start + decpt):  # dd.ddd
        out[o] = digits[j]
        o += 1
    out[o] = _DOT
    o += 1
    for j in range(start + decpt, end):
        out[o] = digits[j]
        o += 1
    return o


@njit(cache=True, nogil=True)
def python_floats(data, offsets):  # type: ignore[no-untyped-def]
    """(data, offsets) of Arrow float text -> (data, offsets) of Python's repr of each.

    A repr is at most 5 bytes longer than Arrow's text ("-0" -> "-0.0",
    "0.0000015" -> "1.5e-06", "1e+10" -> "10000000000.0"), bounded here by 24 per
    value."""
    n = len(offsets) - 1
    out = np.empty(int(offsets[n] - offsets[0]) + 24 * n, dtype=np.uint8)
    out_offsets = np.empty(n + 1, dtype=np.int64)
    digits = np.empty(64, dtype=np.uint8)  # Arrow's text of a float64 is at most 25 bytes
    o = 0
    out_offsets[0] = 0
    for r in range(n):
        o = _float_text(data, offsets[r], offsets[r + 1], out, o, digits)
        out_offsets[r + 1] = o
    return out[:o], out_offsets


@njit(cache=True, nogil=True)
def join_lines(labels, label_offsets, index):  # type: ignore[no-untyped-def]
    """CSV lines: row r's fields are labels[label_offsets[index[r, c]]:...+1] for each
    column c, joined by commas, each line ended by CRLF (csv.writer's dialect; no
    field needs quoting)."""
    n, ncols = index.shape
    size = 0
    for r in range(n):
        for c in range(ncols):
            k = index[r, c]
            size += label_offsets[k + 1] - label_offsets[k]
    size += n * (ncols + 1)  # ncols - 1 commas and two bytes of CRLF per line
    out = np.empty(size, dtype=np.uint8)
    o = 0
    for r in range(n):
        for c in range(ncols):
            if c:
                out[o] = 44
                o += 1
            k = index[r, c]
            for j in range(label_offsets[k], label_offsets[k + 1]):
                out[o] = labels[j]
                o += 1
        out[o] = 13
        out[o + 1] = 10
        o += 2
    return out
