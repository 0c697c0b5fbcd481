"""What a plug-in problem package needs from betascope (see README, "Your own problem").

    from betascope.problems import AutogradProblem, ProblemBase

A spec model subclasses ProblemBase with `kind: Literal["mykind"]`, its fields,
`samples()` (the largest batch size) and `build(self, *, dtype, device)`, which
returns an AutogradProblem (its `loss(params, batch)`) or a full Problem. The
package names the spec model in the `betascope.problems` entry-point group.
Importing this module does not import torch.
"""

from __future__ import annotations

from experiments.problems.autograd import AutogradProblem
from experiments.problems.base import Problem, ProblemBase

__all__ = ["AutogradProblem", "Problem", "ProblemBase"]
