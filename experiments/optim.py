"""Optimizer transforms with a leading run axis, composed in the style of optax.

Each transform is an (init, update) pair. `update(g, state, x, step, h)` maps
the incoming update (a gradient at first) to a new one; `step` is the 1-based
step number as a 0-d tensor, so a compiled block of steps does not specialise
on it, and `h` holds the per-run hyperparameters as explicit tensors of shape
[R, 1] (`Hyper`), so one chain updates every run of a chunk at once and a
fused kernel can take the same inputs. torch.optim holds one set of
hyperparameters per param group, which is why the update is written out here;
the tests hold it to torch.optim (Adam, AdamW, SGD, RMSprop, Adagrad),
clip_grad_norm_, clip_grad_value_ and per-run loops written from the papers.

A chain's state is named (`named_chain`): the engine reads `state["clip"]`
and `state["moments"]` without knowing which optimizer built them.

Only +, -, *, /, sqrt, max and sign touch per-run values (beta**k is a running
product), so every run's numbers are the same whichever chunk, position or
chunk size it ran with: those operations are correctly rounded in vector and
scalar code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:  # torch loads on first use: a fused sweep never needs it
    from experiments.lazy import torch

    Tensor = Any  # in the type aliases below


class Hyper(NamedTuple):
    """Per-run hyperparameters, each [R, 1]; the clip fields are unused without clipping."""

    beta1: Tensor
    beta2: Tensor
    lr: Tensor
    clip_threshold: Tensor
    clip_ratio: Tensor
    clip_beta: Tensor
    clip_warmup: Tensor


Update = Callable[[Tensor, Any, Tensor, Tensor, Hyper], tuple[Tensor, Any]]


class Transform(NamedTuple):
    init: Callable[[Tensor], Any]
    update: Update
    links: tuple[tuple[str, Transform], ...] = ()  # a named chain's links


def named_chain(*links: tuple[str, Transform]) -> Transform:
    """Apply transforms in order; the state is a dict of their states by name."""
    names = [name for name, _ in links]
    if len(set(names)) != len(names):
        raise ValueError(f"named_chain: repeated names in {names}")

    def init(x: Tensor) -> dict[str, Any]:
        return {name: t.init(x) for name, t in links}

    def update(
        g: Tensor, state: dict[str, Any], x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, dict[str, Any]]:
        new_state = {}
        for name, t in links:
            g, new_state[name] = t.update(g, state[name], x, step, h)
        return g, new_state

    return Transform(init, update, tuple(links))


def moment(state: Any, name: str, blocks: list[tuple[int, int]], d: int) -> Tensor | None:
    """A moments state's `m` or `v` as [R, d] (a per-tensor v is expanded), or None."""
    value = getattr(state, name, None)
    if value is None or value.shape[1] == 0:
        return None
    if value.shape[1] != d:
        return _expand_blocks(value, blocks, d)
    return value  # type: ignore[no-any-return]


# --- clipping -------------------------------------------------------------------------------

_NORM_EPS = 1e-6  # as torch.nn.utils.clip_grad_norm_ and AdaGC's official code


class ClipState(NamedTuple):
    n_clipped: Tensor  # [R]: steps on which clipping changed the gradient


def _block_norms(g: Tensor, blocks: list[tuple[int, int]]) -> Tensor:
    """Euclidean norm of each parameter tensor, [R, n_blocks]."""
    if len(blocks) == 1 and blocks[0] == (0, g.shape[1]):
        return (g * g).sum(dim=1, keepdim=True).sqrt()
    return torch.stack([(g[:, a:b] * g[:, a:b]).sum(dim=1).sqrt() for a, b in blocks], dim=1)


def _expand_blocks(per_block: Tensor, blocks: list[tuple[int, int]], d: int) -> Tensor:
    """[R, n_blocks] -> [R, d], each column taking its block's value."""
    if len(blocks) == 1:
        return per_block
    sizes = torch.tensor([b - a for a, b in blocks], device=per_block.device)
    return per_block.repeat_interleave(sizes, dim=1, output_size=d)


def _global_norm(g: Tensor, blocks: list[tuple[int, int]]) -> Tensor:
    """As clip_grad_norm_: the norm of the per-tensor norms, [R, 1]."""
    norms = _block_norms(g, blocks)
    if norms.shape[1] == 1:
        return norms
    return (norms * norms).sum(dim=1, keepdim=True).sqrt()


def _clip_state(x: Tensor) -> ClipState:
    return ClipState(torch.zeros(x.shape[0], dtype=torch.int64, device=x.device))


def identity() -> Transform:
    """No clipping (keeps a ClipState so every chain reports clip_fraction)."""

    def update(
        g: Tensor, state: ClipState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, ClipState]:
        return g, state

    return Transform(_clip_state, update)


