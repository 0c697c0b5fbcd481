"""Response models (what /docs shows). Non-finite floats are written as the
strings "NaN", "Infinity" and "-Infinity", since JSON has no such numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

Status = Literal["queued", "running", "done", "failed", "canceled"]
# A float that may be non-finite (a diverged run's loss); the schema says how it is sent.
Real = Annotated[float, WithJsonSchema({"anyOf": [
    {"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
]})]


class _Out(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")


def json_response(model: BaseModel) -> Response:
    """The model as FastAPI would send it for its response_model, serialized by the
    caller: reads do their whole work (session, answer, bytes) in one hand-off to
    the thread pool, not one per dependency and another for the serialization."""
    return Response(json_body(model), media_type="application/json")


def json_body(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


class FieldError(BaseModel):
    """One bad field or parameter: where (`loc`), and what is wrong with it."""

    model_config = ConfigDict(extra="allow")
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """Every error body: a message, or one entry per bad field (spec errors, parameters)."""

    detail: str | list[FieldError]


_MEANING = {
    400: "The body is not UTF-8, is empty, nests too deeply, uses too many YAML aliases, or "
         "is not valid JSON or YAML; or the Host is not one this server answers",
    401: "Missing or wrong bearer token (when BETASCOPE_API_TOKEN is set)",
    403: "A browser sent this from another origin (Origin, Sec-Fetch-Site): refused",
    408: "The body did not arrive within BETASCOPE_BODY_TIMEOUT_SECONDS",
    404: "No such sweep (or run)",
    409: "The sweep's status does not allow this",
    413: "Body over BETASCOPE_MAX_BODY_BYTES, or grid over BETASCOPE_MAX_RUNS",
    415: "The body is neither application/json nor application/yaml, or is a form",
    422: "A field or parameter is invalid; the message names it",
    429: "Too many sweep creations at once, or the queue is full "
         "(BETASCOPE_MAX_CONCURRENT_CREATES, BETASCOPE_MAX_QUEUED_RUN_STEPS); see Retry-After",
    503: "The database is unreachable or too busy; see Retry-After",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these error status codes, all with a Problem body, and
    503 (every route that declares errors reads or writes the database)."""
    out: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem, "description": _MEANING[code]} for code in (*codes, 503)}
    for code in (429, 503):
        if code in out:
            out[code]["headers"] = {"Retry-After": {
                "description": "seconds to wait before trying again",
                "schema": {"type": "integer"}}}
    return out


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
    runs_per_second: float | None = Field(
        None, description="runs done per second of wall time since the sweep started")
    eta_seconds: float | None = Field(
        None, description="remaining runs at that rate; null until the first results")
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
    final_loss: Real | None
    final_rel: Real | None
    final_gap: Real | None
    div_step: int | None
    clip_fraction: float | None
    max_rise: Real | None = Field(description="largest rise of the loss above its running "
                                  "minimum; null for results stored before it was measured")
    spiky: bool | None = Field(description="max_rise >= criteria.spike_rise")
    computed_at: datetime | None
    extra: dict[str, int | float] = Field(
        default_factory=dict, description="the run's values of the extra axes, by path")


class Curve(_Out):
    steps: list[int]
    loss: list[Real]


class RunDetail(RunOut):
    curve: Curve
    final_x: list[Real] | None = Field(
        None, description="the final iterate, for problems of dimension 8 or less")


class RunPage(_Out):
    items: list[RunOut]
    next_cursor: str | None


class Axis(_Out):
    name: str
    # integer axes (batch_size, an integer extra axis) as integers; clip values are labels
    # (none, mode:threshold)
    values: list[int | float | str]


class PhaseMap(_Out):
    x: Axis
    y: Axis
    z: list[list[int | Real | None]]  # class indices (metric outcome, regime) as integers
    metric: str
    outcomes: list[str] | None
    slice: dict[str, Any]
    available: dict[str, list[Any]]
    beta2_star: list[float | None] | None  # on beta1 x beta2 maps only
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
