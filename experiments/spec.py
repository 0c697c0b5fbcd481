"""The sweep spec: a grid over (beta1, beta2), batch size, clipping, lr and seeds.

The YAML/JSON document of DESIGN section 2 as pydantic models. Unknown keys are
rejected (a typo must not silently fall back to a default), every error names
its field path, and `run_key` identifies a run by everything that determines
its result, so identical runs are computed once and shared between sweeps.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import sys
import unicodedata
from contextvars import ContextVar
from typing import Annotated, Any, Literal, cast

import numpy as np
from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from experiments.numbers import SpecModel
from experiments.optimizers import KINDS as OPTIMIZER_KINDS
from experiments.optimizers import OptimizerSpec, default_optimizer, unused_axis_errors
from experiments.problems import KINDS as PROBLEM_KINDS
from experiments.problems import (  # noqa: F401  (the problem models, re-exported)
    LstsqSpec,
    ProblemSpec,
    Reddi2018Spec,
    Reddi2018StochasticSpec,
    Zhang2022Spec,
)
from experiments.version import engine_version

DEFAULT_MAX_RUNS = 10_000_000


class _Strict(SpecModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- problems (experiments/problems: one module per kind) ------------------------------------


def sample_count(problem: Any) -> int:
    """How many samples the finite sum has (the largest admissible batch size)."""
    return int(problem.samples())


# --- optimizer and clipping -----------------------------------------------------------------


_Threshold = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class ClipNone(_Strict):
    mode: Literal["none"]


class ClipGlobalNorm(_Strict):
    mode: Literal["global_norm"]
    threshold: _Threshold


class ClipValue(_Strict):
    mode: Literal["value"]
    threshold: _Threshold


class ClipAdaGC(_Strict):
    mode: Literal["adagc"]
    threshold: _Threshold
    ratio: float = Field(1.05, gt=0.0, allow_inf_nan=False)
    beta: float = Field(0.98, ge=0.0, lt=1.0)
    warmup: int = Field(100, ge=1)


ClipSpec = Annotated[ClipNone | ClipGlobalNorm | ClipValue | ClipAdaGC, Field(discriminator="mode")]


def clip_label(clip: Any) -> str:
    """The slice label of a clip setting: `none` or `mode:threshold`."""
    return "none" if clip.mode == "none" else f"{clip.mode}:{clip.threshold!r}"


# --- grid -----------------------------------------------------------------------------------


class Linspace(_Strict):
    start: float = Field(allow_inf_nan=False)
    stop: float = Field(allow_inf_nan=False)
    num: int = Field(ge=1, le=100_000)

    def values(self) -> list[float]:
        return [float(v) for v in np.linspace(self.start, self.stop, self.num)]


class Log1m(_Strict):
    """beta = 1 - q with q log-spaced over [lo, hi]: resolves beta2 close to 1."""

    log1m: tuple[float, float]
    num: int = Field(ge=1, le=100_000)

    @field_validator("log1m")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not (0.0 < lo <= 1.0 and 0.0 < hi <= 1.0):
            raise ValueError("both ends of 1 - beta must lie in (0, 1]")
        return v

    def values(self) -> list[float]:
        q = np.geomspace(self.log1m[0], self.log1m[1], self.num)
        return sorted(float(1.0 - v) for v in q)


def _axis_form(v: Any) -> str:
    """Which form a grid axis is written in, judged by its shape.

    Tried blindly, a union reports every form's complaint (a mistyped
    {start, stop, num} also read "Input should be a valid list"); picking the
    form first leaves the one error that is meant. The tags are the names that
    _path leaves out of field paths.
    """
    if isinstance(v, dict):
        return "Log1m" if "log1m" in v else "Linspace"
    if isinstance(v, Linspace | Log1m):
        return type(v).__name__
    return "list[float]"


_Axis = Annotated[
    Annotated[list[float], Tag("list[float]")] | Annotated[Linspace, Tag("Linspace")],
    Discriminator(
        _axis_form,
        custom_error_type="axis_form",
        custom_error_message="must be a list or {start, stop, num}; {log1m, num} is for beta2",
    ),
]
_Beta2Axis = Annotated[
    Annotated[list[float], Tag("list[float]")]
    | Annotated[Linspace, Tag("Linspace")]
    | Annotated[Log1m, Tag("Log1m")],
    Discriminator(_axis_form),
]


def _no_clipping() -> list[ClipSpec]:
    return [ClipNone(mode="none")]


_EXTRA_KEY = re.compile(r"^(problem|optimizer)\.([A-Za-z_]\w*)$")
_EXTRA_AXIS: TypeAdapter[Any] = TypeAdapter(_Axis)


def _grid_key_errors(grid: Any) -> list[tuple[str, str]]:
    """Keys of a grid document that are neither an axis nor an extra axis's path."""
    if not isinstance(grid, dict):
        return []
    return [
        (
            str(key),
            "Extra inputs are not permitted (an extra axis is named problem.<field> "
            "or optimizer.<field>)",
        )
        for key in grid
        if key not in GridSpec.model_fields and not _EXTRA_KEY.match(str(key))
    ]


