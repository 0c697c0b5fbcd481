"""A whole sweep in this process, chunk by chunk: what `betascope run` does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from experiments import analysis, export
from experiments.engine import ChunkResult, run_chunk
from experiments.outcomes import OUTCOMES, Outcomes
from experiments.runs import RunTable, all_runs, clip_columns
from experiments.spec import SweepSpec, run_keys


@dataclass(frozen=True)
class LocalResult:
    spec: SweepSpec
    runs: RunTable
    keys: list[str]
    outcomes: Outcomes
    curve_steps: np.ndarray
    curves: np.ndarray

    run_columns = export.RUN_COLUMNS
    cell_columns = export.CELL_COLUMNS

    @property
    def total(self) -> int:
        return len(self.runs)

    def frame(self) -> analysis.ResultFrame:
        return analysis.ResultFrame.from_outcomes(self.runs.grid_index, self.outcomes)

    def cells(self) -> analysis.Cells:
        return analysis.cells(self.spec, self.frame())

    def run_rows(self) -> Iterator[list[str]]:
        modes, thresholds = clip_columns(self.spec, self.runs)
        return export.run_rows(
            keys=self.keys,
            runs=self.runs,
            clip_modes=modes,
            clip_thresholds=thresholds,
            steps=self.spec.steps,
            outcomes=self.outcomes,
        )

    def cell_rows(self) -> Iterator[list[str]]:
        return export.cell_rows(self.spec, self.cells())

    def outcome_counts(self) -> dict[str, int]:
        counts = np.bincount(self.outcomes.code, minlength=len(OUTCOMES))
        return {name: int(c) for name, c in zip(OUTCOMES, counts, strict=True)}

    def html_page(self) -> str:
        from web.figures import phase_map_figure, standalone_page

        c = self.cells()
        figures = []
        values = self.spec.axis_values()
        for ci in range(len(values["clip"])):
            for li in range(len(values["lr"])):
                for bi in range(len(values["batch_size"])):
                    sl = {"batch_size": bi, "clip": ci, "lr": li}
                    pm = analysis.phase_map(self.spec, c, "outcome", sl)
                    star = analysis.beta2_star(self.spec, c, sl)
                    label = ", ".join(f"{k}={v}" for k, v in pm["slice"].items())
                    figures.append((label, phase_map_figure(pm, star=star, title=label)))
        return standalone_page(self.spec.name, figures)


def run_local(
    spec: SweepSpec,
    *,
    device: str = "auto",
    kernel: str = "eager",
    chunk_runs: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> LocalResult:
    runs = all_runs(spec)
    total = len(runs) * spec.steps
    parts: list[tuple[np.ndarray, ChunkResult]] = []
    for lo in range(0, len(runs), chunk_runs):
        rows = np.arange(lo, min(lo + chunk_runs, len(runs)))

        def chunk_progress(done: int, _total: int, base: int = lo * spec.steps) -> None:
            if progress is not None:
                progress(base + done, total)

        parts.append(
            (
                rows,
                run_chunk(
                    spec, runs.take(rows), device=device, kernel=kernel, progress=chunk_progress
                ),
            )
        )
    outcomes = Outcomes.gather([(rows, r.outcomes) for rows, r in parts], len(runs))
    steps = parts[0][1].curve_steps
    curves = np.concatenate([r.curves for _, r in parts], axis=0)
    keys = run_keys(spec, runs, kernel=kernel).astype(str).tolist()
    return LocalResult(spec, runs, keys, outcomes, steps, curves)
