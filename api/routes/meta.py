"""Presets, liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import DatabaseDep, DispatcherDep, SettingsDep
from api.schemas import Health, Preset

router = APIRouter(tags=["meta"])


@router.get("/presets", response_model=list[Preset])
def presets() -> list[Preset]:
    """Built-in specs that reproduce the papers' claims."""
    from experiments.presets import PRESETS
    from experiments.spec import parse_spec

    return [Preset(name=key, title=doc["name"], total_runs=parse_spec(doc).total_runs(),
                   spec=doc) for key, doc in PRESETS.items()]


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(db: DatabaseDep, dispatcher: DispatcherDep, settings: SettingsDep
           ) -> Health | JSONResponse:
    """Readiness: the database answers and the broker (or in-process executor) is up;
    `checks.engine` says when the in-process engine is still loading its kernels."""
    checks = {}
    try:
        with db.session(read_only=True) as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    problem = dispatcher.check()
    checks["executor" if settings.embedded else "broker"] = problem or "ok"
    ready = all(v == "ok" for v in checks.values())
    # reads are served meanwhile, and sweeps queue: it is said, not a 503
    note = dispatcher.engine_note()
    if note is not None:
        checks["engine"] = note
    if ready:
        return Health(status="ok", checks=checks)
    body = Health(status="unavailable", checks=checks).model_dump()
    return JSONResponse(body, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

