"""Reddi, Kale, Kumar 2018, 'On the Convergence of Adam and Beyond':
the counterexamples of Theorem 1 (online) and Theorem 3 (stochastic).
"""

from __future__ import annotations

import torch
from torch import Tensor

from experiments.sampling import stream_key, uniform_bits


class _LinearOnInterval:
    """Linear losses on [-1, 1], projected after each step; x* = -1."""

    n_stats = 1

    def __init__(self, *, x0: float, slope: float, dtype: torch.dtype, device: torch.device):
        self.dim = 1
        self.blocks = [(0, 1)]
        self.slope = slope  # of the full objective
        self._x0 = torch.tensor([x0], dtype=dtype, device=device)
        self.x_star = torch.tensor([-1.0], dtype=dtype, device=device)
        self.f_star = -slope
        self.dtype, self.device = dtype, device

    def x0(self) -> Tensor:
        return self._x0

    def loss(self, x: Tensor) -> Tensor:
        return self.slope * x[:, 0]

    def grad(self, x: Tensor, stats: Tensor) -> Tensor:
        return stats.expand_as(x)

    def project(self, x: Tensor) -> Tensor:
        return x.clamp(-1.0, 1.0)


class Reddi2018(_LinearOnInterval):
    """Theorem 1: f_t(x) = C x if t mod 3 = 1, else -x (t = 1, 2, ...), C > 2.

    The full objective is the average over one period, (C-2)/3 * x. Adam with
    beta1 = 0, beta2 = 1/(1+C^2) drifts to x = +1 instead of x* = -1.
    """

    def __init__(self, *, C: float, x0: float, dtype: torch.dtype, device: torch.device):
        super().__init__(x0=x0, slope=(C - 2.0) / 3.0, dtype=dtype, device=device)
        self.C = C

    def batch_stats(self, *, seed: int, batch_size: int, sampling: str, steps: Tensor) -> Tensor:
        big = (steps % 3 == 1).to(self.dtype)[:, None]
        return big * self.C - (1 - big)


class Reddi2018Stochastic(_LinearOnInterval):
    """Theorem 3: each sample is C x with probability p = (1+delta)/(C+1), else -x.

    E f(x) = delta * x on [-1, 1].
    """

    def __init__(
        self, *, C: float, delta: float, x0: float, dtype: torch.dtype, device: torch.device
    ):
        super().__init__(x0=x0, slope=delta, dtype=dtype, device=device)
        self.C = C
        self.p = (1.0 + delta) / (C + 1.0)

    def batch_stats(self, *, seed: int, batch_size: int, sampling: str, steps: Tensor) -> Tensor:
        bits = uniform_bits(stream_key(seed, batch_size, sampling), steps, batch_size)
        big = (bits.to(torch.float64) < self.p * 2.0**32).to(self.dtype)
        w = big.sum(dim=1, keepdim=True) / batch_size
        return w * self.C - (1 - w)
