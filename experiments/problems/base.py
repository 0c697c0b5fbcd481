"""What every problem provides to the engine, vectorized over R runs (x: [R, d])."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor


class Problem(Protocol):
    """A finite-sum (or online) objective, evaluated for R runs at once.

    `batch_stats` turns the sampled minibatch of one (seed, batch size) stream
    into a small per-step summary [K, S] (e.g. the share of component 0); the
    engine gathers it to the runs of that stream, and `grad` maps it to the
    minibatch gradient. Summaries rather than raw indices keep mixed batch sizes
    in one tensor program.
    """

    dim: int
    blocks: list[tuple[int, int]]  # parameter tensors, as column ranges of x
    n_stats: int

    # Read-only in the protocol, so a problem whose optimum is always known may
    # declare plain Tensor and float attributes.
    @property
    def x_star(self) -> Tensor | None: ...  # [d]

    @property
    def f_star(self) -> float | None: ...

    def x0(self) -> Tensor: ...  # [d]

    def loss(self, x: Tensor) -> Tensor: ...  # full objective, [R]

    def batch_stats(
        self, *, seed: int, batch_size: int, sampling: str, steps: Tensor
    ) -> Tensor: ...  # [K, S]

    def grad(self, x: Tensor, stats: Tensor) -> Tensor: ...  # [R, d]

    def project(self, x: Tensor) -> Tensor: ...