class GridSpec(_Strict):
    # problem.<field> and optimizer.<field> axes are kept as extra keys, in the order
    # written; SweepSpec validates their values as the fields themselves
    model_config = ConfigDict(extra="allow", frozen=True)

    beta1: _Axis = Field(default_factory=lambda: [0.9])
    beta2: _Beta2Axis = Field(default_factory=lambda: [0.999])
    batch_size: list[int] = Field(default_factory=lambda: [1])
    clip: list[ClipSpec] = Field(default_factory=_no_clipping)
    lr: list[float] | None = None
    seed: list[int] = Field(default_factory=lambda: [0])

    @field_validator("beta1", "beta2", mode="after")
    @classmethod
    def _betas(cls, axis: Any) -> Any:
        values = axis if isinstance(axis, list) else axis.values()
        if not values:
            raise ValueError("must not be empty")
        for v in values:
            if not (0.0 <= v < 1.0) or v != v:
                raise ValueError(f"every beta must lie in [0, 1); got {v!r}")
        return axis

    @field_validator("batch_size", "clip", "seed", mode="after")
    @classmethod
    def _nonempty(cls, values: list[Any]) -> list[Any]:
        if not values:
            raise ValueError("must not be empty")
        return values

    @field_validator("batch_size", mode="after")
    @classmethod
    def _positive_batch(cls, values: list[int]) -> list[int]:
        if any(b < 1 for b in values):
            raise ValueError("every batch size must be at least 1")
        return values

    @field_validator("seed", mode="after")
    @classmethod
    def _seeds(cls, values: list[int]) -> list[int]:
        if any(s < 0 or s >= 2**31 for s in values):
            raise ValueError("every seed must lie in [0, 2**31)")
        return values

    @field_validator("lr", mode="after")
    @classmethod
    def _lrs(cls, values: list[float] | None) -> list[float] | None:
        if values is not None:
            if not values:
                raise ValueError("must not be empty")
            if any(not (v > 0.0) or v == float("inf") for v in values):
                raise ValueError("every lr must be a positive finite number")
        return values

    @model_validator(mode="after")
    def _extra_axes(self) -> GridSpec:
        extra = self.__pydantic_extra__ or {}
        unknown = _grid_key_errors(extra)
        if unknown:
            raise ValueError(f"{unknown[0][0]}: {unknown[0][1]}")
        for key, raw in list(extra.items()):
            if key == "optimizer.lr":
                raise ValueError(f"{key}: sweep the learning rate with the lr axis")
            try:
                axis = _EXTRA_AXIS.validate_python(raw)
            except ValidationError as exc:
                raise ValueError(f"{key}: {exc.errors()[0]['msg']}") from None
            if not (axis if isinstance(axis, list) else axis.values()):
                raise ValueError(f"{key}: must not be empty")
            if isinstance(axis, list):
                axis = list(raw)  # the raw numbers: the field's own type validates them
                if any(isinstance(v, bool) or not isinstance(v, int | float) for v in axis):
                    raise ValueError(f"{key}: every value must be a number")
            extra[key] = axis  # the dict is the model's; frozen covers attributes only
        return self

    def extra_axes(self) -> dict[str, Any]:
        """The extra axes (problem.<field>, optimizer.<field>) in the order written."""
        return dict(self.__pydantic_extra__ or {})


