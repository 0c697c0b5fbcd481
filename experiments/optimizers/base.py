"""What every optimizer module shares: the spec base, the registry and `register`.

A module registers its spec model once with the grid axes it reads
(`uses=("beta1", "beta2")`) and a builder that returns its named chain (without
clipping, which the engine puts first). Spec unions, error-path tags, the
unused-axis check and the engine's construction all read REGISTRY.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from experiments.numbers import SpecModel

BETA_AXES = ("beta1", "beta2")


@dataclass(frozen=True)
class ChainEnv:
    """What a builder may need beyond its spec: the sweep's steps, the problem's
    parameter tensors (column ranges of x) and the dtype's name."""

    steps: int
    blocks: list[tuple[int, int]]
    dtype: str = "float64"


class OptimizerBase(SpecModel):
    """Fields every kind has: the learning rate and its schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str  # each kind narrows it to its one-value Literal
    lr: float = Field(0.1, gt=0.0, allow_inf_nan=False)
    schedule: Literal["constant", "inv_sqrt", "warmup_cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    final_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)

    # Fields left out of the document while at their default, so that specs (and
    # run_keys) written before the field existed stay byte for byte the same.
    omit_at_default: ClassVar[tuple[str, ...]] = ("warmup_steps", "final_lr_ratio")

    @model_serializer(mode="wrap")
    def _omit_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        fields = type(self).model_fields
        for name in self.omit_at_default:
            if name in data and getattr(self, name) == fields[name].default:
                del data[name]
        return data


Builder = Callable[[Any, ChainEnv], Any]


@dataclass(frozen=True)
class Entry:
    kind: str
    model: type[OptimizerBase]
    build: Builder
    uses: tuple[str, ...]


REGISTRY: dict[str, Entry] = {}


def register(model: type[OptimizerBase], *, uses: tuple[str, ...]) -> Callable[[Builder], Builder]:
    """Register `model` (whose `kind` is a one-value Literal) and its chain builder."""
    kind = model.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
    unknown = set(uses) - set(BETA_AXES)
    if unknown:
        raise ValueError(f"{kind}: uses names unknown axes {sorted(unknown)}")

    def wrap(build: Builder) -> Builder:
        if kind in REGISTRY:
            raise ValueError(f"optimizer kind {kind!r} registered twice")
        REGISTRY[kind] = Entry(kind, model, build, tuple(uses))
        return build

    return wrap
