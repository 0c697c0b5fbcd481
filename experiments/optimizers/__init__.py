"""The optimizer catalogue: one module per kind, each registered once.

Importing this package registers every kind; `OptimizerSpec` (the spec's
`optimizer` field, `kind` defaulting to adam), `KINDS`, `unused_axis_errors`
and `build_chain` are derived from REGISTRY. Adding an optimizer is one module
here (its spec model, its chain, its reference in the docstring) plus its
import below and its rows in the equivalence tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Tag

from experiments.optimizers import (  # noqa: F401  (each import registers a kind)
    adagrad,
    adam,
    adam_mini,
    adamw,
    lion,
    rmsprop,
    sgd,
    signum,
)
from experiments.optimizers.adam import AdamSpec
from experiments.optimizers.base import BETA_AXES, REGISTRY, ChainEnv, OptimizerBase, register

__all__ = [
    "KINDS",
    "REGISTRY",
    "AdamSpec",
    "ChainEnv",
    "OptimizerBase",
    "OptimizerSpec",
    "build_optimizer",
    "default_optimizer",
    "register",
    "unused_axis_errors",
]

KINDS: tuple[str, ...] = tuple(REGISTRY)


def _kind(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("kind", "adam"))
    return str(getattr(v, "kind", "adam"))


if TYPE_CHECKING:  # the union is built from the registry at import time
    OptimizerSpec = OptimizerBase
else:
    OptimizerSpec = Annotated[
        Union[tuple(Annotated[e.model, Tag(k)] for k, e in REGISTRY.items())],  # noqa: UP007
        Discriminator(
            _kind,
            custom_error_type="optimizer_kind",
            custom_error_message=f"kind: must be one of {', '.join(KINDS)}",
        ),
    ]


def default_optimizer() -> OptimizerBase:
    return AdamSpec.model_validate({})


def unused_axis_errors(
    optimizer: Any, beta_values: dict[str, list[float]]
) -> list[tuple[str, str]]:
    """A beta axis the kind does not read may hold one value only (more would be
    runs that differ in name alone)."""
    uses = REGISTRY[optimizer.kind].uses
    return [
        (f"grid.{axis}", f"{optimizer.kind} does not use {axis}; give one value")
        for axis in BETA_AXES
        if axis not in uses and len(beta_values.get(axis, [])) > 1
    ]


def build_optimizer(optimizer: Any, env: ChainEnv) -> Any:
    """The kind's named chain (an experiments.optim.Transform), clipping not included."""
    return REGISTRY[optimizer.kind].build(optimizer, env)
