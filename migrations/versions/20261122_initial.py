"""initial: sweep, run, chunk and sweep_run

Revision ID: 20261122_initial
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261122_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'queued', 'running', 'done', 'failed', 'canceled'"


def _at(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _kind(col: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(
        f"{col}_kind IS NULL OR ({col}_kind IN ('nan', '+inf', '-inf') AND {col} IS NULL)",
        name=op.f(f"ck_run_{col}_kind"),
    )


def upgrade() -> None:
    op.create_table(
        "run",
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("beta1", sa.Double(), nullable=False),
        sa.Column("beta2", sa.Double(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("clip_mode", sa.String(length=16), nullable=False),
        sa.Column("clip_threshold", sa.Double(), nullable=True),
        sa.Column("lr", sa.Double(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("final_loss", sa.Double(), nullable=True),
        sa.Column("final_loss_kind", sa.String(length=4), nullable=True),
        sa.Column("final_rel", sa.Double(), nullable=True),
        sa.Column("final_rel_kind", sa.String(length=4), nullable=True),
        sa.Column("final_gap", sa.Double(), nullable=True),
        sa.Column("final_gap_kind", sa.String(length=4), nullable=True),
        sa.Column("div_step", sa.Integer(), nullable=True),
        sa.Column("clip_fraction", sa.Double(), nullable=True),
        sa.Column("curve_steps", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("curve", sa.JSON(none_as_null=True), nullable=True),
        _at("computed_at"),
        _kind("final_gap"),
        _kind("final_loss"),
        _kind("final_rel"),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('converged', 'not_converged', 'diverged')",
            name=op.f("ck_run_outcome"),
        ),
        sa.PrimaryKeyConstraint("run_key", name=op.f("pk_run")),
    )
    op.create_table(
        "sweep",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("kernel", sa.String(length=16), nullable=False),
        sa.Column("engine_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total_runs", sa.BigInteger(), nullable=False),
        sa.Column("cached_runs", sa.BigInteger(), nullable=False),
        sa.Column("n_chunks", sa.Integer(), nullable=False),
        _at("created_at", nullable=False),
        _at("started_at"),
        _at("finished_at"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_sweep_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweep")),
    )
    op.create_table(
        "chunk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n_runs", sa.Integer(), nullable=False),
        sa.Column("n_compute", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        _at("lease_expires_at"),
        _at("enqueued_at"),
        _at("started_at"),
        _at("finished_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_chunk_status")),
        sa.ForeignKeyConstraint(["sweep_id"], ["sweep.id"], name=op.f("fk_chunk_sweep_id_sweep"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chunk")),
        sa.UniqueConstraint("sweep_id", "seq", name=op.f("uq_chunk_sweep_id_seq")),
    )
    op.create_index(op.f("ix_chunk_status_lease_expires_at"), "chunk",
                    ["status", "lease_expires_at"])
    op.create_index(op.f("ix_chunk_sweep_id_status"), "chunk", ["sweep_id", "status"])
    op.create_table(
        "sweep_run",
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("flat_index", sa.BigInteger(), nullable=False),
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("chunk_id", sa.Integer(), nullable=True),
        *(sa.Column(f"i_{axis}", sa.Integer(), nullable=False)
          for axis in ("beta1", "beta2", "batch_size", "clip", "lr", "seed")),
        sa.ForeignKeyConstraint(["run_key"], ["run.run_key"],
                                name=op.f("fk_sweep_run_run_key_run")),
        sa.ForeignKeyConstraint(["sweep_id"], ["sweep.id"],
                                name=op.f("fk_sweep_run_sweep_id_sweep"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sweep_id", "flat_index", name=op.f("pk_sweep_run")),
    )
    op.create_index(op.f("ix_sweep_run_chunk_id"), "sweep_run", ["chunk_id"])
    op.create_index(op.f("ix_sweep_run_run_key"), "sweep_run", ["run_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sweep_run_run_key"), table_name="sweep_run")
    op.drop_index(op.f("ix_sweep_run_chunk_id"), table_name="sweep_run")
    op.drop_table("sweep_run")
    op.drop_index(op.f("ix_chunk_sweep_id_status"), table_name="chunk")
    op.drop_index(op.f("ix_chunk_status_lease_expires_at"), table_name="chunk")
    op.drop_table("chunk")
    op.drop_table("sweep")
    op.drop_table("run")
