"""Optimizer transforms with a leading run axis, composed in the style of optax.

Each transform is an (init, update) pair. `update(g, state, x, step)` maps the
incoming update (a gradient at first) to a new one; `step` is the 1-based step
number as a 0-d tensor, so a compiled block of steps does not specialise on it.
Per-run hyperparameters are tensors of shape [R, 1], so one chain updates every
run of a chunk at once. torch.optim holds one set of hyperparameters per
param group, which is why the update is written out here; the tests hold it to
torch.optim.Adam, AdamW, clip_grad_norm_ and clip_grad_value_.

Only +, -, *, / and sqrt touch per-run values (beta**k is a running product),
so every run's numbers are the same whichever chunk, position or chunk size
it ran with: those operations are correctly rounded in vector and scalar code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

Update = Callable[[Tensor, Any, Tensor, Tensor], tuple[Tensor, Any]]


class Transform(NamedTuple):
    init: Callable[[Tensor], Any]
    update: Update


def chain(*transforms: Transform) -> Transform:
    """Apply transforms in order; the state is the tuple of their states."""

    def init(x: Tensor) -> tuple[Any, ...]:
        return tuple(t.init(x) for t in transforms)

    def update(g: Tensor, state: Any, x: Tensor, step: Tensor) -> tuple[Tensor, Any]:
        new_state = []
        for t, s in zip(transforms, state, strict=True):
            g, s = t.update(g, s, x, step)
            new_state.append(s)
        return g, tuple(new_state)

    return Transform(init, update)


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

    def update(g: Tensor, state: ClipState, x: Tensor, step: Tensor) -> tuple[Tensor, ClipState]:
        return g, state

    return Transform(_clip_state, update)


def clip_by_global_norm(threshold: Tensor, blocks: list[tuple[int, int]]) -> Transform:
    """g *= min(1, threshold / (||g|| + 1e-6)), ||g|| over all of a run's tensors.

    Reference: torch.nn.utils.clip_grad_norm_. threshold has shape [R, 1].
    """

    def update(g: Tensor, state: ClipState, x: Tensor, step: Tensor) -> tuple[Tensor, ClipState]:
        coef = threshold / (_global_norm(g, blocks) + _NORM_EPS)
        clipped = coef < 1.0
        g = g * torch.where(clipped, coef, torch.ones_like(coef))
        return g, ClipState(state.n_clipped + clipped[:, 0])

    return Transform(_clip_state, update)


def clip_by_value(threshold: Tensor) -> Transform:
    """g = clamp(g, -threshold, threshold). Reference: torch.nn.utils.clip_grad_value_."""

    def update(g: Tensor, state: ClipState, x: Tensor, step: Tensor) -> tuple[Tensor, ClipState]:
        clipped = (g.abs() > threshold).any(dim=1)
        g = torch.minimum(torch.maximum(g, -threshold), threshold)
        return g, ClipState(state.n_clipped + clipped)

    return Transform(_clip_state, update)


class AdaGCState(NamedTuple):
    n_clipped: Tensor  # [R]
    gamma: Tensor  # [R, n_blocks]: running reference norm per parameter tensor


def clip_by_adagc(
    threshold: Tensor,
    ratio: Tensor,
    beta: Tensor,
    warmup: Tensor,
    blocks: list[tuple[int, int]],
) -> Transform:
    """AdaGC: adaptive per-tensor clipping (Wang et al. 2025, official code).

    Steps k <= warmup: global-norm clipping at `threshold`, and
        gamma_i = min(gamma_i, ||g_i||)   (norm after that clip; gamma starts at +inf).
    Steps k > warmup: if ||g_i|| > ratio * gamma_i, g_i *= ratio * gamma_i / (||g_i|| + 1e-6);
        then gamma_i = beta * gamma_i + (1 - beta) * ||g_i||  (the clipped norm).
    All hyperparameters have shape [R, 1].
    """
    global_clip = clip_by_global_norm(threshold, blocks)

    def init(x: Tensor) -> AdaGCState:
        gamma = torch.full((x.shape[0], len(blocks)), float("inf"), dtype=x.dtype, device=x.device)
        return AdaGCState(_clip_state(x).n_clipped, gamma)

    def update(g: Tensor, state: AdaGCState, x: Tensor, step: Tensor) -> tuple[Tensor, AdaGCState]:
        in_warmup = step <= warmup  # [R, 1]
        g_warm, warm_state = global_clip.update(g, ClipState(state.n_clipped), x, step)
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


# --- Adam -----------------------------------------------------------------------------------


class AdamState(NamedTuple):
    m: Tensor  # [R, d]
    v: Tensor  # [R, d]
    b1_pow: Tensor  # [R, 1]: beta1**k
    b2_pow: Tensor  # [R, 1]: beta2**k


def scale_by_adam(b1: Tensor, b2: Tensor, eps: float, bias_correction: bool) -> Transform:
    """Adam's moment estimates; b1, b2 have shape [R, 1].

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g**2;
    m_hat = m / (1 - b1**k), v_hat = v / (1 - b2**k) with bias correction, else m, v;
    u = m_hat / (sqrt(v_hat) + eps).
    References: Kingma & Ba 2015; torch.optim.Adam for bias correction.
    """

    def init(x: Tensor) -> AdamState:
        def ones() -> Tensor:  # two tensors: aliased state makes torch.compile re-specialise
            return torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)

        return AdamState(torch.zeros_like(x), torch.zeros_like(x), ones(), ones())

    def update(g: Tensor, state: AdamState, x: Tensor, step: Tensor) -> tuple[Tensor, AdamState]:
        m = b1 * state.m + (1.0 - b1) * g
        v = b2 * state.v + (1.0 - b2) * (g * g)
        b1_pow, b2_pow = state.b1_pow * b1, state.b2_pow * b2
        if bias_correction:
            u = (m / (1.0 - b1_pow)) / ((v / (1.0 - b2_pow)).sqrt() + eps)
        else:
            u = m / (v.sqrt() + eps)
        return u, AdamState(m, v, b1_pow, b2_pow)

    return Transform(init, update)


def _no_state(x: Tensor) -> tuple[()]:
    return ()


def scale_by_schedule(lr: Tensor, schedule: str) -> Transform:
    """u = -eta_k * u with eta_k = lr (constant) or lr / sqrt(k) (inv_sqrt); lr: [R, 1]."""

    def update(g: Tensor, state: tuple[()], x: Tensor, step: Tensor) -> tuple[Tensor, tuple[()]]:
        return -(learning_rate(lr, schedule, step) * g), state

    return Transform(_no_state, update)


def learning_rate(lr: Tensor, schedule: str, step: Tensor) -> Tensor:
    if schedule == "inv_sqrt":
        return lr / step.to(lr.dtype).sqrt()
    return lr


def add_decoupled_weight_decay(lr: Tensor, schedule: str, weight_decay: float) -> Transform:
    """AdamW's decoupled decay: u -= eta_k * lambda * x (torch.optim.AdamW)."""

    def update(g: Tensor, state: tuple[()], x: Tensor, step: Tensor) -> tuple[Tensor, tuple[()]]:
        return g - learning_rate(lr, schedule, step) * weight_decay * x, state

    return Transform(_no_state, update)
