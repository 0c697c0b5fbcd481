"""Fixes to the editor, the list and the layout an audit found in Chromium:

- the spec editor was a keyboard trap (Tab and Shift+Tab both inserted two spaces, so
  focus never left it): Tab indents, Shift+Tab dedents, Esc then Tab leaves;
- an error on an extra axis (`problem.n` under grid: a key with a dot) was shown beside
  `grid:` instead of its own line;
- at 400 px the list, the editor and the compare page scrolled sideways;
- choosing another preset silently replaced the user's edits.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.web.conftest import Server, Watched
from tests.web.specs import small_zhang
from tests.web.test_pages import until, wait_map

pytestmark = pytest.mark.browser

VALID = "document.getElementById('check-state').textContent === 'The spec is valid.'"
NARROW = 400


def _value(web: Watched) -> str:
    return str(web.page.input_value("#spec"))


def _focused(web: Watched) -> str:
    return str(web.page.evaluate("document.activeElement ? document.activeElement.id : ''"))


def _caret_at_line(web: Watched, line: int, column: int = 0, to_line: int | None = None) -> None:
    """Put the caret at (line, column), or select from there to the end of `to_line`."""
    web.page.evaluate(
        """([line, column, toLine]) => { const t = document.getElementById('spec');
          const ls = t.value.split('\\n');
          const at = (i) => ls.slice(0, i).reduce((a, l) => a + l.length + 1, 0);
          t.focus();
          const start = at(line) + column;
          const end = toLine === null ? start : at(toLine) + ls[toLine].length;
          t.setSelectionRange(start, end); }""",
        [line, column, to_line],
    )


# --- 1. the editor is no keyboard trap ------------------------------------------------------------


def test_tab_indents_shift_tab_dedents_and_esc_then_tab_leaves(web: Watched) -> None:
    page = web.page
    web.goto("/sweeps/new")
    until(page, VALID)
    hint = page.locator("#editor-hint")
    assert hint.is_visible()
    assert "Esc" in (hint.text_content() or "") and "Tab" in (hint.text_content() or "")
    assert page.get_attribute("#spec", "aria-describedby") == "editor-hint"
    original = _value(web)
    lines = original.split("\n")
    steps = lines.index("steps: 2000")

    _caret_at_line(web, steps)
    page.keyboard.press("Tab")
    assert _focused(web) == "spec"
    assert _value(web).split("\n")[steps] == "  steps: 2000"
    page.keyboard.press("Shift+Tab")
    assert _focused(web) == "spec"
    assert _value(web) == original
    # Shift+Tab on a line with no indent changes nothing (it never inserts)
    page.keyboard.press("Shift+Tab")
    assert _focused(web) == "spec"
    assert _value(web) == original

    # a selection over several lines is indented and dedented as a block
    grid = lines.index("grid:")
    _caret_at_line(web, grid + 1, 0, grid + 3)
    page.keyboard.press("Tab")
    moved = _value(web).split("\n")
    assert moved[grid + 1:grid + 4] == ["  " + x for x in lines[grid + 1:grid + 4]]
    assert moved[grid] == lines[grid] and moved[grid + 4] == lines[grid + 4]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    dedented = _value(web).split("\n")
    assert dedented[grid + 1:grid + 4] == [x[2:] for x in lines[grid + 1:grid + 4]]
    _caret_at_line(web, grid + 1, 0, grid + 3)
    page.keyboard.press("Tab")
    assert _value(web) == original
    until(page, VALID)

    # Esc, then Tab: focus moves on as anywhere else, the text stays as it was
    _caret_at_line(web, steps)
    page.keyboard.press("Escape")
    assert page.locator("#editor-hint .armed-note").is_visible()
    page.keyboard.press("Tab")
    assert _focused(web) != "spec"
    assert _value(web) == original
    # ... and a keyboard-only user reaches Submit
    for _ in range(10):
        if _focused(web) == "submit":
            break
        page.keyboard.press("Tab")
    assert _focused(web) == "submit"

    # Esc, then Shift+Tab goes back out; typing after Esc disarms it again
    page.focus("#spec")
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+Tab")
    assert _focused(web) != "spec"
    assert _value(web) == original
    page.focus("#spec")
    page.keyboard.press("Escape")
    page.keyboard.press("End")
    page.keyboard.press("Tab")
    assert _focused(web) == "spec"
    web.shot("new-sweep-keyboard")


# --- 2. errors on an extra axis sit on its own line -----------------------------------------------


def _note_lines(web: Watched) -> list[int]:
    """The line each error note sits beside, from its position."""
    return list(web.page.evaluate("""(() => {
      const t = document.getElementById('spec'), r = t.getBoundingClientRect();
      const cs = getComputedStyle(t);
      const lh = parseFloat(cs.lineHeight), pad = parseFloat(cs.paddingTop);
      return [...document.querySelectorAll('.note')].map(n =>
        Math.round((n.getBoundingClientRect().top - r.top - pad + t.scrollTop) / lh)); })()"""))


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize(("key", "values", "field"), [
    ("problem.n", [5, 0], "grid.problem.n[1]"),
    ("problem.m", [5, 10], "grid.problem.m"),
])
def test_an_extra_axis_error_is_shown_beside_its_own_line(
    web: Watched, fmt: str, key: str, values: list[int], field: str
) -> None:
    page = web.page
    web.goto("/sweeps/new?preset=zhang2022-n")
    until(page, VALID)
    if fmt == "json":
        page.check("input[name='format'][value='json']")
        until(page, "document.getElementById('spec').value.trimStart().startsWith('{')")
        until(page, VALID)
        doc = json.loads(_value(web))
        del doc["grid"]["problem.n"]
        doc["grid"][key] = values
        text = json.dumps(doc, indent=2) + "\n"
        lines = text.split("\n")
        at = lines.index(f'    "{key}": [')
        want = at + 1 + values.index(0) if 0 in values else at  # JSON lists one value a line
    else:
        old = "  problem.n: [5, 10, 20, 50]"
        assert old in _value(web).split("\n")
        text = _value(web).replace(old, f"  {key}: [{', '.join(map(str, values))}]")
        want = text.split("\n").index(f"  {key}: [{', '.join(map(str, values))}]")
    page.fill("#spec", text)
    until(page, "document.querySelectorAll('#errors li').length > 0")
    fields = page.eval_on_selector_all("#errors li", "ls => ls.map(l => l.dataset.field)")
    assert field in fields, fields
    mine = fields.index(field)
    bad = page.eval_on_selector_all("#gutter .bad", "bs => bs.map(b => b.textContent)")
    assert bad == [str(want + 1)], (bad, text.split("\n")[want])
    assert _note_lines(web)[mine] == want, (text.split("\n")[want], _note_lines(web))
    web.shot(f"new-sweep-extra-axis-error-{fmt}-{key}")


# --- 3. nothing scrolls sideways at 400 px --------------------------------------------------------


@pytest.fixture(scope="module")
def two(server: Server) -> tuple[int, int]:
    a = server.create(small_zhang("narrow window check A", steps=50))
    b = server.create(small_zhang("narrow window check B", steps=50, lr=0.5))
    for s in (a, b):
        server.wait_done(s)
    return a, b


def _width(web: Watched) -> Any:
    return web.page.evaluate("""(() => ({scroll: document.documentElement.scrollWidth,
      header: document.querySelector('.topbar').getBoundingClientRect().width}))()""")


def test_pages_fit_a_400_px_window(web: Watched, two: tuple[int, int]) -> None:
    a, b = two
    page = web.page
    page.set_viewport_size({"width": NARROW, "height": 900})

    web.goto("/")
    page.locator(f"tr[data-id='{a}'] td.name a").wait_for()
    assert _width(web)["scroll"] <= NARROW, _width(web)
    # the table scrolls inside its card, and names break between words only
    inside = page.evaluate("""(() => { const t = document.getElementById('sweeps');
      const c = t.closest('.card');
      let box = t;  // the table, or the box inside the card it scrolls in
      for (let e = t.parentElement; e !== c; e = e.parentElement) {
        if (['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) box = e;
      }
      return {card: c.getBoundingClientRect().right,
              box: box.getBoundingClientRect().right}; })()""")
    assert inside["box"] <= inside["card"], inside
    split = page.evaluate(f"""(() => {{
      const a = document.querySelector("tr[data-id='{a}'] td.name a"), node = a.firstChild;
      const out = [];
      let i = 0;
      for (const word of node.textContent.split(' ')) {{
        const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + word.length);
        const tops = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
        if (tops.size > 1) out.push(word);
        i += word.length + 1;
      }}
      return out; }})()""")
    assert split == [], f"words broken across lines: {split}"
    web.shot("list-400px")

    web.goto("/sweeps/new?preset=zhang2022-n")
    until(page, VALID)
    assert _width(web)["scroll"] <= NARROW, _width(web)
    web.shot("new-sweep-400px")

    web.goto(f"/compare?a={a}&b={b}")
    wait_map(web, "diff")
    assert _width(web)["scroll"] <= NARROW, _width(web)
    web.shot("compare-400px")

    web.goto(f"/sweeps/{a}")
    wait_map(web)
    assert _width(web)["scroll"] <= NARROW, _width(web)


# --- 4. another preset asks before replacing edits ------------------------------------------------


def test_choosing_a_preset_asks_before_replacing_edits(web: Watched) -> None:
    page = web.page
    web.goto("/sweeps/new")
    until(page, VALID)
    # nothing edited yet: a preset loads at once
    page.select_option("#preset", "zhang2022-n")
    until(page, "document.getElementById('spec').value.includes('problem.n')")
    assert page.locator("#confirm-dialog").count() == 0
    edited = _value(web).replace("steps: 20000", "steps: 500")
    page.fill("#spec", edited)
    until(page, VALID)

    keys = [k for k in page.eval_on_selector_all("#preset option", "os => os.map(o => o.value)")
            if k and k != "zhang2022-n"]
    page.select_option("#preset", keys[0])
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for()
    assert "edits" in (dialog.text_content() or "")
    web.shot("new-sweep-replace-edits")
    page.click("#confirm-no")
    assert dialog.count() == 0
    assert _value(web) == edited
    assert page.input_value("#preset") == "zhang2022-n"

    # the same question, answered yes: the preset replaces the text
    page.select_option("#preset", keys[0])
    dialog.wait_for()
    page.click("#confirm-yes")
    until(page, f"document.getElementById('preset').value === {keys[0]!r}")
    until(page, "!document.getElementById('spec').value.includes('steps: 500')")
    loaded = _value(web)
    assert loaded != edited

    # converting the loaded spec to JSON is no edit: the next preset loads at once
    until(page, VALID)
    page.check("input[name='format'][value='json']")
    until(page, "document.getElementById('spec').value.trimStart().startsWith('{')")
    page.select_option("#preset", "")
    until(page, "document.getElementById('spec').value.includes('my sweep')")
    assert page.locator("#confirm-dialog").count() == 0
    assert web.dialogs == []
