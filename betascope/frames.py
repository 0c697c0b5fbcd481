"""Result tables as pandas DataFrames, read from the CSVs the service and the CLI write,
so a DataFrame's columns, order and values are the CSV's (DESIGN section 10)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import IO, Any

TEXT_COLUMNS = {"run_key": str, "clip_mode": str, "outcome": str, "clip": str}


def read_csv(source: str | IO[str] | IO[bytes]) -> Any:
    """A runs or cells CSV as a DataFrame: floats as written (nan, inf and -inf included),
    empty fields as missing, text columns as text ("none" stays "none")."""
    import pandas as pd

    if isinstance(source, str):
        source = io.StringIO(source)
    return pd.read_csv(source, keep_default_na=False, na_values=["", "nan"], dtype=TEXT_COLUMNS)


def frame(header: Sequence[str], rows: Iterable[Sequence[str]]) -> Any:
    """CSV rows (as the writers format them) to the DataFrame a CSV file would give."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    buf.seek(0)
    return read_csv(buf)
