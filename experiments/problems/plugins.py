"""Problems from other packages: the `betascope.problems` entry-point group.

A plug-in distribution declares, in its pyproject.toml,

    [project.entry-points."betascope.problems"]
    mykind = "my_package.spec:MySpec"

where MySpec subclasses experiments.problems.base.ProblemBase (re-exported as
betascope.problems.ProblemBase) with `kind: Literal["mykind"]` and a method
`build(self, *, dtype, device)` returning a Problem, or a betascope.problems.
AutogradProblem (which derives one from `loss(params, batch)`). Only the spec module
is imported here, so the API, which validates specs but never runs them, stays
free of the plug-in's (and torch's) heavy imports until a chunk runs. No code
travels in a spec: a spec can only name a kind installed on the machine.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from experiments.problems.base import REGISTRY, ProblemBase, kind_of, register

GROUP = "betascope.problems"


def _builder(model: type[ProblemBase]) -> Any:
    def build(spec: Any, *, dtype: Any, device: Any) -> Any:
        from experiments.problems.autograd import vectorize

        return vectorize(spec.build(dtype=dtype, device=device))

    build.__doc__ = f"{model.__name__}.build"
    return build


def load_plugins() -> dict[str, str]:
    """Register every installed plug-in problem; {entry point: why it was skipped}.

    A broken plug-in must not take the built-in problems (and the service) down
    with it, so its error is kept for `betascope problems` to show instead."""
    skipped: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        origin = f"{ep.dist.name if ep.dist else '?'} ({ep.value})"
        try:
            model = ep.load()
            if not (isinstance(model, type) and issubclass(model, ProblemBase)):
                raise TypeError("must name a subclass of betascope.problems.ProblemBase")
            kind = kind_of(model)
            if kind != ep.name:
                raise TypeError(f"entry point {ep.name!r} names a spec of kind {kind!r}")
            if not callable(getattr(model, "build", None)):
                raise TypeError(f"{model.__name__} has no build(self, *, dtype, device)")
            if kind in REGISTRY:
                raise ValueError(f"kind {kind!r} is already registered by {REGISTRY[kind].origin}")
            register(model, origin=origin)(_builder(model))
        except Exception as exc:  # noqa: BLE001  (any failure of foreign code)
            skipped[ep.name] = f"{origin}: {type(exc).__name__}: {exc}"
    return skipped
