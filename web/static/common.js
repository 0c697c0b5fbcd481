// Shared helpers for betascope's pages. User text only ever reaches the DOM
// through textContent or attribute setters, never through innerHTML.
"use strict";

const betascope = (window.betascope = window.betascope || {});
const API = "/api/v1";

class ApiError extends Error {
  constructor(status, body) {
    super(ApiError.describe(status, body));
    this.status = status;
    this.body = body;
  }

  static describe(status, body) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail)) {
      return body.detail.map((e) => {
        const loc = Array.isArray(e.loc) ? e.loc.join(".") : e.loc;
        return (loc ? loc + ": " : "") + e.msg;
      }).join("; ");
    }
    return "HTTP " + status;
  }
}
betascope.ApiError = ApiError;

let memoryToken = "";

function token() {
  try {
    return localStorage.getItem("betascope-token") || memoryToken;
  } catch (_) {
    return memoryToken;
  }
}

// JSON request to /api/v1; mutating requests carry the saved bearer token.
// `text` with `contentType` sends a body as it is (a spec as YAML, say).
betascope.api = async function api(path, { method = "GET", body, text, contentType, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (text !== undefined) headers["Content-Type"] = contentType || "text/plain";
  if (method !== "GET" && token()) headers.Authorization = "Bearer " + token();
  const resp = await fetch(API + path, {
    method, headers, signal, body: text !== undefined ? text : body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  const reply = await resp.text();
  if (reply) {
    try {
      data = JSON.parse(reply);
    } catch (_) {
      data = { detail: reply };
    }
  }
  if (resp.status === 401 || resp.status === 403) showTokenBar();
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
};

betascope.query = function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
};

// el("td", {class: "num"}, "text", childNode): children that are strings become text nodes.
betascope.el = function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
};

betascope.clear = function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
};

betascope.fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

// A number as a short, exact-enough label: 0.999 stays 0.999, 1e-7 stays 1e-7.
betascope.fmtNum = function fmtNum(v, digits = 4) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e6) return String(Number(v.toPrecision(digits + 2)));
  return v.toExponential(digits - 1).replace(/\.?0+e/, "e");
};

betascope.fmtTime = function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
};

betascope.STATUSES = ["queued", "running", "done", "failed", "canceled"];
betascope.isActive = (status) => status === "queued" || status === "running";

// The fraction done in [0, 1] from a sweep record, whatever the API calls it.
betascope.progressOf = function progressOf(s) {
  if (typeof s.progress === "number") return s.progress > 1 ? s.progress / 100 : s.progress;
  return s.total_runs ? (s.done_runs || 0) / s.total_runs : 0;
};

betascope.setProgress = function setProgress(wrap, bar, label, sweep) {
  const frac = Math.max(0, Math.min(1, betascope.progressOf(sweep)));
  const pct = Math.floor(frac * 1000) / 10;
  bar.style.width = pct + "%";
  wrap.setAttribute("aria-valuenow", String(pct));
  wrap.classList.toggle("done", sweep.status === "done");
  wrap.classList.toggle("failed", sweep.status === "failed");
  if (label) label.textContent = (pct === 100 ? "100" : pct.toFixed(1)) + " %";
};

betascope.badge = function badge(node, status) {
  node.className = "badge " + (betascope.STATUSES.includes(status) ? status : "");
  node.textContent = status || "unknown";
};

betascope.problemLabel = function problemLabel(spec) {
  const p = (spec && spec.problem) || { kind: "…" };
  const extra = Object.entries(p)
    .filter(([k]) => k !== "kind")
    .map(([k, v]) => k + "=" + v)
    .join(", ");
  return (p.kind || "?") + (extra ? " (" + extra + ")" : "");
};

const tokenWaiters = [];

function showTokenBar(why) {
  const bar = document.getElementById("token-bar");
  if (!bar) return;
  bar.hidden = false;
  const note = document.getElementById("token-why");
  if (note && why) note.textContent = why;
  const input = document.getElementById("token-input");
  if (input && why) input.focus();
}

// Run a mutating request; when the server asks for its API token (401/403), show the
// token bar, wait until one is saved, and try once more with it.
betascope.authorized = async function authorized(request, why) {
  try {
    return await request();
  } catch (err) {
    if (err.status !== 401 && err.status !== 403) throw err;
    showTokenBar((why || "This change") + " needs this server's API token (BETASCOPE_API_TOKEN).");
    await new Promise((resolve) => tokenWaiters.push(resolve));
    return request();
  }
};

document.addEventListener("DOMContentLoaded", () => {
  const save = document.getElementById("token-save");
  if (!save) return;
  document.getElementById("token-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter") save.click();
  });
  save.addEventListener("click", () => {
    const v = document.getElementById("token-input").value.trim();
    memoryToken = v;
    try {
      localStorage.setItem("betascope-token", v);
    } catch (_) { /* private mode: the token lasts for this page only */ }
    document.getElementById("token-bar").hidden = true;
    tokenWaiters.splice(0).forEach((resolve) => resolve());
  });
});
