"""Answers' bytes stored as they are: no TOAST compression of `answer.body`

Postgres compresses a large bytea with pglz before it stores it: 4.6 ms of the
database server's CPU for a 50 kB phase map on the development machine, against
0.5 ms stored as it is (a map's JSON is written once per server and read back
whole, and the table holds a few maps per finished sweep). SQLite: nothing to do.

Revision ID: 20261207_answer_storage
Revises: 20261206_answers
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "20261207_answer_storage"
down_revision: str | None = "20261206_answers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE answer ALTER COLUMN body SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE answer ALTER COLUMN body SET STORAGE EXTENDED")
