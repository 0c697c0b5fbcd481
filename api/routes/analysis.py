"""Phase maps and boundaries, computed by experiments.analysis from stored results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api import etag
from api.db.models import Sweep
from api.db.session import Database
from api.deps import DatabaseDep, SweepId, find_sweep
from api.schemas import Boundary, PhaseMap, errors, json_body, json_response
from api.services import cells, results
from api.services.sweeps import stored_spec
from experiments import analysis

router = APIRouter(prefix="/sweeps/{sweep_id}", tags=["analysis"])
Metric = Literal[analysis.METRICS]  # type: ignore[valid-type]  # the list, written once


@router.get("/phase-map", response_model=PhaseMap,
            responses={**etag.NOT_MODIFIED_DOC, **errors(404, 422)})
async def phase_map(
    sweep_id: SweepId,
    db: DatabaseDep,
    request: Request,
    metric: Metric = "outcome",
    x: Annotated[str | None, Query(description="map axis on x (default beta1)")] = None,
    y: Annotated[str | None, Query(description="map axis on y (default beta2)")] = None,
    batch_size: Annotated[int | None, Query(description="default: the first on the grid")] = None,
    clip: Annotated[str | None, Query(description="none or mode:threshold")] = None,
    lr: float | None = None,
    beta1: Annotated[float | None, Query(description="slice, when beta1 is not mapped")] = None,
    beta2: Annotated[float | None, Query(description="slice, when beta2 is not mapped")] = None,
) -> Any:
    """One slice as a heatmap over two axes (beta1 x beta2 by default); z rows run over y.
    Every other axis is a slice parameter; an extra axis by its path (problem.n=20)."""
    chosen = {"batch_size": batch_size, "clip": clip, "lr": lr, "beta1": beta1, "beta2": beta2}
    chosen.update({k: v for k, v in request.query_params.items() if "." in k})
    # one hand-off for the whole read (api.schemas.json_response)
    return await run_in_threadpool(_phase_map, db, request, sweep_id, metric, chosen, x, y)


def _phase_map(db: Database, request: Request, sweep_id: int, metric: str,
               chosen: dict[str, Any], x: str | None, y: str | None) -> Response:
    def answer(session: Session, sweep: Sweep) -> bytes:
        body = map_body(session, sweep, metric, chosen, x, y)
        cells.follow(db.url, sweep)  # the next poll's map: merged meanwhile
        return body

    return _results_read(db, request, sweep_id, answer)


def map_body(session: Session, sweep: Sweep, metric: str, chosen: dict[str, Any],
             x: str | None = None, y: str | None = None) -> bytes:
    """The phase map's answer as bytes (kept by api.services.results); 422 naming a bad
    map axis or slice value."""
    try:
        return results.phase_map_body(session, sweep, stored_spec(sweep), _render,
                                      metric=metric, chosen=chosen, x=x, y=y)
    except KeyError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=str(exc.args[0])) from None


def _render(pm: dict[str, Any]) -> bytes:
    return json_body(PhaseMap.model_validate(pm))


def _results_read(db: Database, request: Request, sweep_id: int,
                  answer: Callable[[Session, Sweep], BaseModel | bytes]) -> Response:
    """A read of the sweep's results, tagged by what they say: 304 when the client has
    them, else answer(session, sweep) as JSON (or its JSON bytes)."""
    with db.session(read_only=True) as session:
        sweep = find_sweep(session, sweep_id)
        tag = results.results_tag(request, session, sweep)
        if etag.matches(request, tag):
            return etag.not_modified(tag)
        model = answer(session, sweep)
    response = json_response(model) if isinstance(model, BaseModel) else Response(
        model, media_type="application/json")
    etag.tag_headers(response, tag)
    return response


@router.get("/boundary", response_model=Boundary,
            responses={**etag.NOT_MODIFIED_DOC, **errors(404, 422)})
async def boundary(sweep_id: SweepId, db: DatabaseDep, request: Request) -> Any:
    """beta2*(beta1) for every slice, beta2* against batch size with its scaling fit."""
    return await run_in_threadpool(_boundary, db, request, sweep_id)


def _boundary(db: Database, request: Request, sweep_id: int) -> Response:
    return _results_read(db, request, sweep_id, lambda session, sweep: Boundary.model_validate(
        results.boundary(session, sweep, stored_spec(sweep))))
