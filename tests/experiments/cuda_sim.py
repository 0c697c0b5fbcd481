"""Run with NUMBA_ENABLE_CUDASIM=1 (tests/experiments/test_fused_cuda.py does): every
zhang2022 spec of the fused kernel's tables through FusedSimulation on the CPU and
on numba's simulated GPU; prints one JSON line per spec saying which arrays differ
in any bit. benchmarks/gpu.py runs the same comparison on a real GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments import fused  # noqa: E402
from experiments.fused import FusedSimulation  # noqa: E402
from experiments.outcomes import checkpoint_steps  # noqa: E402
from experiments.problems import build_problem  # noqa: E402
from experiments.runs import all_runs  # noqa: E402
from experiments.spec import parse_spec  # noqa: E402

# long enough for the beta^k floor (beta 0.3 reaches it in 31 steps) and for the
# tables' diverging runs; the simulator takes about half a millisecond a zhang2022
# run-step and several for lstsq's (32 rows of 9 features), which runs fewer steps
# on a subset of its rows that still takes every branch of the kernel
STEPS = {"zhang2022": 100, "lstsq": 30}
LSTSQ_ROWS = (
    "torch-adam-none-lstsq",
    "torch-adamw-global_norm-lstsq",
    "loop-adagc-no-bias-inv-sqrt-lstsq",
    "torch-amsgrad-value-lstsq",
    "torch-adamw-amsgrad-adagc-lstsq",
    "loop-adam-warmup-cosine-no-bias-value-lstsq",
    "torch-adamw-global_norm-lstsq-float32",
)


def documents(whole: bool = False) -> dict[str, dict[str, Any]]:
    """The specs: every zhang2022 and lstsq row of the fused kernel's tables and
    a few minibatch sweeps, cut to STEPS (and lstsq's rows to LSTSQ_ROWS) unless
    whole (benchmarks/gpu.py runs them all, whole, on a GPU)."""
    from tests.experiments.configs import spec_document
    from tests.experiments.test_engine import INVARIANCE_SPECS, LSTSQ_SPEC
    from tests.experiments.test_fused import FUSED_CASES

    out = {c.id: spec_document(c) for c in FUSED_CASES
           if c.problem == "zhang2022" or whole or c.id in LSTSQ_ROWS}
    out["reshuffle"] = INVARIANCE_SPECS["zhang2022-reshuffle-adamw"]
    # minibatches of 1 and 3 with beta2 0.3: v falls at some steps, so amsgrad's
    # maximum differs from v (the tables' amsgrad rows never see that in 100 steps)
    small = INVARIANCE_SPECS["zhang2022-with-replacement"]
    out["amsgrad-minibatch"] = {
        **small,
        "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "amsgrad": True},
        "grid": {**small["grid"], "beta1": [0.0, 0.9], "beta2": [0.3, 0.999],
                 "batch_size": [1, 3], "seed": [0]},
    }
    out["lstsq-minibatch"] = LSTSQ_SPEC
    out["lstsq-amsgrad-minibatch"] = {**LSTSQ_SPEC, "optimizer": {"lr": 0.01, "amsgrad": True}}
    out["lstsq-reshuffle-float32"] = {**LSTSQ_SPEC, "sampling": "reshuffle", "dtype": "float32"}
    if whole:
        return out
    short = {}
    for name, doc in out.items():
        steps = STEPS[doc["problem"]["kind"]]
        opt = dict(doc.get("optimizer", {}))
        if "warmup_steps" in opt:  # the warm-up and the decay both within the steps
            opt["warmup_steps"] = min(int(opt["warmup_steps"]), steps // 4)
        short[name] = {**doc, "optimizer": opt, "steps": min(int(doc.get("steps", steps)), steps)}
    return short


def differences(doc: dict[str, Any]) -> list[str]:
    import torch

    spec = parse_spec(doc)
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    problem = build_problem(spec.problem, dtype=dtype, device=torch.device("cpu"))
    runs = all_runs(spec)
    ckpts = checkpoint_steps(spec.steps)
    bad = []
    for index, clip in enumerate(spec.axis_values()["clip"]):
        group = runs.take(np.flatnonzero(runs.clip_index == index))
        got = []
        for on_gpu in (False, True):
            sim = FusedSimulation(spec, problem, group, clip, on_gpu=on_gpu)
            curves, outcomes, final = sim.run(ckpts, lambda n: None, None)
            got.append({"curves": curves, **final,
                        **{f: getattr(outcomes, f) for f in outcomes.__dataclass_fields__}})
        cpu, gpu = got
        bad += [f"{clip.mode}:{name}" for name, a in cpu.items()
                if not np.array_equal(a, gpu[name], equal_nan=a.dtype.kind == "f")]
    return bad


def main() -> None:
    from numba import config

    assert config.ENABLE_CUDASIM, "run with NUMBA_ENABLE_CUDASIM=1"
    fused.STATS_STEPS = 32  # several launches per run: state stays on the device between them
    for name, doc in documents().items():
        print(json.dumps({"spec": name, "differ": differences(doc)}), flush=True)


if __name__ == "__main__":
    main()
