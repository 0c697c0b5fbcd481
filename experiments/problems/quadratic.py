"""A block-heterogeneous quadratic, after 'Why Transformers Need Adam: A Hessian
Perspective' (Zhang et al. 2024).

f(x) = 1/2 sum_b (x_b - x*_b)^T H_b (x_b - x*_b), H_b = Q_b diag(lambda_b) Q_b^T, with
lambda_b log-spaced over the block's `eig: [lo, hi]` and Q_b a random orthogonal
matrix. When the blocks' spectra lie far apart (heterogeneous), one lr cannot suit
every block and SGD crawls where Adam's per-coordinate scaling does not; when every
block spans the same range (homogeneous), Adam's advantage shrinks. Each block is
one parameter tensor (for global-norm clipping, AdaGC and Adam-mini).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field, field_validator

from experiments.numbers import SpecModel
from experiments.problems.base import ProblemBase, register
from experiments.problems.lstsq import _row_by_row

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    from experiments.lazy import torch

MAX_DIM = 4096  # coordinates in all blocks together
MAX_BLOCK_DIM = 1024  # a block's Hessian is dense: dim**2 numbers per block


class QuadraticBlock(SpecModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dim: int = Field(ge=1, le=MAX_BLOCK_DIM)
    eig: tuple[float, float]  # [lo, hi]: the block's eigenvalues are log-spaced over it

    @field_validator("eig")
    @classmethod
    def _eig(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not (0.0 < lo <= hi < float("inf")):
            raise ValueError("must be [lo, hi] with 0 < lo <= hi, finite")
        return v


class QuadraticSpec(ProblemBase):
    kind: Literal["quadratic"]
    eager_chunk_runs: ClassVar[int] = 2048  # a step: about 220 us; a run-step: too small to see
    blocks: list[QuadraticBlock] = Field(min_length=1, max_length=64)
    noise: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    data_seed: int = Field(0, ge=0)
    x0: float = Field(0.0, allow_inf_nan=False)

    @field_validator("blocks")
    @classmethod
    def _total(cls, v: list[QuadraticBlock]) -> list[QuadraticBlock]:
        total = sum(b.dim for b in v)
        if total > MAX_DIM:
            raise ValueError(f"the blocks have {total} coordinates; at most {MAX_DIM}")
        return v

    def samples(self) -> int:
        # Online: each sample is a fresh Gaussian draw, and a batch of b is drawn
        # as one N(0, noise^2 / b) vector, so any batch size costs the same.
        return 1_000_000

    def grid_errors(self, batch_sizes: list[int], sampling: str) -> list[tuple[str, str]]:
        errors = super().grid_errors(batch_sizes, sampling)
        if sampling == "reshuffle":
            errors.append(("sampling", "quadratic draws Gaussian noise; use with_replacement"))
        return errors


def haar_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A Haar-distributed orthogonal matrix: QR of a Gaussian matrix with the signs of
    R's diagonal moved into Q (Mezzadri 2007, 'How to generate random matrices')."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


class Quadratic:
    """f(x) = 1/2 sum_b (x_b - x*_b)^T H_b (x_b - x*_b); x* known, f* = 0.

    Data from numpy's default_rng(data_seed), in this order: x* ~ N(0, I_d), then
    Q_1, Q_2, ... (haar_orthogonal, block by block). A stochastic gradient is
    H (x - x*) + xi with xi ~ N(0, noise^2 / b) per coordinate, the mean of b
    independent N(0, noise^2) samples, drawn by experiments.sampling.normals from
    (seed, b, step): the summary of a step is xi itself.
    """

    f_star = 0.0

    def __init__(
        self,
        *,
        blocks: list[tuple[int, tuple[float, float]]],
        noise: float,
        data_seed: int,
        x0: float,
        dtype: torch.dtype,
        device: torch.device,
    ):
        rng = np.random.default_rng(data_seed)
        d = sum(dim for dim, _ in blocks)
        x_star = rng.standard_normal(d)
        self.dim = d
        self.n_stats = d
        self.noise = noise
        self.blocks: list[tuple[int, int]] = []
        self.eigs: list[np.ndarray] = []
        self.H: list[Tensor] = []
        lo = 0
        for dim, (e_lo, e_hi) in blocks:
            lam = np.geomspace(e_lo, e_hi, dim)
            q = haar_orthogonal(rng, dim)
            h = (q * lam) @ q.T
            self.blocks.append((lo, lo + dim))
            self.eigs.append(lam)
            self.H.append(torch.tensor((h + h.T) / 2, dtype=dtype, device=device))
            lo += dim
        self.x_star = torch.tensor(x_star, dtype=dtype, device=device)
        self._x0 = torch.full((d,), x0, dtype=dtype, device=device)
        self.dtype, self.device = dtype, device

    def x0(self) -> Tensor:
        return self._x0

    def _hessian_times(self, y: Tensor) -> Tensor:
        return torch.cat(
            [_row_by_row(y[:, a:b], h) for (a, b), h in zip(self.blocks, self.H, strict=True)],
            dim=1,
        )

    def loss(self, x: Tensor) -> Tensor:
        y = x - self.x_star
        return (y * self._hessian_times(y)).sum(dim=1) / 2

    def batch_stats(self, *, seed: int, batch_size: int, sampling: str, steps: Tensor) -> Tensor:
        if self.noise == 0.0:
            return torch.zeros(steps.shape[0], self.dim, dtype=self.dtype, device=self.device)
        from experiments.sampling import normals

        z = normals(seed=seed, batch_size=batch_size, steps=steps, n=self.dim)
        return (z * (self.noise / batch_size**0.5)).to(self.dtype)

    def grad(self, x: Tensor, stats: Tensor) -> Tensor:
        return self._hessian_times(x - self.x_star) + stats

    def project(self, x: Tensor) -> Tensor:
        return x


@register(QuadraticSpec)
def build(spec: QuadraticSpec, *, dtype: torch.dtype, device: torch.device) -> Quadratic:
    return Quadratic(
        blocks=[(b.dim, b.eig) for b in spec.blocks],
        noise=spec.noise,
        data_seed=spec.data_seed,
        x0=spec.x0,
        dtype=dtype,
        device=device,
    )
