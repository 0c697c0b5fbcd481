"""Conditional GETs: weak ETags from a cheap version key, 304 on a matching If-None-Match.

A tag is computed before the answer is: from the sweep's row (a finished
sweep's status and counts never change until it is retried) or from
api.db.store.data_version (done chunks and their last finish: the results of a
sweep change only when a chunk lands), plus the request's query string and a
salt naming this server's database and version. Tags are weak (W/"..."): two
answers with one tag are the same data, not necessarily the same bytes (a
running sweep's JSON is never tagged at all, since its progress and ETA move
every second).
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request, Response, status

from api.db.models import Sweep

FINISHED = ("done", "failed", "canceled")
VERSION = "0.1.0"
# Every tagged answer may be stored, and must be revalidated before it is used.
CACHE_CONTROL = "no-cache"


def make_tag(request: Request, *parts: Any) -> str:
    """W/"<digest>" of the parts, the route, the query string and the server's salt."""
    h = hashlib.blake2b(digest_size=16)
    salt = f"{VERSION}|{request.app.state.settings.database_url}|{request.url.path}"
    for part in (salt, request.url.query, *parts):
        h.update(repr(part).encode())
        h.update(b"\0")
    return f'W/"{h.hexdigest()}"'


def sweep_tag(request: Request, sweep: Sweep, *parts: Any) -> str | None:
    """A finished sweep's tag (None while it is queued or running)."""
    if sweep.status not in FINISHED:
        return None
    return make_tag(request, sweep.id, sweep.created_at, sweep.status, sweep.finished_at,
                    sweep.n_chunks, *parts)


def matches(request: Request, tag: str) -> bool:
    """If-None-Match names this tag (weak comparison, as RFC 9110 says for GET) or is *."""
    return header_matches(request.headers.get("if-none-match"), tag)


def header_matches(header: str | None, tag: str) -> bool:
    """As matches(), given the If-None-Match header's value."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    return _opaque(tag) in {_opaque(t) for t in header.split(",")}


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def not_modified(tag: str) -> Response:
    return Response(status_code=status.HTTP_304_NOT_MODIFIED,
                    headers={"ETag": tag, "Cache-Control": CACHE_CONTROL})


def tag_headers(response: Response, tag: str | None) -> None:
    if tag is not None:
        response.headers["ETag"] = tag
        response.headers["Cache-Control"] = CACHE_CONTROL


NOT_MODIFIED_DOC: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: If-None-Match named the current ETag"}}
