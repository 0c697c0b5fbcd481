"""Adam-mini (Zhang et al. 2024): Adam's m, one second moment per parameter tensor.

v_b = b2*v_b + (1-b2)*mean(g_b**2) over tensor b (the problem's `blocks`), as the
official code's rule for a tensor that is one block; decoupled decay as AdamW.
Reference: a per-run loop of that rule (torch has no Adam-mini).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from experiments.optimizers.base import ChainEnv, OptimizerBase, register


class AdamMiniSpec(OptimizerBase):
    kind: Literal["adam_mini"]
    eps: float = Field(1e-8, ge=0.0, allow_inf_nan=False)
    weight_decay: float = Field(0.0, ge=0.0, allow_inf_nan=False)


@register(AdamMiniSpec, uses=("beta1", "beta2"))
def adam_mini(spec: AdamMiniSpec, env: ChainEnv) -> Any:
    """x -= eta_k * m_hat / (sqrt(v_hat_b) + eps) (- eta_k*lambda*x)."""
    from experiments import optim

    schedule = optim.Schedule(spec.schedule, spec.warmup_steps, spec.final_lr_ratio, env.steps)
    links = [
        ("moments", optim.scale_by_adam_mini(spec.eps, env.blocks)),
        ("lr", optim.scale_by_schedule(schedule)),
    ]
    if spec.weight_decay > 0.0:
        links.append(("decay", optim.add_decoupled_weight_decay(schedule, spec.weight_decay)))
    return optim.named_chain(*links)
