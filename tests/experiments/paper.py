"""An independent reference for the science tests, written from the papers.

Nothing here comes from the engine: the objective, the component gradients,
the minibatches (numpy's Generator, not the engine's counter hash), Adam's
update, the outcome rule and the boundary are each written again from their
definitions:

- Zhang et al. 2022 (extended), eq. 2.5: f = (1/n) sum_i f_i, a = 1/(n-1)^2,
  f_0' = (1+(n-1)a) h(x), f_i' = -a h(x) (i >= 1), h(x) = 1 for x >= -1 and
  x+2 below; x* = -2, f* = -3/(2n). A minibatch gradient is the mean of b
  component gradients drawn uniformly with replacement.
- Adam (Kingma & Ba 2015) without bias correction, eta_k = lr / sqrt(k):
  m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, x -= eta_k m / (sqrt(v) + eps).
- DESIGN section 5: rel = (f(x_T) - f*)/(f(x0) - f*); converged if rel <= 0.05,
  diverged if x is not finite or rel > 10.
- DESIGN section 6: a cell is converged if more of its seeds converged than
  ended any other way; beta2* is the smallest grid beta2 from which every cell
  up the beta1 column is converged.

It is a per-run loop vectorized over runs with numpy (one array entry per run;
the loop is over steps), so a whole (beta1, beta2, batch, seed) grid costs a
few seconds. As in a sweep, the runs of one (seed, batch size) share their
minibatches: common random numbers keep the boundary crisp.
"""

from __future__ import annotations

import numpy as np


def zhang_loss(x: np.ndarray, n: int) -> np.ndarray:
    return np.where(x >= -1, x / n, ((x + 2.0) ** 2 - 3.0) / (2.0 * n))


def zhang_adam_final_rel(
    *,
    n: int,
    x0: float,
    lr: float,
    eps: float,
    steps: int,
    beta1: np.ndarray,
    beta2: np.ndarray,
    batch_size: int,
    n_seeds: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """rel(x_T) of every (seed, beta1, beta2) at one batch size: [seeds, beta1, beta2]."""
    a = 1.0 / (n - 1) ** 2
    component = np.full(n, -a)
    component[0] = 1.0 + (n - 1) * a  # f_i'(x) = component[i] * h(x)
    b1 = beta1[None, :, None]
    b2 = beta2[None, None, :]
    shape = (n_seeds, len(beta1), len(beta2))
    x = np.full(shape, x0)
    m = np.zeros(shape)
    v = np.zeros(shape)
    block = 1000
    with np.errstate(over="ignore", invalid="ignore"):
        for lo in range(0, steps, block):
            k_hi = min(steps, lo + block)
            draws = rng.integers(0, n, size=(k_hi - lo, n_seeds, batch_size))
            scale = component[draws].mean(axis=2)  # [K, seeds]: one minibatch per seed
            for j, k in enumerate(range(lo + 1, k_hi + 1)):
                h = np.where(x >= -1, 1.0, x + 2.0)
                g = scale[j][:, None, None] * h
                m = b1 * m + (1.0 - b1) * g
                v = b2 * v + (1.0 - b2) * g * g
                x = x - (lr / np.sqrt(k)) * m / (np.sqrt(v) + eps)
        f_star = -3.0 / (2 * n)
        rel = (zhang_loss(x, n) - f_star) / (zhang_loss(np.asarray(x0), n) - f_star)
    return np.where(np.isfinite(x), rel, np.inf)


def converged_cells(rel: np.ndarray, converge_rel: float = 0.05,
                    diverge_rel: float = 10.0) -> np.ndarray:
    """[seeds, ...] final rel -> [...] bool: converged strictly outnumbers each other outcome."""
    diverged = ~(rel <= diverge_rel)
    converged = ~diverged & (rel <= converge_rel)
    other = ~diverged & ~converged
    nc, nd, no = converged.sum(axis=0), diverged.sum(axis=0), other.sum(axis=0)
    return (nc > nd) & (nc > no)


def beta2_star_index(converged: np.ndarray) -> list[int | None]:
    """converged [beta1, beta2] (beta2 ascending) -> per beta1 the index of beta2*, or None."""
    out: list[int | None] = []
    for col in converged:
        if not col[-1]:
            out.append(None)
            continue
        first = len(col) - 1
        while first > 0 and col[first - 1]:
            first -= 1
        out.append(first)
    return out
