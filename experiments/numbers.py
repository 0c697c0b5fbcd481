"""Spec models whose numbers are numbers: `true` and `false` are refused where a field
holds numbers (pydantic's lax mode read `steps: true` as 1 step and `beta1: [false,
0.5]` as [0.0, 0.5]), and kept where a field takes a bool (`amsgrad: true`).

Every spec model derives from SpecModel: the sweep's sections, each problem's and
each optimizer's model (plug-ins' too, through ProblemBase)."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, model_validator


def _admits_bool(annotation: Any) -> bool:
    """Whether a field's type takes a bool somewhere (bool, bool | None, list[bool])."""
    if annotation is bool:
        return True
    return any(_admits_bool(a) for a in typing.get_args(annotation))


def _holds_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    return isinstance(value, list | tuple) and any(isinstance(v, bool) for v in value)


class SpecModel(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, data: Any) -> Any:
        # a model check, not a field validator: a discriminator (kind, mode) may have none
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(field.alias or name)
                if _holds_bool(value) and not _admits_bool(field.annotation):
                    raise ValueError(f"{name}: true or false where a number goes; write the number")
        return data
