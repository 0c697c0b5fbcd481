"""The options of `betascope.run(...)`, checked as `betascope run` checks its flags: a
bad one is one ValueError naming it, before any work (not torch's error mid-sweep)."""

from __future__ import annotations

import re
from numbers import Integral
from typing import Any

from experiments.kernels import KERNEL_CHOICES

DEVICES = "auto, cpu, cuda or cuda:N"


def check_options(*, device: Any, kernel: Any, chunk_runs: Any, max_runs: Any) -> None:
    """Raise ValueError naming the first option of betascope.run that is not valid."""
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ValueError(f"device: must be {DEVICES}; got {device!r}")
    if kernel not in KERNEL_CHOICES:
        raise ValueError(f"kernel: must be {', '.join(KERNEL_CHOICES[:-1])} or "
                         f"{KERNEL_CHOICES[-1]}; got {kernel!r}")
    for name, value in (("chunk_runs", chunk_runs), ("max_runs", max_runs)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{name}: must be a whole number of at least 1; got {value!r}")
