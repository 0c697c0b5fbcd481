"""Small plug-in problems, each breaking one rule of docs/problems.md ("Plug-in
problems"), for tests/experiments/test_plugin_checks.py: registered in-process
through monkeypatched entry points, or in a `betascope run` process through a
dist-info folder naming them (see `write_dist_info`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from betascope.problems import AutogradProblem, ProblemBase


class Faulty(AutogradProblem):
    """1/2 sum_i w_i (X_i . w)^2 over 8 samples in 5 dimensions, with `fault`."""

    def __init__(self, fault: str, *, dtype: torch.dtype, device: torch.device):
        self.fault = fault
        n, d = 8, 5
        self.X = torch.linspace(-1.0, 1.0, n * d, dtype=dtype, device=device).reshape(n, d)
        pdtype = torch.float32 if fault == "float32" else dtype
        super().__init__(params={"w": torch.ones(d, dtype=pdtype, device=device)}, n_samples=n)
        if fault == "x_star":
            self.x_star = {"w": torch.zeros(3, dtype=dtype, device=device)}
        if fault == "f_star":
            self.f_star = float("nan")

    def loss(self, params: dict[str, Tensor], batch: Tensor) -> Tensor:
        w = params["w"]
        if self.fault == "inplace":
            w.mul_(2.0)
        r = self.X @ w
        if self.fault == "item":
            return (batch * r * r).sum() * r.sum().item()
        if self.fault == "vector":
            return batch * r * r
        if self.fault == "raises":
            raise ValueError("deliberate failure in loss()")
        if self.fault == "branch" and r.sum() > 0:
            return (batch * r).sum()
        return 0.5 * (batch * r * r).sum()


class _Spec(ProblemBase):
    fault: ClassVar[str] = "none"

    def samples(self) -> int:
        return 64 if self.fault == "samples" else 8

    def build(self, *, dtype: Any, device: Any) -> Any:
        if self.fault == "build_raises":
            raise RuntimeError("deliberate failure in build()")
        if self.fault == "build_none":
            return None
        if self.fault == "build_object":
            return object()
        return Faulty(self.fault, dtype=dtype, device=device)


class Good(_Spec):
    kind: Literal["fake_good"]


class BuildRaises(_Spec):
    kind: Literal["fake_build_raises"]
    fault = "build_raises"


class BuildNone(_Spec):
    kind: Literal["fake_build_none"]
    fault = "build_none"


class BuildObject(_Spec):
    kind: Literal["fake_build_object"]
    fault = "build_object"


class Item(_Spec):
    kind: Literal["fake_item"]
    fault = "item"


class Float32(_Spec):
    kind: Literal["fake_float32"]
    fault = "float32"


class XStar(_Spec):
    kind: Literal["fake_x_star"]
    fault = "x_star"


class FStar(_Spec):
    kind: Literal["fake_f_star"]
    fault = "f_star"


class InPlace(_Spec):
    kind: Literal["fake_inplace"]
    fault = "inplace"


class Vector(_Spec):
    kind: Literal["fake_vector"]
    fault = "vector"


class Raises(_Spec):
    kind: Literal["fake_raises"]
    fault = "raises"


class Branch(_Spec):
    kind: Literal["fake_branch"]
    fault = "branch"


class Samples(_Spec):
    kind: Literal["fake_samples"]
    fault = "samples"


SPECS: list[type[_Spec]] = [
    Good, BuildRaises, BuildNone, BuildObject, Item, Float32, XStar, FStar, InPlace, Vector,
    Raises, Branch, Samples,
]
MODULE = __name__


def kind(spec: type[ProblemBase]) -> str:
    return str(spec.model_fields["kind"].annotation.__args__[0])  # type: ignore[union-attr]


def write_dist_info(folder: Path, broken: str = "fake_broken") -> None:
    """A `fakeplug` distribution on `folder` (put it on PYTHONPATH) whose entry points
    name every spec above, and `broken`, whose module does not exist."""
    info = folder / "fakeplug-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    lines = [f"{kind(s)} = {MODULE}:{s.__name__}" for s in SPECS]
    lines.append(f"{broken} = no_such_module_xyz:Spec")
    (info / "entry_points.txt").write_text("[betascope.problems]\n" + "\n".join(lines) + "\n")
