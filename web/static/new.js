// New sweep: a preset or a blank spec in a YAML/JSON editor, checked as you type
// against the server's validator, with each error shown beside the line it names.
"use strict";

(function () {
  const { api, el, clear, fmtInt } = betascope;
  const $ = (x) => document.getElementById(x);
  const presets = JSON.parse($("presets-data").textContent);
  const text = $("spec");
  const DEBOUNCE_MS = 250;

  const BLANK = {
    name: "my sweep",
    problem: { kind: "zhang2022", n: 20, x0: -0.5 },
    optimizer: { kind: "adam", lr: 0.1, schedule: "inv_sqrt", bias_correction: false },
    steps: 2000,
    grid: {
      beta1: { start: 0.0, stop: 0.9, num: 10 },
      beta2: { log1m: [0.001, 1.0], num: 12 },
      batch_size: [1, 4],
      clip: [{ mode: "none" }],
      seed: [0, 1, 2],
    },
  };

  // loaded: the text as last loaded from a preset (or blank), to tell whether it was edited
  const state = { seq: 0, doc: null, docText: null, errors: [], timer: null, preset: "", loaded: null };
  const page = (betascope.newPage = { state });

  function mediaType() {
    return format() === "json" ? "application/json" : "application/yaml";
  }

  function format() {
    return document.querySelector('input[name="format"]:checked').value;
  }

  const { toYaml, lineOf } = betascope.specText;
  page.toYaml = toYaml;
  page.lineOf = lineOf;

  // --- gutter and notes ----------------------------------------------------------------------

  function lineHeight() {
    return parseFloat(getComputedStyle(text).lineHeight) || 20;
  }

  // The editor's monospace advance, measured once per font: a note starts just past
  // the end of its line, so it covers none of the spec's text.
  let charWidth = 0;
  function charAdvance() {
    if (!charWidth) {
      const probe = el("span", { class: "probe" }, "0".repeat(50));
      text.parentNode.append(probe);
      charWidth = probe.getBoundingClientRect().width / 50 || 8;
      probe.remove();
    }
    return charWidth;
  }

  function where(e) {
    if (e.path) return e.path;
    if (e.column) return "line " + (e.line + 1) + ", column " + e.column;
    return e.hasLine ? "line " + (e.line + 1) : "spec";
  }

  function paint() {
    const n = text.value.split("\n").length;
    const bad = new Set(state.errors.map((e) => e.line));
    const gutter = clear($("gutter"));
    for (let i = 0; i < n; i++) {
      gutter.append(bad.has(i) ? el("span", { class: "bad" }, String(i + 1)) : String(i + 1), "\n");
    }
    gutter.scrollTop = text.scrollTop;
    const notes = clear($("notes"));
    const lh = lineHeight();
    const cs = getComputedStyle(text);
    const pad = parseFloat(cs.paddingTop) || 0, padLeft = parseFloat(cs.paddingLeft) || 0;
    const lines = text.value.split("\n");
    const room = text.clientWidth;
    const used = new Map();
    for (const e of state.errors) {
      const k = used.get(e.line) || 0;
      used.set(e.line, k + 1);
      const note = el("div", { class: "note", "data-field": e.path, title: where(e) },
        el("b", {}, where(e) + ": "), e.msg);
      note.style.top = (pad + e.line * lh - text.scrollTop + k * (lh + 2)) + "px";
      const end = padLeft + ((lines[e.line] || "").length + 3) * charAdvance() - text.scrollLeft;
      if (room - end >= 220) { // beside the end of its line
        note.style.left = end + "px";
        note.style.maxWidth = (room - end - 8) + "px";
      } else { // a long line: at the right edge, over the line's tail
        note.classList.add("right");
      }
      notes.append(note);
    }
    const list = clear($("errors"));
    for (const e of state.errors) {
      const code = el("code", { title: "show in the editor" }, where(e));
      code.addEventListener("click", () => jumpTo(e.line));
      list.append(el("li", { "data-field": e.path }, code, " ", e.msg));
    }
  }

  function jumpTo(line) {
    const lines = text.value.split("\n");
    const start = lines.slice(0, line).reduce((a, l) => a + l.length + 1, 0);
    text.focus();
    text.setSelectionRange(start, start + lines[line].length);
    text.scrollTop = Math.max(0, line * lineHeight() - text.clientHeight / 3);
    paint();
  }

  // --- validation ----------------------------------------------------------------------------------

  function fieldErrors(err) {
    const body = err.body || {};
    const raw = Array.isArray(body.errors) ? body.errors : Array.isArray(body.detail) ? body.detail
      : body.detail && Array.isArray(body.detail.errors) ? body.detail.errors : null;
    if (!raw) return [located({ path: "", msg: err.message })];
    return raw.map((e) => {
      let path = e.field !== undefined ? e.field : e.path !== undefined ? e.path : e.loc;
      if (Array.isArray(path)) {
        path = path.filter((p, i) => !(i === 0 && p === "body"))
          .map((p, i) => (typeof p === "number" ? "[" + p + "]" : (i ? "." : "") + p)).join("");
      }
      return located({ path: String(path || ""), msg: String(e.msg || e.message || e), line: e.line, column: e.column });
    });
  }

  // A syntax error names a line (and column), not a field: as numbers the server sent
  // (1-based), or in its text: "line 3, column 5" (YAML), "line 3 column 5" (JSON).
  function located(e) {
    let line = typeof e.line === "number" ? e.line : null, column = typeof e.column === "number" ? e.column : null;
    // PyYAML names where the construct began and, last, where it could not go on
    const marks = [...e.msg.matchAll(/line (\d+)(?:,? column (\d+))?/g)];
    if (line === null && marks.length) {
      const m = marks[marks.length - 1];
      line = Number(m[1]);
      column = m[2] ? Number(m[2]) : null;
    }
    // its excerpts with a caret under the spot make no sense on one line: drop them
    const msg = e.msg.replace(/\s*in "<[^>]*>", line \d+, column \d+:\n[^\n]*\n\s*\^/g, "")
      .replace(/\s+/g, " ").trim();
    if (line === null) return { path: e.path, msg, line: 0, hasLine: false };
    return { path: e.path, msg, line: Math.max(0, line - 1), column, hasLine: true };
  }

  const SHORT = { batch_size: "batch", seed: "seeds", beta1: "β1", beta2: "β2" };

  function showShape(sizes) {
    const dd = clear($("grid-shape"));
    if (!sizes) return dd.append("–");
    const keys = Object.keys(sizes);
    dd.append(keys.map((k) => sizes[k]).join(" × "),
              el("div", { class: "muted small" }, keys.map((k) => SHORT[k] || k).join(" × ")));
  }

  function human(n) {
    for (const [d, u] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
      if (n >= d) return (n / d).toPrecision(3) + " " + u;
    }
    return String(n);
  }

  // "3 h 20 min", "2.5 days": an estimate, so two units at most
  function duration(seconds) {
    if (seconds < 1) return "under a second";
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 86400 * 2) {
      const h = Math.floor(seconds / 3600), m = Math.round((seconds - h * 3600) / 60);
      return h + " h" + (m ? " " + m + " min" : "");
    }
    return (seconds / 86400).toPrecision(seconds < 86400 * 100 ? 2 : 3).replace(/\.0$/, "") + " days";
  }
  page.duration = duration;

  // Run-steps now; the duration when the server could estimate it from its measured
  // throughput (estimated_seconds), with a warning for anything over a day.
  function showCost(result) {
    const steps = result && result.total_runs && result.steps ? result.total_runs * result.steps : null;
    $("work").textContent = steps === null ? "–" : human(steps) + " run-steps";
    const secs = result && typeof result.estimated_seconds === "number" ? result.estimated_seconds : null;
    $("duration").textContent = secs === null ? (steps === null ? "–" : "not estimated") : "≈ " + duration(secs);
    const warn = $("cost-warning");
    warn.hidden = !(secs !== null && secs > 86400);
    if (!warn.hidden) {
      warn.textContent = "This sweep would run for about " + duration(secs) + " on this server. "
        + "Fewer grid points, seeds or steps make it shorter.";
    }
  }

  async function validate() {
    const seq = ++state.seq;
    const src = text.value;
    $("check-state").textContent = "Checking…";
    $("submit").disabled = true;
    let result, errors = [];
    try {
      result = await api("/sweeps/validate", { method: "POST", text: src, contentType: mediaType() });
    } catch (err) {
      if (!err.status) errors = [{ path: "", msg: "Cannot reach the server: " + err.message }];
      else errors = fieldErrors(err);
    }
    if (seq !== state.seq) return; // a newer edit is being checked
    state.errors = errors.map((e) => Object.assign(e, { line: e.path && !e.hasLine ? lineOf(src, e.path) : e.line || 0 }));
    if (result) {
      state.doc = result.document || result.spec;
      state.docText = src;
      $("run-count").textContent = fmtInt(result.total_runs);
      $("step-count").textContent = fmtInt(result.steps);
      showShape(result.axis_sizes);
      showCost(result);
      $("check-state").textContent = "The spec is valid.";
      $("submit").disabled = false;
    } else {
      state.doc = null;
      $("run-count").textContent = "–";
      $("step-count").textContent = "–";
      showShape(null);
      showCost(null);
      $("check-state").textContent = errors.length === 1 ? "1 problem:" : errors.length + " problems:";
    }
    paint();
  }
  page.validate = validate;

  function changed() {
    clearTimeout(state.timer);
    state.timer = setTimeout(validate, DEBOUNCE_MS);
    paint();
  }

  // --- presets, format, submit ---------------------------------------------------------------------

  function load(key) {
    const fmt = format();
    if (key && presets[key]) text.value = presets[key][fmt];
    else text.value = fmt === "json" ? JSON.stringify(BLANK, null, 2) + "\n" : toYaml(BLANK);
    state.preset = key;
    state.loaded = text.value;
    text.scrollTop = 0;
    validate();
  }

  // Another preset replaces the text: when it holds edits (differs from what was last
  // loaded), ask first; keeping them puts the old choice back in the menu.
  async function choosePreset(event) {
    const key = event.target.value;
    if (text.value !== state.loaded) {
      const label = key && presets[key] ? "“" + key + "”" : "a blank spec";
      const ok = await betascope.confirmAction({
        title: "Replace your edits?",
        body: "Loading " + label + " replaces the spec in the editor; your edits to it are lost.",
        ok: "Replace", cancel: "Keep my edits",
      });
      if (!ok) {
        event.target.value = state.preset || "";
        return;
      }
    }
    load(key);
  }

  function switchFormat(event) {
    const want = event.target.value;
    const unedited = text.value === state.loaded;
    let doc = null;
    if (want === "yaml") {
      try {
        doc = JSON.parse(text.value);
      } catch (_) {
        doc = state.docText === text.value ? state.doc : null;
      }
      if (doc) text.value = toYaml(doc);
    } else if (state.doc && state.docText === text.value) {
      text.value = JSON.stringify(state.doc, null, 2) + "\n";
      doc = state.doc;
    }
    if (!doc) {
      // only a spec that parses can be converted; keep the text and the old format
      document.querySelector(`input[name="format"][value="${want === "yaml" ? "json" : "yaml"}"]`).checked = true;
      $("submit-error").textContent = "Fix the errors first: only a spec that parses can be converted.";
      return;
    }
    if (unedited) state.loaded = text.value; // the same spec, converted: still unedited
    $("submit-error").textContent = "";
    validate();
  }

  async function submit(event) {
    event.preventDefault();
    $("submit-error").textContent = "";
    if (state.seq && state.docText !== text.value) await validate();
    if (!state.doc) return;
    $("submit").disabled = true;
    try {
      const created = await betascope.authorized(
        () => api("/sweeps", { method: "POST", text: text.value, contentType: mediaType() }), "Submitting a sweep");
      window.location.href = "/sweeps/" + encodeURIComponent(created.id);
    } catch (err) {
      if (err.status === 422 || err.status === 413) {
        state.errors = fieldErrors(err).map((e) => Object.assign(e, { line: e.path && !e.hasLine ? lineOf(text.value, e.path) : e.line || 0 }));
        paint();
      }
      $("submit-error").textContent = "Not submitted: " + err.message;
      $("submit").disabled = false;
    }
  }

  // --- keyboard: Tab indents, Shift+Tab dedents, Esc then Tab leaves ---------------------------

  const INDENT = "  ";

  // Indent (or dedent) the lines the selection touches; a Tab with no line break in the
  // selection inserts two spaces at the caret. Shift+Tab never inserts anything.
  function reindent(dedent) {
    const v = text.value, s = text.selectionStart, e = text.selectionEnd;
    if (!dedent && !v.slice(s, e).includes("\n")) {
      text.setRangeText(INDENT, s, e, "end");
      return true;
    }
    const first = v.lastIndexOf("\n", s - 1) + 1;
    const lastPos = e > s && v[e - 1] === "\n" ? e - 1 : e; // a selection ending at a line start
    let end = v.indexOf("\n", lastPos);
    if (end < 0) end = v.length;
    const lines = v.slice(first, end).split("\n");
    let atFirst = 0, total = 0;
    const out = lines.map((l, i) => {
      const n = dedent ? /^ {0,2}/.exec(l)[0].length : -INDENT.length;
      if (i === 0) atFirst = n;
      total += n;
      return dedent ? l.slice(n) : INDENT + l;
    });
    if (!total) return false;
    text.setRangeText(out.join("\n"), first, end, "preserve");
    const start = dedent ? Math.max(first, s - atFirst) : s - atFirst;
    text.setSelectionRange(start, Math.max(start, e - total));
    return true;
  }

  // Escape arms the next Tab (or Shift+Tab) to move focus out as it does anywhere else.
  let leaving = false;
  const hint = $("editor-hint");
  function setLeaving(on) {
    leaving = on;
    hint.classList.toggle("armed", on);
  }
  text.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      setLeaving(true);
      return;
    }
    if (e.key === "Tab" && !e.ctrlKey && !e.altKey && !e.metaKey) {
      if (leaving) { // let the browser move focus
        setLeaving(false);
        return;
      }
      e.preventDefault();
      if (reindent(e.shiftKey)) changed();
      return;
    }
    if (!["Shift", "Control", "Alt", "Meta"].includes(e.key)) setLeaving(false);
  });
  text.addEventListener("blur", () => setLeaving(false));
  text.addEventListener("input", changed);
  text.addEventListener("scroll", paint);
  $("preset").addEventListener("change", choosePreset);
  for (const r of document.querySelectorAll('input[name="format"]')) r.addEventListener("change", switchFormat);
  $("spec-form").addEventListener("submit", submit);
  const wanted = new URLSearchParams(window.location.search).get("preset");
  if (wanted && presets[wanted]) $("preset").value = wanted;
  load($("preset").value);
})();
