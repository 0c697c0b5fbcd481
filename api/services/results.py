"""Reading results back: the analysis frame, runs pages, one run, CSV export.

Phase maps and boundaries come from experiments.analysis on a ResultFrame
built from the database, and CSV rows from experiments.export, so the service
and `betascope run` produce the same numbers and the same bytes.
"""

from __future__ import annotations

import csv
import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from api.db.codec import decode_curve, join_float
from api.db.models import Run, Sweep, SweepRun
from api.db.session import Database
from experiments import analysis, export
from experiments.outcomes import OUTCOMES, Outcomes
from experiments.runs import clip_columns, runs_at
from experiments.spec import SweepSpec, clip_label

CODE = {name: i for i, name in enumerate(OUTCOMES)}
PAGE_ROWS = 5000
_cells_cache: OrderedDict[tuple[Any, ...], tuple[analysis.Cells, int]] = OrderedDict()
_cells_lock = threading.Lock()


def _floats(values: list[Any], kinds: list[Any]) -> np.ndarray:
    out = np.array(values, dtype=np.float64)  # None becomes nan
    for i in np.flatnonzero(np.array([k is not None for k in kinds], dtype=bool)):
        out[i] = join_float(None, kinds[i])
    return out


def _computed(sweep_id: int, *columns: Any) -> Select[Any]:
    return (
        select(SweepRun.flat_index, *columns)
        .join(Run, Run.run_key == SweepRun.run_key)
        .where(SweepRun.sweep_id == sweep_id, Run.computed_at.is_not(None))
    )


def load_frame(session: Session, sweep_id: int, spec: SweepSpec) -> analysis.ResultFrame:
    """Every computed run of the sweep as analysis columns.

    Only five narrow columns cross the driver, and the grid indices come from
    the flat index: a 250,000-run sweep loads in about a second on SQLite.
    """
    rows = session.execute(
        _computed(sweep_id, Run.outcome, Run.final_rel, Run.final_rel_kind, Run.div_step)
    ).all()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 5
    flat = np.array(cols[0], dtype=np.int64)
    grid = np.stack(np.unravel_index(flat, spec.axis_sizes()), axis=1).astype(np.int64)
    return analysis.ResultFrame(
        grid=grid.reshape(-1, 6),
        code=np.fromiter((CODE[o] for o in cols[1]), dtype=np.int8, count=len(flat)),
        final_rel=_floats(list(cols[2]), list(cols[3])),
        div_step=np.array(cols[4], dtype=np.float64),  # None (not diverged) becomes nan
    )


def sweep_cells(session: Session, sweep: Sweep, spec: SweepSpec) -> tuple[analysis.Cells, int]:
    """Cells over seeds and the number of runs with results. Cached for finished
    sweeps, whose results no longer change."""
    key = (session.get_bind().url, sweep.id, sweep.created_at, sweep.status, sweep.finished_at)
    final = sweep.status in ("done", "failed", "canceled")
    if final:
        with _cells_lock:
            if key in _cells_cache:
                _cells_cache.move_to_end(key)
                return _cells_cache[key]
    frame = load_frame(session, sweep.id, spec)
    value = (analysis.cells(spec, frame), len(frame.code))
    if final:
        with _cells_lock:
            _cells_cache[key] = value
            while len(_cells_cache) > 16:
                _cells_cache.popitem(last=False)
    return value


def phase_map(
    session: Session, sweep: Sweep, spec: SweepSpec, *, metric: str, chosen: dict[str, Any]
) -> dict[str, Any]:
    """One slice's heatmap; KeyError names a bad metric or an axis value not on the grid."""
    sl = analysis.slice_index(spec, **chosen)
    c, n = sweep_cells(session, sweep, spec)
    pm = analysis.phase_map(spec, c, metric, sl)
    pm["beta2_star"] = analysis.beta2_star(spec, c, sl)
    pm["n_results"] = n
    return pm


def boundary(session: Session, sweep: Sweep, spec: SweepSpec) -> dict[str, Any]:
    c, _ = sweep_cells(session, sweep, spec)
    out = analysis.boundary(spec, c)
    out["sqrt_curve"] = analysis.sqrt_curve(spec.axis_values()["beta2"])
    return out


def axis_filters(spec: SweepSpec, given: dict[str, Any]) -> dict[str, int]:
    """Axis values to grid indices (i_<axis> columns); KeyError names a value not on the grid."""
    values = spec.axis_values()
    out: dict[str, int] = {}
    for axis in ("batch_size", "clip", "lr"):
        if given.get(axis) is not None:
            out[axis] = analysis.slice_index(spec, **{axis: given[axis]})[axis]
    for axis, cast in (("beta1", float), ("beta2", float), ("seed", int)):
        if given.get(axis) is None:
            continue
        want = cast(given[axis])
        hits = [i for i, v in enumerate(values[axis]) if cast(v) == want]
        if not hits:
            raise KeyError(f"{axis}: {given[axis]!r} is not on the grid")
        out[axis] = hits[0]
    return out


