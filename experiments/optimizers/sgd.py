"""SGD with momentum (grid beta1), dampening, Nesterov and L2 weight decay.

Reference: torch.optim.SGD(momentum=beta1, dampening, nesterov, weight_decay).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from experiments.optimizers.base import ChainEnv, OptimizerBase, register


class SGDSpec(OptimizerBase):
    kind: Literal["sgd"]
    dampening: float = Field(0.0, ge=0.0, le=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _nesterov(self) -> SGDSpec:
        if self.nesterov and self.dampening != 0.0:
            raise ValueError("dampening: nesterov needs dampening 0 (as torch.optim.SGD)")
        return self


@register(SGDSpec, uses=("beta1",))
def sgd(spec: SGDSpec, env: ChainEnv) -> Any:
    """g += lambda*x; buf = b1*buf + (1-dampening)*g (g at step 1); x -= eta_k * (g + b1*buf
    if nesterov else buf)."""
    from experiments import optim

    schedule = optim.Schedule(spec.schedule, spec.warmup_steps, spec.final_lr_ratio, env.steps)
    return optim.named_chain(
        ("moments", optim.scale_by_sgd(spec.dampening, spec.nesterov, spec.weight_decay)),
        ("lr", optim.scale_by_schedule(schedule)),
    )
