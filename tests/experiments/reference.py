"""Independent per-run references for the vectorized engine.

Both take one run (one configuration) at a time and get their gradient from
the problem's own `grad` at R = 1 with the full-batch summary of each step, so
what they check is the optimizer, clipping and schedule, not the problem.

- `torch_reference`: torch.optim.Adam / AdamW with torch.nn.utils.clip_grad_norm_
  or clip_grad_value_, one optimizer per configuration and one torch Parameter
  per parameter tensor (block), so clip_grad_norm_ sees several tensors; in
  the spec's dtype (a float32 sweep is held to torch.optim in float32).
- `loop_reference`: plain numpy, written from the formulas of DESIGN section 4,
  for what torch.optim cannot express (bias correction off, the inv_sqrt
  schedule, AdaGC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from experiments.problems import build_problem

NORM_EPS = 1e-6  # DESIGN section 4, as clip_grad_norm_ and AdaGC's code


@dataclass(frozen=True)
class Final:
    x: np.ndarray  # [d]
    m: np.ndarray
    v: np.ndarray
    n_clipped: int  # steps on which clipping changed the gradient


class FullBatch:
    """A problem with its deterministic per-step gradient, at R = 1."""

    def __init__(self, spec: Any):
        self.dtype = torch.float64 if spec.dtype == "float64" else torch.float32
        self.problem = build_problem(spec.problem, dtype=self.dtype, device=torch.device("cpu"))
        batch = spec.grid.batch_size[0]
        steps = torch.arange(1, spec.steps + 1, dtype=torch.int64)
        self.stats = self.problem.batch_stats(
            seed=0, batch_size=batch, sampling=spec.sampling, steps=steps
        )
        self.blocks = self.problem.blocks
        # Only the Reddi problems live on an interval; skipping the identity
        # projection elsewhere halves the references' running time.
        self.bounded = spec.problem.kind.startswith("reddi2018")

    def x0(self) -> np.ndarray:
        return self.problem.x0().numpy().copy()

    def grad_t(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The gradient at step k (1-based), for x of shape [d]."""
        return self.problem.grad(x[None, :], self.stats[k - 1][None, :])[0]

    def grad(self, x: np.ndarray, k: int) -> np.ndarray:
        return self.grad_t(torch.from_numpy(x), k).numpy().copy()

    def project(self, x: np.ndarray) -> np.ndarray:
        if not self.bounded:
            return x
        return self.problem.project(torch.from_numpy(x)[None, :])[0].numpy().copy()


def torch_reference(
    spec: Any, fb: FullBatch, *, beta1: float, beta2: float, lr: float, clip: Any
) -> Final:
    opt_spec = spec.optimizer
    assert opt_spec.bias_correction and opt_spec.schedule == "constant"
    x0 = torch.from_numpy(fb.x0())
    params = [torch.nn.Parameter(x0[a:b].clone()) for a, b in fb.blocks]
    kwargs = {"lr": lr, "betas": (beta1, beta2), "eps": opt_spec.eps}
    if opt_spec.kind == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(
            params, weight_decay=opt_spec.weight_decay, **kwargs
        )
    else:
        opt = torch.optim.Adam(params, **kwargs)
    n_clipped = 0
    for k in range(1, spec.steps + 1):
        with torch.no_grad():
            g = fb.grad_t(torch.cat(params), k)
        for p, (a, b) in zip(params, fb.blocks, strict=True):
            p.grad = g[a:b].clone()
        if clip.mode == "global_norm":
            norm = torch.nn.utils.clip_grad_norm_(params, clip.threshold)
            n_clipped += bool(clip.threshold / (float(norm) + NORM_EPS) < 1.0)
        elif clip.mode == "value":
            n_clipped += bool((g.abs() > clip.threshold).any())
            torch.nn.utils.clip_grad_value_(params, clip.threshold)
        else:
            assert clip.mode == "none"
        opt.step()
        if fb.bounded:
            with torch.no_grad():
                x = fb.problem.project(torch.cat(params)[None, :])[0]
                for p, (a, b) in zip(params, fb.blocks, strict=True):
                    p.copy_(x[a:b])

    def cat(key: str) -> np.ndarray:
        return torch.cat([opt.state[p][key] for p in params]).numpy()

    x = torch.cat([p.detach() for p in params]).numpy()
    return Final(x, cat("exp_avg"), cat("exp_avg_sq"), n_clipped)


def loop_reference(
    spec: Any, fb: FullBatch, *, beta1: float, beta2: float, lr: float, clip: Any
) -> Final:
    """DESIGN section 4 step by step, one run, numpy float64."""
    assert fb.dtype == torch.float64, "the loop reference is float64 only"
    opt = spec.optimizer
    x = fb.x0()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    blocks = fb.blocks
    gamma = [math.inf] * len(blocks)  # AdaGC's reference norm per tensor
    n_clipped = 0
    for k in range(1, spec.steps + 1):
        g = fb.grad(x, k)
        g, clipped = _clip(g, clip, k, blocks, gamma)
        n_clipped += clipped
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        if opt.bias_correction:
            m_hat = m / (1.0 - beta1**k)
            v_hat = v / (1.0 - beta2**k)
        else:
            m_hat, v_hat = m, v
        eta = lr / math.sqrt(k) if opt.schedule == "inv_sqrt" else lr
        step = eta * m_hat / (np.sqrt(v_hat) + opt.eps)
        if opt.kind == "adamw":
            step = step + eta * opt.weight_decay * x  # decoupled: on x before the step
        x = fb.project(x - step)
    return Final(x, m, v, n_clipped)


def _clip(
    g: np.ndarray, clip: Any, k: int, blocks: list[tuple[int, int]], gamma: list[float]
) -> tuple[np.ndarray, bool]:
    g = g.copy()
    if clip.mode == "none":
        return g, False
    if clip.mode == "value":
        clipped = bool((np.abs(g) > clip.threshold).any())
        return np.clip(g, -clip.threshold, clip.threshold), clipped
    norms = [float(np.linalg.norm(g[a:b])) for a, b in blocks]
    if clip.mode == "global_norm" or k <= clip.warmup:
        total = math.sqrt(sum(n * n for n in norms))
        coef = clip.threshold / (total + NORM_EPS)
        clipped = coef < 1.0
        if clipped:
            g *= coef
        if clip.mode == "adagc":
            for i, (a, b) in enumerate(blocks):
                gamma[i] = min(gamma[i], float(np.linalg.norm(g[a:b])))
        return g, clipped
    clipped = False
    for i, (a, b) in enumerate(blocks):
        norm = norms[i]
        limit = clip.ratio * gamma[i]
        if norm > limit:
            g[a:b] *= limit / (norm + NORM_EPS)
            norm = float(np.linalg.norm(g[a:b]))
            clipped = True
        gamma[i] = clip.beta * gamma[i] + (1.0 - clip.beta) * norm
    return g, clipped
