"""Zhang et al. 2022, 'Adam Can Converge Without Any Modification On Update Rules',
extended version eq. 2.5: a one-dimensional finite sum on which Adam with small
beta2 diverges, while large beta2 (with beta1 < sqrt(beta2)) converges.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from experiments.problems.base import ProblemBase, off_optimum, register

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    from experiments.lazy import torch


class Zhang2022Spec(ProblemBase):
    kind: Literal["zhang2022"]
    eager_chunk_runs: ClassVar[int] = 8192  # a step: about 180 us; a run-step: 6-27 ns
    n: int = Field(20, ge=3, le=100_000)
    x0: float = Field(-0.5, allow_inf_nan=False)

    @field_validator("x0")
    @classmethod
    def _x0(cls, v: float) -> float:
        return off_optimum(v, -2.0)

    def samples(self) -> int:
        return self.n


class Zhang2022:
    """f(x) = (1/n) sum_i f_i(x), a = 1/(n-1)^2, x* = -2, f* = -3/(2n).

    f_0(x) = (1+(n-1)a) x                        for x >= -1
           = ((1+(n-1)a)/2)(x+2)^2 - (3+3(n-1)a)/2  for x < -1
    f_i(x) = -a x                                for x >= -1
           = -(a/2)(x+2)^2 + 3a/2                 for x < -1   (i >= 1)

    Every component gradient is a constant times h(x) = 1 (x >= -1) or x+2
    (x < -1), so a minibatch gradient is s * h(x) with
    s = w0 (1+(n-1)a) - (1-w0) a, w0 the share of component 0 in the batch.
    """

    n_stats = 1
    X_STAR = -2.0

    def __init__(self, *, n: int, x0: float, dtype: torch.dtype, device: torch.device):
        self.n = n
        self.a = 1.0 / (n - 1) ** 2
        self.c0 = 1.0 + (n - 1) * self.a
        self.dim = 1
        self.blocks = [(0, 1)]
        self.x0_value = x0  # the fused kernel reads the constants on the host
        self.f_star = -3.0 / (2 * n)
        self.dtype, self.device = dtype, device

    @classmethod
    def on_host(cls, spec: Zhang2022Spec) -> Zhang2022:
        """The problem's constants only, for the fused kernel: no tensor is made, so
        torch is never loaded (x0() and x_star make theirs on first use, and need a
        dtype and device)."""
        return cls(n=spec.n, x0=spec.x0, dtype=None, device=None)  # type: ignore[arg-type]

    @functools.cached_property
    def _x0(self) -> Tensor:
        return torch.tensor([self.x0_value], dtype=self.dtype, device=self.device)

    @functools.cached_property
    def x_star(self) -> Tensor:
        return torch.tensor([self.X_STAR], dtype=self.dtype, device=self.device)

    def x0(self) -> Tensor:
        return self._x0

    def loss(self, x: Tensor) -> Tensor:
        x = x[:, 0]
        return torch.where(x >= -1, x / self.n, ((x + 2) ** 2 - 3) / (2 * self.n))

    def batch_stats(self, *, seed: int, batch_size: int, sampling: str, steps: Tensor) -> Tensor:
        from experiments.sampling import batch_indices

        idx = batch_indices(
            seed=seed, batch_size=batch_size, sampling=sampling, steps=steps, n=self.n
        )
        w0 = (idx == 0).to(self.dtype).sum(dim=1, keepdim=True) / batch_size
        return w0 * self.c0 - (1 - w0) * self.a

    def grad(self, x: Tensor, stats: Tensor) -> Tensor:
        return stats * torch.where(x >= -1, torch.ones_like(x), x + 2)

    def project(self, x: Tensor) -> Tensor:
        return x


@register(Zhang2022Spec)
def build(spec: Zhang2022Spec, *, dtype: torch.dtype, device: torch.device) -> Zhang2022:
    return Zhang2022(n=spec.n, x0=spec.x0, dtype=dtype, device=device)
