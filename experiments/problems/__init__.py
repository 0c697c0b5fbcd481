"""The problem catalogue: one class per objective, built from its spec."""

from __future__ import annotations

import torch

from experiments.problems.base import Problem
from experiments.problems.lstsq import Lstsq
from experiments.problems.reddi2018 import Reddi2018, Reddi2018Stochastic
from experiments.problems.zhang2022 import Zhang2022
from experiments.spec import (
    LstsqSpec,
    Reddi2018Spec,
    Reddi2018StochasticSpec,
    Zhang2022Spec,
)

__all__ = ["Problem", "Lstsq", "Reddi2018", "Reddi2018Stochastic", "Zhang2022", "build_problem"]


def build_problem(spec: object, *, dtype: torch.dtype, device: torch.device) -> Problem:
    """The problem object for a problem spec, on `device` in `dtype`."""
    if isinstance(spec, Zhang2022Spec):
        return Zhang2022(n=spec.n, x0=spec.x0, dtype=dtype, device=device)
    if isinstance(spec, Reddi2018Spec):
        return Reddi2018(C=spec.C, x0=spec.x0, dtype=dtype, device=device)
    if isinstance(spec, Reddi2018StochasticSpec):
        return Reddi2018Stochastic(
            C=spec.C, delta=spec.delta, x0=spec.x0, dtype=dtype, device=device
        )
    if isinstance(spec, LstsqSpec):
        return Lstsq(
            n_samples=spec.n_samples,
            block_scales=list(spec.block_scales),
            block_dim=spec.block_dim,
            noise=spec.noise,
            data_seed=spec.data_seed,
            x0=spec.x0,
            dtype=dtype,
            device=device,
        )
    raise TypeError(f"unknown problem spec {type(spec).__name__}")
