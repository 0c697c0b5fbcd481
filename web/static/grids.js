// Whether two sweeps' phase maps share one (x, y) grid, and if not, why, in words.
// The list page asks before it lets two sweeps be ticked; the compare page before it draws.
"use strict";

(function () {
  const SYMBOL = { beta1: "β1", beta2: "β2", batch_size: "batch size", clip: "clipping" };

  function close(u, v) {
    return u.length === v.length && u.every((x, i) => (typeof x === "number"
      ? Math.abs(x - v[i]) <= 1e-12 * Math.max(1, Math.abs(x)) : x === v[i]));
  }

  function span(values) {
    const f = values.every((v) => typeof v === "number") ? betascope.gridFormat(values) : String;
    return values.length + (values.length === 1 ? " value (" : " values (")
      + (values.length > 1 ? f(values[0]) + " … " + f(values[values.length - 1]) : f(values[0])) + ")";
  }

  // null when the maps can be compared cell by cell, else the first difference
  function gridMismatch(a, b, labelA = "A", labelB = "B") {
    for (const ax of ["x", "y"]) {
      const pa = a[ax], pb = b[ax];
      const name = SYMBOL[pa.name] || pa.name;
      if (pa.name !== pb.name) {
        return "the maps plot different axes (" + name + " against " + (SYMBOL[pb.name] || pb.name) + ")";
      }
      if (!close(pa.values, pb.values)) {
        return "their " + name + " grids differ: " + labelA + " has " + span(pa.values) + ", "
          + labelB + " has " + span(pb.values);
      }
    }
    return null;
  }

  betascope.grids = { gridMismatch, sameValues: close };
})();
