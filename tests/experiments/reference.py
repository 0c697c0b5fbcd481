"""Independent per-run references for the vectorized engine.

Both take one run (one configuration) at a time and get their gradient from
the problem's own `grad` at R = 1 with the full-batch summary of each step, so
what they check is the optimizer, clipping and schedule, not the problem.

- `torch_reference`: torch.optim.Adam / AdamW (amsgrad), SGD, RMSprop and
  Adagrad with torch.nn.utils.clip_grad_norm_ or clip_grad_value_ (AdaGC by the
  loop's rule), one optimizer per configuration and one torch Parameter per
  parameter tensor (block), so clip_grad_norm_ sees several tensors; in
  the spec's dtype (a float32 sweep is held to torch.optim in float32).
- `loop_reference`: plain numpy, written from the formulas of DESIGN section 4,
  for what torch.optim cannot express (bias correction off, the inv_sqrt and
  warmup_cosine schedules, AdaGC, Lion, Signum, Adam-mini).
- `rise_reference`: a run's max_rise (DESIGN section 5) from loop_reference's
  parameters after every step, in a plain Python loop over steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from experiments.problems import build_problem

NORM_EPS = 1e-6  # DESIGN section 4, as clip_grad_norm_ and AdaGC's code


@dataclass(frozen=True)
class Final:
    x: np.ndarray  # [d]
    m: np.ndarray | None  # the kind's first moment (momentum buffer); None: it keeps none
    v: np.ndarray | None  # the kind's second moment (accumulator); None: it keeps none
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

    def loss(self, x: np.ndarray) -> float:
        """The full objective at x [d], from the problem's own loss at R = 1."""
        return float(self.problem.loss(torch.from_numpy(x)[None, :])[0])

    def grad(self, x: np.ndarray, k: int) -> np.ndarray:
        return self.grad_t(torch.from_numpy(x), k).numpy().copy()

    def project(self, x: np.ndarray) -> np.ndarray:
        if not self.bounded:
            return x
        return self.problem.project(torch.from_numpy(x)[None, :])[0].numpy().copy()


def _torch_optimizer(opt_spec: Any, params: list, beta1: float, beta2: float, lr: float):
    """The torch.optim optimizer of a configuration, and its state keys for m and v."""
    kind = opt_spec.kind
    if kind in ("adam", "adamw"):
        kwargs = {"lr": lr, "betas": (beta1, beta2), "eps": opt_spec.eps,
                  "amsgrad": opt_spec.amsgrad}
        if kind == "adamw":
            return torch.optim.AdamW(params, weight_decay=opt_spec.weight_decay, **kwargs), (
                "exp_avg", "exp_avg_sq")
        return torch.optim.Adam(params, **kwargs), ("exp_avg", "exp_avg_sq")
    if kind == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=beta1, dampening=opt_spec.dampening,
            nesterov=opt_spec.nesterov, weight_decay=opt_spec.weight_decay,
        ), ("momentum_buffer", None)
    if kind == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=lr, alpha=beta2, eps=opt_spec.eps, momentum=beta1,
            centered=opt_spec.centered,
        ), ("momentum_buffer", "square_avg")
    if kind == "adagrad":
        return torch.optim.Adagrad(
            params, lr=lr, eps=opt_spec.eps,
            initial_accumulator_value=opt_spec.initial_accumulator_value,
        ), (None, "sum")
    raise AssertionError(f"torch.optim has no {kind}")


def torch_reference(
    spec: Any, fb: FullBatch, *, beta1: float, beta2: float, lr: float, clip: Any
) -> Final:
    """torch.optim per configuration; clipping by torch.nn.utils (AdaGC by _clip below,
    torch has none) on the gradient before opt.step()."""
    opt_spec = spec.optimizer
    assert getattr(opt_spec, "bias_correction", True) and opt_spec.schedule == "constant"
    x0 = torch.from_numpy(fb.x0())
    params = [torch.nn.Parameter(x0[a:b].clone()) for a, b in fb.blocks]
    opt, (m_key, v_key) = _torch_optimizer(opt_spec, params, beta1, beta2, lr)
    gamma = [math.inf] * len(fb.blocks)
    n_clipped = 0
    for k in range(1, spec.steps + 1):
        with torch.no_grad():
            g = fb.grad_t(torch.cat(params), k)
        if clip.mode == "adagc":
            g_np, clipped = _clip(g.numpy(), clip, k, fb.blocks, gamma)
            n_clipped += clipped
            g = torch.from_numpy(g_np)
        for p, (a, b) in zip(params, fb.blocks, strict=True):
            p.grad = g[a:b].clone()
        if clip.mode == "global_norm":
            norm = torch.nn.utils.clip_grad_norm_(params, clip.threshold)
            n_clipped += bool(clip.threshold / (float(norm) + NORM_EPS) < 1.0)
        elif clip.mode == "value":
            n_clipped += bool((g.abs() > clip.threshold).any())
            torch.nn.utils.clip_grad_value_(params, clip.threshold)
        else:
            assert clip.mode in ("none", "adagc")
        opt.step()
        if fb.bounded:
            with torch.no_grad():
                x = fb.problem.project(torch.cat(params)[None, :])[0]
                for p, (a, b) in zip(params, fb.blocks, strict=True):
                    p.copy_(x[a:b])

    def cat(key: str | None) -> np.ndarray | None:
        if key is None or key not in opt.state[params[0]]:
            return None
        return torch.cat([opt.state[p][key] for p in params]).numpy()

    x = torch.cat([p.detach() for p in params]).numpy()
    return Final(x, cat(m_key), cat(v_key), n_clipped)


