"""The new-sweep editor (issue 9, items 10 and 13): the spec gets the width (no preset
line is cut off), every error is shown at once beside its line, syntax errors say line
and column, and the summary shows run-steps and, when the server estimates it, the
duration, with a warning above a day."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.web.conftest import Watched
from tests.web.specs import small_zhang
from tests.web.test_pages import until

pytestmark = pytest.mark.browser

DAY = 86_400


def presets(web: Watched) -> list[str]:
    return web.page.eval_on_selector_all("#preset option", "os => os.map(o => o.value)")


def test_every_preset_line_fits_beside_the_gutter(web: Watched) -> None:
    page = web.page
    web.goto("/sweeps/new")
    keys = [k for k in presets(web) if k]
    assert keys
    for key in keys:
        page.select_option("#preset", key)
        until(page, "document.getElementById('check-state').textContent === 'The spec is valid.'")
        size = page.evaluate("""(() => { const t = document.getElementById('spec');
          const e = document.getElementById('editor');
          return {scroll: t.scrollWidth, client: t.clientWidth, editor: e.clientWidth,
                  longest: Math.max(...t.value.split('\\n').map(l => l.length))}; })()""")
        assert size["scroll"] <= size["client"], f"{key}: a line of {size['longest']} is cut off"
        assert size["client"] >= 0.9 * size["editor"], (key, size)
    web.shot("new-sweep-preset")


def test_every_field_error_is_shown_at_once_beside_its_line(web: Watched) -> None:
    page = web.page
    web.goto("/sweeps/new")
    spec = small_zhang("three mistakes")
    spec["grid"]["beta1"] = [0.0, 0.5, 1.5]
    spec["steps"] = -3
    spec["optimizer"]["lr"] = -1
    text = yaml.safe_dump(spec, sort_keys=False)
    page.fill("#spec", text)
    until(page, "document.querySelectorAll('#errors li').length >= 3")
    fields = page.eval_on_selector_all("#errors li", "ls => ls.map(l => l.dataset.field)")
    assert {"grid.beta1", "steps", "optimizer.lr"} <= set(fields), fields
    # each note starts past the end of the text on its line and stays inside the editor
    boxes = page.evaluate("""(() => {
      const t = document.getElementById('spec'), r = t.getBoundingClientRect();
      const cs = getComputedStyle(t);
      const probe = document.createElement('span');
      probe.style.font = cs.font; probe.style.whiteSpace = 'pre';
      probe.textContent = '0'.repeat(40); document.body.append(probe);
      const cw = probe.getBoundingClientRect().width / 40; probe.remove();
      const lines = t.value.split('\\n');
      const lh = parseFloat(cs.lineHeight), pad = parseFloat(cs.paddingTop);
      return [...document.querySelectorAll('.note')].map(n => {
        const b = n.getBoundingClientRect();
        const line = Math.round((b.top - r.top - pad + t.scrollTop) / lh);
        return {field: n.dataset.field, left: b.left, right: b.right, top: b.top,
                textEnd: r.left + parseFloat(cs.paddingLeft) + (lines[line] || '').length * cw,
                editorRight: r.right}; }); })()""")
    assert len(boxes) >= 3
    for b in boxes:
        assert b["left"] >= b["textEnd"], b
        assert b["right"] <= b["editorRight"] + 1, b
    web.shot("new-sweep-all-errors")


@pytest.mark.parametrize(("fmt", "text", "line"), [
    ("yaml", "name: x\ngrid:\n  beta1: [0.1, 0.2\n  beta2: [0.5]\n", 4),
    ("json", '{"name": "x",\n "steps": 10,,\n "grid": {}}', 2),
])
def test_a_syntax_error_says_line_and_column(web: Watched, fmt: str, text: str, line: int) -> None:
    page = web.page
    web.goto("/sweeps/new")
    valid = "document.getElementById('check-state').textContent === 'The spec is valid.'"
    if fmt == "json":
        until(page, valid)  # only a spec that parses converts to the other format
        page.check("input[name='format'][value='json']")
        until(page, "document.getElementById('spec').value.trimStart().startsWith('{')")
        until(page, valid)
        assert page.is_checked("input[name='format'][value='json']")
    page.fill("#spec", text)
    until(page, "document.querySelectorAll('#errors li').length > 0")
    label = page.text_content("#errors li code") or ""
    assert label.startswith(f"line {line}, column "), label
    assert "<unicode string>" not in (page.text_content("#errors") or "")
    assert page.locator("#gutter .bad").first.text_content() == str(line)
    assert page.locator(".note").first.is_visible()
    assert not page.is_enabled("#submit")
    web.shot(f"new-sweep-{fmt}-syntax-error")


def _with_estimate(web: Watched, seconds: float | None) -> None:
    """The server's estimate depends on what it has computed before (tests/api checks
    it); the page's display of each kind of estimate is tested by setting it in the real
    answer on its way to the page."""

    def handle(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        if response.ok:
            body["estimated_seconds"] = seconds
        route.fulfill(response=response, body=json.dumps(body))

    web.page.route("**/api/v1/sweeps/validate", handle)


@pytest.mark.parametrize(("seconds", "shown", "warned"), [
    (None, "not estimated", False),
    (150.0, "≈ 3 min", False),
    (5 * 3600 + 20 * 60, "≈ 5 h 20 min", False),
    (2.5 * DAY, "≈ 2.5 days", True),
])
def test_summary_shows_run_steps_and_the_estimated_duration(
    web: Watched, seconds: float | None, shown: str, warned: bool
) -> None:
    page = web.page
    _with_estimate(web, seconds)
    web.goto("/sweeps/new")
    spec = small_zhang("costed", steps=2000)
    page.fill("#spec", yaml.safe_dump(spec, sort_keys=False))
    until(page, "document.getElementById('check-state').textContent === 'The spec is valid.'")
    until(page, "document.getElementById('run-count').textContent === '80'")
    assert page.text_content("#work") == "160 k run-steps"
    assert page.text_content("#duration") == shown
    assert page.locator("#cost-warning").is_visible() == warned
    if warned:
        assert "2.5 days" in page.text_content("#cost-warning")
        web.shot("new-sweep-over-a-day")
