"""/docs and /redoc offline, and pages for what does not exist (issue 9, items 1 and 6).

The `web` fixture blocks every request to another host and fails the test if the
page tried one, so these pages pass only when all their assets are local."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from tests.web.conftest import Server, Watched
from tests.web.test_pages import until

pytestmark = pytest.mark.browser


def test_swagger_ui_lists_the_operations_offline(web: Watched) -> None:
    page = web.page
    web.goto("/docs")
    page.locator(".opblock").first.wait_for()
    paths = page.eval_on_selector_all(".opblock-summary-path", "es => es.map(e => e.textContent)")
    assert "/api/v1/sweeps" in [p.replace("\u200b", "") for p in paths]
    assert len(paths) >= 10, paths
    # the bundle came from this server, not a CDN
    assert page.evaluate("typeof SwaggerUIBundle") == "function"
    web.shot("docs-swagger", full_page=False)


def test_redoc_lists_the_operations_offline(web: Watched) -> None:
    page = web.page
    web.goto("/redoc")
    until(page, "document.querySelectorAll('[data-section-id^=\"tag/\"]').length > 0", 60_000)
    text = page.text_content("body") or ""
    assert "/api/v1/sweeps" in text
    web.shot("docs-redoc", full_page=False)


@pytest.mark.parametrize(("path", "says"), [
    ("/sweeps/999", "Sweep 999 does not exist"),
    ("/sweeps/abc", "There is no sweep “abc”"),
    ("/no/such/page", "Nothing is served at /no/such/page"),
    ("/compare?a=999&b=x", "Sweep 999 does not exist"),
])
def test_missing_pages_answer_404_and_say_what_is_missing(
    web: Watched, path: str, says: str
) -> None:
    response = web.goto(path)
    assert response.status == 404
    assert says in web.page.text_content("#missing-what")
    assert web.page.locator("a[href='/']").count() >= 1
    web.shot("missing" + re.sub(r"[^a-z0-9]+", "-", path))


def test_the_api_still_answers_json_404s(server: Server) -> None:
    req = urllib.request.Request(server.url + "/api/v1/sweeps/999",
                                 headers={"Accept": "text/html,application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 404
    assert info.value.headers["content-type"].startswith("application/json")
    assert b"sweep 999 not found" in info.value.read()
