"""One self-contained HTML page of figures that works offline: what `betascope run
--html` writes. plotly.js travels once, gzipped (2.0 MB as base64 against 4.8 MB
plain), and the browser unpacks it with DecompressionStream."""

from __future__ import annotations

import base64
import gzip
import html
import json
from functools import lru_cache
from typing import Any

import numpy as np
import plotly.io as pio

from web.figures import CONFIG


def gzip_b64(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode(), 9, mtime=0)).decode("ascii")


@lru_cache(maxsize=1)
def _plotly_gzip_b64() -> str:
    from plotly.offline import get_plotlyjs

    return gzip_b64(get_plotlyjs())


_LOADER = """
(async function () {
  const status = document.getElementById("status");
  // plotly.js and the figures travel gzipped (plotly.js in a third of its size, the
  // figures' repetitive JSON in a tenth); the browser unpacks them offline
  async function gunzip(id) {
    const b64 = document.getElementById(id).textContent.trim();
    const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text();
  }
  try {
    const script = document.createElement("script");
    script.textContent = await gunzip("plotly-gz");
    document.head.append(script);
    const figures = JSON.parse(await gunzip("figures-gz"));
    const config = JSON.parse(document.getElementById("plot-config").textContent);
    for (const [id, fig] of Object.entries(figures)) {
      await Plotly.newPlot(document.getElementById(id), fig.data, fig.layout, config);
    }
    status.remove();
    document.body.dataset.drawn = "1";
  } catch (err) {
    status.textContent = "Could not draw the figures (this page needs a current browser): " + err;
  }
})();
"""

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#111827}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.15em;margin:1.6em 0 .4em}
h3{font-size:1em;margin:.6em 0 .2em;font-weight:600} .meta,.note{color:#4b5563}
.maps{display:flex;flex-wrap:wrap;gap:1em} .maps section{margin:0}
table{border-collapse:collapse;margin:.6em 0}
td,th{padding:.2em .7em;border-bottom:1px solid #e5e7eb}
th{text-align:left} .num{text-align:right;font-variant-numeric:tabular-nums}
"""


def standalone_page(title: str, meta: str, sections: list[dict[str, Any]]) -> str:
    """One self-contained HTML page that works offline: plotly.js once and the figures'
    data, both gzipped.

    Each section is {"heading": str, "figures": [(caption, Figure)], "html": str}; a
    figure's caption is its only title.
    """
    figures: dict[str, Any] = {}
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)} · betascope</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)}</p>",
        "<p id='status' class='note'>Drawing…</p>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section['heading'])}</h2><div class='maps'>")
        for caption, fig in section.get("figures", []):
            fid = f"fig{len(figures)}"
            figures[fid] = json.loads(pio.to_json(fig, validate=False, remove_uids=True))
            parts.append(f"<section><h3>{html.escape(caption)}</h3><div id='{fid}'></div>"
                         "</section>")
        parts.append("</div>")
        parts.append(section.get("html", ""))
    data = json.dumps(figures, separators=(",", ":"))
    parts += [
        f"<script id='figures-gz' type='application/octet-stream'>{gzip_b64(data)}</script>",
        f"<script id='plot-config' type='application/json'>{json.dumps(CONFIG)}</script>",
        f"<script id='plotly-gz' type='application/octet-stream'>{_plotly_gzip_b64()}</script>",
        f"<script>{_LOADER}</script></body></html>",
    ]
    return "\n".join(parts)


def sweep_page(result: Any) -> str:
    """The sweep page's figures for every slice of a `betascope run` result
    (experiments.local.LocalResult), one self-contained file."""
    from experiments import analysis
    from web.figures import fit_table_html, phase_map_figure, scaling_figure

    c = result.cells()
    values = result.spec.axis_values()
    avail = analysis.available(result.spec)
    extra_metrics = tuple(m for m in analysis.METRICS if m != "outcome")  # for the hover
    extra_axes = result.spec.extra_axes()
    sections = []
    # one group of sections per point of the extra axes (none: one point)
    for point in np.ndindex(*(len(avail[a]) for a in extra_axes)):
        esl = dict(zip(extra_axes, point, strict=True))
        ec = analysis.cells_at(result.spec, c, esl)
        rows = analysis.by_batch(result.spec, ec)
        where = "".join(f" · {a} {avail[a][i]}" for a, i in esl.items())
        for ci, clip in enumerate(avail["clip"]):
            for li, lr in enumerate(avail["lr"]):
                figures = []
                for bi, batch in enumerate(values["batch_size"]):
                    sl = {"batch_size": bi, "clip": ci, "lr": li, **esl}
                    pm = analysis.phase_map(result.spec, c, "outcome", sl)
                    extra = {m: analysis.phase_map(result.spec, c, m, sl) for m in extra_metrics}
                    star = analysis.beta2_star(result.spec, ec, sl)
                    figures.append(
                        (f"batch size {batch}", phase_map_figure(pm, star=star, extra=extra))
                    )
                mine = [r for r in rows if r["clip"] == clip and r["lr"] == lr]
                figures.append(("β2* against batch size", scaling_figure(mine)))
                sections.append(
                    {
                        "heading": f"clip {clip} · lr {lr:g}{where}",
                        "figures": figures,
                        "html": "<h3>Scaling fit: slope of log(1 − β2*) against log(batch"
                        " size)</h3>" + fit_table_html(mine),
                    }
                )
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in result.outcome_counts().items())
    meta = (
        f"{result.spec.problem.kind} · {result.spec.optimizer.kind} · {result.spec.steps} steps"
        f" · {result.total} runs: {counts}"
    )
    return standalone_page(result.spec.name, meta, sections)
