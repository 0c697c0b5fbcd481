// The sweeps list: newest first, paginated, progress bars refreshed while any runs.
"use strict";

(function () {
  const { api, query, el, clear, fmtInt } = betascope;
  const $ = (x) => document.getElementById(x);
  const PAGE = 25;
  const POLL_MS = 2000;
  const state = { offset: 0, cursors: [null], index: 0, picked: new Set(), timer: null };
  // A spec never changes: its problem is fetched once per sweep when the list lacks it.
  const problems = new Map();

  async function fillProblems(items) {
    const missing = items.filter((s) => !s.spec && !s.problem && !problems.has(s.id));
    await Promise.all(missing.map(async (s) => {
      try {
        problems.set(s.id, (await api(`/sweeps/${encodeURIComponent(s.id)}`)).spec);
      } catch (_) { /* deleted meanwhile: the row shows no problem */ }
    }));
  }

  function row(s) {
    const name = (s.spec && s.spec.name) || s.name || "sweep " + s.id;
    const wrap = el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" },
      el("div", { class: "bar" }));
    const label = el("span", { class: "progress-label" });
    betascope.setProgress(wrap, wrap.firstChild, label, s);
    const status = el("span");
    betascope.badge(status, s.status);
    const pick = el("input", { type: "checkbox", "aria-label": "pick for comparison" });
    pick.checked = state.picked.has(String(s.id));
    pick.addEventListener("change", () => {
      if (pick.checked) state.picked.add(String(s.id));
      else state.picked.delete(String(s.id));
      $("compare").disabled = state.picked.size !== 2;
    });
    const runs = [fmtInt(s.done_runs) + " / " + fmtInt(s.total_runs)];
    const extra = [];
    if (s.failed_runs) extra.push(fmtInt(s.failed_runs) + " failed");
    if (s.cached_runs) extra.push(fmtInt(s.cached_runs) + " reused");
    return el("tr", { "data-id": String(s.id) },
      el("td", { class: "pick" }, pick),
      el("td", { class: "name" }, el("a", { href: "/sweeps/" + encodeURIComponent(s.id) }, name)),
      el("td", { class: "small problem" }, betascope.problemLabel(s.spec || (s.problem ? { problem: s.problem } : problems.get(s.id)))),
      el("td", {}, status),
      el("td", {}, el("div", { class: "progress-cell" }, wrap, label)),
      el("td", { class: "num" }, runs.join(""), extra.length ? el("div", { class: "muted small" }, extra.join(", ")) : null),
      el("td", { class: "small" }, betascope.fmtTime(s.created_at)));
  }

  // The API pages either by cursor (next_cursor) or by offset; follow what it gives.
  async function load() {
    clearTimeout(state.timer);
    const cursor = state.cursors[state.index];
    let data;
    try {
      data = await api("/sweeps" + query({ limit: PAGE, cursor, offset: cursor ? undefined : state.offset }));
    } catch (err) {
      const body = clear($("sweeps-body"));
      body.append(el("tr", {}, el("td", { colspan: "7", class: "error-text" }, "Could not load sweeps: " + err.message)));
      state.timer = setTimeout(load, POLL_MS * 3);
      return;
    }
    const items = Array.isArray(data) ? data : data.items || data.sweeps || [];
    const next = Array.isArray(data) ? null : data.next_cursor || null;
    const total = Array.isArray(data) ? null : data.total;
    await fillProblems(items);
    const body = clear($("sweeps-body"));
    if (!items.length) {
      body.append(el("tr", { class: "placeholder" }, el("td", { colspan: "7", class: "muted" },
        "No sweeps yet. ", el("a", { href: "/sweeps/new" }, "Submit one"), " from a preset or your own spec.")));
    }
    for (const s of items) body.append(row(s));
    const cursored = !Array.isArray(data) && "next_cursor" in data;
    const hasNext = cursored ? next !== null : total !== null && total !== undefined
      ? state.offset + items.length < total : items.length === PAGE;
    if (next) state.cursors[state.index + 1] = next;
    $("next").disabled = !hasNext;
    $("prev").disabled = state.index === 0;
    const first = state.index * PAGE + 1;
    $("page-label").textContent = items.length
      ? first + "–" + (first + items.length - 1) + (total ? " of " + fmtInt(total) : "") : "";
    if (items.some((s) => betascope.isActive(s.status))) state.timer = setTimeout(load, POLL_MS);
  }

  $("next").addEventListener("click", () => {
    state.index += 1;
    state.offset = state.index * PAGE;
    load();
  });
  $("prev").addEventListener("click", () => {
    state.index = Math.max(0, state.index - 1);
    state.offset = state.index * PAGE;
    load();
  });
  $("compare").addEventListener("click", () => {
    const [a, b] = Array.from(state.picked);
    window.location.href = "/compare" + query({ a, b });
  });
  load();
})();
