"""The fused kernel on a GPU (experiments/fused_cuda.py), checked without one.

- numba's CUDA simulator runs the kernels' own source, thread by thread, over
  every zhang2022 row of the fused kernel's equivalence tables, a subset of
  lstsq's that takes every branch (all clip modes, amsgrad, adamw, schedules,
  float32) and minibatch sweeps of both, and gets the CPU kernel's numbers bit
  for bit: curves, final state, outcomes, max_rise, clip counts
  (tests/experiments/cuda_sim.py).
- NVVM (the `nvidia-cuda-nvcc-cu12` wheel of the dev extra) compiles both kernels
  to PTX for a GPU in both dtypes: they compile, and no multiplication and
  addition are fused into an fma, which would round once where the CPU rounds
  twice.

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
    assert {"amsgrad-minibatch", "reshuffle", "loop-adagc-zhang2022", "lstsq-amsgrad-minibatch",
            "torch-adam-global_norm-zhang2022-float32", "lstsq-reshuffle-float32",
            "loop-adagc-no-bias-inv-sqrt-lstsq"} <= names and len(lines) >= 30
    assert [line for line in lines if line["differ"]] == []


def _signature(problem: str, dtype: str) -> str:
    f, i = dtype, "int64"
    v, m, t = f"{f}[::1]", f"{f}[:, ::1]", f"{f}[:, :, ::1]"
    if problem == "zhang2022":  # st, hp, grp, s, kf, sc, c, rc, flags, nclip, rise, slot, curves
        args = [m, m, f"{i}[::1]", m, v, v, v, v, f"{i}[::1]", v, m, f"{i}[::1]"]
    else:  # x, m, v, vmax, g, gamma, norms, pows, hp, grp, cols, vals, nnz, A, y, A^T A,
        # x*, bounds, kf, sc, c, rc, flags, nclip, rise, slot, curves
        args = [m] * 9 + [f"{i}[::1]", f"{i}[:, :, ::1]", t, f"{i}[:, ::1]", m, v, m, v,
                          f"{i}[::1]", v, v, v, v, f"{i}[::1]", v, m, f"{i}[::1]"]
    return f"void({', '.join(args)}, float64[:, ::1])"


@pytest.mark.parametrize("problem", ["zhang2022", "lstsq"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_gpu_kernel_compiles_with_every_operation_rounded_once(problem: str, dtype: str
                                                                   ) -> None:
    from numba import cuda

    from experiments.fused_cuda import SOURCES

    ptx, _ = cuda.compile_ptx(SOURCES[problem](dtype), _signature(problem, dtype), cc=(8, 0))
    bits = "f64" if dtype == "float64" else "f32"
    assert "fma" not in ptx
    for op in ("mul.rn", "add.rn", "div.rn", "sqrt.rn"):
        assert f"{op}.{bits}" in ptx, op
