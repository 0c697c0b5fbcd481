"""Which engine kernel a sweep runs on: the support table of the fused kernel and
`kernel: auto`'s choice. Imports neither torch nor numba, so the API process can
resolve a sweep's kernel (it is part of every run_key) before storing it.

- `eager`: op-by-op PyTorch, every problem, optimizer and clip mode, CPU or CUDA.
- `compiled`: the same step code through torch.compile.
- `fused`: one numba function per block of steps (experiments/fused.py) for the
  combinations in FUSED_* below; on a CUDA device one GPU thread per run
  (experiments/fused_cuda.py, the same numbers bit for bit).
- `auto`: `fused` where it applies and the sweep has at least its problem's
  AUTO_MIN_RUN_STEPS run-steps, else `eager`.
  It is resolved before any run_key is computed, so a sweep's keys name the
  kernel that computed it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from experiments.spec import SpecError

KERNEL_CHOICES = ("auto", "eager", "compiled", "fused")
FUSED_PROBLEMS = ("zhang2022", "lstsq")
FUSED_OPTIMIZERS = ("adam", "adamw")
FUSED_CLIPS = ("none", "global_norm", "value", "adagc")
# Loading the fused kernel from numba's on-disk cache costs 1-3 s per process
# (compiling it, once per machine, 20 s to 2 minutes). In that time eager runs
# about 10^8 zhang2022 run-steps but only about 2 x 10^6 lstsq ones (its minibatch
# gradient touches every sample), so below these sizes `auto` keeps eager.
AUTO_MIN_RUN_STEPS = {"zhang2022": 100_000_000, "lstsq": 2_000_000}


def fused_unsupported(spec: Any) -> tuple[str, str] | None:
    """(field, message) saying why the fused kernel cannot run this spec, or None."""
    if spec.problem.kind not in FUSED_PROBLEMS:
        return (
            "problem.kind",
            f"kernel fused supports {', '.join(FUSED_PROBLEMS)}, not "
            f"{spec.problem.kind}; use kernel auto or eager",
        )
    if spec.optimizer.kind not in FUSED_OPTIMIZERS:
        return (
            "optimizer.kind",
            f"kernel fused supports {', '.join(FUSED_OPTIMIZERS)}, not "
            f"{spec.optimizer.kind}; use kernel auto or eager",
        )
    for clip in spec.axis_values()["clip"]:
        if clip.mode not in FUSED_CLIPS:
            return ("grid.clip", f"kernel fused does not support clip mode {clip.mode}")
    if importlib.util.find_spec("numba") is None:
        return ("kernel", "fused needs numba, which is not installed; use kernel auto or eager")
    return None


def resolve_kernel(spec: Any, kernel: str, device: str = "cpu") -> str:
    """The concrete kernel (eager, compiled or fused) that `kernel` means for `spec`.

    The choice is the same on every `device` (the fused kernel runs on a CUDA GPU
    too, with the same numbers), so a sweep's keys do not depend on where its
    chunks run. Raises SpecError (a ValueError; 422 through the API) naming the
    field when `kernel` is unknown or is `fused` for a spec it does not support."""
    if kernel not in KERNEL_CHOICES:
        raise SpecError([("kernel", f"must be one of {', '.join(KERNEL_CHOICES)}, got {kernel!r}")])
    if kernel == "fused":
        reason = fused_unsupported(spec)
        if reason is not None:
            raise SpecError([reason])
        return "fused"
    if kernel != "auto":
        return kernel
    least = AUTO_MIN_RUN_STEPS.get(spec.problem.kind)
    big = least is not None and spec.total_runs() * spec.steps >= least
    return "fused" if big and fused_unsupported(spec) is None else "eager"