def learning_rate(opt: Any, k: int, steps: int, lr: float) -> float:
    """eta_k of DESIGN section 4, written out again for the reference."""
    if opt.schedule == "inv_sqrt":
        return lr / math.sqrt(k)
    if opt.schedule == "warmup_cosine":
        w, f = opt.warmup_steps, opt.final_lr_ratio
        if k <= w:
            return lr * k / w
        return lr * (f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * (k - w) / (steps - w))))
    return lr


def loop_reference(
    spec: Any,
    fb: FullBatch,
    *,
    beta1: float,
    beta2: float,
    lr: float,
    clip: Any,
    on_step: Callable[[int, np.ndarray], None] | None = None,
) -> Final:
    """DESIGN section 4 step by step, one run, numpy float64: every kind, from its
    paper (Lion: Chen et al. 2023 Alg. 2; Signum: Bernstein et al. 2018 Alg. 1;
    Adam-mini: Zhang et al. 2024's rule), every schedule. on_step(k, x) sees the
    parameters after each step k."""
    assert fb.dtype == torch.float64, "the loop reference is float64 only"
    opt = spec.optimizer
    kind = opt.kind
    x = fb.x0()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    blocks = fb.blocks
    if kind == "adagrad":
        v = np.full_like(x, opt.initial_accumulator_value)
    v_max = np.zeros_like(x)
    g_avg = np.zeros_like(x)
    v_block = [0.0] * len(blocks)  # Adam-mini's one v per tensor
    gamma = [math.inf] * len(blocks)  # AdaGC's reference norm per tensor
    n_clipped = 0
    keeps_m, keeps_v = True, kind in ("adam", "adamw", "rmsprop", "adagrad", "adam_mini")
    for k in range(1, spec.steps + 1):
        g = fb.grad(x, k)
        g, clipped = _clip(g, clip, k, blocks, gamma)
        n_clipped += clipped
        eta = learning_rate(opt, k, spec.steps, lr)
        if kind in ("adam", "adamw"):
            m = beta1 * m + (1.0 - beta1) * g
            v = beta2 * v + (1.0 - beta2) * g * g
            v_max = np.maximum(v_max, v)
            s = v_max if opt.amsgrad else v
            if opt.bias_correction:
                m_hat = m / (1.0 - beta1**k)
                s_hat = s / (1.0 - beta2**k)
            else:
                m_hat, s_hat = m, s
            step = eta * m_hat / (np.sqrt(s_hat) + opt.eps)
            if kind == "adamw":
                step = step + eta * opt.weight_decay * x  # decoupled: on x before the step
        elif kind == "sgd":
            g = g + opt.weight_decay * x
            m = g if k == 1 else beta1 * m + (1.0 - opt.dampening) * g
            if opt.nesterov:
                step = eta * (g + beta1 * m)
            else:
                step = eta * (m if beta1 != 0.0 else g)
        elif kind == "rmsprop":
            v = beta2 * v + (1.0 - beta2) * g * g
            if opt.centered:
                g_avg = beta2 * g_avg + (1.0 - beta2) * g
                denom = np.sqrt(v - g_avg * g_avg) + opt.eps
            else:
                denom = np.sqrt(v) + opt.eps
            m = beta1 * m + g / denom
            step = eta * m
        elif kind == "adagrad":
            v = v + g * g
            step = eta * g / (np.sqrt(v) + opt.eps)
            keeps_m = False
        elif kind == "lion":
            u = np.sign(beta1 * m + (1.0 - beta1) * g)
            m = beta2 * m + (1.0 - beta2) * g
            step = eta * (u + opt.weight_decay * x)
        elif kind == "signum":
            m = beta1 * m + (1.0 - beta1) * g
            step = eta * np.sign(m)
        elif kind == "adam_mini":
            m = beta1 * m + (1.0 - beta1) * g
            step = np.empty_like(x)
            for i, (a, b) in enumerate(blocks):
                v_block[i] = beta2 * v_block[i] + (1.0 - beta2) * float(np.mean(g[a:b] ** 2))
                v[a:b] = v_block[i]
                m_hat = m[a:b] / (1.0 - beta1**k)
                step[a:b] = eta * m_hat / (math.sqrt(v_block[i] / (1.0 - beta2**k)) + opt.eps)
            step = step + eta * opt.weight_decay * x
        else:
            raise AssertionError(kind)
        x = fb.project(x - step)
        if on_step is not None:
            on_step(k, x)
    return Final(x, m if keeps_m else None, v if keeps_v else None, n_clipped)


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


def rise_reference(
    spec: Any,
    fb: FullBatch,
    *,
    beta1: float,
    beta2: float,
    lr: float,
    clip: Any,
    f_star: float | None,
    first: int,
) -> float:
    """max over steps k >= first of rel_k / max(min_{first <= j <= k} rel_j, floor),
    rel = (f - f*)/(f(x0) - f*) (f / f(x0) when f_star is None), non-finite rel
    skipped, 1.0 if it never rose; f is the problem's full objective in float64 and
    floor the convergence threshold (DESIGN section 5)."""
    floor = max(float(spec.criteria.converge_rel), float(np.finfo(np.float64).tiny))
    f0 = fb.loss(fb.x0())
    low, top = math.inf, 1.0

    def on_step(k: int, x: np.ndarray) -> None:
        nonlocal low, top
        if k < first:
            return
        f = fb.loss(x)
        rel = f / f0 if f_star is None else (f - f_star) / (f0 - f_star)
        if not math.isfinite(rel):
            return
        low = min(low, rel)
        top = max(top, rel / max(low, floor))

    with np.errstate(all="ignore"):
        loop_reference(spec, fb, beta1=beta1, beta2=beta2, lr=lr, clip=clip, on_step=on_step)
    return top