class Criteria(_Strict):
    converge_rel: float = Field(0.05, gt=0.0, allow_inf_nan=False)
    diverge_rel: float = Field(10.0, gt=0.0, allow_inf_nan=False)
    # a run is spiky when its loss rose this many times above its running minimum
    spike_rise: float = Field(10.0, gt=1.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Criteria:
        if self.diverge_rel <= self.converge_rel:
            raise ValueError("diverge_rel: must exceed converge_rel")
        return self


AXES = ("beta1", "beta2", "batch_size", "clip", "lr", "seed")
SEED = AXES.index("seed")


class SweepSpec(_Strict):
    # derived once per spec object (the service keeps one per sweep): axis values
    # and hashes; not part of the spec, so equality compares fields only
    _derived: dict[Any, Any] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]
    name: str = Field("untitled sweep", min_length=1, max_length=200)
    problem: ProblemSpec
    optimizer: OptimizerSpec = Field(default_factory=default_optimizer)
    sampling: Literal["with_replacement", "reshuffle"] = "with_replacement"
    steps: int = Field(ge=1, le=10_000_000)
    dtype: Literal["float64", "float32"] = "float64"
    grid: GridSpec
    criteria: Criteria = Field(default_factory=lambda: Criteria.model_validate({}))

    @field_validator("name")
    @classmethod
    def _printable(cls, v: str) -> str:
        # a name is shown in pages, logs and file listings: a NUL or a newline can cut
        # or forge a line there, a bidi override can make "exe.txt" read "txt.exe"
        bad = next((c for c in v if unicodedata.category(c) == "Cc" or c in _BIDI), None)
        if bad is not None:
            raise ValueError(
                f"must not contain control or bidi characters (found U+{ord(bad):04X})"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        problems = _cross_errors(self.problem, self.optimizer, self.grid, self.sampling, self.dtype)
        if problems:
            field, msg = problems[0]  # parse_spec reports all of them
            raise ValueError(f"{field}: {msg}")
        return self

    @model_validator(mode="after")
    def _optimizer_fits(self) -> SweepSpec:
        problems = _optimizer_errors(self.optimizer, self.grid, self.steps)
        if problems:
            field, msg = problems[0]
            raise ValueError(f"{field}: {msg}")
        return self

    def axis_values(self) -> dict[str, list[Any]]:
        """Every axis as an explicit list, in grid order (beta axes ascending as given).

        Computed once per spec object (maps ask for it per column of a grid); the
        caller gets its own lists."""
        key = ("axis_values", id(self.grid), id(self.problem), id(self.optimizer))
        if key not in self._derived:
            g = self.grid
            b1 = g.beta1 if isinstance(g.beta1, list) else g.beta1.values()
            b2 = g.beta2 if isinstance(g.beta2, list) else g.beta2.values()
            self._derived[key] = {
                "beta1": list(b1),
                "beta2": list(b2),
                "batch_size": list(g.batch_size),
                "clip": list(g.clip),
                "lr": list(g.lr) if g.lr is not None else [self.optimizer.lr],
                "seed": list(g.seed),
                **{path: values for path, (values, _) in self._extras().items()},
            }
        return {axis: list(values) for axis, values in self._derived[key].items()}

    def _extras(self) -> dict[str, tuple[list[Any], list[Any]]]:
        """Per extra axis: (field values, the problem or optimizer model per value)."""
        key = ("extras", id(self.grid), id(self.problem), id(self.optimizer))
        if key not in self._derived:
            extras, errors = _extra_axes(self.problem, self.optimizer, self.grid)
            assert not errors, errors
            self._derived[key] = extras
        return self._derived[key]  # type: ignore[no-any-return]

    def axes(self) -> tuple[str, ...]:
        """Every axis in flat order: the six standard ones, then the extra axes."""
        return AXES + tuple(self.grid.extra_axes())

    def extra_axes(self) -> tuple[str, ...]:
        return tuple(self.grid.extra_axes())

    def cell_axes(self) -> tuple[str, ...]:
        """The axes of a cell (every axis but seed): the dimensions of analysis.Cells."""
        return tuple(a for a in self.axes() if a != "seed")

    def axis_sizes(self) -> tuple[int, ...]:
        values = self.axis_values()
        return tuple(len(values[a]) for a in self.axes())

    def at_point(self, extra_index: Any) -> SweepSpec:
        """This spec with the problem and optimizer of one point of the extra axes
        (`extra_index`: one index per extra axis): what the engine runs."""
        if not self.extra_axes():
            return self
        extras = self._extras()
        problem, optimizer = self.problem, self.optimizer
        fields: dict[str, dict[str, Any]] = {"problem": {}, "optimizer": {}}
        for (path, (values, _)), i in zip(extras.items(), extra_index, strict=True):
            section, name = path.split(".", 1)
            fields[section][name] = values[int(i)]
        if fields["problem"]:
            problem = type(problem).model_validate({**problem.model_dump(), **fields["problem"]})
        if fields["optimizer"]:
            optimizer = type(optimizer).model_validate(
                {**optimizer.model_dump(), **fields["optimizer"]}
            )
        point = self.model_copy(update={"problem": problem, "optimizer": optimizer})
        point._derived = {}  # its own: the copies of a chunk must not pile up in ours
        return point

    def total_runs(self) -> int:
        # exact integers: an int64 product of six axes can wrap to a small number
        # (2**16 values on four axes is 2**64, i.e. 0) and slip under the run cap
        return math.prod(self.axis_sizes())


# U+061C, U+200E/F marks, U+202A-E embeddings and overrides, U+2066-9 isolates
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _numeric(annotation: Any) -> bool:
    """An int or float field (optionally None), not a bool, text or list."""
    import types
    import typing

    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(a in (int, float) for a in args)
    return False


def _extra_axes(
    problem: Any, optimizer: Any, grid: Any
) -> tuple[dict[str, tuple[list[Any], list[Any]]], list[tuple[str, str]]]:
    """Each extra axis's values validated as the field itself would be: ({path:
    (values, the section's model per value)}, errors). A section that is None
    (invalid itself) is not checked."""
    out: dict[str, tuple[list[Any], list[Any]]] = {}
    errors: list[tuple[str, str]] = []
    sections = {"problem": problem, "optimizer": optimizer}
    for path, axis in grid.extra_axes().items():
        section, name = path.split(".", 1)
        base = sections[section]
        if base is None:
            continue
        model = type(base)
        kind = getattr(base, "kind", section)
        field = model.model_fields.get(name)
        if field is None or name == "kind":
            errors.append((f"grid.{path}", f"{kind} has no field {name!r}"))
            continue
        if not _numeric(field.annotation):
            errors.append((f"grid.{path}", f"{section}.{name} is not a numeric field"))
            continue
        raw = axis if isinstance(axis, list) else axis.values()
        values: list[Any] = []
        models: list[Any] = []
        for i, v in enumerate(raw):
            try:
                m = model.model_validate({**base.model_dump(), name: v})
            except ValidationError as exc:
                err = exc.errors()[0]
                msg = err["msg"].removeprefix("Value error, ")
                named = _NAMED.match(msg)
                errors.append((f"grid.{path}[{i}]", named.group(2) if named else msg))
                break
            values.append(getattr(m, name))
            models.append(m)
        else:
            if len(set(values)) != len(values):
                errors.append((f"grid.{path}", "values must be distinct"))
            elif name in base.model_fields_set and getattr(base, name) not in values:
                errors.append(
                    (
                        f"{section}.{name}",
                        f"is also swept by grid.{path}; set it in one place",
                    )
                )
            else:
                out[path] = (values, models)
    return out, errors


def _cross_errors(
    problem: Any, optimizer: Any, grid: Any, sampling: Any, dtype: Any
) -> list[tuple[str, str]]:
    """Checks that span fields, each run when the fields it reads are valid (None when
    not), so a spec with a bad field still hears about every other mistake at once."""
    errors: list[tuple[str, str]] = []
    variants = [problem]
    if grid is not None:
        extras, errors = _extra_axes(problem, optimizer, grid)
        problem_axes = [models for path, (_, models) in extras.items() if path[0] == "p"]
        if problem_axes:
            # every problem a run uses must take the batch sizes (n is an axis: each n)
            variants = [m for models in problem_axes for m in models]
    if problem is not None:
        # every problem a run uses must take the batch sizes (n is an axis: each n)
        batch_sizes = list(grid.batch_size) if grid is not None else []
        for p in variants:
            errors += [e for e in p.grid_errors(batch_sizes, sampling) if e not in errors]
    if grid is None:
        return errors
    b1 = grid.beta1 if isinstance(grid.beta1, list) else grid.beta1.values()
    b2 = grid.beta2 if isinstance(grid.beta2, list) else grid.beta2.values()
    axes = {
        "beta1": b1,
        "beta2": b2,
        "batch_size": grid.batch_size,
        "clip": grid.clip,
        "lr": grid.lr or [],
        "seed": grid.seed,
    }
    # A repeated value would make two grid points one run (one run_key): the sweep
    # would count a run twice and store it once.
    for axis, values in axes.items():
        seen = [canonical_json(v.model_dump(mode="json")) if axis == "clip" else v for v in values]
        if len(set(seen)) != len(seen):
            errors.append((f"grid.{axis}", "values must be distinct"))
    # A beta2 of 1 - 1e-9 is below 1 in float64 but 1.0 in float32: v would never
    # move off zero and the run would blow up for a reason the grid hides. (A sweep
    # stored before a check was added is read as it was computed: parse_stored.)
    if dtype == "float32" and not _READING_STORED.get():
        for axis, values in (("beta1", b1), ("beta2", b2)):
            rounded = next((v for v in values if np.float32(v) >= 1.0), None)
            if rounded is not None:
                errors.append(
                    (f"grid.{axis}", f"{rounded!r} rounds to 1.0 in float32; use dtype float64")
                )
        # an lr beyond float32's range would run as inf (or 0) without saying so
        # (optimizer None: its own errors are reported; an lr of 1.0 checks nothing)
        field, lrs = (
            ("grid.lr", grid.lr) if grid.lr else ("optimizer.lr", [getattr(optimizer, "lr", 1.0)])
        )
        for lr in lrs:
            x = _float32(lr)
            if x == 0.0 or not np.isfinite(x):
                where = (
                    "below float32's range (smallest 1.4e-45)"
                    if x == 0.0
                    else "beyond float32's range (largest 3.4e38)"
                )
                errors.append((field, f"{lr!r} is {where}; use dtype float64"))
                break
        # two values one float32 number: two columns of the map, one computation
        for axis, values in (("beta1", b1), ("beta2", b2), ("lr", grid.lr or [])):
            same = _same_in_float32(values)
            if same is not None:
                errors.append(
                    (
                        f"grid.{axis}",
                        f"{same[0]!r} and {same[1]!r} are one number in float32; "
                        "use dtype float64 or values further apart",
                    )
                )
    return errors


def _float32(v: float) -> float:
    """v rounded to float32 (inf beyond its range, 0 below it, without numpy's warning)."""
    with np.errstate(over="ignore", under="ignore"):
        return float(np.float32(v))


def _same_in_float32(values: Any) -> tuple[float, float] | None:
    """Two of the values (distinct) that float32 rounds to one number, if any."""
    seen: dict[float, float] = {}
    for v in values:
        key = _float32(v)
        if key in seen and seen[key] != v:
            return seen[key], v
        seen.setdefault(key, v)
    return None


def _optimizer_errors(optimizer: Any, grid: Any, steps: Any) -> list[tuple[str, str]]:
    """The optimizer against the grid and steps: an unused beta axis holds one value,
    and warmup_cosine's warmup ends before the last step."""
    errors: list[tuple[str, str]] = []
    if optimizer is None:
        return errors
    if grid is not None:
        betas = {
            axis: list(values if isinstance(values, list) else values.values())
            for axis in ("beta1", "beta2")
            if (values := getattr(grid, axis, None)) is not None
        }
        errors += unused_axis_errors(optimizer, betas)
    if isinstance(steps, int) and optimizer.schedule == "warmup_cosine":
        if optimizer.warmup_steps >= steps:
            errors.append(
                ("optimizer.warmup_steps", f"must be below steps ({steps}) for warmup_cosine")
            )
    return errors


def _part(name: str, data: dict[str, Any]) -> Any:
    """One top-level field of `data` validated on its own; None when it is invalid."""
    field = SweepSpec.model_fields[name]
    if name not in data:
        return None if field.is_required() else field.get_default(call_default_factory=True)
    try:
        return _adapter(name).validate_python(data[name])
    except ValidationError:
        return None


@functools.cache
def _adapter(name: str) -> TypeAdapter[Any]:
    field = SweepSpec.model_fields[name]
    if not field.metadata:
        return TypeAdapter(cast(Any, field.annotation))
    return TypeAdapter(cast(Any, Annotated[(field.annotation, *field.metadata)]))  # type: ignore[valid-type]


class SpecError(ValueError):
    """A spec that cannot be run; `errors` lists (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in errors))


def _path(loc: tuple[Any, ...]) -> str:
    # Pydantic puts union-member tags (e.g. "zhang2022", "list[float]") into the
    # location; users know only their own keys and list positions.
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in {"list[float]", "Linspace", "Log1m", "list[int]"} or "[" in str(item):
            continue
        elif parts and str(item) in _UNION_TAGS:
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


_NAMED = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.*)$", re.S)

_UNION_TAGS = {
    *PROBLEM_KINDS,
    "none",
    "global_norm",
    "value",
    "adagc",
    *OPTIMIZER_KINDS,
}


def parse_spec(data: Any, *, max_runs: int = DEFAULT_MAX_RUNS) -> SweepSpec:
    """Validate a spec document (already parsed from YAML or JSON).

    Raises SpecError naming each offending field, or RunCapError when the grid
    holds more runs than `max_runs`.
    """
    if not isinstance(data, dict):
        raise SpecError([("", "the spec must be a mapping (a YAML or JSON object)")])
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = _path(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            # model-level checks name their field as "field: message"
            named = _NAMED.match(msg)
            if named:
                field, msg = named.groups()
                loc = field if not loc or field.startswith(loc + ".") else f"{loc}.{field}"
            errors.append((loc, msg))
        # cross-field checks run only once every field is valid; run them here on the
        # fields that are, so one answer lists every mistake
        errors += _cross_errors(
            *(_part(name, data) for name in ("problem", "optimizer", "grid", "sampling", "dtype"))
        )
        # unknown grid keys are found by GridSpec only once its fields are valid
        errors += [(f"grid.{k}", m) for k, m in _grid_key_errors(data.get("grid"))]
        errors += _optimizer_errors(*(_part(name, data) for name in ("optimizer", "grid", "steps")))
        raise SpecError(_dedupe(errors)) from None
    total = spec.total_runs()
    if total > max_runs:
        raise RunCapError(total, max_runs)
    return spec


# Set while a stored sweep's spec is read back: refusals of values that compute
# (float32's range and rounding of the grid, added as betascope learned of them)
# must not make a sweep stored before them unreadable.
_READING_STORED: ContextVar[bool] = ContextVar("reading_stored", default=False)


def parse_stored(doc: dict[str, Any]) -> SweepSpec:
    """A stored sweep's spec, as parse_spec reads it but without the cap (applied at
    creation) and without the float32 grid checks, which refuse a new sweep's values
    but not a stored sweep's results."""
    token = _READING_STORED.set(True)
    try:
        return parse_spec(without_swept(doc), max_runs=sys.maxsize)
    finally:
        _READING_STORED.reset(token)


