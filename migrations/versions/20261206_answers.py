"""Answers made once per server: the `answer` table

Several API processes serve one Postgres database; each made every finished
sweep's phase maps and boundary for itself, assembling the sweep's cells from
its chunks' records first. A row of `answer` holds such a read's bytes as one
process made them, under the sweep row's state they were made from, and the
other processes answer from it (api.answers). Rows go with their sweep.

Revision ID: 20261206_answers
Revises: 20261202_curves_apart
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db.base import UTCDateTime

revision: str = "20261206_answers"
down_revision: str | None = "20261202_curves_apart"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "answer",
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["sweep_id"], ["sweep.id"], ondelete="CASCADE",
                                name=op.f("fk_answer_sweep_id_sweep")),
        sa.PrimaryKeyConstraint("sweep_id", "key", name=op.f("pk_answer")),
    )


def downgrade() -> None:
    op.drop_table("answer")
