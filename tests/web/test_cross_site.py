"""Cross-site request forgery from a real Chromium: a page on another origin, served
by this test on another loopback port, tries what any site a user visits could try
against the server on their machine. Nothing it sends may change anything.

Two attacking origins: http://localhost:P (another site than 127.0.0.1: Chromium
sends Sec-Fetch-Site: cross-site) and http://127.0.0.1:P (another port of the same
host: same-site, but another origin). On the embedded default and on Postgres +
Redis (no worker is needed: the sweeps only have to exist).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import spec
from tests.api.live import LiveServer
from tests.conftest import need
from tests.services import FAST, REDIS_URL, SESSION_TAG, pg_schema_url, postgres_ok, redis_ok

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.timeout(300)]

ATTACK_PAGE = b"""<!doctype html><title>cute cats</title><h1>nothing to see here</h1>"""


class _Attacker(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(ATTACK_PAGE)))
        self.end_headers()
        self.wfile.write(ATTACK_PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def attacker() -> Iterator[int]:
    """The second origin: a plain page on its own loopback port (bound once, kept)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """`betascope serve` without a token, as a user runs it on their machine."""
    settings: dict[str, Any] = dict(FAST, allowed_hosts="")
    if request.param == "postgres":
        need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
        need(redis_ok(), "Redis (BETASCOPE_TEST_REDIS_URL)")
        queue = f"betascope-xsite-{SESSION_TAG}"
        settings.update(database_url=pg_schema_url("xsite"), broker_url=REDIS_URL, queue=queue)
    else:
        settings.update(database_url=f"sqlite:///{tmp_path}/xsite.db")
    server = LiveServer(settings, tmp_path / "serve.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()
        if request.param == "postgres":
            import redis

            redis.Redis.from_url(REDIS_URL).delete(settings["queue"])


def _sweeps(http: httpx.Client) -> dict[int, dict[str, Any]]:
    items = http.get("/api/v1/sweeps", params={"limit": 200}).json()["items"]
    return {s["id"]: s for s in items}


FETCH = """async ([url, init]) => {
  try { await fetch(url, init); return "sent"; } catch (e) { return "blocked: " + e; }
}"""
FORM = """([url, enctype, fields]) => {
  const f = document.createElement("form");
  f.method = "POST"; f.action = url; f.enctype = enctype;
  for (const [name, value] of fields) {
    const i = document.createElement("input");
    i.type = "hidden"; i.name = name; i.value = value; f.appendChild(i);
  }
  document.body.appendChild(f); f.submit();
}"""


def test_a_page_on_another_origin_cannot_create_cancel_or_retry(
        browser: Any, target: LiveServer, attacker: int) -> None:
    api = f"{target.url}/api/v1"
    forged = json.dumps(spec("forged by another site", steps=20))
    with httpx.Client(base_url=target.url, timeout=30) as http:
        # a long sweep to cancel, and a canceled one to retry (made by the user's CLI)
        doc = spec("victim running", steps=1_000_000, beta1=[0.0], seed=[0], batch_size=[1])
        running = http.post("/api/v1/sweeps", json=doc).json()["id"]
        stopped = http.post("/api/v1/sweeps", json=spec("victim canceled", steps=20000)).json()
        assert http.post(f"/api/v1/sweeps/{stopped['id']}/cancel").status_code == 200
        before = _sweeps(http)

        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            for origin in (f"http://localhost:{attacker}", f"http://127.0.0.1:{attacker}"):
                page.goto(f"{origin}/cats.html")
                sent = [
                    # a body without a type: a Blob, no preflight
                    page.evaluate(FETCH, [f"{api}/sweeps", {"method": "POST", "mode": "no-cors",
                                                            "body": None}]),
                    page.evaluate("async (args) => { const [url, text] = args; try { await "
                                  "fetch(url, {method: 'POST', mode: 'no-cors', body: new "
                                  "Blob([text])}); return 'sent'; } catch (e) { return 'blocked: '"
                                  " + e; } }", [f"{api}/sweeps", forged]),
                    # text/plain, the type a string body gets
                    page.evaluate(FETCH, [f"{api}/sweeps", {"method": "POST", "mode": "no-cors",
                                                            "body": forged}]),
                    page.evaluate(FETCH, [f"{api}/sweeps/{stopped['id']}/retry",
                                          {"method": "POST", "mode": "no-cors"}]),
                    page.evaluate(FETCH, [f"{api}/sweeps/{running}/cancel",
                                          {"method": "POST", "mode": "no-cors",
                                           "credentials": "include"}]),
                ]
                # (the browser may reject the promise: Cross-Origin-Resource-Policy keeps
                # even an opaque answer from the page; the request went out regardless)
                assert len(sent) == 5
                # forms: a plain one to cancel, and the text/plain trick that makes a body
                # look like JSON ({"name": "...", "x": "=..."})
                for url, enctype, fields in (
                    (f"{api}/sweeps/{running}/cancel", "application/x-www-form-urlencoded",
                     [["a", "1"]]),
                    (f"{api}/sweeps", "text/plain", [[forged[:-1] + ', "x": "', '"}']]),
                ):
                    with page.expect_navigation():
                        page.evaluate(FORM, [url, enctype, fields])
                    assert page.url.startswith(api), page.url
        finally:
            context.close()

        # every attempt reached the server, and was refused
        posted = re.findall(r'"POST /api/v1/sweeps\S* HTTP/1.1" (\d+)', target.log())
        assert len(posted) == 3 + 14, posted  # the set-up's three, then the page's
        assert set(posted[3:]) <= {"403", "415"}, posted
        after = _sweeps(http)
        assert set(after) == set(before), "a sweep was created from another site"
        assert after[running]["status"] in ("queued", "running"), after[running]
        assert after[stopped["id"]]["status"] == "canceled", after[stopped["id"]]

        # the server's own pages still write: same origin, JSON (tests/web/test_pages.py
        # drives the real forms)
        own = browser.new_context().new_page()
        try:
            own.goto(f"{target.url}/sweeps/new")
            made = own.evaluate("""async ([url, body]) => {
              const r = await fetch(url, {method: "POST", body,
                                          headers: {"Content-Type": "application/json"}});
              return [r.status, await r.json()];
            }""", ["/api/v1/sweeps", forged])
            assert made[0] == 201, made
            # 503 is "try again shortly" (a worker's progress write can hold the row)
            canceled = own.evaluate("""async (url) => {
              for (let i = 0; i < 10; i++) {
                const r = await fetch(url, {method: "POST"});
                if (r.status !== 503) return r.status;
                await new Promise((done) => setTimeout(done, 500));
              }
              return 503;
            }""", f"/api/v1/sweeps/{running}/cancel")
            assert canceled == 200
        finally:
            own.context.close()
        for sid in (running, stopped["id"], made[1]["id"]):
            http.post(f"/api/v1/sweeps/{sid}/cancel")
            assert http.delete(f"/api/v1/sweeps/{sid}").status_code == 204
