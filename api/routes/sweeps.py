"""Sweeps: create, list, read, cancel, retry, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from api import etag, limits
from api.db.chunks import mark_unsent_without_commit
from api.db.models import Sweep
from api.db.session import Database
from api.deps import (
    CURSOR,
    Authorized,
    DatabaseDep,
    DispatcherDep,
    SessionDep,
    SettingsDep,
    SweepDep,
    SweepId,
    find_sweep,
)
from api.routes.body import SpecDep, spec_body_openapi, spec_errors
from api.schemas import SweepOut, SweepPage, SweepSummary, errors, json_response
from api.services import cells
from api.services import sweeps as service
from experiments.spec import SpecError
from workers.dispatch import Dispatcher

router = APIRouter(prefix="/sweeps", tags=["sweeps"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SweepOut,
             dependencies=[Authorized], openapi_extra=spec_body_openapi(),
             responses=errors(400, 401, 403, 408, 413, 415, 422, 429))
def create_sweep(
    spec: SpecDep, session: SessionDep, settings: SettingsDep, dispatcher: DispatcherDep,
) -> SweepOut:
    """Create a sweep from a spec (JSON or YAML) and queue its chunks."""
    with limits.creation_slot(settings):
        limits.check_queue(session, settings, spec)
        try:
            sweep, chunk_ids = service.create_sweep(session=session, spec=spec,
                                                    settings=settings)
        except SpecError as exc:  # the configured kernel cannot run this spec
            raise spec_errors(exc.errors) from None
        session.commit()  # workers must never see chunks of an uncommitted sweep
    _enqueue(session, dispatcher, chunk_ids)
    return sweep_out(session, sweep)


def _enqueue(session: Session, dispatcher: Dispatcher, chunk_ids: list[int]) -> None:
    unsent = dispatcher.enqueue(chunk_ids)
    if unsent:  # broker down: the reconciler sends them once it is back
        mark_unsent_without_commit(session, unsent)
        session.commit()


@router.get("", response_model=SweepPage, responses=errors(422))
async def list_sweeps(
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=CURSOR,
                                        description="next_cursor of the previous page")] = None,
) -> Any:
    """List sweeps, newest first, one page at a time."""
    # one hand-off to the thread pool for the whole read, not one per dependency
    return await run_in_threadpool(_sweeps_page, db, limit, cursor)


def _sweeps_page(db: Database, limit: int, cursor: str | None) -> Response:
    with db.session(read_only=True) as session:
        # the spec is not part of a summary: its JSON is neither loaded nor decoded
        stmt = (select(Sweep).options(defer(Sweep.spec)).where(Sweep.hidden.is_(False))
                .order_by(Sweep.id.desc()).limit(limit + 1))
        if cursor is not None:
            stmt = stmt.where(Sweep.id < int(cursor))
        sweeps = list(session.scalars(stmt))
        page = sweeps[:limit]
        stats = service.sweep_stats(session, page)
    items = [SweepSummary(**_summary(s, stats[s.id])) for s in page]
    return json_response(SweepPage(
        items=items, next_cursor=str(page[-1].id) if len(sweeps) > limit else None))


@router.get("/{sweep_id}", response_model=SweepOut,
            responses={**etag.NOT_MODIFIED_DOC, **errors(404, 422)})
async def get_sweep(sweep_id: SweepId, db: DatabaseDep, request: Request) -> Any:
    """One sweep: status, counts, progress in [0, 1], timestamps, errors and spec."""
    return await run_in_threadpool(_sweep_answer, db, request, sweep_id)


def _sweep_answer(db: Database, request: Request, sweep_id: int) -> Response:
    with db.session(read_only=True) as session:
        sweep = find_sweep(session, sweep_id)
        tag = etag.sweep_tag(request, sweep)  # finished sweeps only: a running one moves
        if tag is not None and etag.matches(request, tag):
            return etag.not_modified(tag)
        response = json_response(sweep_out(session, sweep))
        cells.follow(db.url, sweep)  # a client watching a running sweep asks for its maps next
    etag.tag_headers(response, tag)
    return response


@router.post("/{sweep_id}/cancel", response_model=SweepOut, dependencies=[Authorized],
             responses=errors(401, 403, 404, 409, 415, 422))
def cancel_sweep(sweep: SweepDep, session: SessionDep) -> SweepOut:
    """Cancel a queued or running sweep; workers stop at their next step block."""
    session.refresh(sweep, with_for_update=True)
    try:
        service.cancel_sweep(session=session, sweep=sweep)
    except service.Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    session.commit()  # before the response: a client that saw 200 may rely on it
    return sweep_out(session, sweep)


@router.post("/{sweep_id}/retry", response_model=SweepOut, dependencies=[Authorized],
             responses=errors(401, 403, 404, 409, 415, 422))
def retry_sweep(sweep: SweepDep, session: SessionDep, dispatcher: DispatcherDep) -> SweepOut:
    """Run a failed (or canceled) sweep's unfinished chunks again."""
    session.refresh(sweep, with_for_update=True)
    try:
        chunk_ids = service.retry_sweep(session=session, sweep=sweep)
    except service.Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    session.commit()
    _enqueue(session, dispatcher, chunk_ids)
    return sweep_out(session, sweep)


@router.delete("/{sweep_id}", status_code=status.HTTP_204_NO_CONTENT,
               dependencies=[Authorized], response_class=Response,
               responses=errors(401, 403, 404, 415, 422))
def delete_sweep(sweep: SweepDep, session: SessionDep) -> Response:
    """Delete a sweep; run results stay while another sweep uses them."""
    session.refresh(sweep, with_for_update=True)
    service.delete_sweep(session=session, sweep=sweep)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _summary(sweep: Sweep, st: service.SweepStats) -> dict[str, Any]:
    return {
        "id": sweep.id, "name": sweep.name, "status": sweep.status, "kernel": sweep.kernel,
        "total_runs": sweep.total_runs, "done_runs": st.done_runs,
        "runs_per_second": st.runs_per_second, "eta_seconds": st.eta_seconds,
        "failed_runs": st.failed_runs, "cached_runs": sweep.cached_runs,
        "progress": st.progress, "created_at": sweep.created_at,
        "started_at": sweep.started_at, "finished_at": sweep.finished_at,
    }


def sweep_out(session: Session, sweep: Sweep) -> SweepOut:
    """The sweep as answered. Ends the transaction: FastAPI serializes the response in
    a worker thread, and a request must not hold its connection (on SQLite, the write
    lock) while it waits for one; under load every worker would be waiting for it."""
    st = service.sweep_stats(session, [sweep], errors=True)[sweep.id]
    out = SweepOut(**_summary(sweep, st), engine_version=sweep.engine_version,
                   n_chunks=sweep.n_chunks, chunks=st.chunks, errors=st.errors,
                   spec=sweep.spec)
    session.commit()
    return out
