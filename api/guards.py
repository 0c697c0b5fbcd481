"""What every request passes before a route sees it (docs/security.md explains why).

- TrustedHosts: only the configured Host names are served (DNS rebinding).
- CrossSite: a state-changing request a browser sends from another origin is
  refused, with or without a token (cross-site request forgery).
- Hygiene: HEAD is answered as GET without a body, every response carries
  nosniff and frame protection, and the request body must arrive within
  BETASCOPE_BODY_TIMEOUT_SECONDS and BETASCOPE_MAX_BODY_BYTES.

Plain ASGI classes rather than BaseHTTPMiddleware: they must not buffer bodies
or add a task per request.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What an HTML form (or a fetch without a preflight) can send. The API reads JSON
# and YAML only, so a request in one of these can only be a page trying its luck.
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data",
                        "text/plain"})
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
FRAME_CSP = (b"content-security-policy", b"frame-ancestors 'none'")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def host_name(host: str) -> str:
    """'Example.org:8000' -> 'example.org'; '[::1]:8000' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(name: str, allowed: frozenset[str]) -> bool:
    if "*" in allowed or name in allowed:
        return True
    return any(a.startswith("*.") and name.endswith(a[1:]) for a in allowed)


async def send_json(send: Send, status_code: int, detail: str,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status_code, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *(headers or []), *SECURITY_HEADERS, FRAME_CSP]})
    await send({"type": "http.response.body", "body": body})


class TrustedHosts:
    """400 for a Host header that is not ours: a page on evil.example whose name
    resolves to 127.0.0.1 would otherwise read and drive the API as same-origin."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = _header(scope, b"host") or ""
            if not host_allowed(host_name(host), self.hosts):
                await send_json(send, status.HTTP_400_BAD_REQUEST,
                                f"unknown Host {host[:100]!r}: add it to "
                                "BETASCOPE_ALLOWED_HOSTS if this server is meant to answer it")
                return
        await self.app(scope, receive, send)


class CrossSite:
    """403 for a state-changing request a browser made on behalf of another origin:
    Sec-Fetch-Site other than same-origin, or an Origin that is not this server.
    Clients that are not browsers (the CLI, curl, scripts) send neither header."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            refusal = self.refusal(scope)
            if refusal is not None:
                await send_json(send, *refusal)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def refusal(scope: Scope) -> tuple[int, str] | None:
        fetch_site = _header(scope, b"sec-fetch-site")
        if fetch_site is not None and fetch_site.strip().lower() not in ("same-origin", "none"):
            return (status.HTTP_403_FORBIDDEN,
                    f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:40]})")
        origin = _header(scope, b"origin")
        if origin is not None:
            host = (_header(scope, b"host") or "").strip().lower()
            if origin.strip().lower() == "null" or not _same_host(origin, host):
                return (status.HTTP_403_FORBIDDEN,
                        f"cross-site request refused (Origin {origin[:100]!r} is not this server)")
        ctype = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if ctype in FORM_TYPES:
            return (status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                    f"unsupported content type {ctype!r} (what a form on another site can "
                    "send): send application/json, or a spec as application/yaml")
        return None


def _same_host(origin: str, host: str) -> bool:
    # The scheme is left out: behind a TLS proxy the browser says https://, the
    # server hears http. The proxy must pass Host through (docs/security.md).
    try:
        parts = urlsplit(origin.strip().lower())
        netloc, port = parts.netloc, parts.port
    except ValueError:
        return False
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if port is not None and port == default:
        netloc = netloc.rsplit(":", 1)[0]
    for suffix in (":80", ":443"):
        if host.endswith(suffix) and not host.endswith("]"):
            host = host.removesuffix(suffix)
    return bool(netloc) and netloc == host


