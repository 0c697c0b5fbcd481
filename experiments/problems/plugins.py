"""Problems from other packages: the `betascope.problems` entry-point group.

A plug-in distribution declares, in its pyproject.toml,

    [project.entry-points."betascope.problems"]
    mykind = "my_package.spec:MySpec"

where MySpec subclasses experiments.problems.base.ProblemBase (re-exported as
betascope.problems.ProblemBase) with `kind: Literal["mykind"]` and a method
`build(self, *, dtype, device)` returning a Problem, or a betascope.problems.
AutogradProblem (which derives one from `loss(params, batch)`). What build()
returns is checked once (experiments.problems.plugin_checks) and every failure of
the plug-in's code there is one PluginError naming the kind. Only the spec module
is imported here, so the API, which validates specs but never runs them, stays
free of the plug-in's (and torch's) heavy imports until a chunk runs. No code
travels in a spec: a spec can only name a kind installed on the machine.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from experiments.problems.base import REGISTRY, ProblemBase, kind_of, register

GROUP = "betascope.problems"


class PluginError(ValueError):
    """A plug-in problem that cannot run, named: `problem K (plug-in module): why`.

    A ValueError, as every error of a spec that cannot run, so `betascope run` and
    the service report its message rather than a traceback."""


def _builder(model: type[ProblemBase], kind: str) -> Any:
    label = f"problem {kind} (plug-in {model.__module__})"

    def build(spec: Any, *, dtype: Any, device: Any) -> Any:
        from experiments.problems.plugin_checks import checked

        try:
            built = spec.build(dtype=dtype, device=device)
        except Exception as exc:  # noqa: BLE001  (any failure of foreign code, named)
            raise PluginError(f"{label}: build() raised {type(exc).__name__}: {exc}") from exc
        return checked(built, spec, label=label, dtype=dtype, device=device)

    build.__doc__ = f"{model.__name__}.build, its result checked (plugin_checks)"
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
            least = model.eager_chunk_runs
            if isinstance(least, bool) or not isinstance(least, int) or least < 1:
                raise TypeError(
                    f"{model.__name__}.eager_chunk_runs must be a whole number "
                    f"of at least 1, got {least!r}"
                )
            if kind in REGISTRY:
                raise ValueError(f"kind {kind!r} is already registered by {REGISTRY[kind].origin}")
            register(model, origin=origin)(_builder(model, kind))
        except Exception as exc:  # noqa: BLE001  (any failure of foreign code)
            skipped[ep.name] = f"{origin}: {type(exc).__name__}: {exc}"
    return skipped
