"""Check a spec without creating a sweep: the new-sweep page shows its run count as
the user types, and each error beside the field it names."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel

from api.deps import SettingsDep
from api.routes.body import spec_body_openapi, spec_document
from api.schemas import errors
from experiments.spec import AXES, RunCapError, SpecError, parse_spec

router = APIRouter(prefix="/api/v1/sweeps", tags=["sweeps"])


class SpecCheck(BaseModel):
    total_runs: int
    steps: int
    axis_sizes: dict[str, int]
    document: Any  # the body as parsed (YAML or JSON), so a page can show it in either


@router.post("/validate", response_model=SpecCheck, openapi_extra=spec_body_openapi(),
             responses=errors(400, 413, 415, 422))
def validate_spec(doc: Annotated[Any, Depends(spec_document)], settings: SettingsDep) -> SpecCheck:
    """Validate a spec (JSON or YAML) as POST /sweeps would: run count, or 422/413 errors.
    Read-only (it stores nothing), so it needs no token."""
    try:
        spec = parse_spec(doc, max_runs=settings.max_runs)
    except RunCapError as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=str(exc)) from None
    except SpecError as exc:
        # the same shape as POST /sweeps' 422
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[
            {"loc": ["body", *_loc(field)], "field": field, "msg": msg, "type": "spec"}
            for field, msg in exc.errors
        ]) from None
    return SpecCheck(total_runs=spec.total_runs(), steps=spec.steps,
                     axis_sizes=dict(zip(AXES, spec.axis_sizes(), strict=True)), document=doc)


def _loc(field: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in field.replace("[", ".[").split("."):
        if piece.startswith("[") and piece.endswith("]") and piece[1:-1].isdigit():
            parts.append(int(piece[1:-1]))
        elif piece:
            parts.append(piece)
    return parts
