"""The problem catalogue: one module per kind, each registered once.

Importing this package registers every built-in kind; the plug-ins of the
`betascope.problems` entry-point group (experiments.problems.plugins) are loaded
when `ProblemSpec` (the spec's `problem` field), `KINDS` or `PLUGIN_ERRORS` is
first read, and these are derived from REGISTRY. Adding a problem is one module
here (its spec model, its Problem, its reference in the docstring) plus its
import below and its tests.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import BeforeValidator, Discriminator, Tag

from experiments.problems import (  # noqa: F401  (each import registers a kind)
    lstsq,
    mlp,
    poly,
    quadratic,
    reddi2018,
    zhang2022,
)
from experiments.problems.base import REGISTRY, Problem, ProblemBase, off_optimum, register
from experiments.problems.base import build as build_problem
from experiments.problems.lstsq import Lstsq, LstsqSpec
from experiments.problems.mlp import Mlp, MlpSpec
from experiments.problems.plugins import load_plugins
from experiments.problems.poly import Poly, PolySpec
from experiments.problems.quadratic import Quadratic, QuadraticSpec
from experiments.problems.reddi2018 import (
    Reddi2018,
    Reddi2018Spec,
    Reddi2018Stochastic,
    Reddi2018StochasticSpec,
)
from experiments.problems.zhang2022 import Zhang2022, Zhang2022Spec

__all__ = [
    "KINDS",
    "REGISTRY",
    "Lstsq",
    "LstsqSpec",
    "PLUGIN_ERRORS",
    "Poly",
    "PolySpec",
    "Mlp",
    "MlpSpec",
    "Problem",
    "ProblemBase",
    "ProblemSpec",
    "Quadratic",
    "QuadraticSpec",
    "Reddi2018",
    "Reddi2018Spec",
    "Reddi2018Stochastic",
    "Reddi2018StochasticSpec",
    "Zhang2022",
    "Zhang2022Spec",
    "build_problem",
    "off_optimum",
    "register",
]

# The plug-ins, KINDS and the spec union are derived on first use (experiments.spec
# reads them at its import), not when this package is imported: a plug-in's spec
# module imports betascope.problems, and so this package, before its own classes
# exist, and loading the entry points then would find it half-initialized.
_derived: dict[str, Any] = {}
_lock = threading.Lock()


def _kind(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("kind", ""))
    return str(getattr(v, "kind", ""))


def _not_failed(errors: dict[str, str]) -> Any:
    """A spec naming a plug-in kind that failed to load gets that plug-in's error,
    not just the list of the kinds that did load."""

    def check(v: Any) -> Any:
        kind = _kind(v)
        if kind in errors and kind not in REGISTRY:
            raise ValueError(f"kind: plug-in {kind} failed to load: {errors[kind]}")
        return v

    return check


def _derive() -> dict[str, Any]:
    with _lock:
        if not _derived:
            errors = load_plugins()
            kinds = tuple(REGISTRY)
            members = tuple(Annotated[e.model, Tag(k)] for k, e in REGISTRY.items())
            union: Any = Annotated[
                Union[members],  # type: ignore[valid-type]  # noqa: UP007
                Discriminator(
                    _kind,
                    custom_error_type="problem_kind",
                    custom_error_message=f"kind: must be one of {', '.join(kinds)}",
                ),
                BeforeValidator(_not_failed(errors)),
            ]
            _derived.update(PLUGIN_ERRORS=errors, KINDS=kinds, ProblemSpec=union)
    return _derived


if TYPE_CHECKING:
    ProblemSpec = ProblemBase
    KINDS: tuple[str, ...]
    PLUGIN_ERRORS: dict[str, str]  # {entry point: why it was not loaded}
else:

    def __getattr__(name: str) -> Any:
        if name in ("PLUGIN_ERRORS", "KINDS", "ProblemSpec"):
            return _derive()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
