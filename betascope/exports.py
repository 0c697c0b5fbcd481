"""Which export a file name asks for: Parquet for .parquet, else CSV (`betascope export`,
`Client.export` and the CSV writers' refusal of a Parquet name alike). Imports
nothing: `betascope run` loads it without httpx."""

from __future__ import annotations

from pathlib import Path

PARQUET_SUFFIXES = (".parquet", ".pq")


def export_route(out: Path, level: str) -> str:
    """The export a file of this name gets (Parquet for .parquet, else CSV), the level
    checked against what it offers; ValueError naming `level` (Client.export and
    `betascope export` alike)."""
    parquet = out.suffix.lower() in PARQUET_SUFFIXES
    levels = ("runs", "cells", "curves") if parquet else ("runs", "cells")
    if level not in levels:
        raise ValueError(f"level: must be {', '.join(levels[:-1])} or {levels[-1]}")
    return "export.parquet" if parquet else "export.csv"
