"""Floats that may be nan or infinite, stored as (value, kind) and curves as JSON.

SQLite cannot hold nan and JSON cannot hold any non-finite number, yet a run
that diverged legitimately ends at inf or nan. So a float column is stored as
value NULL plus kind 'nan', '+inf' or '-inf'; a curve is a JSON list whose
non-finite entries are those same strings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

_KIND_OF = {math.inf: "+inf", -math.inf: "-inf"}
_VALUE_OF = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}


def split_float(v: float | None) -> tuple[float | None, str | None]:
    """(value, kind) for one float: finite -> (v, None); nan -> (None, 'nan')."""
    if v is None:
        return None, None
    v = float(v)
    if math.isfinite(v):
        return v, None
    if math.isnan(v):
        return None, "nan"
    return None, _KIND_OF[v]


def split_floats(arr: np.ndarray) -> tuple[list[float | None], list[str | None]]:
    """Column form of split_float for a float array."""
    arr = np.asarray(arr, dtype=np.float64)
    values: list[float | None] = arr.tolist()
    kinds: list[str | None] = [None] * len(values)
    for i in np.flatnonzero(~np.isfinite(arr)).tolist():
        values[i], kinds[i] = split_float(values[i])
    return values, kinds


def join_float(value: float | None, kind: str | None) -> float | None:
    """The float stored as (value, kind); None when nothing was stored."""
    if kind is not None:
        return _VALUE_OF[kind]
    return None if value is None else float(value)


def encode_curve(row: Iterable[float]) -> list[Any]:
    """A curve as a JSON-safe list: non-finite entries become 'nan', '+inf', '-inf'."""
    out: list[Any] = []
    for v in row:
        v = float(v)
        out.append(v if math.isfinite(v) else split_float(v)[1])
    return out


def decode_curve(values: Iterable[Any]) -> list[float]:
    return [_VALUE_OF[v] if isinstance(v, str) else float(v) for v in values]