class Hygiene:
    """HEAD as GET, security headers on every response, and the body's deadline and size."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, body_timeout: float):
        self.app, self.max_bytes, self.body_timeout = app, max_bytes, body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = dict(scope, method="GET")
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await send_json(send, status.HTTP_413_CONTENT_TOO_LARGE, _too_big(self.max_bytes))
            return

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if b"content-security-policy" not in names:
                    headers.append(FRAME_CSP)
                message = dict(message, headers=headers)
            elif head and message["type"] == "http.response.body":
                message = dict(message, body=b"")
            await send(message)

        await self.app(scope, _BodyReader(receive, self.max_bytes, self.body_timeout),
                       guarded_send)


class _BodyReader:
    """receive() with the body's limits: 413 past max_bytes, 408 past the deadline.
    Once the body is in, receive() is passed through untouched (a streaming
    response waits on it for a disconnect, for as long as it streams)."""

    def __init__(self, receive: Receive, max_bytes: int, timeout: float):
        self.receive, self.max_bytes, self.timeout = receive, max_bytes, timeout
        self.deadline = time.monotonic() + timeout
        self.seen, self.done = 0, False

    async def __call__(self) -> Message:
        if self.done:
            return await self.receive()
        try:
            message = await asyncio.wait_for(self.receive(),
                                             max(0.0, self.deadline - time.monotonic()))
        except TimeoutError:
            raise HTTPException(status.HTTP_408_REQUEST_TIMEOUT, detail=(
                f"request body not received within {self.timeout:g} s "
                "(BETASCOPE_BODY_TIMEOUT_SECONDS)"), headers={"Connection": "close"}) from None
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.max_bytes:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                    detail=_too_big(self.max_bytes))
            self.done = not message.get("more_body", False)
        else:
            self.done = True
        return message


def _too_big(limit: int) -> str:
    return f"request body exceeds {limit} bytes (BETASCOPE_MAX_BODY_BYTES)"


# --- the access log ----------------------------------------------------------------------

_SECRET_WORDS = ("token", "secret", "passw", "pwd", "auth", "key", "signature", "credential",
                 "session")  # a parameter whose name holds one is masked
_SECRET_PARAM = re.compile(
    r"(^|[?&;])([^=&;]*(?:" + "|".join(_SECRET_WORDS) + r")[^=&;]*)=([^&;]*)", re.IGNORECASE)


def redact_query(path: str) -> str:
    """'/x?token=abc&limit=5' -> '/x?token=***&limit=5'. Every request's log line
    passes here: a path that holds none of the words (nearly all) is looked through
    in about a microsecond; the regex took 10 per line."""
    low = path.lower()
    if not any(word in low for word in _SECRET_WORDS):
        return path
    return _SECRET_PARAM.sub(r"\1\2=***", path)


class RedactQuery(logging.Filter):
    """Masks token-like query parameters in uvicorn's access log: a token put in a URL
    by mistake must not end up in a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def redact_access_log() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in logger.filters):
        logger.addFilter(RedactQuery())


# --- timeouts on the connection (betascope serve) ------------------------------------------

def _httptools_protocol() -> Any:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    return HttpToolsProtocol


MAX_HEAD_BYTES = 16 * 1024  # a request line and headers larger than this: 431, closed


class TimedHttpToolsProtocol(_httptools_protocol()):  # type: ignore[misc]
    """uvicorn's httptools protocol (its C parser), with two bounds on what a client
    may hold before its request has even begun:

    - a connection that has not sent a request's headers within
      BETASCOPE_HEADER_TIMEOUT_SECONDS of connecting or of its last response is
      closed with 408: uvicorn itself waits forever, so slow clients could hold
      every connection;
    - a request line and headers over MAX_HEAD_BYTES get 431 and the connection
      is closed, since uvicorn would buffer them without end (the parser is fed
      what arrives; of a pipelined request, what came in the read that finished the one
      before it is not counted).

    Named by import string (`http="api.guards:TimedHttpToolsProtocol"`), so every
    worker process of `serve --workers N` gets it."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._head_bytes, self._in_head = 0, True
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES \
                and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                 b"connection: close\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._head_bytes, self._in_head = 0, False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what comes next is the next request's head

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self.loop.call_later(_header_timeout(), self._header_deadline, self.cycle)

    def _header_deadline(self, cycle: Any) -> None:
        waiting = self.cycle is cycle and (cycle is None or cycle.response_complete)
        if waiting and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n"
                                 b"content-length: 0\r\n\r\n")
            self.transport.close()


@functools.cache
def _header_timeout() -> float:
    """BETASCOPE_HEADER_TIMEOUT_SECONDS, which `serve` sets before its processes start:
    read once per process, not once per response."""
    return float(os.environ.get("BETASCOPE_HEADER_TIMEOUT_SECONDS", "10"))