def clip_by_global_norm(blocks: list[tuple[int, int]]) -> Transform:
    """g *= min(1, threshold / (||g|| + 1e-6)), ||g|| over all of a run's tensors.

    Reference: torch.nn.utils.clip_grad_norm_. threshold = h.clip_threshold.
    """

    def update(
        g: Tensor, state: ClipState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, ClipState]:
        threshold = h.clip_threshold
        coef = threshold / (_global_norm(g, blocks) + _NORM_EPS)
        clipped = coef < 1.0
        g = g * torch.where(clipped, coef, torch.ones_like(coef))
        return g, ClipState(state.n_clipped + clipped[:, 0])

    return Transform(_clip_state, update)


def clip_by_value() -> Transform:
    """g = clamp(g, -threshold, threshold). Reference: torch.nn.utils.clip_grad_value_."""

    def update(
        g: Tensor, state: ClipState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, ClipState]:
        threshold = h.clip_threshold
        clipped = (g.abs() > threshold).any(dim=1)
        g = torch.minimum(torch.maximum(g, -threshold), threshold)
        return g, ClipState(state.n_clipped + clipped)

    return Transform(_clip_state, update)


class AdaGCState(NamedTuple):
    n_clipped: Tensor  # [R]
    gamma: Tensor  # [R, n_blocks]: running reference norm per parameter tensor


def clip_by_adagc(blocks: list[tuple[int, int]]) -> Transform:
    """AdaGC: adaptive per-tensor clipping (Wang et al. 2025, official code).

    Steps k <= warmup: global-norm clipping at `threshold`, and
        gamma_i = min(gamma_i, ||g_i||)   (norm after that clip; gamma starts at +inf).
    Steps k > warmup: if ||g_i|| > ratio * gamma_i, g_i *= ratio * gamma_i / (||g_i|| + 1e-6);
        then gamma_i = beta * gamma_i + (1 - beta) * ||g_i||  (the clipped norm).
    threshold, ratio, beta, warmup = h.clip_threshold, clip_ratio, clip_beta, clip_warmup.
    """
    global_clip = clip_by_global_norm(blocks)

    def init(x: Tensor) -> AdaGCState:
        gamma = torch.full((x.shape[0], len(blocks)), float("inf"), dtype=x.dtype, device=x.device)
        return AdaGCState(_clip_state(x).n_clipped, gamma)

    def update(
        g: Tensor, state: AdaGCState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, AdaGCState]:
        ratio, beta, warmup = h.clip_ratio, h.clip_beta, h.clip_warmup
        in_warmup = step <= warmup  # [R, 1]
        g_warm, warm_state = global_clip.update(g, ClipState(state.n_clipped), x, step, h)
        warm_norms = _block_norms(g_warm, blocks)
        gamma_warm = torch.minimum(state.gamma, warm_norms)

        norms = _block_norms(g, blocks)
        limit = ratio * state.gamma
        over = norms > limit
        scale = torch.where(over, limit / (norms + _NORM_EPS), torch.ones_like(norms))
        g_ada = g * _expand_blocks(scale, blocks, g.shape[1])
        clipped_norms = torch.where(over, norms * scale, norms)
        gamma_ada = beta * state.gamma + (1.0 - beta) * clipped_norms
        n_ada = state.n_clipped + over.any(dim=1)

        g = torch.where(in_warmup, g_warm, g_ada)
        gamma = torch.where(in_warmup, gamma_warm, gamma_ada)
        n_clipped = torch.where(in_warmup[:, 0], warm_state.n_clipped, n_ada)
        return g, AdaGCState(n_clipped, gamma)

    return Transform(init, update)


# --- moments --------------------------------------------------------------------------------


def _ones(x: Tensor) -> Tensor:
    # a fresh tensor per field: aliased state makes torch.compile re-specialise
    return torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)


def _empty(x: Tensor) -> Tensor:
    """A [R, 0] placeholder for a field a configuration does not keep."""
    return x.new_zeros((x.shape[0], 0))


class AdamState(NamedTuple):
    m: Tensor  # [R, d]
    v: Tensor  # [R, d]
    b1_pow: Tensor  # [R, 1]: beta1**k
    b2_pow: Tensor  # [R, 1]: beta2**k
    v_max: Tensor  # [R, d] with amsgrad, else [R, 0]


