"""Labels of grid values, for the figures and for `betascope run`'s tables (which
must not wait for plotly to import)."""

from __future__ import annotations


def value_labels(values: list[float]) -> dict[float, str]:
    """Each grid value with as few digits as tell it from its neighbours (0.3, not
    0.30000000000000004); the rounding stays well inside the grid's spacing."""
    vals = sorted(set(float(v) for v in values))
    gaps = [b - a for a, b in zip(vals, vals[1:], strict=False)]
    tol = 0.01 * min(gaps) if gaps else 0.0
    for p in range(1, 17):
        labels = [f"{v:.{p}g}" for v in vals]
        close = all(abs(float(s) - v) <= max(tol, 1e-12 * abs(v)) for s, v in zip(labels, vals,
                                                                                     strict=True))
        if close and len(set(labels)) == len(vals):
            return dict(zip(vals, labels, strict=True))
    return {v: repr(v) for v in vals}
