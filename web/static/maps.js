// Phase-map figures for the sweep and compare pages: one heatmap cell per grid
// point (no interpolation), outcome colours, and the theory overlays.
"use strict";

(function () {
  // Pages load plotly.js last, so their data is on the way while it compiles;
  // anything that draws waits for this.
  betascope.plotlyReady = window.Plotly ? Promise.resolve()
    : new Promise((resolve) => document.addEventListener("DOMContentLoaded", () => resolve(), { once: true }));

  const OUTCOMES = ["converged", "not_converged", "diverged"];
  const OUTCOME_LABELS = ["converged", "not converged", "diverged"];
  // Okabe & Ito's colour-blind-safe palette: blue, yellow, vermillion lie along the
  // blue-yellow axis that red-green colour blindness keeps (tests/web check this).
  const COLOURS = ["#0072B2", "#F0E442", "#D55E00"];
  const EMPTY = "#d6d8db"; // cells without results show the plot background
  const NEVER_DIVERGED = COLOURS[0]; // divergence-step map: results, none of them diverged
  // divergence step: early (worse) dark, late light; never the blue of "never diverged"
  const STEP_SCALE = [[0, "#4a1500"], [0.5, "#D55E00"], [1, "#F0E442"]];
  // The regime map's classes (their names come with the map, in its "outcomes"): the
  // outcome colours, and for "converged with spikes" a light blue (a converged family
  // colour) held as far from the other three and the empty grey as the outcome colours
  // are from each other, for colour-blind readers too (tests/web check this).
  const SPIKY = "#80B0F8";
  const CLASS_COLOURS = { converged: COLOURS[0], converged_spiky: SPIKY, not_converged: COLOURS[1], diverged: COLOURS[2] };
  const CLASS_LABELS = { converged: "converged", converged_spiky: "converged with spikes", not_converged: "not converged", diverged: "diverged" };
  const FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 13 };
  // no "Share chart..." button: plotly.js shows one by default that uploads the chart to
  // cloud.plotly.com, and no page may reach another host
  const CONFIG = {
    displaylogo: false, responsive: true, showSendToCloud: false, plotlyServerURL: "",
    modeBarButtonsToRemove: ["lasso2d", "select2d", "sendChartToCloud"],
  };

  const METRICS = {
    outcome: { label: "majority outcome" },
    regime: { label: "regime" },
    diverged_frac: { label: "diverged fraction", colorscale: "Reds", zmin: 0, zmax: 1 },
    converged_frac: { label: "converged fraction", colorscale: "Blues", zmin: 0, zmax: 1 }, // converged is blue
    final_rel: { label: "median final rel. loss", colorscale: "Viridis", log: true },
    div_step: { label: "median divergence step", colorscale: STEP_SCALE, log: true },
    max_rise: { label: "median max rise", colorscale: "Cividis", log: true },
  };

  // Map axes are any two axes of the grid: beta1 x beta2 by default, or lr,
  // batch_size, clip, problem.n, ... The symbol an axis is shown by:
  const SYMBOL = { beta1: "β1", beta2: "β2", lr: "lr", batch_size: "batch size", clip: "clipping" };
  const symbol = (name) => SYMBOL[name] || name;
  const isBeta = (name) => name === "beta1" || name === "beta2";
  const numeric = (values) => values.every((v) => typeof v === "number");

  // Axis coordinates: the value itself; log10(1 - beta) on a reversed axis (betas near 1
  // get room while beta still grows to the right and upward); log10(v) for values
  // spread over decades (lr, eps, n); or the position of a label (clip settings).
  function coord(mode, values) {
    if (mode === "log1m") return (b) => Math.log10(1 - b);
    if (mode === "log") return (v) => Math.log10(v);
    if (mode === "category") return (v) => values.indexOf(v);
    return (b) => b;
  }

  // `half`: half the width of a lone value's cell (a beta's linear axis stays near [0, 1))
  function edges(vals, half = 0.5) {
    if (vals.length === 1) return [vals[0] - half, vals[0] + half];
    const n = vals.length;
    return [vals[0] - (vals[1] - vals[0]) / 2, vals[n - 1] + (vals[n - 1] - vals[n - 2]) / 2];
  }

  function axis(name, betas, mode) {
    const f = coord(mode, betas);
    const c = betas.map(f);
    const sym = symbol(name);
    const base = { zeroline: false, showgrid: false, ticks: "outside", automargin: true, linecolor: "#9ca3af", mirror: true };
    if (mode === "category") {
      return Object.assign(base, { title: { text: sym }, range: [-0.5, betas.length - 0.5],
                                   tickvals: c, ticktext: betas.map(String) });
    }
    const sorted = c.slice().sort((a, b) => a - b);
    const [lo, hi] = edges(mode === "log1m" ? c : sorted, isBeta(name) && mode === "linear" ? 0.05 : 0.5);
    if (mode === "log") { // ticks at the grid's own values, thinned to at most 9
      const fmt = betascope.gridFormat(betas);
      const order = betas.map((v, i) => i).sort((i, j) => c[i] - c[j]);
      const step = Math.ceil(order.length / 9);
      const use = order.filter((_, k) => k % step === 0);
      return Object.assign(base, { title: { text: sym + "  (log spaced)" }, range: [lo, hi],
                                   tickvals: use.map((i) => c[i]), ticktext: use.map((i) => fmt(betas[i])) });
    }
    if (mode !== "log1m") return Object.assign(base, { title: { text: sym }, range: [lo, hi] });
    // reversed: u = log10(1 - beta) falls as beta grows
    // ticks where 1 - beta is 1, 5 or 2 times a power of ten (0.9, 0.95, 0.98, 0.99, ...),
    // thinned to the 1s and 5s, then to the 1s, when there are too many
    const top = Math.min(lo, hi), bottom = Math.max(lo, hi);
    const ticks = [];
    for (let k = 0; k <= 12; k++) {
      const nines = "0." + "9".repeat(k);
      for (const [u, label, rank] of [[-k, k === 0 ? "0" : nines, 0], [-k - Math.log10(2), nines + "5", 1],
                                      [-k - Math.log10(5), nines + "8", 2]]) {
        if (u >= top && u <= bottom) ticks.push([u, label, rank]);
      }
    }
    let use = ticks;
    for (const keep of [1, 0]) if (use.length > 9) use = ticks.filter((t) => t[2] <= keep);
    return Object.assign(base, {
      title: { text: sym + "  (spaced by log(1 − " + sym + "))" },
      range: [Math.max(lo, hi), Math.min(lo, hi)], tickvals: use.map((t) => t[0]), ticktext: use.map((t) => t[1]),
    });
  }

  // The smallest positive value of the maps `zs` (null when none is positive).
  function smallestPositive(zs) {
    let lo = Infinity;
    for (const z of zs) for (const row of z) for (const v of row) if (v !== null && v > 0 && v < lo) lo = v;
    return Number.isFinite(lo) ? lo : null;
  }

  // Colour values: log10 for the log metrics. A log axis has no place for 0 (a median
  // final rel. loss of exactly 0, say): a zero cell takes the colour of the smallest
  // positive value (`floor`, by default this map's) and its hover says so; without any
  // positive value it is drawn as 1 (log 0). The colour bar's bottom label says "≤".
  function colourTransform(metric, z, floor) {
    const m = METRICS[metric];
    if (!m.log) return z;
    const low = floor !== undefined && floor !== null ? floor : smallestPositive([z]);
    const zero = low === null ? 0 : Math.log10(low);
    return z.map((row) => row.map((v) => (v === null || !(v >= 0) ? null : v === 0 ? zero : Math.log10(v))));
  }

  // [lo, hi] of the colour values of several maps of one metric (small multiples share
  // one colour bar, so they share one range); null when no cell has a value.
  function colourRange(metric, zs) {
    const floor = smallestPositive(zs);
    let lo = Infinity, hi = -Infinity;
    for (const z of zs) {
      for (const row of colourTransform(metric, z, floor)) {
        for (const v of row) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      }
    }
    return Number.isFinite(lo) ? { zmin: lo, zmax: hi, floor, zeros: zs.some(hasZero) } : null;
  }

  // `zeroLabel`: the label of the bottom colour when zero cells take it (null: none do)
  function logTicks(z, range = null, zeroLabel = null) {
    let lo = Infinity, hi = -Infinity;
    if (range) [lo, hi] = [range.zmin, range.zmax];
    else for (const row of z) for (const v of row) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!Number.isFinite(lo)) return {};
    const vals = [];
    const step = Math.max(1, Math.ceil((Math.ceil(hi) - Math.floor(lo)) / 8));
    for (let k = Math.floor(lo); k <= Math.ceil(hi); k += step) vals.push(k);
    const text = vals.map((k) => (k === 0 ? "1" : "1e" + k));
    if (zeroLabel !== null) { // zero cells share the bottom colour: label it, and keep other labels off it
      const gap = Math.max(0.3, (hi - lo) / 12);
      const keep = vals.map((k, i) => i).filter((i) => vals[i] >= lo + gap);
      return { tickvals: [lo, ...keep.map((i) => vals[i])],
               ticktext: [zeroLabel, ...keep.map((i) => text[i])] };
    }
    return { tickvals: vals, ticktext: text };
  }

  // Whether any cell of `z` is exactly 0 (drawn at the bottom of a log colour scale).
  const hasZero = (z) => z.some((row) => row.some((v) => v === 0));

  function cellText(pm, extra, star) {
    // One hover text per cell: every value the API gave for that cell.
    const zeroNote = (metric, v) => (v === 0 && metric === pm.metric && METRICS[metric].log
      ? " (a log scale has no 0: coloured as the smallest value)" : "");
    const xs = pm.x.values, ys = pm.y.values;
    const label = (values) => (numeric(values) ? betascope.gridFormat(values) : String);
    const fx = label(xs), fy = label(ys);
    const sx = symbol(pm.x.name), sy = symbol(pm.y.name);
    return ys.map((b2, i) => xs.map((b1, j) => {
      const lines = [sx + " = " + fx(b1), sy + " = " + fy(b2)];
      const get = (metric) => (extra[metric] ? extra[metric].z[i][j] : undefined);
      const outcome = get("outcome");
      if (outcome === null) lines.push("<i>no results yet</i>");
      else if (outcome !== undefined) lines.push("majority: <b>" + OUTCOME_LABELS[outcome] + "</b>");
      const regime = get("regime");
      if (regime !== undefined && regime !== null) lines.push("regime: <b>" + CLASS_LABELS[extra.regime.outcomes[regime]] + "</b>");
      const dv = get("diverged_frac"), cv = get("converged_frac");
      if (dv !== undefined && dv !== null) lines.push("diverged: " + pct(dv));
      if (cv !== undefined && cv !== null) lines.push("converged: " + pct(cv));
      if (dv !== undefined && dv !== null && cv !== undefined && cv !== null) {
        lines.push("not converged: " + pct(Math.max(0, 1 - dv - cv)));
      }
      const fr = get("final_rel");
      if (fr !== undefined) lines.push("median final rel: " + betascope.fmtValue(fr) + zeroNote("final_rel", fr));
      const ds = get("div_step");
      if (ds !== undefined) {
        const never = ds === null && neverDiverged(extra, i, j);
        lines.push("median div step: " + (never ? "never diverged" : betascope.fmtValue(ds) + zeroNote("div_step", ds)));
      }
      const mr = get("max_rise");
      if (mr !== undefined && mr !== null) lines.push("median max rise: " + betascope.fmtValue(mr) + zeroNote("max_rise", mr));
      if (star && star[j] !== undefined) lines.push("β2* of this column: " + (star[j] === null ? "none" : fy(star[j])));
      return lines.join("<br>");
    }));
  }

  // A cell has results and none of its runs diverged (its divergence step is null then too).
  function neverDiverged(all, i, j) {
    const dv = all.diverged_frac && all.diverged_frac.z[i][j];
    if (dv !== undefined && dv !== null) return dv === 0;
    const oc = all.outcome && all.outcome.z[i][j];
    return oc !== undefined && oc !== null && !(all.div_step && all.div_step.z[i][j] !== null);
  }

  // Divergence-step maps: a layer for the cells that never diverged, so that they are not
  // the grey of cells without results. Drawn only where the step map itself has a gap.
  function neverLayer(pm, all, heat) {
    const z = pm.z.map((row, i) => row.map((v, j) => (v === null && neverDiverged(all, i, j) ? 1 : null)));
    return {
      type: "heatmap", x: heat.x, y: heat.y, z, zmin: 0, zmax: 1, zsmooth: false, showscale: false,
      xgap: heat.xgap, ygap: heat.ygap, hoverongaps: false, name: "never diverged",
      colorscale: [[0, NEVER_DIVERGED], [1, NEVER_DIVERGED]], text: heat.text, hovertemplate: heat.hovertemplate,
    };
  }

  // z = index into `classes`: a stepped colour scale over [0, n - 1], a label per band.
  function classScale(classes) {
    const n = classes.length;
    const colorscale = [];
    classes.forEach((c, k) => colorscale.push([k / n, CLASS_COLOURS[c]], [(k + 1) / n, CLASS_COLOURS[c]]));
    return {
      zmin: 0, zmax: n - 1, colorscale,
      colorbar: { tickvals: classes.map((_, k) => ((k + 0.5) * (n - 1)) / n), ticktext: classes.map((c) => CLASS_LABELS[c]),
                  thickness: 14, len: 0.6, y: 0.5, outlinewidth: 0 },
    };
  }

  function pct(v) {
    return (Math.round(v * 1000) / 10) + " %";
  }

  // Traces and layout for one phase map. `extra` maps metric -> phase-map response of
  // the same slice (for hover); `star` is beta2*(beta1) or null.
  // `zrange` ({zmin, zmax, floor} from colourRange): one colour range shared with other
  // maps (small multiples); by default the map's own.
  function figure(pm, { mode = { x: "linear", y: "linear" }, extra = {}, star = null, showSqrt = true, small = false,
                        title = "", showscale = true, zrange = null } = {}) {
    const metric = pm.metric;
    if (typeof mode === "string") mode = { x: mode, y: mode };
    const fx = coord(mode.x, pm.x.values), fy = coord(mode.y, pm.y.values);
    // the theory overlays mean something on the (beta1, beta2) plane only
    const betaPlane = pm.x.name === "beta1" && pm.y.name === "beta2";
    if (!betaPlane) { showSqrt = false; star = null; }
    const xs = pm.x.values.map(fx), ys = pm.y.values.map(fy);
    const dense = pm.x.values.length > 40 || pm.y.values.length > 40;
    const all = Object.assign({}, extra, { [metric]: pm });
    const heat = {
      type: "heatmap", x: xs, y: ys, z: colourTransform(metric, pm.z, zrange ? zrange.floor : undefined), zsmooth: false,
      xgap: dense || small ? 0 : 1, ygap: dense || small ? 0 : 1, hoverongaps: false,
      text: cellText(pm, all, star), hovertemplate: "%{text}<extra></extra>", showscale,
      name: "cells",
    };
    const classes = pm.outcomes || (metric === "outcome" ? OUTCOMES : null);
    if (classes) { // classes (outcome, regime): one colour band and one label each
      Object.assign(heat, classScale(classes));
    } else {
      const m = METRICS[metric];
      const floor = zrange ? zrange.floor : smallestPositive([pm.z]);
      const zeros = zrange ? zrange.zeros : hasZero(pm.z);
      const zeroLabel = zeros ? (floor === null ? "0" : "0 or " + betascope.fmtValue(floor)) : null;
      Object.assign(heat, {
        colorscale: m.colorscale, reversescale: !!m.reverse,
        colorbar: Object.assign({ title: { text: m.label, side: "right" }, thickness: 14, outlinewidth: 0 },
                                m.log ? logTicks(heat.z, zrange, zeroLabel) : {}),
      });
      if (m.zmin !== undefined) Object.assign(heat, { zmin: m.zmin, zmax: m.zmax });
      else if (zrange) Object.assign(heat, { zmin: zrange.zmin, zmax: zrange.zmax });
    }
    const traces = [heat];
    if (metric === "div_step" && (all.outcome || all.diverged_frac)) traces.push(neverLayer(pm, all, heat));
    // the overlays (and their legend entries) only where they draw something: a lone β1
    // or β2 value has no curve, a β2* without a value no line
    if (showSqrt && sqrtDrawn(pm, mode)) traces.push(sqrtCurve(pm, fx, fy, mode.x, mode.y));
    if (star && !star.some((v) => v !== null && v !== undefined)) star = null;
    if (star) {
      traces.push({
        type: "scatter", mode: "lines+markers", name: "β2*(β1), extracted boundary",
        x: xs, y: star.map((v) => (v === null ? null : fy(v))), connectgaps: false, hoverinfo: "skip",
        line: { color: "#ffffff", width: small ? 2 : 3 },
        marker: { color: "#ffffff", size: small ? 4 : 7, line: { color: "#111827", width: 1.2 } },
      });
    }
    const layout = {
      font: small ? Object.assign({}, FONT, { size: 11 }) : FONT,
      margin: small ? { l: 50, r: 10, t: 30, b: 40 } : { l: 64, r: 20, t: title ? 40 : 16, b: 60 },
      title: title ? { text: title, font: { size: small ? 12 : 14 }, x: 0.02, xanchor: "left" } : undefined,
      xaxis: axis(pm.x.name, pm.x.values, mode.x), yaxis: axis(pm.y.name, pm.y.values, mode.y),
      plot_bgcolor: EMPTY, paper_bgcolor: "#ffffff",
      showlegend: !small, legend: { orientation: "h", x: 0, y: -0.16, yanchor: "top" },
      hovermode: "closest", hoverlabel: { bgcolor: "#111827", font: { color: "#fff", size: 12 } },
      uirevision: mode.x + mode.y,
    };
    if (small) {
      layout.xaxis.title = { text: symbol(pm.x.name), standoff: 2 };
      layout.yaxis.title = { text: symbol(pm.y.name), standoff: 2 };
    }
    return { traces, layout, config: CONFIG };
  }

  function sqrtCurve(pm, fx, fy, xmode, ymode) {
    // beta1 = sqrt(beta2), i.e. beta2 = beta1^2, sampled evenly in both plotted coordinates
    const b1 = pm.x.values, b2 = pm.y.values;
    const lo = Math.min(...b1), hi = Math.max(...b1);
    const y0 = Math.min(...b2), y1 = Math.max(...b2);
    const even = (a, b, m, t) => (m === "log1m" ? 1 - Math.pow(1 - a, 1 - t) * Math.pow(1 - b, t) : a + (b - a) * t);
    const pts = [];
    const n = 200;
    for (let k = 0; k <= n; k++) {
      pts.push(even(lo, hi, xmode, k / n));
      pts.push(Math.sqrt(even(y0, y1, ymode, k / n)));
    }
    pts.sort((a, b) => a - b);
    const xs = [], ys = [];
    for (const b of pts) {
      const y = b * b;
      if (b < lo || b > hi || y < y0 || y > y1) continue;
      xs.push(fx(b));
      ys.push(fy(y));
    }
    return {
      type: "scatter", mode: "lines", name: "β1 = √β2 (convergence needs β1 < √β2)", x: xs, y: ys,
      hoverinfo: "skip", line: { color: "#111827", width: 2, dash: "dash" },
    };
  }

  // Whether the β1 = √β2 curve has a line to draw on this map (a β1 × β2 map whose
  // ranges it crosses).
  function sqrtDrawn(pm, mode) {
    if (pm.x.name !== "beta1" || pm.y.name !== "beta2") return false;
    // a line, not one point repeated (a lone β1 whose square is on the β2 range)
    return new Set(sqrtCurve(pm, coord(mode.x, pm.x.values), coord(mode.y, pm.y.values), mode.x, mode.y).x).size > 1;
  }

  // The spacing an axis's values call for. Betas: log(1 - beta) when 1 - beta spans more
  // than 1.5 decades. Other numbers: log when they are positive and spaced more evenly
  // in log than in linear terms (1, 2, 4, 8; 1e-3 ... 10; n = 5, 10, 20, 50), or two
  // values over 1.5 decades apart. Labels (clip settings): categories.
  function defaultScale(values, name) {
    if (!numeric(values)) return "category";
    if (name === undefined || isBeta(name)) {
      const q = values.map((b) => 1 - b).filter((v) => v > 0);
      return q.length > 2 && Math.max(...q) / Math.min(...q) > 30 ? "log1m" : "linear";
    }
    const v = values.slice().sort((a, b) => a - b);
    if (!v.length || v[0] <= 0) return "linear";
    if (v.length === 2) return v[1] / v[0] > 30 ? "log" : "linear";
    if (v.length < 2) return "linear";
    const spread = (xs) => {
      const d = xs.slice(1).map((x, i) => x - xs[i]);
      const mean = d.reduce((a, b) => a + b, 0) / d.length;
      const sd = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / d.length);
      return sd / mean;
    };
    return spread(v.map(Math.log)) < spread(v) ? "log" : "linear";
  }

  // The two axes a map opens on, from every axis's values ({axis: values}; `order`: the
  // axes' order of preference after the betas): β1 × β2 when both have more than one
  // value; else β2 (or β1) against the first other axis with more than one (lr × β2 for
  // a trainability sweep with one β1); else the first two such axes. With fewer than two
  // such axes, β1 × β2.
  function defaultAxes(axes, order = ["lr", "batch_size"]) {
    const many = (a) => axes[a] && axes[a].length > 1;
    const rest = Object.keys(axes).filter((a) => !isBeta(a) && a !== "seed");
    const others = [...order.filter((a) => rest.includes(a)), ...rest.filter((a) => !order.includes(a) && a !== "clip"),
                    ...rest.filter((a) => a === "clip")].filter(many);
    if (many("beta1") && many("beta2")) return { x: "beta1", y: "beta2" };
    if (many("beta2") && others.length) return { x: others[0], y: "beta2" };
    if (many("beta1") && others.length) return { x: "beta1", y: others[0] };
    if (others.length > 1) return { x: others[0], y: others[1] };
    return { x: "beta1", y: "beta2" };
  }

  // The scales an axis can be drawn in: [value, label] pairs.
  function scales(name, values) {
    if (!numeric(values)) return [["category", "categories"]];
    if (isBeta(name)) return [["linear", "linear"], ["log1m", "log(1 − " + symbol(name) + ")"]];
    if (values.every((v) => v > 0)) return [["linear", "linear"], ["log", "log"]];
    return [["linear", "linear"]];
  }

  betascope.maps = {
    defaultScale, defaultAxes, colourRange, sqrtDrawn, colourTransform, scales, symbol, figure, coord, axis, OUTCOMES, OUTCOME_LABELS, COLOURS, FONT, CONFIG, METRICS, EMPTY, NEVER_DIVERGED, STEP_SCALE,
    SPIKY, CLASS_COLOURS, CLASS_LABELS,
  };
})();
