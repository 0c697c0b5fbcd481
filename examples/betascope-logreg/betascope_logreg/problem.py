"""f(w, b) = sum_i p_i log(1 + exp(-y_i (x_i . w + b))) + (l2/2) |w|^2, p the minibatch weights.

The data come from numpy's default_rng(data_seed): X = N(0, 1)^{n x dim}, a teacher
w_true = N(0, 1)^dim, labels y = sign(X w_true + N(0, 1)) in {-1, +1} (noisy, so
the classes overlap). The optimum (w*, b*) is found once by Newton's method; the
l2 term makes it unique.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from betascope.problems import AutogradProblem


def make_data(n: int, dim: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(data_seed)
    x = rng.standard_normal((n, dim))
    w_true = rng.standard_normal(dim)
    y = np.sign(x @ w_true + rng.standard_normal(n))
    y[y == 0] = 1.0
    return x, y


def newton_optimum(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """(w*, b*) of the full objective, in float64."""
    a = np.hstack([x, np.ones((len(y), 1))])
    reg = np.full(a.shape[1], l2)
    reg[-1] = 0.0  # the bias is not regularised
    theta = np.zeros(a.shape[1])
    for _ in range(100):
        s = 1.0 / (1.0 + np.exp(y * (a @ theta)))  # sigma(-y z)
        g = -(a.T @ (y * s)) / len(y) + reg * theta
        h = (a.T * (s * (1 - s))) @ a / len(y) + np.diag(reg)
        step = np.linalg.solve(h, g)
        theta -= step
        if np.abs(step).max() < 1e-15:
            break
    return theta


class LogReg(AutogradProblem):
    def __init__(self, spec: Any, *, dtype: torch.dtype, device: torch.device):
        x, y = make_data(spec.n_samples, spec.dim, spec.data_seed)
        theta = newton_optimum(x, y, spec.l2)
        self.X = torch.tensor(x, dtype=dtype, device=device)
        self.y = torch.tensor(y, dtype=dtype, device=device)
        self.l2 = spec.l2
        w0 = torch.full((spec.dim,), spec.x0, dtype=dtype, device=device)
        b0 = torch.full((), spec.x0, dtype=dtype, device=device)
        super().__init__(params={"w": w0, "b": b0}, n_samples=spec.n_samples)
        self.x_star = {
            "w": torch.tensor(theta[:-1], dtype=dtype, device=device),
            "b": torch.tensor(theta[-1], dtype=dtype, device=device),
        }
        self.f_star = float(self.loss(self.x_star, torch.full_like(self.y, 1.0 / len(y))))

    def loss(self, params: dict[str, Tensor], batch: Tensor) -> Tensor:
        z = self.X @ params["w"] + params["b"]
        per_sample = torch.nn.functional.softplus(-self.y * z)
        return (batch * per_sample).sum() + 0.5 * self.l2 * (params["w"] ** 2).sum()
