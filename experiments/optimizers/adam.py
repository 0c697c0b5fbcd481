"""Adam (Kingma & Ba 2015), with AMSGrad (Reddi et al. 2018) as `amsgrad: true`.

Reference: torch.optim.Adam(amsgrad=...) run per configuration (bias correction
on, constant lr); a per-run loop of DESIGN's formulas for the rest.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from experiments.optimizers.base import ChainEnv, OptimizerBase, register


class AdamSpec(OptimizerBase):
    kind: Literal["adam"] = "adam"
    eps: float = Field(1e-8, ge=0.0, allow_inf_nan=False)
    bias_correction: bool = True
    weight_decay: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    amsgrad: bool = False

    omit_at_default: ClassVar[tuple[str, ...]] = (*OptimizerBase.omit_at_default, "amsgrad")

    @model_validator(mode="after")
    def _decay_needs_adamw(self) -> AdamSpec:
        if self.kind == "adam" and self.weight_decay != 0.0:
            raise ValueError("weight_decay: must be 0 for adam (use kind: adamw for decay)")
        return self


def adam_chain(spec: Any, env: ChainEnv) -> Any:
    """moments -> lr (-> decoupled decay for adamw), shared by adam and adamw."""
    from experiments import optim

    schedule = optim.Schedule(spec.schedule, spec.warmup_steps, spec.final_lr_ratio, env.steps)
    links = [
        ("moments", optim.scale_by_adam(spec.eps, spec.bias_correction, spec.amsgrad)),
        ("lr", optim.scale_by_schedule(schedule)),
    ]
    if spec.kind == "adamw" and spec.weight_decay > 0.0:
        links.append(("decay", optim.add_decoupled_weight_decay(schedule, spec.weight_decay)))
    return optim.named_chain(*links)


@register(AdamSpec, uses=("beta1", "beta2"))
def adam(spec: AdamSpec, env: ChainEnv) -> Any:
    """m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g**2; x -= eta_k * m_hat / (sqrt(v_hat) + eps)."""
    return adam_chain(spec, env)
