// Compare two sweeps on the same (beta1, beta2) grid: where their majority outcomes differ.
"use strict";

(function () {
  const { api, query, el, maps } = betascope;
  const $ = (x) => document.getElementById(x);
  const root = document.getElementById("compare");
  const ids = { a: root.dataset.a, b: root.dataset.b };
  const enc = encodeURIComponent;
  const LABELS = maps.OUTCOME_LABELS;
  const AXES = ["batch_size", "clip", "lr"]; // slice controls in the template; others made here
  const page = (betascope.comparePage = {});
  const state = { x: "beta1", y: "beta2", axes: { a: null, b: null } };

  function fillSelect(select, values, want) {
    betascope.clear(select);
    const label = betascope.gridFormat(values.filter((v) => typeof v === "number"));
    for (const v of values) select.append(el("option", { value: String(v) }, typeof v === "number" ? label(v) : String(v)));
    if (want !== undefined && values.map(String).includes(String(want))) select.value = String(want);
    select.disabled = values.length < 2;
  }

  // one flat colour per integer in [-2, 2]: the difference is categorical
  function stepped(colours) {
    const out = [];
    colours.forEach((c, i) => out.push([i / colours.length, c], [(i + 1) / colours.length, c]));
    return out;
  }

  async function header(which) {
    const s = await api(`/sweeps/${enc(ids[which])}`);
    const link = $("name-" + which);
    link.textContent = (s.spec && s.spec.name) || s.name || "sweep " + ids[which];
    link.href = "/sweeps/" + enc(ids[which]);
    $("meta-" + which).textContent = [betascope.problemLabel(s.spec), s.status,
      betascope.fmtInt(s.done_runs) + " / " + betascope.fmtInt(s.total_runs) + " runs"].join(" · ");
    return s;
  }

  // The slice control of one side's axis: the template's, or one made for beta1/beta2
  // (when not mapped) and extra axes (problem.n, ...).
  function sliceSelect(which, axis) {
    if (AXES.includes(axis)) return $(which + "-" + axis);
    let sel = $(which + "-slice-" + axis);
    if (!sel) {
      sel = el("select", { id: which + "-slice-" + axis, "data-axis": axis });
      sel.addEventListener("change", redraw);
      $(which + "-extra").append(el("label", {}, maps.symbol(axis) + " ", sel));
    }
    return sel;
  }

  // Each side's slice controls: every axis of its sweep but the two mapped.
  function fillSlices(which, pm, keep) {
    for (const axis of Object.keys(state.axes[which])) {
      const sel = sliceSelect(which, axis);
      const mapped = axis === state.x || axis === state.y;
      sel.closest("label").hidden = mapped;
      if (mapped) continue;
      const values = state.axes[which][axis];
      const want = keep && keep[axis] !== undefined && values.map(String).includes(String(keep[axis]))
        ? keep[axis] : (sel.value !== "" ? sel.value : pm.slice[axis]);
      fillSelect(sel, values, want);
    }
  }

  function slice(which) {
    const sl = { metric: "outcome" };
    if (state.x !== "beta1" || state.y !== "beta2") Object.assign(sl, { x: state.x, y: state.y });
    for (const a of Object.keys(state.axes[which] || {})) {
      if (a === state.x || a === state.y) continue;
      const v = sliceSelect(which, a).value;
      if (v !== "") sl[a] = v;
    }
    return sl;
  }

  function fillAxisPickers() {
    const a = state.axes.a, b = state.axes.b;
    const many = Object.keys(a).filter((k) => a[k].length > 1 && b[k] && b[k].length > 1);
    for (const [which, sel] of [["x", $("x-axis")], ["y", $("y-axis")]]) {
      betascope.clear(sel);
      for (const name of Array.from(new Set([state[which], ...many]))) {
        sel.append(el("option", { value: name }, maps.symbol(name)));
      }
      sel.value = state[which];
      sel.disabled = many.length < 2;
    }
    for (const which of ["x", "y"]) {
      const values = state.axes.a[state[which]];
      const sel = $(which + "scale");
      betascope.clear(sel);
      for (const [v, label] of maps.scales(state[which], values)) sel.append(el("option", { value: v }, label));
      sel.value = maps.defaultScale(values, state[which]);
      $(which + "scale-name").textContent = maps.symbol(state[which]);
    }
  }

  function pickAxis(which) {
    const other = which === "x" ? "y" : "x";
    const want = $(which + "-axis").value;
    if (want === state[other]) state[other] = state[which];
    state[which] = want;
    fillAxisPickers();
    for (const w of ["a", "b"]) fillSlices(w, { slice: {} });
    redraw();
  }

  function redraw() {
    render().then(() => { $("load-error").textContent = ""; }).catch(showError);
  }

  async function render() {
    const mode = { x: $("xscale").value, y: $("yscale").value };
    const [pa, pb] = await Promise.all(["a", "b"].map((w) => api(`/sweeps/${enc(ids[w])}/phase-map` + query(slice(w)))));
    const why = betascope.grids.gridMismatch(pa, pb, "sweep " + ids.a, "sweep " + ids.b);
    if (why) throw new Error("These sweeps cannot be compared cell by cell: " + why + ".");
    // diff = B's outcome minus A's, in the order converged < not converged < diverged
    let differ = 0, both = 0;
    const z = pa.z.map((row, i) => row.map((va, j) => {
      const vb = pb.z[i][j];
      if (va === null || vb === null) return null;
      both += 1;
      if (va !== vb) differ += 1;
      return vb - va;
    }));
    const label = (values) => (values.every((v) => typeof v === "number") ? betascope.gridFormat(values) : String);
    const fx = label(pa.x.values), fy = label(pa.y.values);
    const sx = maps.symbol(pa.x.name), sy = maps.symbol(pa.y.name);
    const text = pa.z.map((row, i) => row.map((va, j) => {
      const vb = pb.z[i][j];
      return sx + " = " + fx(pa.x.values[j]) + "<br>" + sy + " = " + fy(pa.y.values[i]) + "<br>A: " + (va === null ? "no results" : LABELS[va])
        + "<br>B: " + (vb === null ? "no results" : LABELS[vb]);
    }));
    $("diff-count").textContent = "· " + differ + " of " + both + " cells differ";
    await betascope.plotlyReady;
    const base = maps.figure(pa, { mode, showSqrt: true });
    base.traces[0] = Object.assign({}, base.traces[0], {
      z, text, zmin: -2, zmax: 2,
      colorscale: stepped(["#1d4ed8", "#93c5fd", "#f8fafc", "#fca5a5", "#b91c1c"]),
      colorbar: { tickvals: [-1.6, -0.8, 0, 0.8, 1.6], thickness: 14, outlinewidth: 0,
                  ticktext: ["B converged, A diverged", "B one class better", "same", "B one class worse", "B diverged, A converged"] },
    });
    await Plotly.react($("diff"), base.traces, base.layout, base.config);
    for (const [w, pm] of [["a", pa], ["b", pb]]) {
      const named = { batch_size: "batch", clip: "clip", lr: "lr" };
      const title = Object.keys(pm.slice).map((a) => (named[a] || maps.symbol(a)) + " "
        + (typeof pm.slice[a] === "number" ? betascope.fmtValue(pm.slice[a]) : pm.slice[a])).join(" · ");
      const f = maps.figure(pm, { mode, small: true, showSqrt: false, showscale: false, title });
      await Plotly.react($("map-" + w), f.traces, f.layout, f.config);
    }
    page.diff = { z, differ, both };
    $("diff").dataset.drawn = String(Date.now());
  }

  async function init() {
    if (!ids.a || !ids.b) throw new Error("Give two sweeps: /compare?a=ID&b=ID (tick two sweeps on the list page).");
    await Promise.all([header("a"), header("b")]);
    const [pa, pb] = await Promise.all(["a", "b"].map((w) => api(`/sweeps/${enc(ids[w])}/phase-map`)));
    state.axes.a = Object.assign({ [pa.x.name]: pa.x.values, [pa.y.name]: pa.y.values }, pa.available);
    state.axes.b = Object.assign({ [pb.x.name]: pb.x.values, [pb.y.name]: pb.y.values }, pb.available);
    // open on two axes with several values in both sweeps (β1 × β2 unless one of them
    // has a lone value there): the axes the two share, each with A's values
    const shared = {};
    for (const [k, v] of Object.entries(state.axes.a)) {
      shared[k] = state.axes.b[k] && state.axes.b[k].length > 1 ? v : v.slice(0, 1);
    }
    Object.assign(state, maps.defaultAxes(shared));
    fillSlices("a", pa);
    fillSlices("b", pb, pa.slice); // B starts on A's slice where it has it
    fillAxisPickers();
    await render();
  }

  function showError(err) {
    $("load-error").textContent = err instanceof Error ? err.message : String(err);
  }

  // Every change redraws; a redraw that worked clears any earlier error.
  for (const name of ["a-batch_size", "a-clip", "a-lr", "b-batch_size", "b-clip", "b-lr", "xscale", "yscale"]) {
    $(name).addEventListener("change", redraw);
  }
  $("x-axis").addEventListener("change", () => pickAxis("x"));
  $("y-axis").addEventListener("change", () => pickAxis("y"));
  init().catch(showError);
})();
