"""Tables: sweep, run (one per distinct run_key), sweep_run (membership), chunk.

A run's result is stored once, under its run_key, and shared by every sweep
whose grid contains it; sweep_run maps a sweep's flat grid indices to run keys
and to the chunk that computes them (NULL when the result was already cached).
Non-finite results are stored as NULL plus a kind ('nan', '+inf', '-inf').
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db.base import Base, UTCDateTime

SWEEP_STATUSES = ("queued", "running", "done", "failed", "canceled")
CHUNK_STATUSES = ("queued", "running", "done", "failed", "canceled")
OUTCOME_NAMES = ("converged", "not_converged", "diverged")
FLOAT_KINDS = ("nan", "+inf", "-inf")
GRID_COLUMNS = ("i_beta1", "i_beta2", "i_batch_size", "i_clip", "i_lr", "i_seed")


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


class Sweep(Base):
    __tablename__ = "sweep"
    __table_args__ = (_one_of("status", SWEEP_STATUSES, "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    kernel: Mapped[str] = mapped_column(String(16))
    engine_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    total_runs: Mapped[int] = mapped_column(BigInteger)
    cached_runs: Mapped[int] = mapped_column(BigInteger)
    n_chunks: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Run(Base):
    __tablename__ = "run"
    __table_args__ = (
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('converged', 'not_converged', 'diverged')",
            name="outcome",
        ),
        *(
            CheckConstraint(
                f"{col}_kind IS NULL OR ({col}_kind IN ('nan', '+inf', '-inf') AND {col} IS NULL)",
                name=f"{col}_kind",
            )
            for col in ("final_loss", "final_rel", "final_gap")
        ),
    )

    run_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    beta1: Mapped[float] = mapped_column(Double)
    beta2: Mapped[float] = mapped_column(Double)
    batch_size: Mapped[int] = mapped_column(Integer)
    clip_mode: Mapped[str] = mapped_column(String(16))
    clip_threshold: Mapped[float | None] = mapped_column(Double, nullable=True)
    lr: Mapped[float] = mapped_column(Double)
    seed: Mapped[int] = mapped_column(BigInteger)
    steps: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    final_loss: Mapped[float | None] = mapped_column(Double, nullable=True)
    final_loss_kind: Mapped[str | None] = mapped_column(String(4), nullable=True)
    final_rel: Mapped[float | None] = mapped_column(Double, nullable=True)
    final_rel_kind: Mapped[str | None] = mapped_column(String(4), nullable=True)
    final_gap: Mapped[float | None] = mapped_column(Double, nullable=True)
    final_gap_kind: Mapped[str | None] = mapped_column(String(4), nullable=True)
    div_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    clip_fraction: Mapped[float | None] = mapped_column(Double, nullable=True)
    curve_steps: Mapped[list[int] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    curve: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Chunk(Base):
    __tablename__ = "chunk"
    __table_args__ = (
        _one_of("status", CHUNK_STATUSES, "status"),
        UniqueConstraint("sweep_id", "seq"),
        Index(None, "sweep_id", "status"),
        Index(None, "status", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweep.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    n_runs: Mapped[int] = mapped_column(Integer)
    n_compute: Mapped[int] = mapped_column(Integer)
    progress: Mapped[float] = mapped_column(Double)
    attempts: Mapped[int] = mapped_column(Integer)  # claims, whatever ended them
    # engine errors among those attempts; the rest were lost workers or releases
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class SweepRun(Base):
    """One row per grid point of a sweep (flat index in C order over the axes)."""

    __tablename__ = "sweep_run"
    __table_args__ = (Index(None, "run_key"), Index(None, "chunk_id"))

    sweep_id: Mapped[int] = mapped_column(
        ForeignKey("sweep.id", ondelete="CASCADE"), primary_key=True
    )
    flat_index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_key: Mapped[str] = mapped_column(ForeignKey("run.run_key"))
    # No foreign key: chunks live and die with their sweep, and checking 10^5
    # membership rows against chunk on insert costs a third of sweep creation.
    chunk_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    i_beta1: Mapped[int] = mapped_column(Integer)
    i_beta2: Mapped[int] = mapped_column(Integer)
    i_batch_size: Mapped[int] = mapped_column(Integer)
    i_clip: Mapped[int] = mapped_column(Integer)
    i_lr: Mapped[int] = mapped_column(Integer)
    i_seed: Mapped[int] = mapped_column(Integer)
