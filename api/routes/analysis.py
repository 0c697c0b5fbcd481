"""Phase maps and boundaries, computed by experiments.analysis from stored results."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from api import etag
from api.deps import SessionDep, SweepDep
from api.schemas import Boundary, PhaseMap, errors
from api.services import cells, results
from api.services.sweeps import stored_spec
from experiments import analysis

router = APIRouter(prefix="/sweeps/{sweep_id}", tags=["analysis"])
Metric = Literal[analysis.METRICS]  # type: ignore[valid-type]  # the list, written once


@router.get("/phase-map", response_model=PhaseMap,
            responses={**etag.NOT_MODIFIED_DOC, **errors(404, 422)})
def phase_map(
    sweep: SweepDep,
    session: SessionDep,
    request: Request,
    response: Response,
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
    tag = results.results_tag(request, session, sweep)
    if etag.matches(request, tag):
        return etag.not_modified(tag)
    etag.tag_headers(response, tag)
    spec = stored_spec(sweep)
    chosen = {"batch_size": batch_size, "clip": clip, "lr": lr, "beta1": beta1, "beta2": beta2}
    chosen.update({k: v for k, v in request.query_params.items() if "." in k})
    try:
        pm = results.phase_map(session, sweep, spec, metric=metric, chosen=chosen, x=x, y=y)
    except KeyError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc.args[0])) \
            from None
    cells.follow(request.app.state.db.url, sweep)  # the next poll's map: merged meanwhile
    return PhaseMap.model_validate(pm)


@router.get("/boundary", response_model=Boundary,
            responses={**etag.NOT_MODIFIED_DOC, **errors(404, 422)})
def boundary(sweep: SweepDep, session: SessionDep, request: Request, response: Response) -> Any:
    """beta2*(beta1) for every slice, beta2* against batch size with its scaling fit."""
    tag = results.results_tag(request, session, sweep)
    if etag.matches(request, tag):
        return etag.not_modified(tag)
    etag.tag_headers(response, tag)
    return Boundary.model_validate(results.boundary(session, sweep, stored_spec(sweep)))
