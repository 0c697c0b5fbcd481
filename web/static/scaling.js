// Critical beta2 against batch size for one (clip, lr) slice: one line per beta1, its
// fitted slope of log(1 - beta2*) against log(batch), and the table of fits beside the
// half-life rule's slope of 1.
"use strict";

(function () {
  // `boundary`: GET /sweeps/{id}/boundary; `clip` and `lr` pick the slice drawn.
  // `where` picks the point of any extra axes ({"problem.n": 20}).
  // `final`: the sweep has finished (no more results will come).
  function draw(div, table, boundary, { clip, lr, batchSizes, where = {}, final = false }) {
    const { maps, el, clear } = betascope;
    const rows = (boundary && boundary.by_batch) || [];
    const mine = rows.filter((r) => String(r.clip) === String(clip) && Number(r.lr) === Number(lr)
      && Object.entries(where).every(([k, v]) => String(r[k]) === String(v)));
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
      // a beta2* at the grid's lowest beta2 is a bound (every cell converged): an open
      // triangle, left out of the fit
      const bound = (i) => (r.censored || [])[i] === "below";
      return {
        type: "scatter", mode: "lines+markers", x: r.batch_size,
        y: r.beta2_star.map((v) => (v === null ? null : fy(v))), name: "β1 = " + f1(r.beta1) + slope,
        line: { color: shade(r.beta1), width: 1.8 }, connectgaps: false,
        marker: { color: shade(r.beta1), size: r.beta2_star.map((_, i) => (bound(i) ? 10 : 7)),
                  symbol: r.beta2_star.map((_, i) => (bound(i) ? "triangle-down-open" : "circle")) },
        customdata: r.beta2_star.map((v, i) => (v === null ? "none"
          : bound(i) ? "≤ " + f2(v) + " (a bound: every cell converged; left out of the fit)" : f2(v))),
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
      xaxis: { type: "log", title: { text: "batch size" }, tickvals: batchSizes, ticks: "outside", zeroline: false, visible: n > 0 },
      yaxis: Object.assign(yaxis, { title: { text: "β2*  (spaced by log(1 − β2))" }, showgrid: true, gridcolor: "#eef0f3", visible: n > 0 }),
      showlegend: n <= 14, legend: { x: 1.02, y: 1 }, hovermode: "closest",
      annotations: n ? [] : [{ text: "no β1 column converges from some β2 upward" + (final ? "" : " yet"), showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#6b7280" } }],
    };
    Plotly.react(div, traces, layout, maps.CONFIG);
    clear(table);
    const fitted = mine.filter((r) => r.fit);
    if (!fitted.length) return;
    table.append(el("tr", {}, el("th", {}, "β1"), el("th", { class: "num" }, "slope"), el("th", { class: "num" }, "± s.e."),
                    el("th", { class: "num" }, "points"), el("th", { class: "num" }, "bounds left out"),
                    el("th", { class: "num" }, "half-life rule")));
    for (const r of fitted.slice(0, 50)) {
      table.append(el("tr", {}, el("td", {}, f1(r.beta1)), el("td", { class: "num" }, r.fit.slope.toFixed(3)),
        el("td", { class: "num" }, r.fit.stderr === null || r.fit.stderr === undefined ? "–" : r.fit.stderr.toFixed(3)),
        el("td", { class: "num" }, String(r.fit.n_points)),
        el("td", { class: "num" }, String(r.fit.n_censored ?? r.n_censored ?? 0)), el("td", { class: "num" }, "1")));
    }
  }

  function viridis(t) {
    const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
    const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
    const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
    return "rgb(" + c.join(",") + ")";
  }

  betascope.scaling = { draw };
})();
