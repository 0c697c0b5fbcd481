"""Engine throughput against the per-run torch.optim.Adam loop it replaces.

Both run zhang2022 (n = 20) in float64 with the same minibatch gradients, in
one process, so the ratio is robust to the machine's noise. The baseline is
what one would write without betascope: one torch.optim.Adam per run, one
step at a time; its minibatch summaries are precomputed so it is timed on
gradient plus optimizer only.

    python benchmarks/engine.py [--runs 100000] [--steps 400] [--kernel both]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from experiments.engine import run_chunk
from experiments.problems import Zhang2022
from experiments.runs import all_runs
from experiments.spec import parse_spec


def bench_spec(runs: int, steps: int) -> dict:
    side = int(np.ceil(np.sqrt(runs / 4)))
    return {
        "name": "engine benchmark",
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {"kind": "adam", "lr": 0.01, "schedule": "constant", "bias_correction": True},
        "steps": steps,
        "grid": {
            "beta1": {"start": 0.0, "stop": 0.95, "num": side},
            "beta2": {"start": 0.0, "stop": 0.999, "num": side},
            "batch_size": [1, 2, 4, 8],
        },
    }


def engine_rate(spec_doc: dict, kernel: str, device: str, repeats: int) -> list[float]:
    """Run-steps per second of `repeats` engine calls, after a warm-up call."""
    spec = parse_spec(spec_doc)
    runs = all_runs(spec)
    # the warm-up (the same steps on a few runs) compiles every graph the timed call needs
    run_chunk(spec, runs.take(np.arange(min(len(runs), 1000))), kernel=kernel, device=device)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_chunk(spec, runs, kernel=kernel, device=device)
        rates.append(len(runs) * spec.steps / (time.perf_counter() - t0))
    return rates


def baseline_rate(n_runs: int, steps: int) -> tuple[float, float]:
    """run-steps per second of one torch.optim.Adam per run, stepped one by one."""
    problem = Zhang2022(n=20, x0=-0.5, dtype=torch.float64, device=torch.device("cpu"))
    rng = np.random.default_rng(0)
    ks = torch.arange(1, steps + 1)
    t_total = 0.0
    for r in range(n_runs):
        b1, b2 = float(rng.uniform(0, 0.95)), float(rng.uniform(0, 0.999))
        batch = [1, 2, 4, 8][r % 4]
        stats = problem.batch_stats(seed=0, batch_size=batch, sampling="with_replacement", steps=ks)
        x = torch.nn.Parameter(problem.x0().clone()[None, :])
        opt = torch.optim.Adam([x], lr=0.01, betas=(b1, b2), eps=1e-8)
        t0 = time.perf_counter()
        for k in range(steps):
            with torch.no_grad():
                x.grad = problem.grad(x.detach(), stats[k : k + 1])
            opt.step()
        t_total += time.perf_counter() - t0
    return n_runs * steps / t_total, t_total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--baseline-runs", type=int, default=4)
    ap.add_argument("--baseline-steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kernel", choices=["eager", "compiled", "both"], default="both")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    doc = bench_spec(args.runs, args.steps)
    n_runs = parse_spec(doc).total_runs()
    print(
        f"zhang2022 n=20, float64, {torch.get_num_threads()} threads, device {args.device}, "
        f"{n_runs} runs x {args.steps} steps; baseline {args.baseline_runs} runs x "
        f"{args.baseline_steps} steps; medians of {args.repeats} interleaved repeats"
    )
    kernels = ["eager", "compiled"] if args.kernel == "both" else [args.kernel]
    for kernel in kernels:
        # interleave baseline and engine so both see the same machine load
        base, eng = [], []
        for _ in range(args.repeats):
            base.append(baseline_rate(args.baseline_runs, args.baseline_steps)[0])
            eng.extend(engine_rate(doc, kernel, args.device, 1))
        b, e = float(np.median(base)), float(np.median(eng))
        print(
            f"{kernel:8s}  baseline torch.optim.Adam per run {b:12,.0f} run-steps/s   "
            f"engine {e:14,.0f} run-steps/s   ratio {e / b:9,.0f}x"
        )


if __name__ == "__main__":
    main()