def _dedupe(errors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for e in errors:
        seen.setdefault(e, None)
    return list(seen)


class RunCapError(SpecError):
    def __init__(self, total: int, cap: int):
        self.total, self.cap = total, cap
        super().__init__([("grid", f"{total} runs exceed the cap of {cap} runs")])


def document(spec: SweepSpec) -> dict[str, Any]:
    """The spec as a JSON document that parses back to the same spec: its dump without
    the fields its extra axes sweep (the model holds those at their defaults, and a
    document naming one beside its axis at a value off the axis is refused)."""
    return without_swept(spec.model_dump(mode="json"))


def without_swept(doc: Any) -> Any:
    """A spec document without the problem and optimizer fields its grid's extra axes
    sweep; a stored dump that holds them (problem.n: 20 beside grid problem.n [5, 50])
    parses again."""
    grid = doc.get("grid") if isinstance(doc, dict) else None
    if not isinstance(grid, dict):
        return doc
    out = dict(doc)
    for path in grid:
        section, _, name = str(path).partition(".")
        fields = out.get(section)
        if name and isinstance(fields, dict) and name in fields:
            out[section] = {k: v for k, v in fields.items() if k != name}
    return out


def load_spec_text(text: str, *, max_runs: int = DEFAULT_MAX_RUNS) -> SweepSpec:
    """Parse YAML or JSON text (JSON is YAML) into a validated spec."""
    import yaml

    from experiments.spec_text import load_document, yaml_problem

    try:
        data = load_document(text)
    except yaml.YAMLError as exc:
        raise SpecError([("", f"not valid YAML or JSON: {yaml_problem(exc)}")]) from None
    return parse_spec(data, max_runs=max_runs)


# --- run keys -------------------------------------------------------------------------------


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _run_prefix(spec: SweepSpec, kernel: str) -> dict[str, Any]:
    # a field swept by an extra axis is a per-run value (a term of the key's sum),
    # not part of what the runs share
    swept: dict[str, set[str]] = {"problem": set(), "optimizer": {"lr"}}
    for path in spec.extra_axes():
        section, name = path.split(".", 1)
        swept[section].add(name)
    return {
        "engine": engine_version(kernel),
        "problem": spec.problem.model_dump(mode="json", exclude=swept["problem"] or None),
        "optimizer": spec.optimizer.model_dump(mode="json", exclude=swept["optimizer"]),
        "sampling": spec.sampling,
        "steps": spec.steps,
        "dtype": spec.dtype,
        "criteria": _criteria_key(spec.criteria),
    }


def _criteria_key(criteria: Criteria) -> dict[str, Any]:
    """The criteria as run keys hold them. spike_rise came after keys were first
    handed out and is left out at its default, so those keys stay valid."""
    out = criteria.model_dump(mode="json")
    if out["spike_rise"] == Criteria.model_fields["spike_rise"].default:
        del out["spike_rise"]
    return out


def program_digest(spec: SweepSpec, kernel: str = "eager") -> bytes:
    """sha256 of everything a sweep's runs share: problem, optimizer (but lr),
    sampling, steps, dtype, criteria and the engine's version."""
    return hashlib.sha256(canonical_json(_run_prefix(spec, kernel)).encode()).digest()


def axis_value_json(axis: str, value: Any) -> str:
    """An axis value as canonical JSON (a clip as its document, numbers as json.dumps)."""
    if axis == "clip":
        return canonical_json(value.model_dump(mode="json"))
    return canonical_json(value)


def axis_hashes(spec: SweepSpec) -> dict[str, np.ndarray]:
    """Per axis, each value's two 64-bit hash lanes: uint64 [n_values, 2], the first
    16 bytes of sha256(canonical_json([axis, value])) read little-endian."""
    # keyed by the objects the axes come from: a model_copy shares _derived
    key = ("axis_hashes", id(spec.grid), id(spec.problem), id(spec.optimizer))
    if key in spec._derived:
        return spec._derived[key]  # type: ignore[no-any-return]
    out = {}
    for axis, values in spec.axis_values().items():
        digests = b"".join(
            hashlib.sha256(f'["{axis}",{axis_value_json(axis, v)}]'.encode()).digest()[:16]
            for v in values
        )
        out[axis] = np.frombuffer(digests, dtype="<u8").reshape(len(values), 2)
    spec._derived[key] = out
    return out


KERNEL_RUNS = 4096


def kernel_pass(n: int) -> bool:
    """Whether run_keys and runs_at (experiments.runs) take experiments/run_kernels.py's
    numba pass (4-6x faster) for n runs: from KERNEL_RUNS runs on, where numba is
    loaded already (a server, a worker, a fused sweep, the CSV writer). Importing it
    for this alone would cost a process more than numpy's passes (0.35 s)."""
    return n >= KERNEL_RUNS and "numba" in sys.modules


# each byte's two hex digits as one uint16 whose bytes, in memory, are the digits in order
_HEX2 = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint16)


