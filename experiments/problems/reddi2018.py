"""Reddi, Kale, Kumar 2018, 'On the Convergence of Adam and Beyond':
the counterexamples of Theorem 1 (online) and Theorem 3 (stochastic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from experiments.problems.base import ProblemBase, off_optimum, register

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    from experiments.lazy import torch


class Reddi2018Spec(ProblemBase):
    kind: Literal["reddi2018"]
    eager_chunk_runs: ClassVar[int] = 2048  # a step: about 130 us; a run-step: 66 ns
    C: float = Field(3.0, gt=2.0, allow_inf_nan=False)
    x0: float = Field(0.0, ge=-1.0, le=1.0)

    batch_one: ClassVar[str | None] = "is an online sequence of losses"

    @field_validator("x0")
    @classmethod
    def _x0(cls, v: float) -> float:
        return off_optimum(v, -1.0)

    def samples(self) -> int:
        return 1  # one function per step


class Reddi2018StochasticSpec(ProblemBase):
    kind: Literal["reddi2018_stochastic"]
    eager_chunk_runs: ClassVar[int] = 2048  # a step: about 130 us; a run-step: 66 ns
    C: float = Field(3.0, gt=2.0, allow_inf_nan=False)
    delta: float = Field(0.1, gt=0.0, allow_inf_nan=False)
    x0: float = Field(0.0, ge=-1.0, le=1.0)

    @field_validator("x0")
    @classmethod
    def _x0(cls, v: float) -> float:
        return off_optimum(v, -1.0)

    @model_validator(mode="after")
    def _probability(self) -> Reddi2018StochasticSpec:
        if (1.0 + self.delta) / (self.C + 1.0) >= 1.0:
            raise ValueError("delta: needs (1 + delta) / (C + 1) < 1")
        return self

    def samples(self) -> int:
        return 1_000_000  # i.i.d. draws: any batch size up to a sane bound

    def grid_errors(self, batch_sizes: list[int], sampling: str) -> list[tuple[str, str]]:
        errors = super().grid_errors(batch_sizes, sampling)
        if sampling == "reshuffle":
            errors.append(
                ("sampling", "reddi2018_stochastic draws i.i.d. samples; use with_replacement")
            )
        return errors


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
        from experiments.sampling import stream_key, uniform_bits

        bits = uniform_bits(stream_key(seed, batch_size, sampling), steps, batch_size)
        big = (bits.to(torch.float64) < self.p * 2.0**32).to(self.dtype)
        w = big.sum(dim=1, keepdim=True) / batch_size
        return w * self.C - (1 - w)


@register(Reddi2018Spec)
def build(spec: Reddi2018Spec, *, dtype: torch.dtype, device: torch.device) -> Reddi2018:
    return Reddi2018(C=spec.C, x0=spec.x0, dtype=dtype, device=device)


@register(Reddi2018StochasticSpec)
def build_stochastic(
    spec: Reddi2018StochasticSpec, *, dtype: torch.dtype, device: torch.device
) -> Reddi2018Stochastic:
    return Reddi2018Stochastic(C=spec.C, delta=spec.delta, x0=spec.x0, dtype=dtype, device=device)