RUN_FIELDS = (Run.run_key, Run.beta1, Run.beta2, Run.batch_size, Run.clip_mode,
              Run.clip_threshold, Run.lr, Run.seed, Run.steps, Run.outcome, Run.final_loss,
              Run.final_loss_kind, Run.final_rel, Run.final_rel_kind, Run.final_gap,
              Run.final_gap_kind, Run.div_step, Run.clip_fraction, Run.computed_at,
              SweepRun.i_clip)


def _run_dict(row: Any, clips: list[str]) -> dict[str, Any]:
    return {
        "flat_index": row.flat_index, "run_key": row.run_key, "beta1": row.beta1,
        "beta2": row.beta2, "batch_size": row.batch_size, "clip_mode": row.clip_mode,
        "clip_threshold": row.clip_threshold, "clip": clips[row.i_clip], "lr": row.lr,
        "seed": row.seed, "steps": row.steps, "outcome": row.outcome,
        "final_loss": join_float(row.final_loss, row.final_loss_kind),
        "final_rel": join_float(row.final_rel, row.final_rel_kind),
        "final_gap": join_float(row.final_gap, row.final_gap_kind),
        "div_step": row.div_step, "clip_fraction": row.clip_fraction,
        "computed_at": row.computed_at,
    }


def list_runs(
    session: Session, sweep: Sweep, spec: SweepSpec, *, filters: dict[str, int],
    outcome: str | None, cursor: int | None, limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of computed runs in grid order, and the cursor of the next page."""
    stmt = _computed(sweep.id, *RUN_FIELDS)
    for axis, index in filters.items():
        stmt = stmt.where(getattr(SweepRun, f"i_{axis}") == index)
    if outcome is not None:
        stmt = stmt.where(Run.outcome == outcome)
    if cursor is not None:
        stmt = stmt.where(SweepRun.flat_index > cursor)
    rows = session.execute(stmt.order_by(SweepRun.flat_index).limit(limit + 1)).all()
    clips = [clip_label(c) for c in spec.axis_values()["clip"]]
    items = [_run_dict(r, clips) for r in rows[:limit]]
    return items, (rows[limit - 1].flat_index if len(rows) > limit else None)


def run_detail(
    session: Session, sweep: Sweep, spec: SweepSpec, run_key: str
) -> dict[str, Any] | None:
    row = session.execute(
        _computed(sweep.id, *RUN_FIELDS, Run.curve_steps, Run.curve)
        .where(SweepRun.run_key == run_key).order_by(SweepRun.flat_index).limit(1)
    ).first()
    if row is None:
        return None
    out = _run_dict(row, [clip_label(c) for c in spec.axis_values()["clip"]])
    out["curve"] = {"steps": list(row.curve_steps or []),
                    "loss": decode_curve(row.curve or [])}
    return out


def _csv(rows: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def export_csv(db: Database, sweep_id: int, spec: SweepSpec, level: str) -> Iterator[str]:
    """CSV text, streamed page by page (DESIGN section 10 columns; floats by repr)."""
    with db.session(read_only=True) as session:
        if level == "cells":
            yield _csv([export.CELL_COLUMNS])
            c = analysis.cells(spec, load_frame(session, sweep_id, spec))
            yield _csv(list(export.cell_rows(spec, c)))
            return
        yield _csv([export.RUN_COLUMNS])
        after = -1
        while True:
            rows = session.execute(
                _computed(sweep_id, Run.run_key, Run.outcome, Run.final_loss,
                          Run.final_loss_kind, Run.final_rel, Run.final_rel_kind, Run.final_gap,
                          Run.final_gap_kind, Run.div_step, Run.clip_fraction)
                .where(SweepRun.flat_index > after)
                .order_by(SweepRun.flat_index).limit(PAGE_ROWS)
            ).all()
            if not rows:
                return
            after = rows[-1].flat_index
            yield _csv(list(_page_rows(spec, rows)))


def _page_rows(spec: SweepSpec, rows: list[Any]) -> Iterator[list[str]]:
    cols = list(zip(*rows, strict=True))
    runs = runs_at(spec, np.asarray(cols[0], dtype=np.int64))
    outcomes = Outcomes(
        code=np.array([CODE[o] for o in cols[2]], dtype=np.int8),
        final_loss=_floats(list(cols[3]), list(cols[4])),
        final_rel=_floats(list(cols[5]), list(cols[6])),
        final_gap=_floats(list(cols[7]), list(cols[8])),
        div_step=np.array([-1 if d is None else d for d in cols[9]], dtype=np.int64),
        clip_fraction=np.array(cols[10], dtype=np.float64),
    )
    modes, thresholds = clip_columns(spec, runs)
    return export.run_rows(keys=list(cols[1]), runs=runs, clip_modes=modes,
                           clip_thresholds=thresholds, steps=spec.steps, outcomes=outcomes)
