"""Pages and assets as served: offline (no external URL), cached, escaped, confined."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.web.conftest import ROOT, Server
from tests.web.specs import small_zhang

EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.I)
XMLNS = re.compile(r'xmlns(?::\w+)?="[^"]*"')  # a namespace name, never fetched


def get(server: Server, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_templates_and_scripts_name_no_other_host() -> None:
    files = [*(ROOT / "web" / "templates").glob("*.html"), *(ROOT / "web" / "static").glob("*")]
    assert files
    for f in files:
        hits = EXTERNAL.findall(XMLNS.sub("", f.read_text(encoding="utf-8")))
        assert not hits, f"{f.relative_to(ROOT)} names another host: {hits}"


def test_plotly_is_served_from_the_installed_package(server: Server) -> None:
    import plotly

    status, headers, body = get(server, "/static/plotly.min.js")
    assert status == 200
    assert headers["content-type"].startswith("text/javascript")
    assert "immutable" in headers["cache-control"]
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert body == bundled.read_bytes()


@pytest.mark.parametrize("path", ["/", "/sweeps/new", "/sweeps/{id}", "/compare?a={id}&b={id}",
                                  "/sweeps/999999"])
def test_pages_carry_a_script_policy_and_only_local_assets(server: Server, path: str) -> None:
    if "{id}" in path:
        path = path.format(id=server.create(small_zhang("assets", steps=1)))
    status, headers, body = get(server, path)
    assert status == (404 if path == "/sweeps/999999" else 200)
    assert "script-src 'self'" in headers["content-security-policy"]
    html = body.decode()
    assert not EXTERNAL.findall(html)
    for src in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert src.startswith(("/", "#")), src


@pytest.mark.parametrize("path", ["/static/..%2Fpages.py", "/static/.hidden", "/static/nope.js",
                                  "/static/new.html"])
def test_static_route_serves_only_its_own_assets(server: Server, path: str) -> None:
    assert get(server, path)[0] == 404


def test_compare_ids_are_escaped_in_the_page(server: Server) -> None:
    status, _, body = get(server, '/compare?a="><script>alert(1)</script>&b=2')
    assert status == 404  # no such sweep, said in a page that shows the id as text
    assert b"<script>alert(1)" not in body
    assert b"&#34;&gt;&lt;script&gt;" in body
