"""A whole sweep in this process, chunk by chunk: what `betascope run` does."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from experiments import analysis, export
from experiments.engine import STATS_STEPS, ChunkResult, resolve_device, run_chunk
from experiments.kernels import resolve_kernel
from experiments.outcomes import OUTCOMES, Outcomes
from experiments.runs import RunTable, all_runs, clip_columns, runs_at
from experiments.spec import SweepSpec, run_keys


@dataclass(frozen=True)
class LocalResult:
    spec: SweepSpec
    runs: RunTable
    outcomes: Outcomes
    curve_steps: np.ndarray
    curves: np.ndarray
    kernel: str = "eager"

    @cached_property
    def keys(self) -> list[str]:
        """Every run's run_key, made on first use: `betascope run` never asks (its CSV
        writer keys the runs itself), and 10^5 keys as Python strings took 60 ms."""
        return run_keys(self.spec, self.runs, kernel=self.kernel).astype(str).tolist()

    @property
    def run_columns(self) -> tuple[str, ...]:
        return export.run_columns(self.spec)

    @property
    def cell_columns(self) -> tuple[str, ...]:
        return export.cell_columns(self.spec)

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
            extras=[self.spec.axis_values()[a] for a in self.spec.extra_axes()],
        )

    def cell_rows(self) -> Iterator[list[str]]:
        return export.cell_rows(self.spec, self.cells())

    def cell_csv(self) -> Iterator[bytes]:
        """The cells CSV (header first) as bytes, column-wise, as the service writes it."""
        yield export.csv_lines([export.cell_columns(self.spec)])
        yield from export.cell_csv(self.spec, self.cells())

    def run_csv(self, piece: int = 25_000) -> Iterator[bytes]:
        """The runs CSV (header first) as bytes, a piece of runs at a time, column-wise,
        two pieces formatted at once: the bytes the service's export.csv gives."""
        yield export.csv_lines([export.run_columns(self.spec)])
        writer = export.RunCsv(self.spec, kernel=self.kernel)

        def lines(lo: int) -> bytes:
            rows = np.arange(lo, min(lo + piece, self.total))
            return writer.lines(self.runs.take(rows), self.outcomes.take(rows))

        yield from export.ahead(lines, iter(range(0, self.total, piece)))

    def outcome_counts(self) -> dict[str, int]:
        counts = np.bincount(self.outcomes.code, minlength=len(OUTCOMES))
        return {name: int(c) for name, c in zip(OUTCOMES, counts, strict=True)}

    def boundary(self) -> dict[str, Any]:
        """beta2*(beta1) per slice and beta2* against batch size: GET /boundary's shape."""
        out = analysis.boundaries(self.spec, self.cells())
        out["sqrt_curve"] = analysis.sqrt_curve(self.spec.axis_values()["beta2"])
        return out

    def phase_map(
        self, metric: str = "outcome", x: str | None = None, y: str | None = None, **chosen: Any
    ) -> dict[str, Any]:
        """One slice (batch_size, clip, lr, extra axes by path; omitted = first) over
        (x, y) (beta1, beta2 by default): GET /phase-map's shape."""
        c = self.cells()
        mx, my = analysis.map_axes(self.spec, x, y)
        sl = analysis.slice_index(self.spec, mx, my, **chosen)
        star = None
        if (mx, my) == analysis.MAP_DEFAULT:
            star = analysis.beta2_star(self.spec, analysis.cells_at(self.spec, c, sl), sl)
        return {**analysis.phase_map(self.spec, c, metric, sl, mx, my), "beta2_star": star}


def run_local(
    spec: SweepSpec,
    *,
    device: str = "auto",
    kernel: str = "auto",
    chunk_runs: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> LocalResult:
    """Every chunk of the sweep, in order. kernel `auto` is resolved once for the
    whole sweep (experiments.kernels) before any chunk runs or key is computed."""
    kernel = resolve_kernel(spec, kernel, resolve_device(device))
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
    return LocalResult(spec, runs, outcomes, steps, curves, kernel)


@dataclass(frozen=True)
class Estimate:
    """How long a sweep would take here, from a short timed warm-up of the engine."""

    run_steps: int  # runs x steps
    rate: float  # run-steps per second, measured
    seconds: float  # run_steps / rate, plus each chunk's set-up time
    sample_runs: int  # runs in the warm-up
    sample_steps: int  # steps they took


def estimate(
    spec: SweepSpec,
    *,
    device: str = "auto",
    chunk_runs: int = 50_000,
    kernel: str = "auto",
    clock: Callable[[], float] = time.perf_counter,
) -> Estimate:
    """Time the engine on one chunk's worth of the grid for a few hundred steps, and
    extrapolate.

    The sample is as many runs as a chunk holds, spread over the whole grid (every
    clip mode and batch size weighs as in the sweep), timed at k and 2k steps (k a
    multiple of the engine's minibatch-statistics block), so the difference is the
    per-step cost and the rest is a chunk's set-up. A tiny call first takes the
    one-off costs (for the fused kernel, loading it from numba's cache). The eager
    kernel is timed even for `--kernel compiled`: compiling would cost more than the
    warm-up, and the compiled kernel is rarely slower.
    """
    timed_kernel = "fused" if resolve_kernel(spec, kernel, device) == "fused" else "eager"
    n, steps = spec.total_runs(), spec.steps
    m = min(n, chunk_runs)

    def timed(m: int, k: int) -> float:
        rows = np.unique(np.linspace(0, n - 1, m).round().astype(np.int64))
        short = spec.model_copy(update={"steps": k})
        t0 = clock()
        run_chunk(short, runs_at(spec, rows), device=device, kernel=timed_kernel)
        return clock() - t0

    timed(min(m, 8), min(steps, 8))
    k = min(steps, STATS_STEPS)
    t = timed(m, k)
    run_steps = n * steps
    if 2 * k <= steps and t < 5.0:
        t2 = timed(m, 2 * k)
        # t = setup + k*p and t2 = setup + 2k*p; a noisy pair can make their difference
        # tiny, so p is taken as at least half of what t2 alone would say: errs long
        per_step = max((t2 - t) / k, t2 / (4 * k))
        if per_step > 0:
            setup = max(0.0, t - k * per_step)
            seconds = math.ceil(n / m) * setup + n / m * steps * per_step
            return Estimate(run_steps, m / per_step, seconds, m, 2 * k)
    return Estimate(run_steps, m * k / t, run_steps / (m * k / t), m, k)
