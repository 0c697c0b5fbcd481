"""torch, imported on first use.

Spec models live beside the problem code that uses them (one module per
problem), and the API validates specs without ever running one: it must not pay
torch's import (seconds, hundreds of MB) for that. A problem module binds
`torch` to this proxy at run time (and to the real module for type checkers).
"""

from __future__ import annotations

import importlib
from typing import Any


class _Lazy:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self._name), attr)
        setattr(self, attr, value)  # later lookups are plain attribute reads
        return value


torch: Any = _Lazy("torch")
