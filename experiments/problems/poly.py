"""The degenerate polynomial of Bai et al. 2026 (arXiv 2603.09581): f(x) = sum_i x_i^k / k.

For k > 2 the Hessian vanishes at x* = 0, so the gradient x^(k-1) shrinks faster
than Adam's second moment can follow: depending on (beta1, beta2), Adam converges
stably, converges through loss spikes (v decays until the effective step is too
large, and the loss jumps), or oscillates like SignGD without converging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from experiments.problems.base import ProblemBase, off_optimum, register

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    from experiments.lazy import torch


class PolySpec(ProblemBase):
    kind: Literal["poly"]
    eager_chunk_runs: ClassVar[int] = 2048  # a step: about 100 us; a run-step: about 40 ns
    k: int = Field(4, ge=2, le=64)
    dim: int = Field(1, ge=1, le=4096)
    x0: float = Field(1.0, allow_inf_nan=False)

    batch_one: ClassVar[str | None] = "is deterministic"

    @field_validator("k")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"must be even (x^k/k is bounded below only for even k); got {v}")
        return v

    @field_validator("x0")
    @classmethod
    def _x0(cls, v: float) -> float:
        return off_optimum(v, 0.0)

    def samples(self) -> int:
        return 1


def int_power(x: Tensor, n: int) -> Tensor:
    """x**n for an integer n >= 1 by repeated squaring: multiplications only, each
    correctly rounded, so a run's value never depends on where in a chunk (vector
    lanes or a scalar tail) it was computed, as a library pow might."""
    result: Tensor | None = None
    base = x
    while n:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if n:
            base = base * base
    assert result is not None
    return result


class Poly:
    """f(x) = sum_i x_i^k / k; grad = x^(k-1); x* = 0, f* = 0. Deterministic."""

    n_stats = 1
    f_star = 0.0

    def __init__(self, *, k: int, dim: int, x0: float, dtype: torch.dtype, device: torch.device):
        self.k = k
        self.dim = dim
        self.blocks = [(0, dim)]
        self._x0 = torch.full((dim,), x0, dtype=dtype, device=device)
        self.x_star = torch.zeros(dim, dtype=dtype, device=device)
        self.dtype, self.device = dtype, device

    def x0(self) -> Tensor:
        return self._x0

    def loss(self, x: Tensor) -> Tensor:
        return int_power(x, self.k).sum(dim=1) / self.k

    def batch_stats(self, *, seed: int, batch_size: int, sampling: str, steps: Tensor) -> Tensor:
        return torch.zeros(steps.shape[0], 1, dtype=self.dtype, device=self.device)

    def grad(self, x: Tensor, stats: Tensor) -> Tensor:
        return int_power(x, self.k - 1)

    def project(self, x: Tensor) -> Tensor:
        return x


@register(PolySpec)
def build(spec: PolySpec, *, dtype: torch.dtype, device: torch.device) -> Poly:
    return Poly(k=spec.k, dim=spec.dim, x0=spec.x0, dtype=dtype, device=device)
