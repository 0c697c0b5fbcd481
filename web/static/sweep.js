// The sweep page: live progress, phase diagrams, boundaries and loss curves.
"use strict";

(function () {
  const { api, query, el, clear, fmtInt, fmtValue, maps } = betascope;
  const root = document.getElementById("sweep");
  const id = root.dataset.sweepId;
  const $ = (x) => document.getElementById(x);
  const enc = encodeURIComponent;
  const POLL_MS = 1500;

  const state = {
    sweep: null, available: null, boundary: null, version: -1,
    cache: new Map(), // "metric|{x, y, slice values}" -> phase-map response
    drawn: false, selected: null, gen: 0,
    x: "beta1", y: "beta2", // the map's axes: any two with more than one value
    axes: null, // every axis of a cell -> its values (from the first map)
  };
  const page = (betascope.sweepPage = { state });
  const STATIC_SLICES = ["batch_size", "clip", "lr"]; // their controls are in the template

  // The slice control of an axis: the template's for batch size, clip and lr, one made
  // here for any other (beta1 or beta2 when not mapped, problem.n, optimizer.eps, ...).
  function sliceSelect(axis) {
    if (STATIC_SLICES.includes(axis)) return $(axis);
    let sel = $("slice-" + axis);
    if (!sel) {
      sel = el("select", { id: "slice-" + axis, "data-axis": axis });
      sel.addEventListener("change", () => render().catch(showError));
      $("extra-slices").append(el("label", { "data-axis": axis }, maps.symbol(axis) + " ", sel));
    }
    return sel;
  }

  function sliceAxes() {
    const all = state.axes ? Object.keys(state.axes) : ["beta1", "beta2", ...STATIC_SLICES];
    return all.filter((a) => a !== state.x && a !== state.y);
  }

  // What the API is asked for: the map's axes (when not the default) and each slice
  // control's value (empty before the first map: the API's first values).
  function mapParams() {
    const p = {};
    if (state.x !== "beta1" || state.y !== "beta2") Object.assign(p, { x: state.x, y: state.y });
    for (const axis of sliceAxes()) {
      const sel = STATIC_SLICES.includes(axis) || $("slice-" + axis) ? sliceSelect(axis) : null;
      if (sel && sel.value !== "") p[axis] = sel.value;
    }
    return p;
  }

  // The request for the same map as `pm` (another metric, another batch size, ...).
  function paramsOf(pm, change = {}) {
    const p = Object.assign({}, pm.slice, change);
    if (pm.x.name !== "beta1" || pm.y.name !== "beta2") Object.assign(p, { x: pm.x.name, y: pm.y.name });
    return p;
  }

  function controls() {
    return {
      metric: $("metric").value, axes: { x: $("xscale").value, y: $("yscale").value }, view: $("view").value,
      params: mapParams(), showSqrt: $("show-sqrt").checked, showStar: $("show-star").checked,
    };
  }

  async function phaseMap(metric, params) {
    const key = metric + "|" + JSON.stringify(Object.entries(params).sort());
    if (!state.cache.has(key)) {
      const p = api(`/sweeps/${enc(id)}/phase-map` + query(Object.assign({ metric }, params)));
      state.cache.set(key, p);
      p.catch(() => state.cache.delete(key));
    }
    return state.cache.get(key);
  }

  // The axis pickers and each axis's scale choices, from every axis's values.
  function fillAxisControls() {
    const many = Object.keys(state.axes).filter((a) => state.axes[a].length > 1);
    for (const [which, sel] of [["x", $("x-axis")], ["y", $("y-axis")]]) {
      const names = Array.from(new Set([state[which], ...many]));
      const have = Array.from(sel.options).map((o) => o.value).join("\u0000");
      if (have !== names.join("\u0000")) {
        clear(sel);
        for (const a of names) sel.append(el("option", { value: a }, maps.symbol(a)));
      }
      sel.value = state[which];
      sel.disabled = many.length < 2;
    }
  }

  function fillScale(which) {
    const axis = state[which], values = state.axes[axis];
    const sel = $(which + "scale");
    const options = maps.scales(axis, values);
    if (Array.from(sel.options).map((o) => o.value).join() !== options.map((o) => o[0]).join()) {
      clear(sel);
      for (const [v, label] of options) sel.append(el("option", { value: v }, label));
    }
    sel.value = maps.defaultScale(values, axis);
    $(which + "scale-name").textContent = maps.symbol(axis);
  }

  // A new map axis: the other keeps its own unless they would be the same axis.
  function pickAxis(which) {
    const other = which === "x" ? "y" : "x";
    const want = $(which + "-axis").value;
    if (want === state[other]) state[other] = state[which];
    state[which] = want;
    fillAxisControls();
    fillScale("x");
    fillScale("y");
    state.selected = null;
    render().catch(showError);
    drawScaling();
  }

  function fillSelect(select, values, current) {
    const want = current !== undefined && current !== "" ? String(current) : null;
    const have = Array.from(select.options).map((o) => o.value);
    const next = values.map(String);
    if (have.join("\u0000") !== next.join("\u0000")) {
      clear(select);
      const label = betascope.gridFormat(values.filter((v) => typeof v === "number"));
      values.forEach((v, i) => select.append(el("option", { value: next[i] }, typeof v === "number" ? label(v) : next[i])));
    }
    if (want !== null && next.includes(want)) select.value = want;
    select.disabled = next.length < 2;
  }

  function starFor(sl) {
    if (!state.boundary || !state.boundary.slices) return null;
    const s = state.boundary.slices.find((e) => Object.entries(sl).every(([k, v]) => String(e[k]) === String(v)));
    return s ? s.beta2_star : null;
  }

  // --- status and progress ----------------------------------------------------------------

  function fmtDuration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function showSweep(s) {
    state.sweep = s;
    const name = (s.spec && s.spec.name) || s.name || "sweep " + id;
    $("sweep-name").textContent = name;
    document.title = name + " · betascope";
    const meta = [betascope.problemLabel(s.spec), (s.spec && s.spec.steps ? fmtInt(s.spec.steps) + " steps" : null),
                  "created " + betascope.fmtTime(s.created_at)].filter(Boolean);
    $("sweep-meta").textContent = meta.join(" · ");
    betascope.badge($("status"), s.status);
    betascope.setProgress($("progress"), $("progress-bar"), $("progress-label"), s);
    const parts = [fmtInt(s.done_runs) + " of " + fmtInt(s.total_runs) + " runs done"];
    if (s.cached_runs) parts.push(fmtInt(s.cached_runs) + " reused");
    if (s.failed_runs) parts.push(fmtInt(s.failed_runs) + " failed");
    if (s.runs_per_second) parts.push(fmtInt(Math.round(s.runs_per_second)) + " runs/s");
    if (betascope.isActive(s.status) && s.eta_seconds !== null && s.eta_seconds !== undefined) {
      parts.push("about " + fmtDuration(s.eta_seconds) + " left");
    }
    $("counts").textContent = parts.join(" · ");
    $("cancel").hidden = !betascope.isActive(s.status);
    $("retry").hidden = !(s.status === "failed" || s.status === "canceled" || s.failed_runs > 0)
      || betascope.isActive(s.status);
  }

  let timer = null;

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  // Poll the sweep while it runs; when results arrive, refetch the maps, so the
  // diagram fills in as chunks finish.
  async function poll() {
    clearTimeout(timer);
    try {
      const s = await api(`/sweeps/${enc(id)}`);
      const version = [s.status, s.done_runs, s.failed_runs].join("/");
      showSweep(s);
      $("load-error").textContent = "";
      if (version !== state.version) {
        const first = state.version === -1;
        state.version = version;
        if (!first) {
          state.cache.clear();
          await loadBoundary();
        }
      }
      if (betascope.isActive(s.status)) schedule(POLL_MS);
    } catch (err) {
      showError(new Error("Could not load the sweep: " + err.message));
      if (!err.status || err.status >= 500) schedule(POLL_MS * 3);
    }
  }

  // --- the phase map ------------------------------------------------------------------------

  // Every render has a generation; anything still drawing for an older one (a slow
  // response, a hover enrichment) gives way, so stale data never overwrites new.
  async function render() {
    const c = controls();
    c.gen = ++state.gen;
    const pm = await phaseMap(c.metric, c.params);
    if (c.gen !== state.gen) return;
    state.available = pm.available;
    if (!state.axes) { // first map: every axis and its values; each scale from its spacing, once
      state.axes = Object.assign({ [pm.x.name]: pm.x.values, [pm.y.name]: pm.y.values }, pm.available);
      // a lone β1 (or β2) value makes a one-column map: open on two axes with several values
      const open = maps.defaultAxes(state.axes);
      if (open.x !== pm.x.name || open.y !== pm.y.name) {
        Object.assign(state, open);
        fillAxisControls();
        fillScale("x");
        fillScale("y");
        return render();
      }
      fillAxisControls();
      fillScale("x");
      fillScale("y");
      c.axes = { x: $("xscale").value, y: $("yscale").value };
    }
    for (const axis of Object.keys(state.axes)) {
      const sel = sliceSelect(axis);
      const mapped = axis === pm.x.name || axis === pm.y.name;
      sel.closest("label").hidden = mapped;
      if (!mapped) fillSelect(sel, pm.available[axis], pm.slice[axis]);
    }
    const batches = pm.available.batch_size || [];
    $("view").disabled = batches.length < 2;
    const sl = pm.slice;
    const betaPlane = pm.x.name === "beta1" && pm.y.name === "beta2";
    $("show-sqrt").disabled = $("show-star").disabled = !betaPlane;
    const multiples = c.view === "multiples" && batches.length > 1;
    // one map per batch size shows every batch size: no batch size to pick
    if (multiples) $("batch_size").disabled = true;
    $("batch_size").title = multiples ? "every batch size has its own map in this view" : "";
    // the legend's β1 = √β2 line only where the maps draw it
    $("multiples-sqrt").hidden = !(multiples && c.showSqrt && maps.sqrtDrawn(pm, c.axes));
    const where = Object.keys(sl).filter((a) => !STATIC_SLICES.includes(a))
      .map((a) => " · " + maps.symbol(a) + " " + fmtValue(sl[a])).join("");
    const head = [];
    if (multiples) head.push("one map per batch size");
    else if ("batch_size" in sl) head.push("batch size " + sl.batch_size);
    if ("clip" in sl) head.push("clip " + sl.clip);
    if ("lr" in sl) head.push("lr " + fmtValue(sl.lr));
    $("map-title").textContent = "Phase diagram · " + (betaPlane ? "" : maps.symbol(pm.y.name) + " against "
      + maps.symbol(pm.x.name) + " · ") + head.join(" · ") + where;
    $("step-legend").hidden = c.metric !== "div_step";
    if (multiples) {
      $("map").hidden = true;
      $("multiples").hidden = false;
      await renderMultiples(c, pm);
    } else {
      $("map").hidden = false;
      $("multiples").hidden = true;
      $("multiples-legend").hidden = $("regime-legend").hidden = true;
      await drawMap($("map"), pm, c, {});
      enrichHover($("map"), c, pm);
    }
  }

  async function drawMap(div, pm, c, opts) {
    const sl = pm.slice;
    const betaPlane = pm.x.name === "beta1" && pm.y.name === "beta2";
    const star = c.showStar && betaPlane ? pm.beta2_star || starFor(sl) : null;
    const extra = Object.assign({}, opts.extra || {});
    // the divergence-step map tells "never diverged" from "no results" by the outcomes
    if (c.metric === "div_step" && !extra.outcome) extra.outcome = await phaseMap("outcome", paramsOf(pm));
    const fig = maps.figure(pm, Object.assign({ mode: c.axes, extra, star, showSqrt: c.showSqrt }, opts));
    const others = Object.keys(sl).filter((a) => a !== "batch_size").map((a) => sl[a]).join("|");
    fig.layout.uirevision = pm.x.name + pm.y.name + c.axes.x + c.axes.y + "|" + others + (opts.small ? "|" + sl.batch_size : "");
    const sel = state.selected;
    if (sel && JSON.stringify(sel.sl) === JSON.stringify(sl)) fig.layout.shapes = [outline(fig.traces[0], sel.row, sel.col)];
    await betascope.plotlyReady;
    if (c.gen !== state.gen) return;
    await Plotly.react(div, fig.traces, fig.layout, fig.config);
    div.dataset.slice = JSON.stringify(sl);
    div.dataset.axes = JSON.stringify([pm.x.name, pm.y.name]);
    if (!div.dataset.bound) {
      div.dataset.bound = "1";
      div.on("plotly_click", (ev) => {
        const pt = ev.points && ev.points.find((p) => p.data.type === "heatmap");
        if (!pt) return;
        const [row, col] = Array.isArray(pt.pointIndex) ? pt.pointIndex : pt.pointNumber;
        page.openCell(row, col, JSON.parse(div.dataset.slice));
      });
      // the keyboard's way to a cell: the map takes the focus, the arrow keys move a
      // frame over the cells (up: the next value of the map's y), Enter or Space shows
      // the framed cell's loss curves as a click does
      div.tabIndex = 0;
      div.setAttribute("aria-label", "Phase diagram: the arrow keys choose a cell, Enter shows its loss curves");
      div.addEventListener("keydown", (ev) => cellKey(div, ev));
    }
    if (!state.drawn && div.id === "map" || !state.drawn && opts.small) {
      state.drawn = true;
      performance.mark("betascope:map-drawn");
      betascope.mapDrawnAt = performance.now();
    }
    div.dataset.drawn = String(Date.now());
  }

  const KEY_STEPS = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [1, 0], ArrowDown: [-1, 0] };

  function cellKey(div, ev) {
    const heat = div.data && div.data[0];
    if (!heat || !heat.z || !heat.z.length) return;
    const sl = div.dataset.slice;
    const sel = state.selected && JSON.stringify(state.selected.sl) === sl ? state.selected : null;
    const at = div.cursor && div.cursor.sl === sl ? div.cursor : sel;
    if (ev.key === "Enter" || ev.key === " ") {
      if (!at) return;
      ev.preventDefault();
      page.openCell(at.row, at.col, JSON.parse(sl));
      return;
    }
    const step = KEY_STEPS[ev.key];
    if (!step) return;
    ev.preventDefault();
    const clamp = (v, n) => Math.min(n - 1, Math.max(0, v));
    const row = at ? clamp(at.row + step[0], heat.z.length) : 0;
    const col = at ? clamp(at.col + step[1], heat.z[0].length) : 0;
    div.cursor = { row, col, sl };
    Plotly.relayout(div, { shapes: [outline(heat, row, col)] });
  }

  // A frame around the selected cell, in the heatmap's plotted coordinates.
  function outline(heat, row, col) {
    const span = (v, i) => {
      const lo = i > 0 ? (v[i - 1] + v[i]) / 2 : v[i] - (v.length > 1 ? (v[1] - v[0]) / 2 : 0.5);
      const hi = i < v.length - 1 ? (v[i] + v[i + 1]) / 2 : v[i] + (v.length > 1 ? (v[i] - v[i - 1]) / 2 : 0.5);
      return [lo, hi];
    };
    const [x0, x1] = span(heat.x, col), [y0, y1] = span(heat.y, row);
    return { type: "rect", xref: "x", yref: "y", x0, x1, y0, y1, line: { color: "#111827", width: 3 } };
  }

  // The hover lists every value of a cell: fetch the other metrics of the slice. A
  // finished sweep's maps come from the server's cache; while a large sweep runs each
  // map is a fresh aggregation, so its hover waits until it is done.
  const ENRICH_RUNNING_MAX = 50000;

  async function enrichHover(div, c, pm, opts = {}) {
    const s = state.sweep;
    if (s && betascope.isActive(s.status) && s.total_runs > ENRICH_RUNNING_MAX) return;
    const others = Object.keys(maps.METRICS).filter((m) => m !== c.metric);
    try {
      const got = await Promise.all(others.map((m) => phaseMap(m, paramsOf(pm))));
      if (c.gen !== state.gen) return;
      const extra = {};
      others.forEach((m, i) => (extra[m] = got[i]));
      await drawMap(div, pm, c, Object.assign({}, opts, { extra }));
    } catch (_) { /* the hover keeps the one metric it has */ }
  }

  async function renderMultiples(c, first) {
    const box = $("multiples");
    const batches = first.available.batch_size;
    const pms = await Promise.all(batches.map((b) => phaseMap(c.metric, paramsOf(first, { batch_size: b }))));
    if (c.gen !== state.gen) return;
    const divs = batches.map((b, i) => {
      let d = box.children[i];
      if (!d || d.dataset.batch !== String(b)) {
        d = el("div", { class: "plot", "data-batch": String(b) });
        if (box.children[i]) box.replaceChild(d, box.children[i]);
        else box.append(d);
      }
      return d;
    });
    while (box.children.length > batches.length) box.lastChild.remove();
    // class colours (outcome, regime) get one legend above the maps, so every small map
    // has the same size
    $("multiples-legend").hidden = c.metric !== "outcome";
    $("regime-legend").hidden = c.metric !== "regime";
    const classes = first.outcomes !== null && first.outcomes !== undefined;
    // the panels share one colour bar (the last panel's), so they share one colour range
    const zrange = classes || c.metric === "outcome" ? null : maps.colourRange(c.metric, pms.map((pm) => pm.z));
    const opts = pms.map((pm, i) => ({
      small: true, title: "batch size " + batches[i], showscale: !classes && i === pms.length - 1, zrange,
    }));
    await Promise.all(pms.map((pm, i) => drawMap(divs[i], pm, c, opts[i])));
    pms.forEach((pm, i) => enrichHover(divs[i], c, pm, opts[i]));
  }

  // --- a cell's runs and their loss curves ------------------------------------------------------

  page.openCell = async function openCell(row, col, sl) {
    const pm = await phaseMap($("metric").value, paramsOf({ slice: sl, x: { name: state.x }, y: { name: state.y } }));
    const b1 = pm.x.values[col], b2 = pm.y.values[row];
    const token = {};
    state.selected = { b1, b2, sl, row, col, token };
    // the cell: its two map values and the slice's
    const at = Object.assign({}, sl, { [pm.x.name]: b1, [pm.y.name]: b2 });
    for (const div of [$("map"), ...$("multiples").children]) {
      if (div.data && div.dataset.slice === JSON.stringify(sl)) Plotly.relayout(div, { shapes: [outline(div.data[0], row, col)] });
      else if (div.data && div.layout.shapes && div.layout.shapes.length) Plotly.relayout(div, { shapes: [] });
    }
    const info = clear($("cell-info"));
    const add = (k, v) => info.append(el("dt", {}, k), el("dd", {}, v));
    const label = (values) => (values.every((v) => typeof v === "number") ? betascope.gridFormat(values) : String);
    add(maps.symbol(pm.x.name) + ", " + maps.symbol(pm.y.name), label(pm.x.values)(b1) + ", " + label(pm.y.values)(b2));
    const rest = Object.keys(sl).filter((a) => !STATIC_SLICES.includes(a)).map((a) => " · " + maps.symbol(a) + " " + fmtValue(sl[a]));
    add("slice", "batch " + at.batch_size + " · clip " + at.clip + " · lr " + fmtValue(at.lr) + rest.join(""));
    $("cell-hint").textContent = "Loading runs…";
    const runs = [];
    let cursor = null;
    do {
      const page_ = await api(`/sweeps/${enc(id)}/runs` + query({
        beta1: at.beta1, beta2: at.beta2, batch_size: at.batch_size, clip: at.clip, lr: at.lr, limit: 200, cursor,
      }));
      const items = Array.isArray(page_) ? page_ : page_.items || page_.runs || [];
      // the runs endpoint filters the standard axes; the extra axes are matched here
      runs.push(...items.filter((r) => Object.entries(r.extra || {}).every(([k, v]) => !(k in at) || Number(at[k]) === v)));
      cursor = Array.isArray(page_) ? null : page_.next_cursor || null;
    } while (cursor && runs.length < 1000);
    if (!state.selected || state.selected.token !== token) return;
    const counts = {};
    for (const r of runs) counts[r.outcome] = (counts[r.outcome] || 0) + 1;
    add("runs", runs.length ? Object.entries(counts).map(([k, v]) => v + " " + String(k).replace("_", " ")).join(", ") : "none yet");
    if (!runs.length) {
      $("cell-hint").textContent = "No results for this cell yet.";
      Plotly.purge($("curves"));
      return;
    }
    $("cell-hint").textContent = "Loss curves, one per seed: the full objective at log-spaced checkpoints "
      + "(solid: converged, dotted: not converged, dashed: diverged).";
    const shown = runs.slice(0, 64);
    const details = await Promise.all(shown.map((r) => api(`/sweeps/${enc(id)}/runs/${enc(r.run_key)}`)));
    if (!state.selected || state.selected.token !== token) return;
    drawCurves(details, fStarAt(at));
  };

  // f* of the sweep's problem, rendered into the page by the server (none: ""), and,
  // when the grid sweeps problem fields (problem.n, ...), f* at each of their points:
  // a cell's f* is the one of its problem, not the spec's default problem's
  const F_STAR = root.dataset.fStar === "" ? null : Number(root.dataset.fStar);
  const F_STARS = JSON.parse(root.dataset.fStars || '{"axes": [], "points": []}');

  function fStarAt(at) {
    if (!F_STARS.axes.length) return F_STAR;
    const point = F_STARS.points.find(([values]) => F_STARS.axes.every((a, k) => Number(at[a]) === values[k]));
    return point ? point[1] : null; // unknown rather than another problem's
  }
  page.fStarAt = fStarAt;

  function drawCurves(runs, fStar) {
    state.curves = runs;
    state.curvesFStar = fStar;
    betascope.curves.draw($("curves"), runs, { scale: $("curve-scale").value, fStar });
  }

  // --- boundary: beta2* on the map and against batch size ------------------------------------

  async function loadBoundary() {
    try {
      state.boundary = await api(`/sweeps/${enc(id)}/boundary`);
    } catch (_) {
      state.boundary = null;
    }
    await render();
    drawScaling();
  }

  // Why the chart of β2* against batch size does not apply to this sweep or map (null:
  // it does): β2* is read from each β1 column of the β1 × β2 map, per batch size.
  function scalingMoot() {
    if (!state.axes) return null;
    const n = (a) => (state.axes[a] || []).length;
    if (n("batch_size") < 2) {
      return "Not drawn: β2* against batch size needs more than one batch size, and this sweep has one ("
        + (state.axes.batch_size ? state.axes.batch_size.join(", ") : "–") + ").";
    }
    if (n("beta2") < 2) return "Not drawn: β2* needs more than one β2 value, and this sweep has one.";
    if (n("beta1") > 1 && (state.x !== "beta1" || state.y !== "beta2")) {
      return "Not drawn for this map: β2* is read from each β1 column of the β1 × β2 map, and this map plots "
        + maps.symbol(state.y) + " against " + maps.symbol(state.x) + ". Choose Map x β1 and Map y β2 to see it.";
    }
    return null;
  }

  async function drawScaling() {
    const moot = scalingMoot();
    $("scaling-note").textContent = moot || "";
    $("scaling-note").hidden = !moot;
    $("scaling").hidden = $("fits").hidden = !!moot;
    if (moot) return;
    await betascope.plotlyReady;
    const c = controls();
    const pick = (axis) => (c.params[axis] !== undefined ? c.params[axis] : (state.axes ? state.axes[axis][0] : undefined));
    const where = {};
    for (const axis of Object.keys(state.axes || {})) if (axis.includes(".")) where[axis] = pick(axis);
    betascope.scaling.draw($("scaling"), $("fits"), state.boundary,
      { clip: pick("clip") === undefined ? $("clip").value : pick("clip"),
        lr: pick("lr") === undefined ? $("lr").value : pick("lr"),
        batchSizes: state.axes ? state.axes.batch_size : undefined, where,
        final: !!state.sweep && !betascope.isActive(state.sweep.status) });
  }

  // --- wiring -----------------------------------------------------------------------------------

  $("csv-runs").href = `/api/v1/sweeps/${enc(id)}/export.csv?level=runs`;
  $("csv-cells").href = `/api/v1/sweeps/${enc(id)}/export.csv?level=cells`;
  for (const name of ["metric", "xscale", "yscale", "batch_size", "clip", "lr", "view", "show-sqrt", "show-star"]) {
    $(name).addEventListener("change", () => {
      render().catch(showError);
      if (name === "clip" || name === "lr") drawScaling();
    });
  }
  $("x-axis").addEventListener("change", () => pickAxis("x"));
  $("y-axis").addEventListener("change", () => pickAxis("y"));
  $("extra-slices").addEventListener("change", (ev) => {
    if (ev.target.dataset.axis && ev.target.dataset.axis.includes(".")) drawScaling();
  });
  async function act(button, path) {
    button.disabled = true;
    try {
      await betascope.authorized(() => api(`/sweeps/${enc(id)}/${path}`, { method: "POST" }),
        path === "cancel" ? "Cancelling a sweep" : "Retrying a sweep");
      await poll();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }
  $("curve-scale").addEventListener("change", () => {
    if (state.curves) drawCurves(state.curves, state.curvesFStar);
  });
  $("cancel").addEventListener("click", async () => {
    const s = state.sweep || {};
    const ok = await betascope.confirmAction({
      title: "Cancel this sweep?",
      body: "Runs still in progress stop and their progress is lost; the "
        + fmtInt(s.done_runs) + " runs already finished keep their results, and Retry "
        + "runs only what is left.",
      ok: "Cancel sweep", cancel: "Keep running",
    });
    if (ok) act($("cancel"), "cancel");
  });
  $("retry").addEventListener("click", () => act($("retry"), "retry"));

  function showError(err) {
    $("load-error").textContent = err.message || String(err);
  }

  page.render = render;
  // Draw the map first (the time to first map is what a user waits for), then the rest.
  Promise.all([render(), poll()]).then(loadBoundary).catch(showError);
})();
