"""Check a spec without creating a sweep: the new-sweep page shows its run count as
the user types, and each error beside the field it names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from api.deps import SessionDep
from api.routes.body import SpecDep, SpecDocument, spec_body_openapi
from api.schemas import errors
from api.services.sweeps import measured_rate

router = APIRouter(prefix="/api/v1/sweeps", tags=["sweeps"])


class SpecCheck(BaseModel):
    total_runs: int
    steps: int
    run_steps: int  # runs x steps: the engine's work
    # run_steps at the throughput this server measured on its recent sweeps (wall
    # time, queueing included); null before it has finished one
    estimated_seconds: float | None
    axis_sizes: dict[str, int]
    document: Any  # the body as parsed (YAML or JSON), so a page can show it in either


@router.post("/validate", response_model=SpecCheck, openapi_extra=spec_body_openapi(),
             responses=errors(400, 403, 408, 413, 415, 422))
def validate_spec(doc: SpecDocument, spec: SpecDep, session: SessionDep) -> SpecCheck:
    """Validate a spec (JSON or YAML) as POST /sweeps would: run count, run-steps and an
    estimated duration, or 422/413 errors. Read-only (it stores nothing): no token."""
    run_steps = spec.total_runs() * spec.steps
    try:
        rate = measured_rate(session)
    except SQLAlchemyError:  # the database is down: validate all the same, no estimate
        rate = None
    return SpecCheck(total_runs=spec.total_runs(), steps=spec.steps, run_steps=run_steps,
                     estimated_seconds=run_steps / rate if rate else None,
                     axis_sizes=dict(zip(spec.axes(), spec.axis_sizes(), strict=True)),
                     document=doc)
