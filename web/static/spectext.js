// Spec text for the editor: print a parsed spec as YAML (the server parses; the page
// only prints), and find the line a field path (grid.clip[1].threshold) sits on.
"use strict";

(function () {
  // --- a small YAML emitter for plain JSON data (the server parses; we only print) ---

  const PLAIN = /^[A-Za-z_][A-Za-z0-9_]*$/;
  const RESERVED = /^(true|false|yes|no|on|off|null|~)$/i; // what PyYAML would not read as a string

  function scalar(v) {
    if (v === null) return "null";
    if (typeof v === "boolean") return v ? "true" : "false";
    if (typeof v === "number") {
      let s = String(v);
      // PyYAML reads 1e-08 as a string: give floats in exponent form a decimal point
      if (/e/i.test(s) && !s.includes(".")) s = s.replace(/e/i, ".0e");
      return s;
    }
    const s = String(v);
    return PLAIN.test(s) && !RESERVED.test(s) ? s : JSON.stringify(s);
  }

  function isScalar(v) {
    return v === null || typeof v !== "object";
  }

  function flow(v) {
    if (isScalar(v)) return scalar(v);
    if (Array.isArray(v)) return "[" + v.map(flow).join(", ") + "]";
    return "{" + Object.entries(v).map(([k, x]) => scalar(k) + ": " + flow(x)).join(", ") + "}";
  }

  function simple(v) {
    // flow style for collections of scalars, and lists of small such maps
    if (isScalar(v)) return true;
    const vals = Array.isArray(v) ? v : Object.values(v);
    return vals.every((x) => isScalar(x) || (!Array.isArray(x) && Object.values(x).every(isScalar)))
      && flow(v).length <= 72;
  }

  function toYaml(v, indent = "") {
    if (isScalar(v)) return scalar(v) + "\n";
    const out = [];
    if (Array.isArray(v)) {
      for (const x of v) {
        if (isScalar(x) || simple(x)) out.push(indent + "- " + flow(x) + "\n");
        else out.push(indent + "- " + toYaml(x, indent + "  ").trimStart());
      }
      return out.join("") || indent + "[]\n";
    }
    for (const [k, x] of Object.entries(v)) {
      if (isScalar(x) || simple(x)) out.push(indent + scalar(k) + ": " + flow(x) + "\n");
      else out.push(indent + scalar(k) + ":\n" + toYaml(x, indent + "  "));
    }
    return out.join("") || indent + "{}\n";
  }

  // --- locating a field path in the text ---------------------------------------------------

  function segments(path) {
    const segs = [];
    String(path || "").replace(/([^.[\]]+)|\[(\d+)\]/g, (_, key, idx) => {
      segs.push(idx !== undefined ? Number(idx) : key);
    });
    return segs;
  }

  function indentOf(line) {
    return line.length - line.trimStart().length;
  }

  function keyAt(line) {
    const m = /^(\s*(?:-\s+)*)["']?([^"':\s]+)["']?\s*:/.exec(line);
    return m ? { key: m[2], col: m[1].length } : null;
  }

  function inlineHas(line, key) {
    const rest = line.slice(line.indexOf(":") + 1);
    const esc = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return rest.includes("{") && new RegExp("[{,]\\s*[\"']?" + esc + "[\"']?\\s*:").test(rest);
  }

  // The line at or after `at` of key `key` in the block under line `at` (or inline in it).
  function findKey(lines, key, at, parent, afterIndex) {
    if (at >= 0 && inlineHas(lines[at], key)) return at;
    for (let i = afterIndex ? at : at + 1; i < lines.length; i++) {
      if (i < 0 || !lines[i].trim()) continue;
      if (i > at && at >= 0 && indentOf(lines[i]) <= parent) break;
      const k = keyAt(lines[i]);
      if (k && k.key === key && k.col > parent) return i;
    }
    return -1;
  }

  // Best-effort line of a field path (e.g. grid.clip[1].threshold) in YAML or JSON text:
  // follow each key into its block, and each list index to its item. A key may hold dots
  // itself (an extra axis: grid.problem.n[1] is item 1 of the key "problem.n" under grid),
  // so the dotted run of segments that names the outermost key there wins.
  function lineOf(src, path) {
    const lines = src.split("\n");
    const segs = segments(path);
    let at = -1, parent = -1, afterIndex = false;
    for (let s = 0; s < segs.length;) {
      const seg = segs[s];
      let found = -1;
      if (typeof seg === "string") {
        // of the keys that the next 1, 2, ... segments join into, the outermost one found
        let best = null;
        for (let run = 1; s + run <= segs.length && typeof segs[s + run - 1] === "string"; run++) {
          const i = findKey(lines, segs.slice(s, s + run).join("."), at, parent, afterIndex);
          const col = i < 0 ? Infinity : i === at ? -1 : keyAt(lines[i]).col;
          if (i >= 0 && (!best || col < best.col)) best = { i, col, run };
        }
        if (best) {
          found = best.i;
          s += best.run;
        }
        if (found >= 0) parent = keyAt(lines[found]) ? keyAt(lines[found]).col : parent;
        afterIndex = false;
      } else {
        s += 1;
        if (at < 0 || /:\s*\[\s*\S/.test(lines[at])) break; // a flow list stays on its line
        let child = -1, count = -1;
        for (let i = at + 1; found < 0 && i < lines.length; i++) {
          const t = lines[i].trim();
          if (!t) continue;
          const ind = indentOf(lines[i]);
          if (child < 0) child = ind;
          // PyYAML writes a mapping's list items at the key's own indent
          if (ind < child || (ind <= parent && !t.startsWith("-"))) break;
          if (ind === child && !/^[\]}]/.test(t)) count += 1;
          if (count === seg) found = i;
        }
        if (found >= 0) parent = indentOf(lines[found]);
        afterIndex = true;
      }
      if (found < 0) break;
      at = found;
    }
    return Math.max(at, 0);
  }

  betascope.specText = { toYaml, lineOf };
})();
