// The loss curves of one cell's runs, one per seed: the full objective f(x) at the
// checkpoints, or the suboptimality f(x) - f* on a log axis.
"use strict";

(function () {
  const SEED_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                        "#bcbd22", "#17becf"];
  const DASH = { converged: "solid", not_converged: "dot", diverged: "dash" };

  // The values drawn: f(x) itself, or f(x) - f* (f* unknown: 0, as the relative loss
  // f(x)/f(x0) takes it); points at or below f*, which a log axis cannot show, are left out.
  function values(loss, scale, fStar) {
    const finite = loss.map((v) => (v === null || !Number.isFinite(v) ? null : v));
    if (scale !== "gap") return finite;
    const f0 = fStar === null ? 0 : fStar;
    return finite.map((v) => (v === null || !(v - f0 > 0) ? null : v - f0));
  }

  // `runs`: GET /sweeps/{id}/runs/{run_key} answers, each with curve {steps, loss}.
  function draw(div, runs, { scale = "linear", fStar = null } = {}) {
    const { maps, fmtValue } = betascope;
    runs.sort((a, b) => a.seed - b.seed);
    const traces = runs.map((r, i) => {
      const colour = SEED_COLOURS[i % SEED_COLOURS.length];
      return {
        type: "scatter", mode: "lines+markers", x: r.curve.steps, y: values(r.curve.loss, scale, fStar),
        name: "seed " + r.seed + " · " + String(r.outcome || "").replace("_", " "),
        line: { color: colour, width: 1.8, dash: DASH[r.outcome] || "solid" }, marker: { size: 3, color: colour },
        connectgaps: false,
        hovertemplate: "seed " + r.seed + "<br>step %{x}<br>" + (scale === "gap" ? "f(x) − f*" : "f(x)")
          + " = %{y:.6g}<extra></extra>",
      };
    });
    const gapTitle = fStar === null ? "f(x)  (f* unknown), log" : "f(x) − f*  (f* = " + fmtValue(fStar) + "), log";
    const layout = {
      font: maps.FONT, margin: { l: 64, r: 12, t: 10, b: 50 },
      xaxis: { type: "log", title: { text: "step" }, ticks: "outside", automargin: true },
      yaxis: scale === "gap"
        ? { type: "log", title: { text: gapTitle }, ticks: "outside", automargin: true, exponentformat: "power" }
        : { title: { text: "full objective f(x)" }, ticks: "outside", automargin: true, exponentformat: "e" },
      legend: { orientation: "h", y: -0.25 }, showlegend: traces.length <= 12, hovermode: "closest",
    };
    return Plotly.react(div, traces, layout, maps.CONFIG);
  }

  betascope.curves = { draw, values };
})();
