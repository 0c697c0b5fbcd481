"""RMSprop (Hinton's lecture 6e; Graves 2013 for `centered`): alpha is grid beta2,
momentum is grid beta1.

Reference: torch.optim.RMSprop(alpha=beta2, momentum=beta1, eps, centered).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from experiments.optimizers.base import ChainEnv, OptimizerBase, register


class RMSpropSpec(OptimizerBase):
    kind: Literal["rmsprop"]
    eps: float = Field(1e-8, ge=0.0, allow_inf_nan=False)
    centered: bool = False


@register(RMSpropSpec, uses=("beta1", "beta2"))
def rmsprop(spec: RMSpropSpec, env: ChainEnv) -> Any:
    """v = b2*v + (1-b2)*g**2; buf = b1*buf + g/(sqrt(v) + eps); x -= eta_k * buf."""
    from experiments import optim

    schedule = optim.Schedule(spec.schedule, spec.warmup_steps, spec.final_lr_ratio, env.steps)
    return optim.named_chain(
        ("moments", optim.scale_by_rmsprop(spec.eps, spec.centered)),
        ("lr", optim.scale_by_schedule(schedule)),
    )