def scale_by_adam(eps: float, bias_correction: bool, amsgrad: bool = False) -> Transform:
    """Adam's moment estimates with b1 = h.beta1, b2 = h.beta2.

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g**2;  s = max(v_max, v) (amsgrad) else v;
    m_hat = m / (1 - b1**k), s_hat = s / (1 - b2**k) with bias correction, else m, s;
    u = m_hat / (sqrt(s_hat) + eps).
    References: Kingma & Ba 2015; Reddi et al. 2018 (AMSGrad); torch.optim.Adam.
    """

    def init(x: Tensor) -> AdamState:
        v_max = torch.zeros_like(x) if amsgrad else _empty(x)
        return AdamState(torch.zeros_like(x), torch.zeros_like(x), _ones(x), _ones(x), v_max)

    def update(
        g: Tensor, state: AdamState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, AdamState]:
        b1, b2 = h.beta1, h.beta2
        m = b1 * state.m + (1.0 - b1) * g
        v = b2 * state.v + (1.0 - b2) * (g * g)
        b1_pow, b2_pow = state.b1_pow * b1, state.b2_pow * b2
        v_max = torch.maximum(state.v_max, v) if amsgrad else state.v_max
        s = v_max if amsgrad else v  # the second moment the step divides by
        if bias_correction:
            u = (m / (1.0 - b1_pow)) / ((s / (1.0 - b2_pow)).sqrt() + eps)
        else:
            u = m / (s.sqrt() + eps)
        return u, AdamState(m, v, b1_pow, b2_pow, v_max)

    return Transform(init, update)


class MomentumState(NamedTuple):
    m: Tensor  # [R, d]: the momentum buffer


def scale_by_sgd(dampening: float, nesterov: bool, weight_decay: float) -> Transform:
    """SGD with momentum b1 = h.beta1, as torch.optim.SGD.

    g += weight_decay * x (L2); buf = g at step 1, else b1*buf + (1-dampening)*g;
    u = g + b1*buf (nesterov) else buf; momentum 0 is plain SGD (u = g).
    """

    def init(x: Tensor) -> MomentumState:
        return MomentumState(torch.zeros_like(x))

    def update(
        g: Tensor, state: MomentumState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, MomentumState]:
        b1 = h.beta1
        if weight_decay != 0.0:
            g = g + weight_decay * x
        buf = torch.where(step == 1, g, b1 * state.m + (1.0 - dampening) * g)
        if nesterov:
            u = g + b1 * buf
        else:
            u = torch.where(b1 == 0.0, g, buf)
        return u, MomentumState(buf)

    return Transform(init, update)


class RMSpropState(NamedTuple):
    m: Tensor  # [R, d]: the momentum buffer
    v: Tensor  # [R, d]: the running mean of g**2
    g_avg: Tensor  # [R, d] when centered, else [R, 0]


def scale_by_rmsprop(eps: float, centered: bool) -> Transform:
    """RMSprop with alpha = h.beta2 and momentum = h.beta1, as torch.optim.RMSprop.

    v = a*v + (1-a)*g**2; centered: g_avg = a*g_avg + (1-a)*g, d = sqrt(v - g_avg**2) + eps,
    else d = sqrt(v) + eps; buf = b1*buf + g/d; u = buf (b1 = 0: u = g/d).
    """

    def init(x: Tensor) -> RMSpropState:
        g_avg = torch.zeros_like(x) if centered else _empty(x)
        return RMSpropState(torch.zeros_like(x), torch.zeros_like(x), g_avg)

    def update(
        g: Tensor, state: RMSpropState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, RMSpropState]:
        b1, b2 = h.beta1, h.beta2
        gg = g * g
        v = b2 * state.v + (1.0 - b2) * gg
        if centered:
            g_avg = b2 * state.g_avg + (1.0 - b2) * g
            d = (v - g_avg * g_avg).sqrt() + eps
        else:
            g_avg = state.g_avg
            d = v.sqrt() + eps
        buf = b1 * state.m + g / d
        return buf, RMSpropState(buf, v, g_avg)

    return Transform(init, update)


class AccumulatorState(NamedTuple):
    v: Tensor  # [R, d]: the sum of g**2


def scale_by_adagrad(eps: float, initial_accumulator_value: float) -> Transform:
    """Adagrad, as torch.optim.Adagrad: s += g**2; u = g / (sqrt(s) + eps)."""

    def init(x: Tensor) -> AccumulatorState:
        return AccumulatorState(torch.full_like(x, initial_accumulator_value))

    def update(
        g: Tensor, state: AccumulatorState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, AccumulatorState]:
        s = state.v + g * g
        return g / (s.sqrt() + eps), AccumulatorState(s)

    return Transform(init, update)


