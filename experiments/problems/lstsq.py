"""Finite-sum least squares whose feature blocks have very different scales.

Blocks of different curvature are the Hessian heterogeneity that 'Why
Transformers Need Adam: A Hessian Perspective' (Zhang et al. 2024) points to;
each block is one parameter tensor, so per-tensor clipping (AdaGC) sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field

from experiments.problems.base import ProblemBase, register

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    from experiments.lazy import torch


class LstsqSpec(ProblemBase):
    kind: Literal["lstsq"]
    eager_chunk_runs: ClassVar[int] = 512  # a step: 330-590 us; a run-step: 0.6-1.2 us
    n_samples: int = Field(64, ge=1, le=4096)
    block_scales: list[Annotated[float, Field(gt=0.0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: [1.0, 10.0], min_length=1, max_length=16
    )
    block_dim: int = Field(4, ge=1, le=256)
    noise: float = Field(0.1, ge=0.0, allow_inf_nan=False)
    data_seed: int = Field(0, ge=0)
    x0: float = Field(0.0, allow_inf_nan=False)

    def samples(self) -> int:
        return self.n_samples


class Lstsq:
    """f(x) = 1/(2n) ||A x - y||^2 on seeded synthetic data; x* by a direct solve.

    A minibatch gradient is A^T (w * (A x - y)) with w the sample counts / b.
    """

    def __init__(
        self,
        *,
        n_samples: int,
        block_scales: list[float],
        block_dim: int,
        noise: float,
        data_seed: int,
        x0: float,
        dtype: torch.dtype,
        device: torch.device,
    ):
        rng = np.random.default_rng(data_seed)
        d = block_dim * len(block_scales)
        scales = np.repeat(np.asarray(block_scales, dtype=np.float64), block_dim)
        a = rng.standard_normal((n_samples, d)) * scales / np.sqrt(d)
        x_true = rng.standard_normal(d) / scales
        y = a @ x_true + noise * rng.standard_normal(n_samples)
        x_star = np.linalg.lstsq(a, y, rcond=None)[0]
        r = a @ x_star - y
        self.n = n_samples
        self.n_stats = n_samples
        self.dim = d
        self.blocks = [(i * block_dim, (i + 1) * block_dim) for i in range(len(block_scales))]
        self.A = torch.tensor(a, dtype=dtype, device=device)
        self.y = torch.tensor(y, dtype=dtype, device=device)
        self.x_star = torch.tensor(x_star, dtype=dtype, device=device)
        self.f_star = float(r @ r / (2 * n_samples))
        self._x0 = torch.full((d,), x0, dtype=dtype, device=device)
        self.dtype, self.device = dtype, device

    def x0(self) -> Tensor:
        return self._x0

    def loss(self, x: Tensor) -> Tensor:
        r = _row_by_row(x, self.A.T) - self.y
        return (r * r).sum(dim=1) / (2 * self.n)

    def batch_stats(self, *, seed: int, batch_size: int, sampling: str, steps: Tensor) -> Tensor:
        from experiments.sampling import batch_indices

        idx = batch_indices(
            seed=seed, batch_size=batch_size, sampling=sampling, steps=steps, n=self.n
        )
        counts = torch.zeros(idx.shape[0], self.n, dtype=self.dtype, device=self.device)
        counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=self.dtype))
        return counts / batch_size

    def grad(self, x: Tensor, stats: Tensor) -> Tensor:
        return _row_by_row((_row_by_row(x, self.A.T) - self.y) * stats, self.A)

    def project(self, x: Tensor) -> Tensor:
        return x


@register(LstsqSpec)
def build(spec: LstsqSpec, *, dtype: torch.dtype, device: torch.device) -> Lstsq:
    return Lstsq(
        n_samples=spec.n_samples,
        block_scales=list(spec.block_scales),
        block_dim=spec.block_dim,
        noise=spec.noise,
        data_seed=spec.data_seed,
        x0=spec.x0,
        dtype=dtype,
        device=device,
    )


def _row_by_row(u: Tensor, m: Tensor) -> Tensor:
    """u @ m as a batch of one-row products, [R, k] @ [k, j] -> [R, j].

    One [R, k] @ [k, j] product lets BLAS pick its blocking, and so each row's
    rounding, by R: a run's numbers would then depend on the size of its chunk
    (DESIGN section 3 says they must not), and runs that oscillate about x*
    amplify that last bit to 1e-4 within 2,000 steps. A batch of 1 x k products
    computes every row alone, with the same kernel whatever R is; the expanded
    m is a view, not a copy.
    """
    return torch.bmm(u.unsqueeze(1), m.expand(u.shape[0], *m.shape)).squeeze(1)