def run_keys(spec: SweepSpec, table: Any, *, kernel: str = "eager") -> np.ndarray:
    """Every run's run_key (numpy 'S64' hex strings), computed without a hash per run.

    run_key = hex(first 16 bytes of program_digest) + hex(lane0) + hex(lane1) (each
    lane big-endian), where lane_j is the sum modulo 2**64 over the axes of the run's
    value's axis_hashes lane j. The program digest covers everything the runs share;
    the sum identifies the run's axis values (a collision needs two 128-bit sums of
    independent sha256 values to agree) and, being a sum of per-axis terms, can be
    inverted by a meet-in-the-middle search (experiments.keys.find_run).
    """
    prefix = program_digest(spec, kernel)[:16].hex().encode()
    if kernel_pass(len(table.index)):
        from experiments.run_kernels import HEX_DIGITS, write_keys

        outer, inner = _lane_tables(spec)
        flat = np.ascontiguousarray(table.index, dtype=np.int64)
        text = np.empty((len(flat), 64), dtype=np.uint8)
        write_keys(
            flat, len(inner), outer, inner, np.frombuffer(prefix, np.uint8), HEX_DIGITS, text
        )
        return text.view("S64").reshape(-1)
    lanes = run_lanes(spec, table)
    n = lanes.shape[0]
    # written as eight 8-byte words a key (copying 32 single bytes a row took 2 ms per
    # 50,000 keys, twice the rest); the digits are looked up straight into place
    out = np.empty((n, 8), dtype=np.uint64)
    out[:, :4] = np.frombuffer(prefix, np.uint64)
    digits = out[:, 4:].view(np.uint16).reshape(n, 16)
    np.take(_HEX2, lanes.astype(">u8").view(np.uint8).reshape(n, 16), out=digits)
    return out.view("S64").reshape(n)


