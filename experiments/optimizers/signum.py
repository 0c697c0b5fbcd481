"""Signum (Bernstein et al. 2018, "signSGD"): the sign of the momentum; beta1 = 0 is signSGD.

Reference: a per-run loop of the paper's Algorithm 1 (torch has no Signum).
"""

from __future__ import annotations

from typing import Any, Literal

from experiments.optimizers.base import ChainEnv, OptimizerBase, register


class SignumSpec(OptimizerBase):
    kind: Literal["signum"]


@register(SignumSpec, uses=("beta1",))
def signum(spec: SignumSpec, env: ChainEnv) -> Any:
    """m = b1*m + (1-b1)*g; x -= eta_k * sign(m)."""
    from experiments import optim

    schedule = optim.Schedule(spec.schedule, spec.warmup_steps, spec.final_lr_ratio, env.steps)
    return optim.named_chain(
        ("moments", optim.scale_by_signum()), ("lr", optim.scale_by_schedule(schedule))
    )
