"""The `logreg` spec: what a sweep may say in `problem:`. Imports no torch, so the
API can validate specs naming this kind without loading it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from betascope.problems import ProblemBase


class LogRegSpec(ProblemBase):
    """L2-regularised logistic regression on n seeded samples in `dim` dimensions."""

    kind: Literal["logreg"]
    n_samples: int = Field(128, ge=2, le=4096)
    dim: int = Field(5, ge=1, le=256)
    l2: float = Field(0.01, gt=0.0, allow_inf_nan=False)
    data_seed: int = Field(0, ge=0)
    x0: float = Field(0.0, allow_inf_nan=False)

    def samples(self) -> int:
        return self.n_samples

    def build(self, *, dtype: Any, device: Any) -> Any:
        from betascope_logreg.problem import LogReg

        return LogReg(self, dtype=dtype, device=device)
