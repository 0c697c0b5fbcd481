"""The fused kernel on a GPU (experiments/fused_cuda.py), checked without one.

- numba's CUDA simulator runs the kernel's own source, thread by thread, over
  every zhang2022 row of the fused kernel's equivalence tables (all clip modes,
  amsgrad, adamw, schedules, float32) and gives the CPU kernel's numbers bit
  for bit: curves, final state, outcomes, max_rise, clip counts.
- NVVM (the `nvidia-cuda-nvcc-cu12` wheel of the dev extra) compiles the kernel to
  PTX for a GPU in both dtypes: it compiles, and no multiplication and addition
  are fused into an fma, which would round once where the CPU rounds twice.

Where a GPU is lent, benchmarks/gpu.sh runs the kernel on it against the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_the_simulated_gpu_kernel_gives_the_cpu_kernels_numbers_bit_for_bit() -> None:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    out = subprocess.run([sys.executable, str(HERE / "cuda_sim.py")], env=env, text=True,
                         capture_output=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    names = {line["spec"] for line in lines}
    assert {"amsgrad-minibatch", "reshuffle", "loop-adagc-zhang2022",
            "torch-adam-global_norm-zhang2022-float32"} <= names and len(lines) >= 20
    assert [line for line in lines if line["differ"]] == []


def _signature(dtype: str) -> str:
    f, i = dtype, "int64"
    return (f"void({f}[:, ::1], {f}[:, ::1], {i}[::1], {f}[:, ::1], {f}[::1], {f}[::1], "
            f"{f}[::1], {f}[::1], {i}[::1], {f}[::1], {f}[:, ::1], {i}[::1], float64[:, ::1])")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_gpu_kernel_compiles_with_every_operation_rounded_once(dtype: str) -> None:
    from numba import cuda

    from experiments.fused_cuda import zhang_source

    ptx, _ = cuda.compile_ptx(zhang_source(dtype), _signature(dtype), cc=(8, 0))
    bits = "f64" if dtype == "float64" else "f32"
    assert "fma" not in ptx
    for op in ("mul.rn", "add.rn", "div.rn", "sqrt.rn"):
        assert f"{op}.{bits}" in ptx, op
