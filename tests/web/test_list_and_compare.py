"""The sweeps list and the compare page (issue 9, items 4 and 11): an id column, delete
behind a confirmation (with the server's token when it has one), a pair of sweeps that
cannot be compared refused as soon as it is ticked, and no stray error on compare."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.web.conftest import Server, Watched, open_page, start_server
from tests.web.specs import small_zhang
from tests.web.test_pages import until, wait_map

pytestmark = pytest.mark.browser

TOKEN = "s3cret-token"


def quick(name: str, **kw: Any) -> dict[str, Any]:
    return small_zhang(name, steps=50, **kw)


@pytest.fixture(scope="module")
def pair(server: Server) -> tuple[int, int, int]:
    """Two sweeps on one grid (a, b) and one on another (c), all finished."""
    a = server.create(quick("grid A"))
    b = server.create(quick("grid A, lr 0.5", lr=0.5))
    other = quick("other grid")
    other["grid"]["beta1"] = {"start": 0.0, "stop": 0.9, "num": 3}
    c = server.create(other)
    for s in (a, b, c):
        server.wait_done(s)
    return a, b, c


def status_of(server: Server, sweep_id: int) -> int:
    try:
        server.api("GET", f"/sweeps/{sweep_id}")
        return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def test_compare_controls_redraw_without_a_stray_error(
    web: Watched, pair: tuple[int, int, int]
) -> None:
    a, b, _ = pair
    page = web.page
    web.goto(f"/compare?a={a}&b={b}")
    wait_map(web, "diff")
    for control, value in (("#b-batch_size", "2"), ("#xscale", "log1m"), ("#a-batch_size", "2")):
        before = page.evaluate("document.getElementById('diff').dataset.drawn")
        page.select_option(control, value)
        until(page, f"document.getElementById('diff').dataset.drawn !== {before!r}")
        assert page.text_content("#load-error") == ""
        assert page.locator("#load-error").is_hidden()
    assert "[object Object]" not in (page.text_content("body") or "")
    web.shot("compare-after-changes")


def test_list_refuses_a_pair_that_cannot_be_compared_at_once(
    web: Watched, pair: tuple[int, int, int]
) -> None:
    a, b, c = pair
    page = web.page
    web.goto("/")
    box = "tr[data-id='{}'] td.pick input"
    page.locator(box.format(c)).wait_for()
    page.check(box.format(a))
    page.click(box.format(c))
    note = page.locator("#pick-note")
    until(page, "document.getElementById('pick-note').textContent.includes('cannot be compared')")
    assert "β1" in note.text_content()
    assert note.is_visible()
    assert not page.is_checked(box.format(c))
    assert not page.is_enabled("#compare")
    web.shot("list-refuses-pair")
    page.check(box.format(b))
    until(page, "!document.getElementById('compare').disabled")
    assert note.text_content() == ""
    # a third sweep cannot be ticked while two are
    assert not page.is_enabled(box.format(c))
    page.click("#compare")
    page.wait_for_url(f"**/compare?a={a}&b={b}")
    wait_map(web, "diff")


def test_list_shows_ids_and_deletes_after_a_confirmation(web: Watched, server: Server) -> None:
    twins = [server.create(quick("same name")) for _ in range(2)]
    page = web.page
    web.goto("/")
    row = page.locator(f"tr[data-id='{twins[1]}']")
    row.wait_for()
    # two sweeps with one name are told apart by their id column
    ids = [page.text_content(f"tr[data-id='{t}'] td.id") for t in twins]
    assert ids == [str(t) for t in twins]
    row.locator("button.delete").click()
    dialog = page.locator("dialog#confirm-dialog")
    dialog.wait_for()
    assert f"Delete sweep {twins[1]}?" in dialog.text_content()
    web.shot("list-delete-confirm")
    page.click("#confirm-no")
    assert dialog.count() == 0
    assert status_of(server, twins[1]) == 200
    row.locator("button.delete").click()
    page.click("#confirm-yes")
    until(page, f"!document.querySelector(\"tr[data-id='{twins[1]}']\")")
    assert status_of(server, twins[1]) == 404
    assert status_of(server, twins[0]) == 200
    assert f"Deleted sweep {twins[1]}" in page.text_content("#list-note")
    assert web.dialogs == []  # an in-page dialog, not window.confirm


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("betascope-token"),
                      BETASCOPE_API_TOKEN=TOKEN) as srv:
        yield srv


def test_delete_asks_for_the_token_when_the_server_has_one(
    browser: Any, token_server: Server
) -> None:
    req = urllib.request.Request(
        token_server.url + "/api/v1/sweeps", data=json.dumps(quick("guarded")).encode(),
        method="POST", headers={"Content-Type": "application/json",
                                "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        sweep_id = json.loads(resp.read())["id"]
    with open_page(browser, token_server) as web:
        page = web.page
        web.goto("/")
        page.locator(f"tr[data-id='{sweep_id}'] button.delete").click()
        page.click("#confirm-yes")
        page.locator("#token-bar").wait_for(state="visible")
        assert "needs this server's API token" in page.text_content("#token-why")
        assert status_of(token_server, sweep_id) == 200
        web.shot("list-delete-token")
        page.fill("#token-input", TOKEN)
        page.click("#token-save")
        until(page, f"!document.querySelector(\"tr[data-id='{sweep_id}']\")")
        assert status_of(token_server, sweep_id) == 404


def test_submit_and_cancel_ask_for_the_token_then_go_through(
    browser: Any, token_server: Server
) -> None:
    with open_page(browser, token_server) as web:
        page = web.page
        web.goto("/sweeps/new")
        # 8 x 10^7 run-steps: eager, minutes a chunk, so the cancel lands while it runs
        # (at 2 x 10^6 steps it ran fused and could finish first: test_pages.py)
        spec = small_zhang("submitted with a token", steps=1_000_000)
        page.fill("#spec", yaml.safe_dump(spec, sort_keys=False))
        until(page, "document.getElementById('check-state').textContent === 'The spec is valid.'")
        page.click("#submit")
        page.locator("#token-bar").wait_for(state="visible")
        assert "Submitting a sweep" in page.text_content("#token-why")
        page.fill("#token-input", TOKEN)
        page.press("#token-input", "Enter")
        page.wait_for_url("**/sweeps/*")
        page.locator("#cancel").wait_for(state="visible")
        page.click("#cancel")  # the saved token now goes with every change
        page.click("#confirm-yes")
        until(page, "document.getElementById('status').textContent === 'canceled'")
