"""Response models (what /docs shows). Non-finite floats are written as the
strings "NaN", "Infinity" and "-Infinity", since JSON has no such numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["queued", "running", "done", "failed", "canceled"]


class _Out(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")


class ChunkError(_Out):
    chunk_id: int
    seq: int
    status: str
    attempts: int
    last_error: str


class SweepSummary(_Out):
    id: int
    name: str
    status: Status
    kernel: str
    total_runs: int
    done_runs: int
    failed_runs: int
    cached_runs: int
    progress: float
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SweepOut(SweepSummary):
    engine_version: str
    n_chunks: int
    chunks: dict[str, int]
    errors: list[ChunkError]
    spec: dict[str, Any]


class SweepPage(_Out):
    items: list[SweepSummary]
    next_cursor: str | None


class RunOut(_Out):
    run_key: str
    flat_index: int
    beta1: float
    beta2: float
    batch_size: int
    clip_mode: str
    clip_threshold: float | None
    clip: str
    lr: float
    seed: int
    steps: int
    outcome: str
    final_loss: float | None
    final_rel: float | None
    final_gap: float | None
    div_step: int | None
    clip_fraction: float | None
    computed_at: datetime | None


class Curve(_Out):
    steps: list[int]
    loss: list[float]


class RunDetail(RunOut):
    curve: Curve


class RunPage(_Out):
    items: list[RunOut]
    next_cursor: str | None


class Axis(_Out):
    name: str
    values: list[float]


class PhaseMap(_Out):
    x: Axis
    y: Axis
    z: list[list[float | None]]
    metric: str
    outcomes: list[str] | None
    slice: dict[str, Any]
    available: dict[str, list[Any]]
    beta2_star: list[float | None]
    n_results: int


class Boundary(_Out):
    slices: list[dict[str, Any]]
    by_batch: list[dict[str, Any]]
    sqrt_curve: dict[str, list[float]]


class Preset(_Out):
    name: str
    title: str
    total_runs: int
    spec: dict[str, Any]


class Health(_Out):
    status: str
    checks: dict[str, str] = {}