def scale_by_lion() -> Transform:
    """Lion (Chen et al. 2023, Algorithm 2): u = sign(b1*m + (1-b1)*g); m = b2*m + (1-b2)*g."""

    def init(x: Tensor) -> MomentumState:
        return MomentumState(torch.zeros_like(x))

    def update(
        g: Tensor, state: MomentumState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, MomentumState]:
        b1, b2 = h.beta1, h.beta2
        u = torch.sign(b1 * state.m + (1.0 - b1) * g)
        return u, MomentumState(b2 * state.m + (1.0 - b2) * g)

    return Transform(init, update)


def scale_by_signum() -> Transform:
    """Signum (Bernstein et al. 2018): m = b1*m + (1-b1)*g; u = sign(m) (b1 = 0: signSGD)."""

    def init(x: Tensor) -> MomentumState:
        return MomentumState(torch.zeros_like(x))

    def update(
        g: Tensor, state: MomentumState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, MomentumState]:
        b1 = h.beta1
        m = b1 * state.m + (1.0 - b1) * g
        return torch.sign(m), MomentumState(m)

    return Transform(init, update)


class AdamMiniState(NamedTuple):
    m: Tensor  # [R, d]
    v: Tensor  # [R, n_blocks]: one second moment per parameter tensor
    b1_pow: Tensor  # [R, 1]
    b2_pow: Tensor  # [R, 1]


def scale_by_adam_mini(eps: float, blocks: list[tuple[int, int]]) -> Transform:
    """Adam-mini (Zhang et al. 2024): m as Adam; per tensor b, v_b = b2*v_b + (1-b2)*mean(g_b**2);
    u = m_hat / (sqrt(v_hat_b) + eps), bias-corrected as Adam."""
    sizes = [float(b - a) for a, b in blocks]

    def init(x: Tensor) -> AdamMiniState:
        v = x.new_zeros((x.shape[0], len(blocks)))
        return AdamMiniState(torch.zeros_like(x), v, _ones(x), _ones(x))

    def update(
        g: Tensor, state: AdamMiniState, x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, AdamMiniState]:
        b1, b2 = h.beta1, h.beta2
        m = b1 * state.m + (1.0 - b1) * g
        sq = torch.stack(
            [
                (g[:, a:b] * g[:, a:b]).sum(dim=1) / n
                for (a, b), n in zip(blocks, sizes, strict=True)
            ],
            dim=1,
        )
        v = b2 * state.v + (1.0 - b2) * sq
        b1_pow = state.b1_pow * b1
        b2_pow = state.b2_pow * b2
        d = _expand_blocks((v / (1.0 - b2_pow)).sqrt() + eps, blocks, g.shape[1])
        return (m / (1.0 - b1_pow)) / d, AdamMiniState(m, v, b1_pow, b2_pow)

    return Transform(init, update)


# --- learning rate and decay ----------------------------------------------------------------


class Schedule(NamedTuple):
    kind: str  # constant, inv_sqrt or warmup_cosine
    warmup_steps: int = 0
    final_lr_ratio: float = 0.0
    total_steps: int = 1


def _no_state(x: Tensor) -> tuple[()]:
    return ()


def scale_by_schedule(schedule: Schedule) -> Transform:
    """u = -eta_k * u with eta_k = learning_rate(h.lr, schedule, k)."""

    def update(
        g: Tensor, state: tuple[()], x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, tuple[()]]:
        return -(learning_rate(h.lr, schedule, step) * g), state

    return Transform(_no_state, update)


def learning_rate(lr: Tensor, schedule: Schedule, step: Tensor) -> Tensor:
    """eta_k: lr (constant), lr / sqrt(k) (inv_sqrt), or warmup_cosine with W warmup
    steps, final ratio f and T steps: lr*k/W for k <= W, else
    lr*(f + (1-f)*(1 + cos(pi*(k-W)/(T-W)))/2)."""
    if schedule.kind == "inv_sqrt":
        return lr / step.to(lr.dtype).sqrt()
    if schedule.kind == "warmup_cosine":
        k = step.to(lr.dtype)
        w, f = schedule.warmup_steps, schedule.final_lr_ratio
        span = max(schedule.total_steps - w, 1)
        cosine = f + (1.0 - f) * 0.5 * (1.0 + torch.cos(math.pi * (k - w) / span))
        factor = torch.where(k <= w, k / max(w, 1), cosine)
        return lr * factor
    return lr


def add_decoupled_weight_decay(schedule: Schedule, weight_decay: float) -> Transform:
    """Decoupled decay after the schedule: u -= eta_k * lambda * x (torch.optim.AdamW)."""

    def update(
        g: Tensor, state: tuple[()], x: Tensor, step: Tensor, h: Hyper
    ) -> tuple[Tensor, tuple[()]]:
        return g - learning_rate(h.lr, schedule, step) * weight_decay * x, state

    return Transform(_no_state, update)
