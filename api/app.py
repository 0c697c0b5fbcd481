"""The FastAPI application: REST API under /api/v1, HTML pages, OpenAPI at /docs.

`create_app(settings)` wires the database, the dispatcher (Celery, or the
in-process executor when no broker is configured) and the reconciler; the
lifespan upgrades the schema first, so a fresh database just works.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy.exc
from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.db.session import get_database
from api.settings import Settings, get_settings
from workers.dispatch import make_dispatcher
from workers.reconcile import Reconciler

log = logging.getLogger("betascope.api")


def factory() -> FastAPI:
    """The app from BETASCOPE_* settings, for `uvicorn.run("api.app:factory", factory=True)`:
    each of `betascope serve --workers N`'s processes builds its own from the environment."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(get_settings())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    dispatcher = make_dispatcher(settings)
    # embedded: nothing else can be running this database's queued chunks, so
    # the first pass sends them all (they were left over from the last run)
    reconciler = Reconciler(settings, dispatcher,
                            first_requeue_after=0.0 if settings.embedded else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_upgrade:
            from api.db.migrate import upgrade

            upgrade(settings.database_url)
        dispatcher.start()
        reconciler.start()
        log.info("betascope ready (%s)", "embedded executor" if settings.embedded
                 else f"broker, queue {settings.queue}")
        try:
            yield
        finally:
            reconciler.stop()
            dispatcher.shutdown()

    app = FastAPI(
        title="betascope",
        summary="Phase diagrams of Adam: sweeps over (beta1, beta2), batch size and clipping.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served offline by api.pages
    )
    app.state.settings = settings
    app.state.db = get_database(settings.database_url)
    app.state.dispatcher = dispatcher
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    for error in DATABASE_DOWN:
        app.add_exception_handler(error, _database_down)

    from api.routes import analysis, export, meta, runs, sweeps

    api = APIRouter(prefix="/api/v1")
    for module in (sweeps, runs, analysis, export, meta):
        api.include_router(module.router)
    app.include_router(api)

    from api import pages  # HTML pages and their assets (web/), /docs and /redoc

    app.include_router(pages.router)
    app.add_exception_handler(404, pages.not_found)
    return app


# The database is unreachable or too busy (refused, dropped, pool exhausted): the
# request may well succeed in a moment, so 503 with Retry-After, not a bare 500.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError, sqlalchemy.exc.TimeoutError,
)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: database unavailable: %r", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": f"database unavailable ({type(exc).__name__}); try again shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"},
    )


class BodyLimit:
    """Reject request bodies over `max_bytes` with 413, by Content-Length or as they stream."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_413(send, self.max_bytes)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=_too_big(
                        self.max_bytes))
            return message

        await self.app(scope, limited, send)


def _too_big(limit: int) -> str:
    return f"request body exceeds {limit} bytes (BETASCOPE_MAX_BODY_BYTES)"


async def _send_413(send: Send, limit: int) -> None:
    import json

    body = json.dumps({"detail": _too_big(limit)}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
