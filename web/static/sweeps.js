// The sweeps list: newest first, paginated, progress bars refreshed while any runs.
"use strict";

(function () {
  const { api, query, el, clear, fmtInt } = betascope;
  const $ = (x) => document.getElementById(x);
  const PAGE = 25;
  const POLL_MS = 2000;
  const state = { offset: 0, cursors: [null], index: 0, picked: new Set(), timer: null, checking: false };
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
    const pick = el("input", { type: "checkbox", "aria-label": "pick sweep " + s.id + " for comparison" });
    pick.checked = state.picked.has(String(s.id));
    pick.disabled = !pick.checked && state.picked.size >= 2;
    pick.addEventListener("change", () => picked(pick, String(s.id)));
    const remove = el("button", { type: "button", class: "button small danger delete", title: "delete this sweep" }, "Delete");
    remove.addEventListener("click", () => deleteSweep(s, name, remove));
    const runs = [fmtInt(s.done_runs) + " / " + fmtInt(s.total_runs)];
    const extra = [];
    if (s.failed_runs) extra.push(fmtInt(s.failed_runs) + " failed");
    if (s.cached_runs) extra.push(fmtInt(s.cached_runs) + " reused");
    return el("tr", { "data-id": String(s.id) },
      el("td", { class: "pick" }, pick),
      el("td", { class: "num id" }, String(s.id)),
      el("td", { class: "name" }, el("a", { href: "/sweeps/" + encodeURIComponent(s.id) }, name)),
      el("td", { class: "small problem" }, betascope.problemLabel(s.spec || (s.problem ? { problem: s.problem } : problems.get(s.id)))),
      el("td", {}, status),
      el("td", {}, el("div", { class: "progress-cell" }, wrap, label)),
      el("td", { class: "num" }, runs.join(""), extra.length ? el("div", { class: "muted small" }, extra.join(", ")) : null),
      el("td", { class: "small" }, betascope.fmtTime(s.created_at)),
      el("td", { class: "actions-col" }, remove));
  }

  // --- picking two sweeps to compare: refuse a pair whose grids differ, at once ------------

  const grids = new Map(); // id -> promise of its outcome map (axes only are used)

  function gridOf(sweepId) {
    if (!grids.has(sweepId)) {
      const p = api(`/sweeps/${encodeURIComponent(sweepId)}/phase-map` + query({ metric: "outcome" }));
      grids.set(sweepId, p);
      p.catch(() => grids.delete(sweepId));
    }
    return grids.get(sweepId);
  }

  function syncPicks() {
    for (const box of document.querySelectorAll("#sweeps-body td.pick input")) {
      const sweepId = box.closest("tr").dataset.id;
      box.checked = state.picked.has(sweepId);
      box.disabled = !box.checked && state.picked.size >= 2;
    }
    $("compare").disabled = state.picked.size !== 2 || state.checking;
  }

  async function picked(box, sweepId) {
    $("pick-note").textContent = "";
    if (!box.checked) {
      state.picked.delete(sweepId);
      syncPicks();
      return;
    }
    state.picked.add(sweepId);
    if (state.picked.size === 2) {
      const [a, b] = Array.from(state.picked);
      state.checking = true;
      syncPicks();
      $("list-note").textContent = "Checking that sweeps " + a + " and " + b + " share a grid…";
      let why = null;
      try {
        const [pa, pb] = await Promise.all([gridOf(a), gridOf(b)]);
        why = betascope.grids.gridMismatch(pa, pb, "sweep " + a, "sweep " + b);
      } catch (err) {
        why = "could not read their grids (" + err.message + ")";
      }
      state.checking = false;
      $("list-note").textContent = "";
      if (why) {
        state.picked.delete(sweepId);
        $("pick-note").textContent = "Sweeps " + a + " and " + b + " cannot be compared: " + why + ".";
      }
    }
    syncPicks();
  }

  // --- deleting, after a confirmation, with the server's token when it has one -------------

  async function deleteSweep(s, name, button) {
    const ok = await betascope.confirmAction({
      title: "Delete sweep " + s.id + "?",
      body: "“" + name + "” and its results will be deleted (" + fmtInt(s.total_runs)
        + " runs; results that another sweep shares stay). This cannot be undone.",
      ok: "Delete sweep " + s.id,
    });
    if (!ok) return;
    button.disabled = true;
    try {
      await betascope.authorized(() => api(`/sweeps/${encodeURIComponent(s.id)}`, { method: "DELETE" }),
        "Deleting a sweep");
      state.picked.delete(String(s.id));
      $("list-note").textContent = "Deleted sweep " + s.id + " (“" + name + "”).";
      await load();
    } catch (err) {
      button.disabled = false;
      $("pick-note").textContent = "Sweep " + s.id + " was not deleted: " + err.message;
    }
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
      body.append(el("tr", {}, el("td", { colspan: "9", class: "error-text" }, "Could not load sweeps: " + err.message)));
      state.timer = setTimeout(load, POLL_MS * 3);
      return;
    }
    const items = Array.isArray(data) ? data : data.items || data.sweeps || [];
    const next = Array.isArray(data) ? null : data.next_cursor || null;
    const total = Array.isArray(data) ? null : data.total;
    await fillProblems(items);
    const body = clear($("sweeps-body"));
    if (!items.length) {
      body.append(el("tr", { class: "placeholder" }, el("td", { colspan: "9", class: "muted" },
        "No sweeps yet. ", el("a", { href: "/sweeps/new" }, "Submit one"), " from a preset or your own spec.")));
    }
    for (const s of items) body.append(row(s));
    syncPicks();
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
