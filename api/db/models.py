"""Tables: sweep and chunk. A chunk is a contiguous range of its sweep's flat
grid indices, and when done it holds that range's results as two columnar
records (api.db.columnar): per run, and per cell. Nothing is stored per run as
a row. A sweep whose grid contains an earlier sweep's grid (all else equal)
names that sweep as its `source_id` and reads the runs they share from it; an
identical resubmission has no chunks at all. A deleted sweep that another
sweep still reads from is only hidden, and goes when the last reader goes.
On Postgres, where several API processes serve one database, a finished sweep's
phase maps and boundary are made by one of them and kept as `answer` rows for
the others (api.answers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column

from api.db.base import Base, UTCDateTime

SWEEP_STATUSES = ("queued", "running", "done", "failed", "canceled")
CHUNK_STATUSES = ("queued", "running", "done", "failed", "canceled")


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


class Sweep(Base):
    __tablename__ = "sweep"
    __table_args__ = (
        _one_of("status", SWEEP_STATUSES, "status"),
        Index(None, "program_key"),
        Index(None, "source_id"),
        {"sqlite_autoincrement": True},  # ids are never reused after a delete
    )

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
    # sha256 of what every run shares (experiments.spec.program_digest), and of that
    # plus the axis values: equal grid_key means an identical grid
    program_key: Mapped[str] = mapped_column(String(64))
    grid_key: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


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
    lo: Mapped[int] = mapped_column(BigInteger)  # flat grid indices [lo, hi)
    hi: Mapped[int] = mapped_column(BigInteger)
    n_runs: Mapped[int] = mapped_column(Integer)  # hi - lo
    n_compute: Mapped[int] = mapped_column(Integer)  # those not read from the source
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
    # results, once done: per run (computed here) and per cell (every cell of the range)
    # cells before runs: SQLite reads a column after a large one through its overflow pages
    cells_data: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, nullable=True))
    runs_data: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, nullable=True))
    # the runs' loss curves (columnar.encode_curves), last: the largest record
    curves_data: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, nullable=True))


class Answer(Base):
    """A finished sweep's read as one API process made it, for the others (api.answers):
    the bytes of a phase map or the boundary, under the sweep row they were made from.
    A row without a body is a claim: a process is making it, and the others wait."""

    __tablename__ = "answer"

    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweep.id", ondelete="CASCADE"),
                                          primary_key=True)
    key: Mapped[str] = mapped_column(String(32), primary_key=True)  # digest of path and query
    version: Mapped[str] = mapped_column(Text)  # the sweep row's state it was made from
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    tag: Mapped[str | None] = mapped_column(Text, nullable=True)
    headers: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON [[name, value]]
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
