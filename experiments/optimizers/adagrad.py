"""Adagrad (Duchi et al. 2011): no beta; the accumulator starts at
`initial_accumulator_value`.

Reference: torch.optim.Adagrad(lr, eps, initial_accumulator_value).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from experiments.optimizers.base import ChainEnv, OptimizerBase, register


class AdagradSpec(OptimizerBase):
    kind: Literal["adagrad"]
    eps: float = Field(1e-10, ge=0.0, allow_inf_nan=False)
    initial_accumulator_value: float = Field(0.0, ge=0.0, allow_inf_nan=False)


@register(AdagradSpec, uses=())
def adagrad(spec: AdagradSpec, env: ChainEnv) -> Any:
    """s += g**2; x -= eta_k * g / (sqrt(s) + eps)."""
    from experiments import optim

    schedule = optim.Schedule(spec.schedule, spec.warmup_steps, spec.final_lr_ratio, env.steps)
    return optim.named_chain(
        ("moments", optim.scale_by_adagrad(spec.eps, spec.initial_accumulator_value)),
        ("lr", optim.scale_by_schedule(schedule)),
    )
