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
    cache: new Map(), // "metric|batch|clip|lr" -> phase-map response
    drawn: false, selected: null, gen: 0,
  };
  const page = (betascope.sweepPage = { state });

  function controls() {
    return {
      metric: $("metric").value, axes: { x: $("xscale").value, y: $("yscale").value }, view: $("view").value,
      batch_size: $("batch_size").value, clip: $("clip").value, lr: $("lr").value,
      showSqrt: $("show-sqrt").checked, showStar: $("show-star").checked,
    };
  }

  function sliceKey(metric, batch, clip, lr) {
    return [metric, batch, clip, lr].join("|");
  }

  async function phaseMap(metric, batch, clip, lr) {
    const key = sliceKey(metric, batch, clip, lr);
    if (!state.cache.has(key)) {
      const p = api(`/sweeps/${enc(id)}/phase-map` + query({ metric, batch_size: batch, clip, lr }));
      state.cache.set(key, p);
      p.catch(() => state.cache.delete(key));
    }
    return state.cache.get(key);
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

  function starFor(batch, clip, lr) {
    if (!state.boundary || !state.boundary.slices) return null;
    const s = state.boundary.slices.find((e) => String(e.batch_size) === String(batch)
      && String(e.clip) === String(clip) && Number(e.lr) === Number(lr));
    return s ? s.beta2_star : null;
  }

  // --- status and progress ----------------------------------------------------------------

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
    const pm = await phaseMap(c.metric, c.batch_size, c.clip, c.lr);
    if (c.gen !== state.gen) return;
    state.available = pm.available;
    if (!state.scaled) { // first map: pick each axis' scale from its spacing, once
      state.scaled = true;
      $("xscale").value = maps.defaultScale(pm.x.values);
      $("yscale").value = maps.defaultScale(pm.y.values);
      c.axes = { x: $("xscale").value, y: $("yscale").value };
    }
    fillSelect($("batch_size"), pm.available.batch_size, pm.slice.batch_size);
    fillSelect($("clip"), pm.available.clip, pm.slice.clip);
    fillSelect($("lr"), pm.available.lr, pm.slice.lr);
    $("view").disabled = pm.available.batch_size.length < 2;
    const sl = pm.slice;
    const multiples = c.view === "multiples" && pm.available.batch_size.length > 1;
    $("map-title").textContent = "Phase diagram · " + (multiples ? "one map per batch size" : "batch size " + sl.batch_size)
      + " · clip " + sl.clip + " · lr " + fmtValue(sl.lr);
    $("step-legend").hidden = c.metric !== "div_step";
    if (multiples) {
      $("map").hidden = true;
      $("multiples").hidden = false;
      $("multiples-legend").hidden = c.metric !== "outcome";
      await renderMultiples(c, pm);
    } else {
      $("map").hidden = false;
      $("multiples").hidden = true;
      $("multiples-legend").hidden = true;
      await drawMap($("map"), pm, c, {});
      enrichHover($("map"), c, pm);
    }
  }

  async function drawMap(div, pm, c, opts) {
    const sl = pm.slice;
    const star = c.showStar ? pm.beta2_star || starFor(sl.batch_size, sl.clip, sl.lr) : null;
    const extra = Object.assign({}, opts.extra || {});
    // the divergence-step map tells "never diverged" from "no results" by the outcomes
    if (c.metric === "div_step" && !extra.outcome) extra.outcome = await phaseMap("outcome", sl.batch_size, sl.clip, sl.lr);
    const fig = maps.figure(pm, Object.assign({ mode: c.axes, extra, star, showSqrt: c.showSqrt }, opts));
    fig.layout.uirevision = c.axes.x + c.axes.y + "|" + sl.clip + "|" + sl.lr + (opts.small ? "|" + sl.batch_size : "");
    const sel = state.selected;
    if (sel && JSON.stringify(sel.sl) === JSON.stringify(sl)) fig.layout.shapes = [outline(fig.traces[0], sel.row, sel.col)];
    await betascope.plotlyReady;
    if (c.gen !== state.gen) return;
    await Plotly.react(div, fig.traces, fig.layout, fig.config);
    div.dataset.slice = JSON.stringify(sl);
    if (!div.dataset.bound) {
      div.dataset.bound = "1";
      div.on("plotly_click", (ev) => {
        const pt = ev.points && ev.points.find((p) => p.data.type === "heatmap");
        if (!pt) return;
        const [row, col] = Array.isArray(pt.pointIndex) ? pt.pointIndex : pt.pointNumber;
        page.openCell(row, col, JSON.parse(div.dataset.slice));
      });
    }
    if (!state.drawn && div.id === "map" || !state.drawn && opts.small) {
      state.drawn = true;
      performance.mark("betascope:map-drawn");
      betascope.mapDrawnAt = performance.now();
    }
    div.dataset.drawn = String(Date.now());
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
    const sl = pm.slice;
    try {
      const got = await Promise.all(others.map((m) => phaseMap(m, sl.batch_size, sl.clip, sl.lr)));
      if (c.gen !== state.gen) return;
      const extra = {};
      others.forEach((m, i) => (extra[m] = got[i]));
      await drawMap(div, pm, c, Object.assign({}, opts, { extra }));
    } catch (_) { /* the hover keeps the one metric it has */ }
  }

  async function renderMultiples(c, first) {
    const box = $("multiples");
    const batches = first.available.batch_size;
    const pms = await Promise.all(batches.map((b) => phaseMap(c.metric, b, c.clip, c.lr)));
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
    // outcome colours get one legend above the maps, so every small map has the same size
    const legend = $("multiples-legend");
    legend.hidden = c.metric !== "outcome";
    const opts = pms.map((pm, i) => ({
      small: true, title: "batch size " + batches[i], showscale: c.metric !== "outcome" && i === pms.length - 1,
    }));
    await Promise.all(pms.map((pm, i) => drawMap(divs[i], pm, c, opts[i])));
    pms.forEach((pm, i) => enrichHover(divs[i], c, pm, opts[i]));
  }

  // --- a cell's runs and their loss curves ------------------------------------------------------

  page.openCell = async function openCell(row, col, sl) {
    const pm = await phaseMap($("metric").value, sl.batch_size, sl.clip, sl.lr);
    const b1 = pm.x.values[col], b2 = pm.y.values[row];
    state.selected = { b1, b2, sl, row, col };
    for (const div of [$("map"), ...$("multiples").children]) {
      if (div.data && div.dataset.slice === JSON.stringify(sl)) Plotly.relayout(div, { shapes: [outline(div.data[0], row, col)] });
      else if (div.data && div.layout.shapes && div.layout.shapes.length) Plotly.relayout(div, { shapes: [] });
    }
    const info = clear($("cell-info"));
    const add = (k, v) => info.append(el("dt", {}, k), el("dd", {}, v));
    add("β1, β2", betascope.gridFormat(pm.x.values)(b1) + ", " + betascope.gridFormat(pm.y.values)(b2));
    add("slice", "batch " + sl.batch_size + " · clip " + sl.clip + " · lr " + fmtValue(sl.lr));
    $("cell-hint").textContent = "Loading runs…";
    const runs = [];
    let cursor = null;
    do {
      const page_ = await api(`/sweeps/${enc(id)}/runs` + query({
        beta1: b1, beta2: b2, batch_size: sl.batch_size, clip: sl.clip, lr: sl.lr, limit: 200, cursor,
      }));
      const items = Array.isArray(page_) ? page_ : page_.items || page_.runs || [];
      runs.push(...items);
      cursor = Array.isArray(page_) ? null : page_.next_cursor || null;
    } while (cursor && runs.length < 1000);
    if (state.selected.b1 !== b1 || state.selected.b2 !== b2) return;
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
    if (state.selected.b1 !== b1 || state.selected.b2 !== b2) return;
    drawCurves(details);
  };

  function curveOf(run) {
    const c = run.curve || run.loss_curve || {};
    const steps = c.steps || run.curve_steps || [];
    const loss = c.loss || c.values || run.curve_loss || [];
    return { steps, loss };
  }

  const SEED_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const DASH = { converged: "solid", not_converged: "dot", diverged: "dash" };

  // f* of the sweep's problem, rendered into the page by the server; a problem without
  // one is measured against 0, as its relative loss f(x)/f(x0) is.
  const F_STAR = root.dataset.fStar === "" ? null : Number(root.dataset.fStar);

  // The loss curves as drawn: f(x) itself, or the suboptimality f(x) - f* on a log axis
  // (points at or below f*, which a log axis cannot show, are left out).
  function curveValues(loss, scale) {
    const finite = loss.map((v) => (v === null || !Number.isFinite(v) ? null : v));
    if (scale !== "gap") return finite;
    const f0 = F_STAR === null ? 0 : F_STAR;
    return finite.map((v) => (v === null || !(v - f0 > 0) ? null : v - f0));
  }

  function drawCurves(runs) {
    state.curves = runs;
    const scale = $("curve-scale").value;
    runs.sort((a, b) => a.seed - b.seed);
    const traces = runs.map((r, i) => {
      const { steps, loss } = curveOf(r);
      const colour = SEED_COLOURS[i % SEED_COLOURS.length];
      return {
        type: "scatter", mode: "lines+markers", x: steps, y: curveValues(loss, scale),
        name: "seed " + r.seed + " · " + String(r.outcome || "").replace("_", " "),
        line: { color: colour, width: 1.8, dash: DASH[r.outcome] || "solid" }, marker: { size: 3, color: colour }, connectgaps: false,
        hovertemplate: "seed " + r.seed + "<br>step %{x}<br>" + (scale === "gap" ? "f(x) − f*" : "f(x)")
          + " = %{y:.6g}<extra></extra>",
      };
    });
    const layout = {
      font: maps.FONT, margin: { l: 64, r: 12, t: 10, b: 50 },
      xaxis: { type: "log", title: { text: "step" }, ticks: "outside", automargin: true },
      yaxis: scale === "gap"
        ? { type: "log", title: { text: F_STAR === null ? "f(x)  (f* unknown), log" : "f(x) − f*  (f* = " + fmtValue(F_STAR) + "), log" },
            ticks: "outside", automargin: true, exponentformat: "power" }
        : { title: { text: "full objective f(x)" }, ticks: "outside", automargin: true, exponentformat: "e" },
      legend: { orientation: "h", y: -0.25 }, showlegend: traces.length <= 12, hovermode: "closest",
    };
    Plotly.react($("curves"), traces, layout, maps.CONFIG);
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

  async function drawScaling() {
    await betascope.plotlyReady;
    const c = controls();
    const rows = (state.boundary && state.boundary.by_batch) || [];
    const mine = rows.filter((r) => String(r.clip) === c.clip && Number(r.lr) === Number(c.lr));
    const withData = mine.filter((r) => r.beta2_star.some((v) => v !== null));
    const n = withData.length;
    const b1s = mine.map((r) => r.beta1);
    const lo = Math.min(...b1s), hi = Math.max(...b1s);
    const shade = (b1) => viridis(0.85 * (hi > lo ? (b1 - lo) / (hi - lo) : 0.5)); // no pale yellow on white
    const fy = maps.coord("log1m");
    const f1 = betascope.gridFormat(b1s);
    const f2 = betascope.gridFormat(Array.from(new Set(mine.flatMap((r) => r.beta2_star.filter((v) => v !== null)))));
    const traces = withData.map((r) => {
      const fit = r.fit;
      const slope = fit ? " · slope " + fit.slope.toFixed(2) + (fit.stderr !== null && fit.stderr !== undefined ? " ± " + fit.stderr.toFixed(2) : "") : "";
      return {
        type: "scatter", mode: "lines+markers", x: r.batch_size,
        y: r.beta2_star.map((v) => (v === null ? null : fy(v))), name: "β1 = " + f1(r.beta1) + slope,
        line: { color: shade(r.beta1), width: 1.8 }, marker: { color: shade(r.beta1), size: 7 }, connectgaps: false,
        customdata: r.beta2_star.map((v) => (v === null ? "none" : f2(v))),
        hovertemplate: "β1 = " + f1(r.beta1) + "<br>batch %{x}<br>β2* = %{customdata}" + slope + "<extra></extra>",
      };
    });
    if (n > 14) { // too many for a legend: a colour bar for beta1 instead
      traces.push({
        type: "scatter", mode: "markers", x: [null], y: [null], hoverinfo: "skip", showlegend: false,
        marker: { color: [lo], cmin: lo, cmax: hi, showscale: true,
                  colorscale: [0, 0.25, 0.5, 0.75, 1].map((t) => [t, viridis(0.85 * t)]),
                  colorbar: { title: { text: "β1", side: "right" }, thickness: 14, outlinewidth: 0 } },
      });
    }
    const stars = withData.flatMap((r) => r.beta2_star.filter((v) => v !== null));
    const yaxis = stars.length ? maps.axis("beta2", Array.from(new Set(stars)).sort((a, b) => a - b), "log1m") : {};
    const layout = {
      font: maps.FONT, margin: { l: 70, r: 16, t: 10, b: 50 }, height: n ? 380 : 120,
      xaxis: { type: "log", title: { text: "batch size" }, tickvals: (state.available || {}).batch_size, ticks: "outside", zeroline: false, visible: n > 0 },
      yaxis: Object.assign(yaxis, { title: { text: "β2*  (spaced by log(1 − β2))" }, showgrid: true, gridcolor: "#eef0f3", visible: n > 0 }),
      showlegend: n <= 14, legend: { x: 1.02, y: 1 }, hovermode: "closest",
      annotations: n ? [] : [{ text: "no β1 column converges from some β2 upward yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#6b7280" } }],
    };
    Plotly.react($("scaling"), traces, layout, maps.CONFIG);
    const table = clear($("fits"));
    const fitted = mine.filter((r) => r.fit);
    if (!fitted.length) return;
    table.append(el("tr", {}, el("th", {}, "β1"), el("th", { class: "num" }, "slope"), el("th", { class: "num" }, "± s.e."),
                    el("th", { class: "num" }, "points"), el("th", { class: "num" }, "half-life rule")));
    for (const r of fitted.slice(0, 50)) {
      table.append(el("tr", {}, el("td", {}, f1(r.beta1)), el("td", { class: "num" }, r.fit.slope.toFixed(3)),
        el("td", { class: "num" }, r.fit.stderr === null || r.fit.stderr === undefined ? "–" : r.fit.stderr.toFixed(3)),
        el("td", { class: "num" }, String(r.fit.n_points)), el("td", { class: "num" }, "1")));
    }
  }

  function viridis(t) {
    const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
    const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
    const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
    return "rgb(" + c.join(",") + ")";
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
    if (state.curves) drawCurves(state.curves);
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
