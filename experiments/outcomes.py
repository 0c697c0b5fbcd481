"""Outcome rules (DESIGN section 5): converged, not converged or diverged, per run.

rel(x) = (f(x) - f*) / (f(x0) - f*) where f* is known, else f(x) / f(x0).
diverged: a non-finite x or f at any checkpoint, or rel(x_T) > diverge_rel;
    div_step is the first checkpoint at which f was non-finite or rel exceeded
    diverge_rel.
converged: rel(x_T) <= converge_rel.  not_converged: otherwise.
max_rise: the largest factor by which rel rose above its running minimum, over
    every step k >= c1 (the first checkpoint): max_k rel_k / max(m_k, floor) with
    m_k = min_{c1 <= j <= k} rel_j and floor = converge_rel (at least the dtype's
    smallest normal number): jitter inside the converged band, however large a
    factor over a tiny running minimum, is not a spike; a rise counts from the
    convergence threshold up. Steps with a non-finite rel are skipped; 1.0 if rel
    never rose. The engine
    measures it at every step (see experiments.engine), so a spike between two
    checkpoints counts.  spiky: max_rise >= spike_rise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OUTCOMES = ("converged", "not_converged", "diverged")
CONVERGED, NOT_CONVERGED, DIVERGED = range(3)
# a cell's regime (the map metric `regime`, experiments.analysis): its majority
# outcome, with converged cells split by whether most converged seeds were spiky
REGIMES = ("converged", "converged_spiky", "not_converged", "diverged")
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
    max_rise: np.ndarray  # float64, >= 1; nan where not measured (results stored before it)
    spiky: np.ndarray  # bool: max_rise >= criteria.spike_rise (False where max_rise is nan)

    @property
    def labels(self) -> list[str]:
        return [OUTCOMES[c] for c in self.code.tolist()]

    def take(self, rows: np.ndarray) -> Outcomes:
        return Outcomes(**{f: getattr(self, f)[rows] for f in self.__dataclass_fields__})

    @staticmethod
    def gather(parts: list[tuple[np.ndarray, Outcomes]], n: int) -> Outcomes:
        """Reassemble groups (rows, outcomes) into one table of n runs."""
        cols = {
            "code": np.zeros(n, dtype=np.int8),
            "final_loss": np.full(n, np.nan),
            "final_rel": np.full(n, np.nan),
            "final_gap": np.full(n, np.nan),
            "div_step": np.full(n, -1, dtype=np.int64),
            "clip_fraction": np.zeros(n),
            "max_rise": np.full(n, np.nan),
            "spiky": np.zeros(n, dtype=bool),
        }
        for rows, o in parts:
            for k, arr in cols.items():
                arr[rows] = getattr(o, k)
        return Outcomes(**cols)


def relative(f: np.ndarray, f0: float, f_star: float | None) -> np.ndarray:
    with np.errstate(all="ignore"):
        if f_star is None:
            return f / f0
        return (f - f_star) / (f0 - f_star)


def rise_floor(converge_rel: float, tiny: float) -> float:
    """The running minimum's floor in max_rise: the convergence threshold (a rise
    counts from there up), never below the dtype's smallest normal number."""
    return max(float(converge_rel), tiny)


def is_spiky(max_rise: np.ndarray, criteria: object) -> np.ndarray:
    """spiky per run (False where max_rise is nan: not measured)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(max_rise) >= float(criteria.spike_rise)  # type: ignore[attr-defined]


def curve_summary(
    curves: np.ndarray, f0: float, f_star: float | None, diverge_rel: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per run of curves [R, C]: whether some checkpoint f is non-finite, the index of
    the first bad checkpoint (f non-finite or rel above diverge_rel; C - 1 if none)
    and rel at the last checkpoint. The fused kernel has a one-pass twin
    (fused_kernels.curve_summary), tested equal to this."""
    rel = relative(curves, f0, f_star)
    nonfinite = ~np.isfinite(curves)
    with np.errstate(invalid="ignore"):
        bad = nonfinite | (rel > diverge_rel)
    first_bad = np.where(bad.any(axis=1), np.argmax(bad, axis=1), curves.shape[1] - 1)
    return nonfinite.any(axis=1), first_bad, rel[:, -1]


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
    max_rise: np.ndarray,
    summary: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Outcomes:
    """Apply the outcome rules to loss curves [R, C] taken at checkpoint steps `ckpts`
    (max_rise: measured by the engine at every step; summary: curve_summary's
    result where the caller has it already)."""
    converge_rel = float(criteria.converge_rel)  # type: ignore[attr-defined]
    diverge_rel = float(criteria.diverge_rel)  # type: ignore[attr-defined]
    if summary is None:
        summary = curve_summary(curves, f0, f_star, diverge_rel)
    any_nonfinite, first_bad, final_rel = summary
    with np.errstate(invalid="ignore"):
        diverged = any_nonfinite | ~x_finite | ~(final_rel <= diverge_rel)
        converged = ~diverged & (final_rel <= converge_rel)
    code = np.where(diverged, DIVERGED, np.where(converged, CONVERGED, NOT_CONVERGED))
    div_step = np.where(diverged, np.asarray(ckpts, dtype=np.int64)[first_bad], -1)
    return Outcomes(
        code=code.astype(np.int8),
        final_loss=curves[:, -1].astype(np.float64),
        final_rel=final_rel.astype(np.float64),
        final_gap=gap.astype(np.float64),
        div_step=div_step.astype(np.int64),
        clip_fraction=n_clipped.astype(np.float64) / steps,
        max_rise=np.asarray(max_rise, dtype=np.float64),
        spiky=is_spiky(max_rise, criteria),
    )
