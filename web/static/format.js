// Grid values as people read them: 0.30000000000000004 is shown as 0.3, but 0.999 and
// 0.9999 on one grid stay apart. Only labels are rounded; requests keep the exact values.
"use strict";

(function () {
  const { fmtNum } = betascope;

  // Decimal places that keep each value within a twentieth of its nearest neighbour.
  function places(values) {
    const sorted = Array.from(new Set(values.filter((v) => Number.isFinite(v)))).sort((a, b) => a - b);
    const out = new Map();
    sorted.forEach((v, i) => {
      const gaps = [];
      if (i > 0) gaps.push(v - sorted[i - 1]);
      if (i < sorted.length - 1) gaps.push(sorted[i + 1] - v);
      const gap = gaps.length ? Math.min(...gaps) : Math.abs(v) || 1;
      out.set(v, Math.min(15, Math.max(0, Math.ceil(-Math.log10(gap / 20)))));
    });
    return out;
  }

  // A formatter for the values of one grid axis (any other number: 6 significant digits).
  betascope.gridFormat = function gridFormat(values) {
    const nums = (values || []).filter((v) => typeof v === "number");
    const dp = places(nums);
    return (v) => {
      if (typeof v !== "number" || !Number.isFinite(v)) return fmtNum(v);
      const d = dp.get(v);
      const rounded = d === undefined ? Number(v.toPrecision(6)) : Number(v.toFixed(d));
      // tiny values keep their significant digits: 1e-8 must not become 0
      return rounded === 0 && v !== 0 ? fmtNum(v, 3) : fmtNum(rounded, 15);
    };
  };

  // One value alone (a median, a threshold): 6 significant digits, no float noise.
  betascope.fmtValue = (v) => (typeof v === "number" && Number.isFinite(v) ? fmtNum(Number(v.toPrecision(6)), 15) : fmtNum(v));
})();
