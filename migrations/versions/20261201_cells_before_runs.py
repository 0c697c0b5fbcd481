"""SQLite: a chunk's cell record before its run record in the row

SQLite keeps a row's columns in order, a large value spilling onto a chain of
overflow pages; reading a column after the run record (about 7 MB for 50,000
runs) walks that whole chain. A phase map reads only the cell records, so on a
10^6-run sweep it read 145 MB to get 7 MB (about 170 ms against 50 ms, side
by side). Rebuilding the table with cells_data before runs_data fixes that;
Postgres stores both out of line already (TOAST), so there nothing changes.

Revision ID: 20261201_cells_before_runs
Revises: 20261201_columnar_results
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "20261201_cells_before_runs"
down_revision: str | None = "20261201_columnar_results"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _order(first: str, second: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("chunk", recreate="always",
                              partial_reordering=[(first, second)]):
        pass


def upgrade() -> None:
    _order("cells_data", "runs_data")


def downgrade() -> None:
    _order("runs_data", "cells_data")
