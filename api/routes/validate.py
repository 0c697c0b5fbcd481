"""Check a spec without creating a sweep: the new-sweep page shows its run count as
the user types, and each error beside the field it names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.routes.body import SpecDep, SpecDocument, spec_body_openapi
from api.schemas import errors

router = APIRouter(prefix="/api/v1/sweeps", tags=["sweeps"])


class SpecCheck(BaseModel):
    total_runs: int
    steps: int
    axis_sizes: dict[str, int]
    document: Any  # the body as parsed (YAML or JSON), so a page can show it in either


@router.post("/validate", response_model=SpecCheck, openapi_extra=spec_body_openapi(),
             responses=errors(400, 403, 408, 413, 415, 422))
def validate_spec(doc: SpecDocument, spec: SpecDep) -> SpecCheck:
    """Validate a spec (JSON or YAML) as POST /sweeps would: run count, or 422/413 errors.
    Read-only (it stores nothing), so it needs no token."""
    return SpecCheck(total_runs=spec.total_runs(), steps=spec.steps,
                     axis_sizes=dict(zip(spec.axes(), spec.axis_sizes(), strict=True)),
                     document=doc)
