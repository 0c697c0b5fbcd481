"""Loss curves in a record of their own (chunk.curves_data)

A chunk's run record held its runs' loss curves (float32, about 110 of its 150
bytes per run), so every export, runs page and one-run read fetched and walked
the curves to get a few numbers per run. Upgrading moves each stored record's
CURVE column into `curves_data`, after the other records in the row (SQLite
reads a column after a large one through its overflow pages); downgrading
moves it back. Readers take CURVE from either place (api.db.store).

Revision ID: 20261202_curves_apart
Revises: 20261201_cells_before_runs
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261202_curves_apart"
down_revision: str | None = "20261201_cells_before_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rewrite(where: str, move: str) -> None:
    """Re-encode each chunk matching `where`, one row at a time (bounded memory)."""
    from api.db import columnar

    conn = op.get_bind()
    ids = [r[0] for r in conn.execute(sa.text(f"SELECT id FROM chunk WHERE {where} ORDER BY id"))]
    for chunk_id in ids:
        runs, curves = conn.execute(sa.text(
            "SELECT runs_data, curves_data FROM chunk WHERE id = :i"), {"i": chunk_id}).one()
        rec = columnar.decode_runs(bytes(runs))
        if move == "out":
            if columnar.CURVE not in rec:
                continue
            curves = columnar.encode_curves(rec.pop(columnar.CURVE))
        else:
            rec.update(columnar.decode_runs(bytes(curves)))
            curves = None
        offset = rec.pop(columnar.OFFSET, None)
        conn.execute(sa.text("UPDATE chunk SET runs_data = :r, curves_data = :c WHERE id = :i"),
                     {"r": columnar.encode_runs(rec, offset=offset), "c": curves, "i": chunk_id})


def upgrade() -> None:
    with op.batch_alter_table("chunk") as batch:
        batch.add_column(sa.Column("curves_data", sa.LargeBinary(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # already compressed: skip TOAST's pglz
        op.execute("ALTER TABLE chunk ALTER COLUMN curves_data SET STORAGE EXTERNAL")
    _rewrite("runs_data IS NOT NULL", "out")


def downgrade() -> None:
    _rewrite("curves_data IS NOT NULL", "in")
    with op.batch_alter_table("chunk") as batch:
        batch.drop_column("curves_data")
