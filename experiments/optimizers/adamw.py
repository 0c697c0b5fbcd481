"""AdamW (Loshchilov & Hutter 2019): Adam with decoupled decay x -= eta_k*lambda*x.

Reference: torch.optim.AdamW(amsgrad=...) run per configuration.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from experiments.optimizers.adam import adam_chain
from experiments.optimizers.base import ChainEnv, OptimizerBase, register


class AdamWSpec(OptimizerBase):
    kind: Literal["adamw"]
    eps: float = Field(1e-8, ge=0.0, allow_inf_nan=False)
    bias_correction: bool = True
    weight_decay: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    amsgrad: bool = False

    omit_at_default: ClassVar[tuple[str, ...]] = (*OptimizerBase.omit_at_default, "amsgrad")


@register(AdamWSpec, uses=("beta1", "beta2"))
def adamw(spec: AdamWSpec, env: ChainEnv) -> Any:
    """Adam's moments, then u -= eta_k * weight_decay * x."""
    return adam_chain(spec, env)
