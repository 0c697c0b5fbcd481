"""Engine throughput for every optimizer kind, against per-run torch.optim loops.

Each kind runs zhang2022 (n = 20) and lstsq (feature blocks of scales 1 and 10:
two parameter tensors) in float64 over a grid of its hyperparameters (β1 × β2
where it uses them, lr values in place of an unused β axis) and four batch
sizes, and is reported in run-steps per second beside adam's figure on the
same problem. Where torch has the optimizer, the baseline is what one would
write without betascope: one torch.optim optimizer per run, one step at a
time, with precomputed minibatch summaries, so it is timed on gradient plus
optimizer only. Baseline and engine are interleaved in one process so both see
the same machine load.

    python benchmarks/engine.py [--runs 16384] [--steps 200] [--kernel eager] [--threads 1]

`--rise` instead measures what max_rise costs (the full objective after every
step): adam on each problem with and without it, interleaved in one process.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from experiments import engine
from experiments.engine import run_chunk
from experiments.optimizers import REGISTRY
from experiments.problems import build_problem
from experiments.runs import all_runs
from experiments.spec import parse_spec

PROBLEMS: dict[str, dict[str, Any]] = {
    "zhang2022": {"kind": "zhang2022", "n": 20, "x0": -0.5},
    "lstsq": {"kind": "lstsq", "n_samples": 64, "block_scales": [1.0, 10.0], "block_dim": 4},
}
# a learning rate that keeps most runs finite on each problem
LR = {"sgd": 1e-3, "lion": 1e-3, "signum": 1e-3}
TORCH = {
    "adam": lambda p, b1, b2, lr: torch.optim.Adam(p, lr=lr, betas=(b1, b2)),
    "adamw": lambda p, b1, b2, lr: torch.optim.AdamW(p, lr=lr, betas=(b1, b2)),
    "sgd": lambda p, b1, b2, lr: torch.optim.SGD(p, lr=lr, momentum=b1),
    "rmsprop": lambda p, b1, b2, lr: torch.optim.RMSprop(p, lr=lr, alpha=b2, momentum=b1),
    "adagrad": lambda p, b1, b2, lr: torch.optim.Adagrad(p, lr=lr),
}


def bench_spec(kind: str, problem: str, runs: int, steps: int) -> dict[str, Any]:
    uses = REGISTRY[kind].uses
    side = max(1, int(np.ceil(np.sqrt(runs / 4))))
    lr = LR.get(kind, 0.01)
    grid: dict[str, Any] = {
        "beta1": {"start": 0.0, "stop": 0.95, "num": side} if "beta1" in uses else [0.0],
        "beta2": {"start": 0.0, "stop": 0.999, "num": side} if "beta2" in uses else [0.0],
        "batch_size": [1, 2, 4, 8],
    }
    fill = side ** (2 - len(uses))  # lr values stand in for the unused beta axes
    if fill > 1:
        grid["lr"] = [float(v) for v in np.geomspace(lr / 3.0, lr, fill)]
    return {
        "name": "engine benchmark",
        "problem": PROBLEMS[problem],
        "optimizer": {"kind": kind, "lr": lr},
        "steps": steps,
        "grid": grid,
    }


def engine_rate(doc: dict[str, Any], kernel: str, device: str) -> float:
    """Run-steps per second of one engine call (after a warm-up call on a few runs)."""
    spec = parse_spec(doc)
    runs = all_runs(spec)
    run_chunk(spec, runs.take(np.arange(min(len(runs), 256))), kernel=kernel, device=device)
    t0 = time.perf_counter()
    run_chunk(spec, runs, kernel=kernel, device=device)
    return len(runs) * spec.steps / (time.perf_counter() - t0)


def baseline_rate(kind: str, problem_name: str, n_runs: int, steps: int) -> float:
    """Run-steps per second of one torch.optim optimizer per run, stepped one by one."""
    spec = parse_spec(bench_spec(kind, problem_name, 4, steps))
    problem = build_problem(spec.problem, dtype=torch.float64, device=torch.device("cpu"))
    rng = np.random.default_rng(0)
    ks = torch.arange(1, steps + 1)
    lr = spec.optimizer.lr
    t_total = 0.0
    for r in range(n_runs):
        b1, b2 = float(rng.uniform(0, 0.95)), float(rng.uniform(0.5, 0.999))
        batch = [1, 2, 4, 8][r % 4]
        stats = problem.batch_stats(seed=0, batch_size=batch, sampling="with_replacement", steps=ks)
        x0 = problem.x0()
        params = [torch.nn.Parameter(x0[a:b].clone()) for a, b in problem.blocks]
        opt = TORCH[kind](params, b1, b2, lr)
        t0 = time.perf_counter()
        for k in range(steps):
            with torch.no_grad():
                g = problem.grad(torch.cat(params)[None, :], stats[k : k + 1])[0]
            for p, (a, b) in zip(params, problem.blocks, strict=True):
                p.grad = g[a:b]
            opt.step()
        t_total += time.perf_counter() - t0
    return n_runs * steps / t_total


def rise_overhead(args: argparse.Namespace) -> None:
    """adam's run-steps/s with max_rise tracked and without, side by side."""
    print(
        f"float64, {torch.get_num_threads()} threads, device {args.device}, kernel "
        f"{args.kernel}, adam, about {args.runs} runs x {args.steps} steps; medians of "
        f"{args.repeats} interleaved repeats"
    )
    print()
    print("| problem | with max_rise run-steps/s | without | time ratio (with / without) |")
    print("| --- | ---: | ---: | ---: |")
    for problem in args.problems.split(","):
        doc = bench_spec("adam", problem, args.runs, args.steps)
        rates: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeats):
            for track in (True, False):
                engine.TRACK_RISE = track
                rates[track].append(engine_rate(doc, args.kernel, args.device))
        engine.TRACK_RISE = True
        on, off = (float(np.median(rates[t])) for t in (True, False))
        print(f"| {problem} | {on:,.0f} | {off:,.0f} | {off / on:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=16_384)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--baseline-runs", type=int, default=2)
    ap.add_argument("--baseline-steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kernel", choices=["eager", "compiled"], default="eager")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--kinds", default=",".join(REGISTRY), help="comma-separated kinds")
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    # One thread, as each CPU worker process runs (betascope worker): on a loaded
    # machine a second OpenMP thread makes small ops wait for a core.
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rise", action="store_true", help="the cost of max_rise only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.rise:
        rise_overhead(args)
        return
    # adam first: every other kind is reported against its figure
    kinds = ["adam", *(k for k in args.kinds.split(",") if k != "adam")]

    print(
        f"float64, {torch.get_num_threads()} threads, device {args.device}, kernel "
        f"{args.kernel}, about {args.runs} runs x {args.steps} steps per kind; baseline "
        f"{args.baseline_runs} runs x {args.baseline_steps} steps; medians of "
        f"{args.repeats} interleaved repeats"
    )
    print()
    print(
        "| problem | kind | engine run-steps/s | vs adam | torch.optim per run | engine / torch |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for problem in args.problems.split(","):
        eng: dict[str, list[float]] = {k: [] for k in kinds}
        base: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.repeats):  # kinds interleaved: each repeat sees the same load
            for kind in kinds:
                if kind in TORCH:
                    base[kind].append(
                        baseline_rate(kind, problem, args.baseline_runs, args.baseline_steps)
                    )
                doc = bench_spec(kind, problem, args.runs, args.steps)
                eng[kind].append(engine_rate(doc, args.kernel, args.device))
        adam_rate = float(np.median(eng["adam"]))
        for kind in kinds:
            e = float(np.median(eng[kind]))
            if base[kind]:
                b = float(np.median(base[kind]))
                torch_cols = f"{b:,.0f} | {e / b:,.0f}x"
            else:
                torch_cols = "(torch has none) | –"
            print(
                f"| {problem} | {kind} | {e:,.0f} | {e / adam_rate:.2f} | {torch_cols} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
