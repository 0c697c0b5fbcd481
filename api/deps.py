"""Typed dependencies: settings, a database session, the sweep (404 once), auth.

The ones that do no I/O are `async def`: FastAPI runs a plain `def` dependency in
the thread pool, and a hand-off there and back costs more than they do."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from sqlalchemy.orm import Session

from api.db.models import Sweep
from api.db.session import Database
from api.settings import Settings
from workers.dispatch import Dispatcher


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


def get_session(request: Request, db: DatabaseDep) -> Iterator[Session]:
    """One transaction per request: committed after the handler, rolled back on error.
    GETs read in a deferred transaction: on SQLite a writing one takes the database's
    write lock, and every page view and status poll would queue behind each other."""
    with db.session(read_only=request.method in ("GET", "HEAD")) as session:
        yield session


# ended when the handler returns, before the response is sent (scope "function"):
# FastAPI's default ends it after the response is sent, so an export kept the read
# transaction that found its sweep open for the whole download (on SQLite no
# checkpoint could finish meanwhile) and every answer held its connection while sent
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Ids are a 32-bit integer column on Postgres; a larger one would be a database error.
MAX_ID = 2**31 - 1
# Cursors are ids or grid positions the service issued: plain digits, never huge.
CURSOR = r"^[0-9]{1,18}$"


SweepId = Annotated[int, Path(ge=1, le=MAX_ID, description="sweep id")]


def find_sweep(session: Session, sweep_id: int) -> Sweep:
    """The sweep, or 404."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None or sweep.hidden:  # a hidden sweep was deleted; others still read it
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"sweep {sweep_id} not found")
    return sweep


def valid_sweep_id(sweep_id: SweepId, session: SessionDep) -> Sweep:
    return find_sweep(session, sweep_id)


SweepDep = Annotated[Sweep, Depends(valid_sweep_id)]


async def require_token(request: Request, settings: SettingsDep) -> None:
    """Mutating requests need `Authorization: Bearer <token>` when a token is configured."""
    expected = settings.token()
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # bytes, as they came: compare_digest refuses str with non-ASCII characters (a 500),
    # and Starlette decodes header bytes as Latin-1, so this round-trips exactly
    if scheme.lower() != "bearer" or not secrets.compare_digest(
            given.strip().encode("latin-1"), expected.encode("ascii")):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


Authorized = Depends(require_token)
