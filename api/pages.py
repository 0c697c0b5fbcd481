"""HTML pages and their static assets (DESIGN section 9, "Pages").

Pages are server-rendered shells (Jinja2, autoescaped) whose small vanilla
scripts read the JSON API under /api/v1, so a page shows exactly what a client
of the API would get. plotly.js is served from the installed plotly package:
the pages work offline and reference no external URL. So do /docs (Swagger UI)
and /redoc: their scripts come from the installed fastapi-offline package, not a CDN.
A page for something that does not exist (a sweep id that was never issued, a
path nobody serves) answers 404 with a page that says what is missing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.db.models import Sweep
from api.deps import MAX_ID, DatabaseDep
from api.routes.validate import router as validate_router

WEB = Path(__file__).resolve().parent.parent / "web"
STATIC = WEB / "static"
_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml", ".png": "image/png"}
# Swagger UI and ReDoc as shipped in the fastapi-offline wheel
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
# Scripts come only from this origin (no inline script can run even if some text
# escaped escaping); plotly injects <style> elements and draws heatmaps as data: images.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# /docs and /redoc run their packages' inline start-up scripts; everything else they
# load must come from here too (ReDoc's footer logo would otherwise come from its CDN)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; font-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_CACHE = "public, max-age=86400, immutable"  # URLs carry a content hash (?v=...)

router = APIRouter()
# POST /api/v1/sweeps/validate, which the new-sweep page calls; wired in here because
# create_app includes this router (it may move to the /api/v1 list in api/app.py).
router.include_router(validate_router)
# autoescape everywhere: sweep names and every other user text are escaped in HTML
templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(WEB / "templates"), autoescape=True)
)


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


@lru_cache(maxsize=64)
def _version(path: Path, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    """URL of a static asset with a content hash, so browsers may cache it for good."""
    path = _plotly_js() if name == "plotly.min.js" else STATIC / name
    return f"/static/{name}?v={_version(path, path.stat().st_mtime_ns)}"


templates.env.globals["static_url"] = static_url


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, context)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def sweeps_page(request: Request) -> HTMLResponse:
    """The sweeps list, newest first."""
    return _page(request, "sweeps.html", title="Sweeps")


@router.get("/sweeps/new", response_class=HTMLResponse, include_in_schema=False)
def new_sweep_page(request: Request) -> HTMLResponse:
    """Pick a preset or start blank; edit the spec as YAML or JSON; submit."""
    return _page(request, "new.html", title="New sweep", presets=_presets_json())


def _sweep_id(text: str) -> int | None:
    number = int(text) if text.isascii() and text.isdigit() else 0
    return number if 1 <= number <= MAX_ID else None


def _no_such_sweep(text: str) -> str:
    if _sweep_id(text) is None:
        return f"There is no sweep “{text}”: sweep ids are whole numbers such as /sweeps/1."
    return (f"Sweep {_sweep_id(text)} does not exist: it was never created "
            "or it has been deleted.")


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse, include_in_schema=False)
def sweep_page(request: Request, sweep_id: str, db: DatabaseDep) -> HTMLResponse:
    """One sweep: progress, phase diagrams, boundaries, loss curves, downloads."""
    number = _sweep_id(sweep_id)
    problem = None
    f_stars: dict[str, Any] = {"axes": [], "points": []}
    if number is not None:
        with db.session(read_only=True) as session:
            sweep = session.get(Sweep, number)
            if sweep is not None:
                problem = json.dumps(sweep.spec.get("problem"), sort_keys=True)
                f_stars = _f_stars(sweep)
    if number is None or problem is None:
        return missing_page(request, _no_such_sweep(sweep_id))
    return _page(request, "sweep.html", title="Sweep", sweep_id=number, f_star=_f_star(problem),
                 f_stars=json.dumps(f_stars))


# f* is rendered for at most this many points of a sweep's problem.* extra axes; past
# it the page says f* is unknown for a cell rather than use another point's
MAX_F_STAR_POINTS = 256


def _f_stars(sweep: Sweep) -> dict[str, Any]:
    """f* at every point of the sweep's problem.* extra axes, for the cell panel's
    suboptimality view: {"axes": [path, ...], "points": [[[value per axis], f* or
    null], ...]}; no axes (one f*, the page's data-f-star) when the grid sweeps no
    problem field, or there are too many points, or the spec no longer parses."""
    from api.services.sweeps import stored_spec

    none: dict[str, Any] = {"axes": [], "points": []}
    try:
        spec = stored_spec(sweep)
    except (ValueError, TypeError):  # a SpecError is a ValueError
        return none
    values = spec.axis_values()
    axes = [p for p in spec.extra_axes() if p.startswith("problem.")]
    if not axes or math.prod(len(values[a]) for a in axes) > MAX_F_STAR_POINTS:
        return none
    base = spec.problem.model_dump(mode="json")
    points = []
    for point in itertools.product(*(values[a] for a in axes)):
        fields = {a.split(".", 1)[1]: v for a, v in zip(axes, point, strict=True)}
        text = _f_star(json.dumps({**base, **fields}, sort_keys=True))
        points.append([list(point), None if text == "" else float(text)])
    return {"axes": axes, "points": points}


@lru_cache(maxsize=256)
def _f_star(problem_json: str) -> str:
    """The problem's optimal value f* as text for the page's suboptimality view ("" when
    the problem has none, or its spec no longer parses)."""
    from pydantic import TypeAdapter, ValidationError

    from experiments.spec import SweepSpec

    try:
        import torch

        from experiments.problems import build_problem

        field = SweepSpec.model_fields["problem"]
        spec: Any = TypeAdapter(field.annotation).validate_python(json.loads(problem_json))
        f_star = build_problem(spec, dtype=torch.float64, device=torch.device("cpu")).f_star
    except (ValidationError, ValueError, TypeError):
        return ""
    return "" if f_star is None else repr(float(f_star))


@router.get("/compare", response_class=HTMLResponse, include_in_schema=False)
def compare_page(
    request: Request, db: DatabaseDep, a: str = Query(default=""), b: str = Query(default="")
) -> HTMLResponse:
    """Two sweeps on the same grid: where their majority outcomes differ."""
    given = [t for t in (a, b) if t]
    numbers = [_sweep_id(t) for t in given]
    with db.session(read_only=True) as session:
        gone = [t for t, n in zip(given, numbers, strict=True)
                if n is None or session.get(Sweep, n) is None]
    if gone:
        return missing_page(request, " ".join(_no_such_sweep(t) for t in gone))
    return _page(request, "compare.html", title="Compare sweeps", a=a, b=b)


def missing_page(request: Request, what: str) -> HTMLResponse:
    """A 404 page that says what is missing and where to go instead."""
    response = _page(request, "missing.html", title="Not found", what=what)
    response.status_code = 404
    return response


async def not_found(request: Request, exc: Exception) -> Response:
    """404s: a page for browsers outside /api, the usual JSON for everyone else."""
    assert isinstance(exc, StarletteHTTPException)
    wants_html = "text/html" in request.headers.get("accept", "")
    if wants_html and not request.url.path.startswith(("/api/", "/static/")):
        return missing_page(request, f"Nothing is served at {request.url.path}.")
    return JSONResponse({"detail": exc.detail}, status_code=404, headers=exc.headers)


# --- OpenAPI docs, offline ---------------------------------------------------------------


def _docs_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def swagger_page(request: Request) -> HTMLResponse:
    """Swagger UI for the REST API, from local assets."""
    app = request.app
    return _docs(get_swagger_ui_html(
        openapi_url=app.openapi_url, title=app.title + " · REST API",
        oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
        swagger_js_url="/static/docs/swagger-ui-bundle.js",
        swagger_css_url="/static/docs/swagger-ui.css",
        swagger_favicon_url=static_url("favicon.svg"),
        swagger_ui_parameters=app.swagger_ui_parameters,
    ))


@router.get("/docs/oauth2-redirect", response_class=HTMLResponse, include_in_schema=False)
def swagger_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", response_class=HTMLResponse, include_in_schema=False)
def redoc_page(request: Request) -> HTMLResponse:
    """ReDoc for the REST API, from local assets and without web fonts."""
    return _docs(get_redoc_html(
        openapi_url=request.app.openapi_url, title=request.app.title + " · REST API",
        redoc_js_url="/static/docs/redoc.standalone.js",
        redoc_favicon_url=static_url("favicon.svg"), with_google_fonts=False,
    ))


def _docs(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/static/docs/{name}", include_in_schema=False)
def docs_asset(name: str) -> Response:
    """Swagger UI's and ReDoc's scripts and styles from the installed package."""
    if name not in DOCS_ASSETS:
        raise HTTPException(status_code=404, detail="not found")
    path = _docs_dir() / name
    return FileResponse(path, media_type=_MEDIA[path.suffix],
                        headers={"Cache-Control": "public, max-age=86400",
                                 "X-Content-Type-Options": "nosniff"})


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str) -> Response:
    """Page scripts and styles, and plotly.js from the installed plotly package."""
    if name == "plotly.min.js":
        path = _plotly_js()
    else:
        path = STATIC / name
        # only plain files directly in web/static; no traversal, no dotfiles
        if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
            raise HTTPException(status_code=404, detail="not found")
    media = _MEDIA.get(path.suffix)
    if media is None:
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(path, media_type=media, headers={"Cache-Control": _CACHE,
                                                         "X-Content-Type-Options": "nosniff"})


@lru_cache(maxsize=1)
def _presets_json() -> dict[str, Any]:
    """Presets as YAML and JSON text for the editor (the page needs no YAML library)."""
    import yaml

    from experiments.presets import PRESETS

    out = {
        key: {
            "title": doc["name"],
            "yaml": yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=88),
            "json": json.dumps(doc, indent=2),
        }
        for key, doc in PRESETS.items()
    }
    return out
