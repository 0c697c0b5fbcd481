"""`betascope.run(...)`: a whole sweep in this Python process, as `betascope run` does."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from betascope.frames import frame
from betascope.options import check_options
from betascope.progress import progress_bar
from betascope.specs import spec_document


def run(
    spec: Any,
    *,
    device: str = "auto",
    kernel: str = "auto",
    chunk_runs: int = 50_000,
    max_runs: int = 2_000_000,
    progress: bool = True,
) -> Result:
    """Run a sweep here (no server) and return its results.

    `spec` is a preset name ("zhang2022-batch"), a spec dict, a YAML or JSON file, or
    YAML/JSON text. Shows a progress bar (in a notebook cell or the terminal) with the
    time left measured after a warm-up; `progress=False` runs silently. Raises
    ValueError for an invalid spec, naming each offending field, and for a bad option
    (device: auto, cpu, cuda or cuda:N; kernel: auto, eager, compiled or fused;
    chunk_runs and max_runs: integers of at least 1), naming it, before any work.
    """
    from experiments.local import run_local
    from experiments.presets import PRESETS
    from experiments.spec import SpecError, parse_spec

    check_options(device=device, kernel=kernel, chunk_runs=chunk_runs, max_runs=max_runs)
    doc = spec_document(spec, lambda: PRESETS)
    try:
        parsed = parse_spec(doc, max_runs=int(max_runs))
    except SpecError as exc:
        raise ValueError(f"invalid spec: {exc}") from None
    total = parsed.total_runs() * parsed.steps
    with progress_bar(parsed.name[:40], total, show=progress) as bar:
        local = run_local(parsed, device=device, kernel=kernel, chunk_runs=int(chunk_runs),
                          progress=bar.update)
    return Result(local)


class Result:
    """A finished local sweep: `.runs` and `.cells` as DataFrames (the CSVs' columns),
    `.boundary()`, `.phase_map(...)` and `.scaling(...)` as on the sweep page."""

    def __init__(self, local: Any) -> None:
        self._local = local
        self.spec = local.spec

    def __repr__(self) -> str:
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in self.outcome_counts().items())
        return f"<betascope.Result {self.spec.name!r}: {self._local.total} runs, {counts}>"

    @cached_property
    def runs(self) -> Any:
        """One row per run, in the runs CSV's columns and order."""
        return frame(self._local.run_columns, self._local.run_rows())

    @cached_property
    def cells(self) -> Any:
        """One row per (beta1, beta2, batch_size, clip, lr) cell, aggregated over seeds."""
        return frame(self._local.cell_columns, self._local.cell_rows())

    def outcome_counts(self) -> dict[str, int]:
        return dict(self._local.outcome_counts())

    def boundary(self) -> dict[str, Any]:
        """beta2*(beta1) per slice and beta2* against batch size with its scaling fit, in
        the shape of the REST API's GET /sweeps/{id}/boundary."""
        return dict(self._local.boundary())

    def phase_map(
        self,
        metric: str = "outcome",
        *,
        x: str | None = None,
        y: str | None = None,
        batch_size: int | None = None,
        clip: str | None = None,
        lr: float | None = None,
        scale: str | dict[str, str] | None = None,
        show_sqrt: bool = True,
        show_star: bool = True,
        **axes: Any,
    ) -> Any:
        """One slice's phase map as a Plotly figure, drawn as the sweep page draws it.

        metric: one of experiments.analysis.METRICS (outcome, regime, diverged_frac, ...);
        x, y: the two mapped axes (beta1 and beta2 by default; any two grid axes with more
        than one value, e.g. x="lr"); every other axis is a slice, given by keyword
        (clip as "none" or "mode:threshold", beta1=... when it is not mapped, an extra
        axis by its path: **{"problem.n": 50}) and otherwise at its first grid value,
        as GET /phase-map takes them. scale: "linear", "log1m" (betas), "log" (other
        numbers) or per axis {"x": .., "y": ..}; None picks as the page does. ValueError
        names a bad axis, slice value, metric or scale.
        """
        from web.figures import phase_map_figure

        chosen = {"batch_size": batch_size, "clip": clip, "lr": lr, **axes}
        try:
            pm = self._local.phase_map(metric, x, y, **chosen)
            extra = {m: self._local.phase_map(m, x, y, **chosen)
                     for m in ("diverged_frac", "converged_frac") if m != metric}
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        star = pm["beta2_star"] if show_star else None
        return phase_map_figure(pm, star=star, scale=scale, show_sqrt=show_sqrt, extra=extra)

    def scaling(self, *, clip: str | None = None, lr: float | None = None, **axes: Any) -> Any:
        """beta2* against batch size for one (clip, lr) and one point of the extra axes
        (by path, **{"problem.n": 50}; each omitted axis at its first grid value, as
        GET /phase-map takes them), one line per beta1 (Plotly)."""
        from experiments.analysis import available, slice_index
        from web.figures import scaling_figure

        avail = available(self.spec)
        allowed = [a for a in avail if a != "batch_size"]
        unknown = [a for a in axes if a not in allowed]
        if unknown:
            raise ValueError(f"{unknown[0]}: not a slice axis of the scaling plot "
                             f"(have {allowed})")
        try:
            sl = slice_index(self.spec, clip=clip, lr=lr, **axes)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        want = {a: avail[a][sl[a]] for a in allowed}
        rows = [r for r in self.boundary()["by_batch"]
                if all(r[a] == v for a, v in want.items())]
        return scaling_figure(rows)

    def to_html(self, path: str | Path) -> Path:
        """The page `betascope run --html` writes: every slice, self-contained, offline."""
        out = Path(path)
        from web.standalone import sweep_page

        out.write_text(sweep_page(self._local), encoding="utf-8")
        return out

    def to_csv(self, path: str | Path, level: str = "runs") -> Path:
        """The runs (or cells) CSV, exactly as `betascope run --out` writes it."""
        import csv

        from betascope.exports import PARQUET_SUFFIXES

        if level not in ("runs", "cells"):
            raise ValueError("level: must be runs or cells")
        out = Path(path)
        if out.suffix.lower() in PARQUET_SUFFIXES:
            raise ValueError(f"path: to_csv writes CSV; name the file .csv (Parquet: "
                             f"r.{level}.to_parquet({str(out)!r}))")
        header, rows = ((self._local.run_columns, self._local.run_rows()) if level == "runs"
                        else (self._local.cell_columns, self._local.cell_rows()))
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        return out
