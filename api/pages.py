"""HTML pages and their static assets (DESIGN section 9, "Pages").

Pages are server-rendered shells (Jinja2, autoescaped) whose small vanilla
scripts read the JSON API under /api/v1, so a page shows exactly what a client
of the API would get. plotly.js is served from the installed plotly package:
the pages work offline and reference no external URL.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from api.routes.validate import router as validate_router

WEB = Path(__file__).resolve().parent.parent / "web"
STATIC = WEB / "static"
_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml"}
# Scripts come only from this origin (no inline script can run even if some text
# escaped escaping); plotly injects <style> elements and draws heatmaps as data: images.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
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


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse, include_in_schema=False)
def sweep_page(request: Request, sweep_id: Annotated[int, PathParam(ge=1)]) -> HTMLResponse:
    """One sweep: progress, phase diagrams, boundaries, loss curves, downloads."""
    return _page(request, "sweep.html", title="Sweep", sweep_id=sweep_id)


@router.get("/compare", response_class=HTMLResponse, include_in_schema=False)
def compare_page(
    request: Request, a: str = Query(default=""), b: str = Query(default="")
) -> HTMLResponse:
    """Two sweeps on the same grid: where their majority outcomes differ."""
    return _page(request, "compare.html", title="Compare sweeps", a=a, b=b)


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
