"""CSV export, streamed: one row per run (or per cell), DESIGN section 10 columns."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import DatabaseDep, SweepDep
from api.schemas import errors
from api.services.results import export_csv
from api.services.sweeps import stored_spec

router = APIRouter(prefix="/sweeps/{sweep_id}", tags=["export"])


@router.get("/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}, **errors(404, 422)})
def export(
    sweep: SweepDep, db: DatabaseDep, level: Literal["runs", "cells"] = "runs"
) -> StreamingResponse:
    """The sweep's results as CSV (runs, or cells aggregated over seeds), streamed."""
    body = export_csv(db, sweep.id, stored_spec(sweep), level)
    filename = f"sweep-{sweep.id}-{level}.csv"
    return StreamingResponse(body, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
