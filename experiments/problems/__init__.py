"""The problem catalogue: one module per kind, each registered once.

Importing this package registers every built-in kind, then every plug-in of
the `betascope.problems` entry-point group (experiments.problems.plugins);
`ProblemSpec` (the spec's `problem` field), `KINDS` and `build_problem` are
derived from REGISTRY. Adding a problem is one module here (its spec model,
its Problem, its reference in the docstring) plus its import below and its
tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Tag

from experiments.problems import (  # noqa: F401  (each import registers a kind)
    lstsq,
    mlp,
    reddi2018,
    zhang2022,
)
from experiments.problems.base import REGISTRY, Problem, ProblemBase, off_optimum, register
from experiments.problems.base import build as build_problem
from experiments.problems.lstsq import Lstsq, LstsqSpec
from experiments.problems.mlp import Mlp, MlpSpec
from experiments.problems.plugins import load_plugins
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
    "Mlp",
    "MlpSpec",
    "Problem",
    "ProblemBase",
    "ProblemSpec",
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

PLUGIN_ERRORS: dict[str, str] = load_plugins()
KINDS: tuple[str, ...] = tuple(REGISTRY)


def _kind(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("kind", ""))
    return str(getattr(v, "kind", ""))


if TYPE_CHECKING:  # the union is built from the registry at import time
    ProblemSpec = ProblemBase
else:
    ProblemSpec = Annotated[
        Union[tuple(Annotated[e.model, Tag(k)] for k, e in REGISTRY.items())],  # noqa: UP007
        Discriminator(
            _kind,
            custom_error_type="problem_kind",
            custom_error_message=f"kind: must be one of {', '.join(KINDS)}",
        ),
    ]