def run_lanes(spec: SweepSpec, table: Any) -> np.ndarray:
    """The two hash lanes of each run of a RunTable: uint64 [R, 2]. The sum over
    the axes is split at an axis into the sums over the leading and the trailing
    axes, each tabulated over its sub-grid (about sqrt(runs) rows each), so a run
    costs two lookups by its flat index instead of one per axis."""
    outer, inner = _lane_tables(spec)
    flat = np.asarray(table.index, dtype=np.int64)
    q = len(inner)
    return outer[flat // q] + inner[flat % q]


def _lane_tables(spec: SweepSpec) -> tuple[np.ndarray, np.ndarray]:
    """(lane sums over every combination of the leading axes' values, and of the
    trailing axes' values), both uint64 [*, 2], in C order."""
    key = ("lane_tables", id(spec.grid), id(spec.problem), id(spec.optimizer))
    if key in spec._derived:
        return spec._derived[key]  # type: ignore[no-any-return]
    hashes = axis_hashes(spec)
    axes, sizes = spec.axes(), spec.axis_sizes()
    split = min(
        range(len(sizes) + 1),
        key=lambda k: max(
            int(np.prod(sizes[:k], dtype=np.int64)), int(np.prod(sizes[k:], dtype=np.int64))
        ),
    )

    def table(names: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros((int(np.prod(shape, dtype=np.int64)), 2), dtype=np.uint64)
        if not shape:  # no axes on this side: one empty combination
            return out
        grid = np.unravel_index(np.arange(len(out)), shape)
        for name, index in zip(names, grid, strict=True):
            out += hashes[name][index]  # uint64 wraps, as the key's sum does
        return out

    value = (table(axes[:split], sizes[:split]), table(axes[split:], sizes[split:]))
    spec._derived[key] = value
    return value
