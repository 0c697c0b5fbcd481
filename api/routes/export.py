"""Exports: CSV streamed (one row per run, or per cell), and Parquet with typed columns;
the next piece is made while this one is sent (api/streams.py)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from api import etag
from api.deps import DatabaseDep, SweepDep
from api.schemas import errors
from api.services.results import export_csv, export_parquet
from api.services.sweeps import stored_spec
from api.streams import made_ahead

router = APIRouter(prefix="/sweeps/{sweep_id}", tags=["export"])


@router.get("/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}, **etag.NOT_MODIFIED_DOC,
                       **errors(404, 422)})
def export(
    sweep: SweepDep, db: DatabaseDep, request: Request,
    level: Literal["runs", "cells"] = "runs",
) -> Response:
    """The sweep's results as CSV (runs, or cells aggregated over seeds), streamed."""
    tag = etag.sweep_tag(request, sweep)  # finished sweeps only
    if tag is not None and etag.matches(request, tag):
        return etag.not_modified(tag)
    body = made_ahead(export_csv(db, sweep.id, stored_spec(sweep), level, sweep.kernel))
    filename = f"sweep-{sweep.id}-{level}.csv"
    out = StreamingResponse(body, media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    etag.tag_headers(out, tag)
    return out


@router.get("/export.parquet", response_class=StreamingResponse,
            responses={200: {"content": {"application/vnd.apache.parquet": {}}},
                       **etag.NOT_MODIFIED_DOC, **errors(404, 422)})
def export_parquet_file(
    sweep: SweepDep, db: DatabaseDep, request: Request,
    level: Literal["runs", "cells", "curves"] = "runs",
    compression: Literal["none", "lz4", "snappy", "zstd"] = "none",
) -> Response:
    """The sweep's results as Parquet: runs, cells, or each run's loss curve (float32),
    streamed a row group at a time."""
    tag = etag.sweep_tag(request, sweep)  # finished sweeps only
    if tag is not None and etag.matches(request, tag):
        return etag.not_modified(tag)
    body = made_ahead(
        export_parquet(db, sweep.id, stored_spec(sweep), level, sweep.kernel, compression))
    filename = f"sweep-{sweep.id}-{level}.parquet"
    out = StreamingResponse(body, media_type="application/vnd.apache.parquet",
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    etag.tag_headers(out, tag)
    return out
