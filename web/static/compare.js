// Compare two sweeps on the same (beta1, beta2) grid: where their majority outcomes differ.
"use strict";

(function () {
  const { api, query, el, maps } = betascope;
  const $ = (x) => document.getElementById(x);
  const root = document.getElementById("compare");
  const ids = { a: root.dataset.a, b: root.dataset.b };
  const enc = encodeURIComponent;
  const LABELS = maps.OUTCOME_LABELS;
  const AXES = ["batch_size", "clip", "lr"];
  const page = (betascope.comparePage = {});

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

  function slice(which) {
    const sl = { metric: "outcome" };
    for (const a of AXES) sl[a] = $(which + "-" + a).value;
    return sl;
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
    const fx = betascope.gridFormat(pa.x.values), fy = betascope.gridFormat(pa.y.values);
    const text = pa.z.map((row, i) => row.map((va, j) => {
      const vb = pb.z[i][j];
      return "β1 = " + fx(pa.x.values[j]) + "<br>β2 = " + fy(pa.y.values[i]) + "<br>A: " + (va === null ? "no results" : LABELS[va])
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
      const f = maps.figure(pm, { mode, small: true, showSqrt: false, showscale: false,
        title: "batch " + pm.slice.batch_size + " · clip " + pm.slice.clip + " · lr " + betascope.fmtValue(pm.slice.lr) });
      await Plotly.react($("map-" + w), f.traces, f.layout, f.config);
    }
    page.diff = { z, differ, both };
    $("diff").dataset.drawn = String(Date.now());
  }

  async function init() {
    if (!ids.a || !ids.b) throw new Error("Give two sweeps: /compare?a=ID&b=ID (tick two sweeps on the list page).");
    await Promise.all([header("a"), header("b")]);
    const [pa, pb] = await Promise.all(["a", "b"].map((w) => api(`/sweeps/${enc(ids[w])}/phase-map`)));
    for (const a of AXES) {
      fillSelect($("a-" + a), pa.available[a], pa.slice[a]);
      fillSelect($("b-" + a), pb.available[a], pb.available[a].map(String).includes(String(pa.slice[a])) ? pa.slice[a] : pb.slice[a]);
    }
    $("xscale").value = maps.defaultScale(pa.x.values);
    $("yscale").value = maps.defaultScale(pa.y.values);
    await render();
  }

  function showError(err) {
    $("load-error").textContent = err instanceof Error ? err.message : String(err);
  }

  // Every change redraws; a redraw that worked clears any earlier error.
  for (const name of ["a-batch_size", "a-clip", "a-lr", "b-batch_size", "b-clip", "b-lr", "xscale", "yscale"]) {
    $(name).addEventListener("change", () => render().then(() => { $("load-error").textContent = ""; }).catch(showError));
  }
  init().catch(showError);
})();
