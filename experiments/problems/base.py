"""What every problem shares: the spec base, the registry and `register`.

A problem module holds its spec model (a `kind` literal and its fields) and the
Problem it builds, and registers the pair once with `@register(SpecModel)` on
its builder. The spec union, the `kind` error, sample counts, the grid checks
and the engine's construction all read REGISTRY. Modules import torch through
experiments.lazy, so validating a spec (the API does it) never loads torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from experiments.numbers import SpecModel

if TYPE_CHECKING:
    import torch
    from torch import Tensor


class Problem(Protocol):
    """A finite-sum (or online) objective, evaluated for R runs at once.

    `batch_stats` turns the sampled minibatch of one (seed, batch size) stream
    into a small per-step summary [K, S] (e.g. the share of component 0); the
    engine gathers it to the runs of that stream, and `grad` maps it to the
    minibatch gradient. Summaries rather than raw indices keep mixed batch sizes
    in one tensor program. A problem whose summary is as wide as the batch (the
    sampled indices: mlp) sets `per_batch_size = True`, and the engine then runs
    each batch size of a chunk as a program of its own.
    """

    dim: int
    blocks: list[tuple[int, int]]  # parameter tensors, as column ranges of x
    n_stats: int

    # Read-only in the protocol, so a problem whose optimum is always known may
    # declare plain Tensor and float attributes.
    @property
    def x_star(self) -> Tensor | None: ...  # [d]

    @property
    def f_star(self) -> float | None: ...

    def x0(self) -> Tensor: ...  # [d]

    def loss(self, x: Tensor) -> Tensor: ...  # full objective, [R]

    def batch_stats(
        self, *, seed: int, batch_size: int, sampling: str, steps: Tensor
    ) -> Tensor: ...  # [K, S]

    def grad(self, x: Tensor, stats: Tensor) -> Tensor: ...  # [R, d]

    def project(self, x: Tensor) -> Tensor: ...


class ProblemBase(SpecModel):
    """A problem's spec: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str  # each kind narrows it to its one-value Literal

    # Problems that are one deterministic function per step take batch size 1 only.
    batch_one: ClassVar[str | None] = None  # the reason, when they do

    # The fewest runs a chunk of the eager (or compiled) kernel should hold: each
    # step of its tensor program costs about as much, whatever its run count, as
    # stepping this many runs (measured on 2 CPU cores; docs/storage.md). Smaller
    # chunks would spend a sweep's time on that fixed cost, not on its runs: 16
    # chunks of zhang2022-batch took 58 s against 4.9 s for one. The fused kernel's
    # steps have no such cost, so its chunks ignore this.
    eager_chunk_runs: ClassVar[int] = 64

    def samples(self) -> int:
        """How many samples the finite sum has (the largest admissible batch size)."""
        raise NotImplementedError

    def grid_errors(self, batch_sizes: list[int], sampling: str) -> list[tuple[str, str]]:
        """The batch sizes and sampling against this problem, as (field, message)."""
        if self.batch_one is not None:
            if any(b != 1 for b in batch_sizes):
                return [("grid.batch_size", f"{self.kind} {self.batch_one}; batch size must be 1")]
            return []
        limit = self.samples()
        over = [b for b in batch_sizes if b > limit]
        if over:
            return [("grid.batch_size", f"{over[0]} exceeds the problem's {limit} samples")]
        return []


def off_optimum(x0: float, x_star: float) -> float:
    # rel(x) = (f(x) - f*) / (f(x0) - f*) is 0/0 for a run that starts at x*,
    # and the outcome rules would call every such run diverged.
    if x0 == x_star:
        raise ValueError(f"must differ from x* = {x_star} (outcomes are relative to f(x0) - f*)")
    return x0


Builder = Callable[..., Problem]  # (spec, *, dtype, device) -> Problem


@dataclass(frozen=True)
class Entry:
    kind: str
    model: type[ProblemBase]
    build: Builder
    origin: str  # the module (or plug-in distribution) it came from


REGISTRY: dict[str, Entry] = {}


def kind_of(model: type[BaseModel]) -> str:
    annotation = model.model_fields["kind"].annotation
    args: tuple[Any, ...] = tuple(getattr(annotation, "__args__", ()))
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{model.__name__}.kind must be a one-value Literal")
    return str(args[0])


def register(
    model: type[ProblemBase], *, origin: str | None = None
) -> Callable[[Builder], Builder]:
    """Register `model` (whose `kind` is a one-value Literal) and its builder."""
    kind = kind_of(model)

    def wrap(build: Builder) -> Builder:
        if kind in REGISTRY:
            raise ValueError(
                f"problem kind {kind!r} registered twice ({REGISTRY[kind].origin}, "
                f"{origin or build.__module__})"
            )
        REGISTRY[kind] = Entry(kind, model, build, origin or build.__module__)
        return build

    return wrap


def build(spec: Any, *, dtype: torch.dtype, device: torch.device) -> Problem:
    """The problem object for a problem spec, on `device` in `dtype`."""
    return REGISTRY[spec.kind].build(spec, dtype=dtype, device=device)
