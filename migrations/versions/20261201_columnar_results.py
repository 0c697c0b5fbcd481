"""Columnar results: a chunk's results in two records, no row per run

Every run used to be a `run` row (with its curve as JSON) plus a `sweep_run`
row, created one at a time: a 10^6-run sweep took minutes to create and 2 kB
per run to store. Now a chunk is a range of flat grid indices and holds its
results as Arrow records (api.db.columnar). Upgrading re-cuts every sweep into
cell-aligned chunks, packs the results it has into them (a range with every
result is a done chunk, any other is queued and recomputed), and drops `run`
and `sweep_run`. Downgrading unpacks the records into rows again, with run_key
as it was then defined (sha256 of one canonical JSON document per run).

Revision ID: 20261201_columnar_results
Revises: 20261122_chunk_failures
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "20261201_columnar_results"
down_revision: str | None = "20261122_chunk_failures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK_RUNS = 50_000
_VALUE = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}
_OUTCOMES = ("converged", "not_converged", "diverged")


def _spec(document: Any) -> Any:
    from experiments.spec import parse_stored

    return parse_stored(document if isinstance(document, dict) else json.loads(document))


def _float(value: Any, kind: Any) -> float:
    if kind is not None:
        return _VALUE[kind]
    return math.nan if value is None else float(value)


def upgrade() -> None:
    # SQLite reuses the largest rowid after a delete unless the table is AUTOINCREMENT,
    # which only a rebuilt table can become; Postgres sequences never reuse ids
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("sweep", recreate="always" if sqlite else "auto",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("program_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("grid_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("source_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("hidden", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("chunk") as batch:
        batch.add_column(sa.Column("lo", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("hi", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("runs_data", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("cells_data", sa.LargeBinary(), nullable=True))
    _pack_results()
    with op.batch_alter_table("sweep", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("program_key", existing_type=sa.String(64), nullable=False)
        batch.alter_column("grid_key", existing_type=sa.String(64), nullable=False)
        batch.create_index("ix_sweep_program_key", ["program_key"])
        batch.create_index("ix_sweep_source_id", ["source_id"])
    with op.batch_alter_table("chunk") as batch:
        batch.alter_column("lo", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("hi", existing_type=sa.BigInteger(), nullable=False)
    op.drop_table("sweep_run")
    op.drop_table("run")
    if op.get_bind().dialect.name == "postgresql":  # already compressed: skip TOAST's pglz
        op.execute("ALTER TABLE chunk ALTER COLUMN runs_data SET STORAGE EXTERNAL")
        op.execute("ALTER TABLE chunk ALTER COLUMN cells_data SET STORAGE EXTERNAL")


def _pack_results() -> None:
    from api.db import columnar
    from experiments.analysis import ResultFrame, cell_stats
    from experiments.reuse import chunk_bounds, grid_digest
    from experiments.spec import program_digest

    conn = op.get_bind()
    now = datetime.now(UTC).replace(tzinfo=None) if conn.dialect.name == "sqlite" \
        else datetime.now(UTC)
    sweeps = conn.execute(sa.text("SELECT id, spec, kernel FROM sweep ORDER BY id")).all()
    for sweep_id, document, kernel in sweeps:
        spec = _spec(document)
        conn.execute(sa.text("UPDATE sweep SET program_key = :p, grid_key = :g, cached_runs = 0 "
                             "WHERE id = :i"),
                     {"p": program_digest(spec, kernel).hex(), "g": grid_digest(spec, kernel),
                      "i": sweep_id})
        rows = conn.execute(sa.text(
            "SELECT m.flat_index, r.outcome, r.final_loss, r.final_loss_kind, r.final_rel, "
            "r.final_rel_kind, r.final_gap, r.final_gap_kind, r.div_step, r.clip_fraction, "
            "r.curve FROM sweep_run m JOIN run r ON r.run_key = m.run_key "
            "WHERE m.sweep_id = :i AND r.computed_at IS NOT NULL ORDER BY m.flat_index"),
            {"i": sweep_id}).all()
        have = {int(r[0]): r for r in rows}
        conn.execute(sa.text("DELETE FROM chunk WHERE sweep_id = :i"), {"i": sweep_id})
        bounds = chunk_bounds(spec, CHUNK_RUNS).tolist()
        per_cell = spec.axis_sizes()[-1]
        for seq, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            done = all(f in have for f in range(lo, hi))
            values: dict[str, Any] = {
                "s": sweep_id, "q": seq, "lo": lo, "hi": hi, "n": hi - lo,
                "st": "done" if done else "queued", "now": now, "rd": None, "cd": None,
            }
            if done:
                part = [have[f] for f in range(lo, hi)]
                code = np.array([_OUTCOMES.index(r[1]) for r in part], dtype=np.int8)
                cols = {
                    "outcome": code,
                    "final_loss": np.array([_float(r[2], r[3]) for r in part]),
                    "final_rel": np.array([_float(r[4], r[5]) for r in part]),
                    "final_gap": np.array([_float(r[6], r[7]) for r in part]),
                    "div_step": np.array([-1 if r[8] is None else r[8] for r in part]),
                    "clip_fraction": np.array([float(r[9] or 0.0) for r in part]),
                    columnar.CURVE: np.array(
                        [[_VALUE[v] if isinstance(v, str) else v for v in
                          (json.loads(r[10]) if isinstance(r[10], str) else r[10])]
                         for r in part], dtype=np.float32),
                }
                values["rd"] = columnar.encode_runs(cols, offset=None)
                frame = ResultFrame(np.zeros((hi - lo, 0), dtype=np.int64), code,
                                    cols["final_rel"],
                                    np.where(cols["div_step"] >= 0, cols["div_step"], np.nan))
                stats = cell_stats(np.arange(hi - lo) // per_cell, frame, (hi - lo) // per_cell)
                values["cd"] = columnar.encode_cells(stats)
            conn.execute(sa.text(
                "INSERT INTO chunk (sweep_id, seq, status, lo, hi, n_runs, n_compute, progress, "
                "attempts, failures, enqueued_at, started_at, finished_at, runs_data, "
                "cells_data) VALUES (:s, :q, :st, :lo, :hi, :n, :n, "
                + ("1.0" if done else "0.0") + ", 0, 0, NULL, :now, "
                + (":now" if done else "NULL") + ", :rd, :cd)"), values)
        n_chunks = len(bounds) - 1
        status = conn.execute(sa.text("SELECT status FROM sweep WHERE id = :i"),
                              {"i": sweep_id}).scalar()
        if status in ("done", "failed") and not all(f in have for f in range(bounds[-1])):
            status = "queued"  # results it lacked are computed again
        conn.execute(sa.text("UPDATE sweep SET n_chunks = :n, status = :st WHERE id = :i"),
                     {"n": n_chunks, "st": status, "i": sweep_id})
        if status == "canceled":
            conn.execute(sa.text("UPDATE chunk SET status = 'canceled' WHERE sweep_id = :i "
                                 "AND status = 'queued'"), {"i": sweep_id})


def downgrade() -> None:
    op.create_table(
        "run",
        sa.Column("run_key", sa.String(64), nullable=False),
        sa.Column("beta1", sa.Double(), nullable=False),
        sa.Column("beta2", sa.Double(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("clip_mode", sa.String(16), nullable=False),
        sa.Column("clip_threshold", sa.Double(), nullable=True),
        sa.Column("lr", sa.Double(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("final_loss", sa.Double(), nullable=True),
        sa.Column("final_loss_kind", sa.String(4), nullable=True),
        sa.Column("final_rel", sa.Double(), nullable=True),
        sa.Column("final_rel_kind", sa.String(4), nullable=True),
        sa.Column("final_gap", sa.Double(), nullable=True),
        sa.Column("final_gap_kind", sa.String(4), nullable=True),
        sa.Column("div_step", sa.Integer(), nullable=True),
        sa.Column("clip_fraction", sa.Double(), nullable=True),
        sa.Column("curve_steps", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("curve", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("computed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("outcome IS NULL OR outcome IN ('converged', 'not_converged', "
                           "'diverged')", name=op.f("ck_run_outcome")),
        *(sa.CheckConstraint(f"{c}_kind IS NULL OR ({c}_kind IN ('nan', '+inf', '-inf') AND "
                             f"{c} IS NULL)", name=op.f(f"ck_run_{c}_kind"))
          for c in ("final_loss", "final_rel", "final_gap")),
        sa.PrimaryKeyConstraint("run_key", name=op.f("pk_run")),
    )
    op.create_table(
        "sweep_run",
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("flat_index", sa.BigInteger(), nullable=False),
        sa.Column("run_key", sa.String(64), nullable=False),
        sa.Column("chunk_id", sa.Integer(), nullable=True),
        *(sa.Column(f"i_{a}", sa.Integer(), nullable=False)
          for a in ("beta1", "beta2", "batch_size", "clip", "lr", "seed")),
        sa.ForeignKeyConstraint(["run_key"], ["run.run_key"],
                                name=op.f("fk_sweep_run_run_key_run")),
        sa.ForeignKeyConstraint(["sweep_id"], ["sweep.id"], ondelete="CASCADE",
                                name=op.f("fk_sweep_run_sweep_id_sweep")),
        sa.PrimaryKeyConstraint("sweep_id", "flat_index", name=op.f("pk_sweep_run")),
    )
    op.create_index(op.f("ix_sweep_run_run_key"), "sweep_run", ["run_key"])
    op.create_index(op.f("ix_sweep_run_chunk_id"), "sweep_run", ["chunk_id"])
    _unpack_results()
    with op.batch_alter_table("chunk") as batch:
        for c in ("cells_data", "runs_data", "hi", "lo"):
            batch.drop_column(c)
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("sweep", recreate="always" if sqlite else "auto") as batch:
        batch.drop_index("ix_sweep_source_id")
        batch.drop_index("ix_sweep_program_key")
        for c in ("hidden", "source_id", "grid_key", "program_key"):
            batch.drop_column(c)


def _legacy_keys(spec: Any, runs: Any, kernel: str) -> list[str]:
    """run_key as defined before this revision: one canonical JSON document per run."""
    from experiments.spec import _run_prefix, canonical_json

    prefix = _run_prefix(spec, kernel)
    clips = spec.axis_values()["clip"]
    keys = []
    for i in range(len(runs)):
        doc = dict(prefix, beta1=float(runs.beta1[i]), beta2=float(runs.beta2[i]),
                   batch_size=int(runs.batch_size[i]),
                   clip=clips[int(runs.clip_index[i])].model_dump(mode="json"),
                   lr=float(runs.lr[i]), seed=int(runs.seed[i]))
        keys.append(hashlib.sha256(canonical_json(doc).encode()).hexdigest())
    return keys


def _unpack_results() -> None:
    from api.db import columnar
    from experiments.outcomes import checkpoint_steps
    from experiments.runs import clip_columns, runs_at

    conn = op.get_bind()
    sweeps = conn.execute(sa.text("SELECT id, spec, kernel, source_id FROM sweep "
                                  "ORDER BY id")).all()
    seen: set[str] = set()
    for sweep_id, document, kernel, source in sweeps:
        spec = _spec(document)
        if source is not None and not conn.execute(sa.text(
                "SELECT count(*) FROM chunk WHERE sweep_id = :i"), {"i": sweep_id}).scalar():
            conn.execute(sa.text(  # an identical resubmission: the source's grid, as is
                "INSERT INTO sweep_run (sweep_id, flat_index, run_key, chunk_id, i_beta1, "
                "i_beta2, i_batch_size, i_clip, i_lr, i_seed) SELECT :i, flat_index, run_key, "
                "NULL, i_beta1, i_beta2, i_batch_size, i_clip, i_lr, i_seed FROM sweep_run "
                "WHERE sweep_id = :s"), {"i": sweep_id, "s": source})
            continue
        chunks = conn.execute(sa.text(
            "SELECT id, lo, hi, status, runs_data FROM chunk WHERE sweep_id = :i ORDER BY lo"),
            {"i": sweep_id}).all()
        for chunk_id, lo, hi, status, data in chunks:
            runs = runs_at(spec, np.arange(lo, hi))
            keys = _legacy_keys(spec, runs, kernel)
            modes, thresholds = clip_columns(spec, runs)
            rec = columnar.decode_runs(data) if status == "done" and data else None
            stored = None
            if rec is not None and columnar.OFFSET in rec:
                stored = {int(o): j for j, o in enumerate(rec[columnar.OFFSET])}
            members = []
            for j, key in enumerate(keys):
                g = runs.grid_index[j]
                members.append({"s": sweep_id, "f": lo + j, "k": key, "c": chunk_id,
                                **{f"i{a}": int(g[a]) for a in range(6)}})
                if key in seen:
                    continue
                seen.add(key)
                row: dict[str, Any] = {
                    "k": key, "b1": float(runs.beta1[j]), "b2": float(runs.beta2[j]),
                    "b": int(runs.batch_size[j]), "cm": modes[j], "ct": thresholds[j],
                    "lr": float(runs.lr[j]), "sd": int(runs.seed[j]), "st": spec.steps,
                    "o": None, "fl": None, "flk": None, "fr": None, "frk": None, "fg": None,
                    "fgk": None, "d": None, "cf": None, "cs": None, "cv": None, "at": None,
                }
                at = j if stored is None else stored.get(j)
                if rec is not None and at is not None:
                    row["o"] = _OUTCOMES[int(rec["outcome"][at])]
                    for name, v, k in (("final_loss", "fl", "flk"), ("final_rel", "fr", "frk"),
                                       ("final_gap", "fg", "fgk")):
                        x = float(rec[name][at])
                        if math.isfinite(x):
                            row[v] = x
                        elif name != "final_gap" or not math.isnan(x):
                            row[k] = "nan" if math.isnan(x) else ("+inf" if x > 0 else "-inf")
                    d = int(rec["div_step"][at])
                    row["d"] = d if d >= 0 else None
                    row["cf"] = float(rec["clip_fraction"][at])
                    row["cs"] = json.dumps(checkpoint_steps(spec.steps))
                    row["cv"] = json.dumps([
                        float(v) if math.isfinite(v) else
                        ("nan" if math.isnan(v) else ("+inf" if v > 0 else "-inf"))
                        for v in rec[columnar.CURVE][at].astype(np.float64).tolist()])
                    row["at"] = datetime.now(UTC).replace(tzinfo=None)
                conn.execute(sa.text(
                    "INSERT INTO run (run_key, beta1, beta2, batch_size, clip_mode, "
                    "clip_threshold, lr, seed, steps, outcome, final_loss, final_loss_kind, "
                    "final_rel, final_rel_kind, final_gap, final_gap_kind, div_step, "
                    "clip_fraction, curve_steps, curve, computed_at) VALUES (:k, :b1, :b2, :b, "
                    ":cm, :ct, :lr, :sd, :st, :o, :fl, :flk, :fr, :frk, :fg, :fgk, :d, :cf, "
                    ":cs, :cv, :at)"), row)
            if members:
                conn.execute(sa.text(
                    "INSERT INTO sweep_run (sweep_id, flat_index, run_key, chunk_id, i_beta1, "
                    "i_beta2, i_batch_size, i_clip, i_lr, i_seed) VALUES (:s, :f, :k, :c, :i0, "
                    ":i1, :i2, :i3, :i4, :i5)"), members)
