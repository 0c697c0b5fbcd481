"""A chunk's engine output as `run` rows, ready for one upsert keyed by run_key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from api.db.codec import encode_curve, split_floats
from experiments.runs import RunTable, clip_columns
from experiments.spec import SweepSpec

RESULT_COLUMNS = (
    "outcome", "final_loss", "final_loss_kind", "final_rel", "final_rel_kind", "final_gap",
    "final_gap_kind", "div_step", "clip_fraction", "curve_steps", "curve", "computed_at",
)
COLUMNS = (
    "run_key", "beta1", "beta2", "batch_size", "clip_mode", "clip_threshold", "lr", "seed",
    "steps", *RESULT_COLUMNS,
)


def result_rows(
    *, spec: SweepSpec, runs: RunTable, keys: list[str], result: Any, now: datetime
) -> list[tuple[Any, ...]]:
    """One tuple per run, in COLUMNS order; non-finite floats become (NULL, kind)."""
    o = result.outcomes
    modes, thresholds = clip_columns(spec, runs)
    loss, loss_kind = split_floats(o.final_loss)
    rel, rel_kind = split_floats(o.final_rel)
    gap, gap_kind = split_floats(o.final_gap)
    div = [d if d >= 0 else None for d in o.div_step.tolist()]
    steps = result.curve_steps.tolist()
    curves = result.curves.tolist()
    for i in np.flatnonzero(~np.isfinite(result.curves).all(axis=1)).tolist():
        curves[i] = encode_curve(curves[i])
    return list(zip(
        keys, runs.beta1.tolist(), runs.beta2.tolist(), runs.batch_size.tolist(), modes,
        thresholds, runs.lr.tolist(), runs.seed.tolist(), [spec.steps] * len(keys), o.labels,
        loss, loss_kind, rel, rel_kind, gap, gap_kind, div, o.clip_fraction.tolist(),
        [steps] * len(keys), curves, [now] * len(keys), strict=True,
    ))
