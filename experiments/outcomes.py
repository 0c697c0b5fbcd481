"""Outcome rules (DESIGN section 5): converged, not converged or diverged, per run.

rel(x) = (f(x) - f*) / (f(x0) - f*) where f* is known, else f(x) / f(x0).
diverged: a non-finite x or f at any checkpoint, or rel(x_T) > diverge_rel;
    div_step is the first checkpoint at which f was non-finite or rel exceeded
    diverge_rel.
converged: rel(x_T) <= converge_rel.  not_converged: otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OUTCOMES = ("converged", "not_converged", "diverged")
CONVERGED, NOT_CONVERGED, DIVERGED = range(3)
MIN_CHECKPOINTS = 32


def checkpoint_steps(steps: int) -> list[int]:
    """At least min(steps, 32) distinct log-spaced steps in [1, steps], always ending at steps."""
    want = min(steps, MIN_CHECKPOINTS)
    num = want
    while True:
        pts = np.unique(np.round(np.geomspace(1, steps, num)).astype(np.int64))
        if len(pts) >= want:
            return [int(p) for p in pts]
        num += 1


@dataclass(frozen=True)
class Outcomes:
    """Per-run summary arrays, one entry per run."""

    code: np.ndarray  # int8: index into OUTCOMES
    final_loss: np.ndarray  # float64, may be nan or inf
    final_rel: np.ndarray
    final_gap: np.ndarray
    div_step: np.ndarray  # int64, -1 where not diverged
    clip_fraction: np.ndarray

    @property
    def labels(self) -> list[str]:
        return [OUTCOMES[c] for c in self.code.tolist()]

    @staticmethod
    def gather(parts: list[tuple[np.ndarray, Outcomes]], n: int) -> Outcomes:
        """Reassemble groups (rows, outcomes) into one table of n runs."""
        code = np.zeros(n, dtype=np.int8)
        cols = {k: np.full(n, np.nan) for k in ("final_loss", "final_rel", "final_gap")}
        div = np.full(n, -1, dtype=np.int64)
        clip = np.zeros(n)
        for rows, o in parts:
            code[rows] = o.code
            for k, arr in cols.items():
                arr[rows] = getattr(o, k)
            div[rows] = o.div_step
            clip[rows] = o.clip_fraction
        return Outcomes(code, cols["final_loss"], cols["final_rel"], cols["final_gap"], div, clip)


def relative(f: np.ndarray, f0: float, f_star: float | None) -> np.ndarray:
    with np.errstate(all="ignore"):
        if f_star is None:
            return f / f0
        return (f - f_star) / (f0 - f_star)


def classify(
    *,
    curves: np.ndarray,
    ckpts: list[int],
    x_finite: np.ndarray,
    gap: np.ndarray,
    f0: float,
    f_star: float | None,
    criteria: object,
    n_clipped: np.ndarray,
    steps: int,
) -> Outcomes:
    """Apply the outcome rules to loss curves [R, C] taken at checkpoint steps `ckpts`."""
    converge_rel = float(criteria.converge_rel)  # type: ignore[attr-defined]
    diverge_rel = float(criteria.diverge_rel)  # type: ignore[attr-defined]
    rel = relative(curves, f0, f_star)
    nonfinite = ~np.isfinite(curves)
    with np.errstate(invalid="ignore"):
        bad = nonfinite | (rel > diverge_rel)
    final_rel = rel[:, -1]
    with np.errstate(invalid="ignore"):
        diverged = nonfinite.any(axis=1) | ~x_finite | ~(final_rel <= diverge_rel)
        converged = ~diverged & (final_rel <= converge_rel)
    code = np.where(diverged, DIVERGED, np.where(converged, CONVERGED, NOT_CONVERGED))
    first_bad = np.where(bad.any(axis=1), np.argmax(bad, axis=1), len(ckpts) - 1)
    div_step = np.where(diverged, np.asarray(ckpts, dtype=np.int64)[first_bad], -1)
    return Outcomes(
        code=code.astype(np.int8),
        final_loss=curves[:, -1].astype(np.float64),
        final_rel=final_rel.astype(np.float64),
        final_gap=gap.astype(np.float64),
        div_step=div_step.astype(np.int64),
        clip_fraction=n_clipped.astype(np.float64) / steps,
    )
