"""A Problem derived from `loss(params, batch)`: gradients from torch.func, vectorized over runs.

A plug-in (or any problem written this way) subclasses AutogradProblem, passes its
initial parameters and its sample count to `__init__`, and writes one method:

    def loss(self, params: dict[str, Tensor], batch: Tensor) -> Tensor:  # a scalar

`params` holds one run's parameters, each tensor the shape it was given. `batch`
is the minibatch as per-sample weights, shape [n_samples], w_i >= 0 summing to 1:
w_i = (how many times sample i was drawn) / batch size, so the minibatch loss is
sum_i w_i loss_i(params) for a finite sum. The full objective, on which every
outcome is judged, is loss(params, uniform weights 1/n). Minibatches are drawn by
experiments.sampling.batch_indices from (seed, batch size, sampling, step), as for
every built-in problem, so runs sharing a seed and batch size see the same samples.

`Vectorized(problem)` is the engine's view (experiments.problems.base.Problem): x
[R, d] holds every run's parameters flattened, one column range per tensor (each
tensor is one parameter tensor for clipping, AdaGC and Adam-mini), and
grad = vmap over runs of torch.func.grad of the loss. The loss must therefore be
a pure function of its arguments (no in-place updates of params, no .item()).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    from experiments.lazy import torch


class AutogradProblem:
    """Subclass, call `super().__init__(params=..., n_samples=...)`, define `loss`.

    Optional: `x_star` (a dict like params, or None) and `f_star` (a float, or None),
    when the optimum is known; rel is then (f - f*)/(f(x0) - f*), else f/f(x0).
    """

    x_star: Mapping[str, Tensor] | None = None
    f_star: float | None = None

    def __init__(self, *, params: Mapping[str, Tensor], n_samples: int):
        if not params:
            raise ValueError("params: at least one tensor")
        for name, t in params.items():
            if not isinstance(t, torch.Tensor):
                raise ValueError(
                    f"params[{name!r}]: must be a torch.Tensor, got {type(t).__name__}"
                )
        try:
            n = operator.index(n_samples)
        except TypeError:
            n = 0
        if isinstance(n_samples, bool) or n < 1:
            raise ValueError(f"n_samples: must be an integer of at least 1, got {n_samples!r}")
        self.params0 = {name: t.detach() for name, t in params.items()}
        self.n_samples = n

    def loss(self, params: dict[str, Tensor], batch: Tensor) -> Tensor:
        """One run's loss on the minibatch whose per-sample weights are `batch`."""
        raise NotImplementedError


class Vectorized:
    """The engine's Problem for an AutogradProblem (see the module docstring)."""

    def __init__(self, problem: AutogradProblem):
        self.problem = problem
        first = next(iter(problem.params0.values()))
        self.dtype, self.device = first.dtype, first.device
        self.names = list(problem.params0)
        self.shapes = [problem.params0[n].shape for n in self.names]
        sizes = [int(problem.params0[n].numel()) for n in self.names]
        self.sizes = sizes
        self.blocks = []
        lo = 0
        for size in sizes:
            self.blocks.append((lo, lo + size))
            lo += size
        self.dim = lo
        self.n_stats = problem.n_samples
        self._x0 = self.flatten(problem.params0)
        self.x_star = None if problem.x_star is None else self.flatten(problem.x_star)
        self.f_star = None if problem.f_star is None else float(problem.f_star)
        self._uniform = torch.full(
            (problem.n_samples,), 1.0 / problem.n_samples, dtype=self.dtype, device=self.device
        )
        from torch.func import grad, vmap

        self._loss_runs = vmap(self._flat_loss, in_dims=(0, None))
        self._grad_runs = vmap(grad(self._flat_loss), in_dims=(0, 0))

    def flatten(self, params: Mapping[str, Tensor]) -> Tensor:
        flat = [torch.as_tensor(params[n]).reshape(-1) for n in self.names]
        return torch.cat([t.to(dtype=self.dtype, device=self.device) for t in flat])

    def unflatten(self, x: Tensor) -> dict[str, Tensor]:
        """One run's flat parameters [d] as the problem's named tensors (views)."""
        parts = torch.split(x, self.sizes)
        return {n: p.reshape(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}

    def _flat_loss(self, x: Tensor, w: Tensor) -> Tensor:
        return self.problem.loss(self.unflatten(x), w)

    def x0(self) -> Tensor:
        return self._x0

    def loss(self, x: Tensor) -> Tensor:
        return self._loss_runs(x, self._uniform)

    def batch_stats(self, *, seed: int, batch_size: int, sampling: str, steps: Tensor) -> Tensor:
        from experiments.sampling import batch_indices

        n = self.problem.n_samples
        if n == 1:
            return torch.ones(steps.shape[0], 1, dtype=self.dtype, device=self.device)
        idx = batch_indices(seed=seed, batch_size=batch_size, sampling=sampling, steps=steps, n=n)
        counts = torch.zeros(idx.shape[0], n, dtype=self.dtype, device=self.device)
        counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=self.dtype))
        return counts / batch_size

    def grad(self, x: Tensor, stats: Tensor) -> Tensor:
        return self._grad_runs(x, stats)

    def project(self, x: Tensor) -> Tensor:
        return x
