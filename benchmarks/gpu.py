"""The fused kernel on a CUDA GPU: the CPU kernel's numbers, and run-steps/s.

    python benchmarks/gpu.py [--side 500] [--steps 2000] [--equivalence-only]

Needs a GPU, torch's CUDA build and the `gpu` extra (NVVM). Prints, in one run:
for every zhang2022 and lstsq spec of the fused kernel's equivalence tables,
at full length, whether the GPU gives the CPU kernel's numbers bit for bit
(tests/experiments/cuda_sim.py's comparison, which the tests run in numba's
simulator); then run-steps/s on zhang2022 (n = 20, inv_sqrt, side x side beta grid x 4
batch sizes) and lstsq (benchmarks/engine.py's peers sweep), float64 and
float32, of the fused kernel on the GPU, eager on the GPU, the fused kernel on
this machine's CPU, and the per-run torch.optim.Adam loop on the GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.engine import PEER_PROBLEMS, baseline_rate, engine_rate, peer_spec  # noqa: E402
from experiments import fused_cuda  # noqa: E402
from tests.experiments.cuda_sim import differences, documents  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--side", type=int, default=500, help="beta grid side (x 4 batch sizes)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--equivalence-only", action="store_true")
    args = ap.parse_args()
    if not fused_cuda.available():
        sys.exit("no CUDA device with NVVM here (pip install -e '.[gpu]' on a GPU machine)")
    print(f"device: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'simulated'}")
    bad = 0
    docs = documents(whole=True)
    for name, doc in docs.items():
        differ = differences(doc)
        bad += bool(differ)
        print(json.dumps({"spec": name, "bit_for_bit": not differ, "differ": differ}))
    print(f"equivalence: {bad} of {len(docs)} specs differ")
    if args.equivalence_only:
        sys.exit(1 if bad else 0)
    print("| problem | dtype | per-run loop, GPU | fused, GPU | eager, GPU | fused, CPU "
          "| fused GPU vs loop |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for problem, (_, side, steps) in PEER_PROBLEMS.items():
        base = baseline_rate("adam", problem, 2, 300, device="cuda")
        if problem == "zhang2022":
            side, steps = args.side, args.steps
        for dtype in ("float64", "float32"):
            doc = peer_spec(problem, dtype, side, steps)
            small = peer_spec(problem, dtype, max(2, side // 4), steps)
            gpu, eager, cpu = (engine_rate(doc, "fused", "cuda"),
                               engine_rate(small, "eager", "cuda"),
                               engine_rate(small, "fused", "cpu"))
            print(f"| {problem} | {dtype} | {base:.3g} | {gpu:.3g} | {eager:.3g} | {cpu:.3g} "
                  f"| {gpu / base:,.0f}x |")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
