"""The FastAPI application: REST API under /api/v1, HTML pages, OpenAPI at /docs.

`create_app(settings)` wires the database, the dispatcher (Celery, or the
in-process executor when no broker is configured) and the reconciler; the
lifespan upgrades the schema first, so a fresh database just works.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy.exc
from fastapi import APIRouter, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from api import prepare, warm
from api.db.checkpoint import WalCheckpointer
from api.db.session import get_database, sqlite_path
from api.guards import CrossSite, Hygiene, TrustedHosts, redact_access_log
from api.readcache import ReadCache
from api.settings import Settings, get_settings
from workers.dispatch import make_dispatcher
from workers.reconcile import Reconciler

log = logging.getLogger("betascope.api")


def factory() -> FastAPI:
    """The app from BETASCOPE_* settings, for `uvicorn.run("api.app:factory", factory=True)`:
    each of `betascope serve --workers N`'s processes builds its own from the environment."""
    from api import memory

    memory.configure()
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
        path = sqlite_path(settings.database_url)
        checkpointer = WalCheckpointer(path) if path else None
        if checkpointer is not None:
            checkpointer.start()
        threading.Thread(target=warm.preload_readers, args=(app,), name="betascope-preload",
                         daemon=True).start()
        warming = asyncio.create_task(warm.warm_reads(app))  # loopback is always served
        # sweeps that finish from now on
        preparing = prepare.watch(app, app.state.db) if settings.prepare_finished else None
        log.info("betascope ready (%s)", "embedded executor" if settings.embedded
                 else f"broker, queue {settings.queue}")
        try:
            yield
        finally:
            warming.cancel()
            if preparing is not None:
                preparing.cancel()
            reconciler.stop()
            dispatcher.shutdown()
            if checkpointer is not None:
                checkpointer.stop()

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
    # the last added runs first: requests counted, Host, then cross-site refusal, then
    # the body's limits, then finished sweeps' reads answered from kept bytes (api.readcache)
    app.add_middleware(ReadCache, database_url=settings.database_url)
    app.add_middleware(Hygiene, max_bytes=settings.max_body_bytes,
                       body_timeout=settings.body_timeout_seconds)
    app.add_middleware(CrossSite)
    app.add_middleware(TrustedHosts, hosts=settings.served_hosts())
    app.add_middleware(prepare.InFlight)  # for prepare.quiet()
    for error in DATABASE_DOWN:
        app.add_exception_handler(error, _database_down)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    redact_access_log()

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


# A 422 names the parameter and the rule; echoing a 100 kB query back would only
# make the answer an amplifier.
MAX_ECHO = 100


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": jsonable_encoder([_short(e) for e in exc.errors()])},
                        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_ECHO:
        return f"{value[:MAX_ECHO]}... ({len(value)} characters)"
    if isinstance(value, bytes):
        return _short(value.decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_short(v) for v in value[:10]]
        return items + [f"... ({len(value)} items)"] if len(value) > 10 else items
    return value


async def _client_gone(request: Request, exc: Exception) -> Response:
    # nobody is left to read an answer; not a server error worth a traceback
    log.info("%s %s: client disconnected before sending the whole body",
             request.method, request.url.path)
    return Response(status_code=400)
