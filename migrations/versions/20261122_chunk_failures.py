"""chunk.failures: engine errors counted apart from lost workers

A chunk used to fail after max_attempts claims of any kind, so a chunk whose
workers were pre-empted three times failed although its engine never erred.

Revision ID: 20261122_chunk_failures
Revises: 20261122_initial
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261122_chunk_failures"
down_revision: str | None = "20261122_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chunk") as batch:
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("chunk") as batch:
        batch.drop_column("failures")
