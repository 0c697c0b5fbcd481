"""A sweep's runs: filtered pages in grid order, and one run with its loss curve."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api import etag
from api.db.models import Sweep
from api.db.session import Database
from api.deps import CURSOR, DatabaseDep, SessionDep, SweepDep, SweepId, find_sweep
from api.schemas import RunDetail, RunPage, errors, json_response
from api.services import results
from api.services.sweeps import stored_spec

router = APIRouter(prefix="/sweeps/{sweep_id}/runs", tags=["runs"])
Outcome = Literal["converged", "not_converged", "diverged"]
# Pages of finished sweeps, by ETag (which names the sweep, its state and the query)
_pages: OrderedDict[str, RunPage] = OrderedDict()
_pages_lock = threading.Lock()


@router.get("", response_model=RunPage,
            responses={**etag.NOT_MODIFIED_DOC, **errors(404, 422)})
async def list_runs(
    sweep_id: SweepId,
    db: DatabaseDep,
    request: Request,
    beta1: float | None = None,
    beta2: float | None = None,
    batch_size: int | None = None,
    clip: Annotated[str | None, Query(description="none or mode:threshold")] = None,
    lr: float | None = None,
    seed: int | None = None,
    outcome: Outcome | None = None,
    cursor: Annotated[str | None, Query(pattern=CURSOR,
                                        description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Runs with results, in grid order, filtered by axis values and outcome."""
    given = {"beta1": beta1, "beta2": beta2, "batch_size": batch_size, "clip": clip, "lr": lr,
             "seed": seed}
    given.update({k: v for k, v in request.query_params.items() if "." in k})  # problem.n=20
    # one hand-off for the whole read (api.schemas.json_response)
    return await run_in_threadpool(_runs_page, db, request, sweep_id, given, outcome,
                                   cursor, limit)


def _runs_page(db: Database, request: Request, sweep_id: int, given: dict[str, Any],
               outcome: str | None, cursor: str | None, limit: int) -> Response:
    with db.session(read_only=True) as session:
        sweep = find_sweep(session, sweep_id)
        tag = etag.sweep_tag(request, sweep)  # finished sweeps: their pages never change
        if tag is not None and etag.matches(request, tag):
            return etag.not_modified(tag)
        page = _kept_page(tag)
        if page is None:
            page = _page(session, sweep, given, outcome, cursor, limit)
            if tag is not None:
                with _pages_lock:
                    _pages[tag] = page
                    while len(_pages) > 256:
                        _pages.popitem(last=False)
    response = json_response(page)
    etag.tag_headers(response, tag)
    return response


def _kept_page(tag: str | None) -> RunPage | None:
    if tag is None:
        return None
    with _pages_lock:
        if tag in _pages:
            _pages.move_to_end(tag)
            return _pages[tag]
    return None


def _page(session: Session, sweep: Sweep, given: dict[str, Any], outcome: str | None,
          cursor: str | None, limit: int) -> RunPage:
    spec = stored_spec(sweep)
    try:
        filters = results.axis_filters(spec, given)
    except KeyError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc.args[0])) \
            from None
    items, after = results.list_runs(
        session, sweep, spec, filters=filters, outcome=outcome,
        cursor=int(cursor) if cursor is not None else None, limit=limit,
    )
    return RunPage.model_validate(
        {"items": items, "next_cursor": str(after) if after is not None else None})


@router.get("/{run_key}", response_model=RunDetail, responses=errors(404, 422))
def get_run(
    sweep: SweepDep, session: SessionDep,
    run_key: Annotated[str, Path(min_length=64, max_length=64, pattern="^[0-9a-f]+$")],
) -> RunDetail:
    """One run of the sweep with its loss curve (full objective at checkpoints)."""
    detail = results.run_detail(session, sweep, stored_spec(sweep), run_key)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"run {run_key} of sweep {sweep.id} has no result (yet)")
    return RunDetail.model_validate(detail)
