"""`betascope.run(...)`: a whole sweep in this Python process, as `betascope run` does."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from betascope.frames import frame
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
    ValueError for an invalid spec, naming each offending field.
    """
    from experiments.local import run_local
    from experiments.presets import PRESETS
    from experiments.spec import SpecError, parse_spec

    doc = spec_document(spec, lambda: PRESETS)
    try:
        parsed = parse_spec(doc, max_runs=max_runs)
    except SpecError as exc:
        raise ValueError(f"invalid spec: {exc}") from None
    total = parsed.total_runs() * parsed.steps
    with progress_bar(parsed.name[:40], total, show=progress) as bar:
        local = run_local(parsed, device=device, kernel=kernel, chunk_runs=chunk_runs,
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
        batch_size: int | None = None,
        clip: str | None = None,
        lr: float | None = None,
        scale: str | dict[str, str] | None = None,
        show_sqrt: bool = True,
        show_star: bool = True,
    ) -> Any:
        """One slice's phase map as a Plotly figure, drawn as the sweep page draws it.

        metric: one of experiments.analysis.METRICS (outcome, regime, diverged_frac, ...); the slice
        axes default to their first grid value (clip as "none" or "mode:threshold");
        scale: "linear", "log1m" or per axis {"x": .., "y": ..}; None picks log(1 - beta)
        for log-spaced axes, as the page does.
        """
        from web.figures import phase_map_figure

        try:
            pm = self._local.phase_map(metric, batch_size=batch_size, clip=clip, lr=lr)
            extra = {m: self._local.phase_map(m, batch_size=batch_size, clip=clip, lr=lr)
                     for m in ("diverged_frac", "converged_frac") if m != metric}
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        star = pm["beta2_star"] if show_star else None
        return phase_map_figure(pm, star=star, scale=scale, show_sqrt=show_sqrt, extra=extra)

    def scaling(self, *, clip: str | None = None, lr: float | None = None) -> Any:
        """beta2* against batch size for one (clip, lr), one line per beta1 (Plotly)."""
        from experiments.analysis import available
        from web.figures import scaling_figure

        avail = available(self.spec)
        want_clip = clip if clip is not None else avail["clip"][0]
        want_lr = float(lr) if lr is not None else avail["lr"][0]
        rows = [r for r in self.boundary()["by_batch"]
                if r["clip"] == want_clip and r["lr"] == want_lr]
        if not rows:
            raise ValueError(f"no slice clip={want_clip!r}, lr={want_lr!r} "
                             f"(have clip {avail['clip']}, lr {avail['lr']})")
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

        if level not in ("runs", "cells"):
            raise ValueError("level: must be runs or cells")
        out = Path(path)
        header, rows = ((self._local.run_columns, self._local.run_rows()) if level == "runs"
                        else (self._local.cell_columns, self._local.cell_rows()))
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        return out
