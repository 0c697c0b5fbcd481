"""A chunk's plan (which runs to compute, which to read from the source sweep)
and its engine output as the two columnar records that are stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from api.db import columnar
from api.db.chunks import ClaimedChunk
from api.db.session import Database
from api.db.store import Stored, gather, spec_of
from experiments.analysis import ResultFrame, cell_stats, spiky_weights
from experiments.outcomes import is_spiky
from experiments.reuse import axis_maps, cell_index, cells_per_unit, chunk_unit, map_runs
from experiments.runs import RunTable, runs_at
from experiments.spec import SweepSpec
from experiments.version import engine_version
from workers.errors import EngineMismatch

CELL_INPUTS = ("outcome", "final_rel", "div_step", "max_rise")


@dataclass(frozen=True)
class ChunkPlan:
    spec: SweepSpec
    lo: int
    hi: int
    compute: np.ndarray  # flat indices this chunk computes (ascending)
    runs: RunTable  # those runs
    reused: np.ndarray  # flat indices read from the source sweep
    reused_inputs: dict[str, np.ndarray]  # their CELL_INPUTS columns


def plan_chunk(db: Database, claim: ClaimedChunk) -> ChunkPlan:
    """The chunk's runs; those its sweep shares with its source are read, not computed."""
    if engine_version(claim.kernel) != claim.engine_version:
        raise EngineMismatch(
            f"engine version differs: this worker runs {engine_version(claim.kernel)}, the "
            f"sweep was created for {claim.engine_version}; upgrade the worker"
        )
    spec = spec_of(claim.sweep_id, claim.created_at, claim.spec)
    flat = np.arange(claim.lo, claim.hi, dtype=np.int64)
    reused = np.zeros(0, dtype=np.int64)
    inputs: dict[str, np.ndarray] = {}
    if claim.source_id is not None:
        with db.session(read_only=True) as session:
            source = Stored.load(session, claim.source_id)
            maps = axis_maps(spec, source.spec) if source is not None else None
            if source is not None and maps is not None:
                inside, src_flat = map_runs(spec, source.spec, maps, flat)
                found, inputs = gather(session, source, src_flat[inside], CELL_INPUTS)
                reused = flat[inside][found]
                inputs = {k: v[found] for k, v in inputs.items()}
    compute = np.setdiff1d(flat, reused, assume_unique=True)
    return ChunkPlan(spec, claim.lo, claim.hi, compute, runs_at(spec, compute), reused, inputs)


def encode_chunk(plan: ChunkPlan, result: Any) -> tuple[memoryview, memoryview, memoryview]:
    """(runs record, cells record, curves record) of a computed chunk."""
    n = len(plan.compute)
    cols: dict[str, np.ndarray]
    if result is not None:
        o = result.outcomes
        cols = {"outcome": o.code, "final_loss": o.final_loss, "final_rel": o.final_rel,
                "final_gap": o.final_gap, "div_step": o.div_step,
                "clip_fraction": o.clip_fraction, "max_rise": o.max_rise,
                columnar.CURVE: result.curves}
        if result.x_final.shape[1] <= columnar.FINAL_X_MAX_DIM:
            cols[columnar.FINAL_X] = result.x_final
    else:
        cols = {name: np.zeros(0) for name, _ in columnar.RESULT_FIELDS}
        cols[columnar.CURVE] = np.zeros((0, 0), dtype=np.float32)
    partial = n != plan.hi - plan.lo
    curves_data = columnar.encode_curves(cols.pop(columnar.CURVE))
    runs_data = columnar.encode_runs(cols, offset=(plan.compute - plan.lo) if partial else None)
    # the cells of the range, from computed and reused runs together
    flat = np.concatenate([plan.compute, plan.reused])
    code = np.concatenate([cols["outcome"], plan.reused_inputs.get("outcome", np.zeros(0))])
    rel = np.concatenate([cols["final_rel"], plan.reused_inputs.get("final_rel", np.zeros(0))])
    div = np.concatenate([cols["div_step"], plan.reused_inputs.get("div_step", np.zeros(0))])
    rise = np.concatenate([cols["max_rise"], plan.reused_inputs.get("max_rise", np.zeros(0))])
    frame = ResultFrame(
        grid=np.zeros((len(flat), 0), dtype=np.int64), code=code.astype(np.int8),
        final_rel=rel.astype(np.float64),
        div_step=np.where(div >= 0, div, np.nan).astype(np.float64),
        spiky=spiky_weights(rise, is_spiky(rise, plan.spec.criteria)),
        max_rise=rise.astype(np.float64),
    )
    # the range holds whole chunk units, so its cells are consecutive from lo's
    first = int(cell_index(plan.spec, np.array([plan.lo]))[0])
    n_cells = (plan.hi - plan.lo) // chunk_unit(plan.spec) * cells_per_unit(plan.spec)
    stats = cell_stats(cell_index(plan.spec, flat) - first, frame, n_cells)
    return runs_data, columnar.encode_cells(stats), curves_data
