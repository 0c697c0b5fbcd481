"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2).

Reference: a per-run loop of Algorithm 2 (torch has no Lion).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from experiments.optimizers.base import ChainEnv, OptimizerBase, register


class LionSpec(OptimizerBase):
    kind: Literal["lion"]
    weight_decay: float = Field(0.0, ge=0.0, allow_inf_nan=False)


@register(LionSpec, uses=("beta1", "beta2"))
def lion(spec: LionSpec, env: ChainEnv) -> Any:
    """u = sign(b1*m + (1-b1)*g); m = b2*m + (1-b2)*g; x -= eta_k * (u + lambda*x)."""
    from experiments import optim

    schedule = optim.Schedule(spec.schedule, spec.warmup_steps, spec.final_lr_ratio, env.steps)
    links = [("moments", optim.scale_by_lion()), ("lr", optim.scale_by_schedule(schedule))]
    if spec.weight_decay > 0.0:
        links.append(("decay", optim.add_decoupled_weight_decay(schedule, spec.weight_decay)))
    return optim.named_chain(*links)
