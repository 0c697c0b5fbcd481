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

`--peers` instead prints, in one run, run-steps/s of the per-run torch.optim loop,
every betascope kernel in float64 and float32, and a JAX peer (benchmarks/
jax_peer.py; `pip install -e .[bench]`), on zhang2022 (n = 20, inv_sqrt, about
10^5 runs x 2,000 steps) and lstsq, beside the divider roofline of an Adam step
(docs/engine.md derives it), then times a whole `betascope run` process on a
10^5-run, 5,000-step sweep:

    python benchmarks/engine.py --peers [--threads 2] [--kernels eager,compiled,fused]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.jax_peer

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
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    run_chunk(spec, runs, kernel=kernel, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(runs) * spec.steps / (time.perf_counter() - t0)


def baseline_rate(kind: str, problem_name: str, n_runs: int, steps: int,
                  device: str = "cpu") -> float:
    """Run-steps per second of one torch.optim optimizer per run, stepped one by one."""
    spec = parse_spec(bench_spec(kind, problem_name, 4, steps))
    problem = build_problem(spec.problem, dtype=torch.float64, device=torch.device(device))
    rng = np.random.default_rng(0)
    ks = torch.arange(1, steps + 1, device=device)
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
        if device != "cpu":
            torch.cuda.synchronize()
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


PEER_PROBLEMS = {
    # name: (problem, beta side (x 4 batch sizes = runs), steps)
    "zhang2022": ({"kind": "zhang2022", "n": 20, "x0": -0.5}, 158, 2000),
    "lstsq": (PROBLEMS["lstsq"], 40, 1000),
}


def peer_spec(problem: str, dtype: str, side: int, steps: int) -> dict[str, Any]:
    return {
        "name": "peers benchmark",
        "problem": PEER_PROBLEMS[problem][0],
        "optimizer": {"kind": "adam", "lr": 0.01, "schedule": "inv_sqrt"},
        "steps": steps,
        "dtype": dtype,
        "grid": {
            "beta1": {"start": 0.0, "stop": 0.95, "num": side},
            "beta2": {"start": 0.5, "stop": 0.999, "num": side},
            "batch_size": [1, 2, 4, 8],
        },
    }


def jax_rate(doc: dict[str, Any]) -> tuple[float, float]:
    """(run-steps/s, compile seconds) of the JAX peer on the spec's runs."""
    from benchmarks.jax_peer import make_run

    spec = parse_spec(doc)
    runs = all_runs(spec)
    dt = torch.float64 if spec.dtype == "float64" else torch.float32
    problem = build_problem(spec.problem, dtype=dt, device=torch.device("cpu"))
    streams, group = np.unique(np.stack([runs.seed, runs.batch_size], 1), axis=0,
                               return_inverse=True)
    ks = torch.arange(1, spec.steps + 1)
    stats = torch.stack([
        problem.batch_stats(seed=int(a), batch_size=int(b), sampling=spec.sampling, steps=ks)
        for a, b in streams
    ], dim=1).numpy()
    data = {}
    if spec.problem.kind == "lstsq":
        data = {"A": problem.A.numpy(), "y": problem.y.numpy()}  # type: ignore[attr-defined]
    call = make_run(spec.problem.kind, spec.dtype, data, spec.optimizer.eps, True)
    arrays = {
        "x": np.tile(problem.x0().numpy(), (len(runs), 1)),
        "b1": runs.beta1[:, None], "b2": runs.beta2[:, None], "lr": runs.lr[:, None],
        "group": group.reshape(-1), "stats": stats,
    }
    t0 = time.perf_counter()
    call(**arrays)  # compiles for these shapes
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    call(**arrays)
    return len(runs) * spec.steps / (time.perf_counter() - t0), compile_s


def roofline(dtype: str, threads: int) -> float:
    """Run-steps/s of a kernel doing only an Adam step's 4 divisions and 1 square root
    per run, vectorized over L1-resident lanes on every thread: the divider bound."""
    import numba

    from benchmarks.roofline import divider_bound

    numba.set_num_threads(threads)
    n, k = 1 << 16, 2000
    a = np.random.default_rng(0).uniform(1.0, 2.0, size=(2, n)).astype(dtype)
    divider_bound(a[0].copy(), a[1].copy(), 10)
    t0 = time.perf_counter()
    divider_bound(a[0].copy(), a[1].copy(), k)
    return n * k / (time.perf_counter() - t0)


def process_rate(kernel: str) -> tuple[float, float, int]:
    """(run-steps/s, seconds, runs) of a whole `betascope run` process on 10^5 runs x
    5,000 steps (zhang2022, 5 seeds x 2 batch sizes: 10 streams)."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    doc = {
        "name": "process benchmark",
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {"kind": "adam", "lr": 0.01, "schedule": "inv_sqrt"},
        "steps": 5000,
        "grid": {"beta1": {"start": 0.0, "stop": 0.95, "num": 100},
                 "beta2": {"start": 0.5, "stop": 0.999, "num": 100},
                 "batch_size": [1, 4], "seed": [0, 1, 2, 3, 4]},
    }
    runs = parse_spec(doc).total_runs()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(doc))
        cmd = [sys.executable, "-m", "api.cli", "run", str(path),
               "--out", str(Path(tmp) / "runs.csv"), "--kernel", kernel, "--device", "cpu"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        seconds = time.perf_counter() - t0
    return runs * 5000 / seconds, seconds, runs


def warmup_costs() -> tuple[float, float, float]:
    """Seconds a fresh process spends on its first tiny fused chunk with an empty
    numba cache (compiling), then with that cache filled (loading), and on its
    first tiny eager chunk: each the difference to the same process's second call."""
    import os
    import subprocess
    import sys
    import tempfile

    code = (
        "import sys, time, numpy as np\n"
        "from experiments.engine import run_chunk\n"
        "from experiments.runs import all_runs\n"
        "from experiments.spec import parse_spec\n"
        "out = []\n"
        "for problem in ({'kind': 'zhang2022', 'n': 20}, {'kind': 'lstsq', 'n_samples': 16,"
        " 'block_scales': [1.0], 'block_dim': 2}):\n"
        "    for dtype in ('float64', 'float32'):\n"
        "        spec = parse_spec({'problem': problem, 'steps': 20, 'dtype': dtype,"
        " 'grid': {'beta1': [0.9], 'beta2': [0.99], 'clip': [{'mode': 'none'},"
        " {'mode': 'global_norm', 'threshold': 1.0}]}})\n"
        "        runs = all_runs(spec)\n"
        "        for _ in range(2):\n"
        "            t = time.perf_counter(); run_chunk(spec, runs, kernel=sys.argv[1])\n"
        "            out.append(time.perf_counter() - t)\n"
        "print(sum(out[0::2]) - sum(out[1::2]))\n"
    )

    def first_call(kernel: str, cache: str) -> float:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        done = subprocess.run([sys.executable, "-c", code, kernel], env=env, check=True,
                              capture_output=True, text=True)
        return float(done.stdout.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as cache:
        return first_call("fused", cache), first_call("fused", cache), first_call("eager", cache)


def peers(args: argparse.Namespace) -> None:
    from experiments.kernels import resolve_kernel

    kernels = args.kernels.split(",")
    print(f"{torch.get_num_threads()} threads (torch and numba); JAX on its own thread "
          f"pool; the per-run loop on one thread; one process, measured side by side")
    print()
    print("| problem | runs x steps | what | float64 run-steps/s | float32 run-steps/s "
          "| f32 / f64 | f64 vs per-run loop |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for problem in args.problems.split(","):
        _, side, steps = PEER_PROBLEMS[problem]
        if problem == "lstsq":
            side, steps = args.lstsq_side, args.lstsq_steps
        n_runs = side * side * 4
        size = f"{n_runs:.3g} x {steps}"
        base = baseline_rate("adam", problem, args.baseline_runs, args.baseline_steps)
        default = resolve_kernel(parse_spec(peer_spec(problem, "float64", side, steps)), "auto")
        rows: list[tuple[str, float, float]] = [("torch.optim.Adam per run", base, float("nan"))]
        for kernel in kernels:
            r = [engine_rate(peer_spec(problem, dt, side, steps), kernel, "cpu")
                 for dt in ("float64", "float32")]
            label = f"betascope {kernel}" + (" (the default, auto)" if kernel == default else "")
            rows.append((label, r[0], r[1]))
        if not args.no_jax:
            j64, c64 = jax_rate(peer_spec(problem, "float64", side, steps))
            j32, _ = jax_rate(peer_spec(problem, "float32", side, steps))
            rows.append((f"JAX (lax.scan, jit; compile {c64:.1f} s)", j64, j32))
        if problem == "zhang2022":
            threads = torch.get_num_threads()
            rows.append(("roofline: 4 div + 1 sqrt per run-step",
                         roofline("float64", threads), roofline("float32", threads)))
        for label, r64, r32 in rows:
            ratio = f"{r32 / r64:.2f}" if r32 == r32 else "–"
            print(f"| {problem} | {size} | {label} | {r64:.3g} | "
                  f"{r32:.3g} | {ratio} | {r64 / base:,.0f}x |".replace("nan", "–"), flush=True)
    compile_s, load_s, eager_s = warmup_costs()
    print()
    print(f"first-call cost per process (both problems, both dtypes): fused {compile_s:.1f} s "
          f"with an empty numba cache (compiling), {load_s:.2f} s from the cache; eager "
          f"{eager_s:.2f} s")
    if not args.no_process:
        base = baseline_rate("adam", "zhang2022", args.baseline_runs, args.baseline_steps)
        rate, seconds, runs = process_rate("auto")
        print()
        print(f"whole `betascope run` process (default kernel), zhang2022 {runs} runs x 5000 "
              f"steps, 10 streams: {seconds:.1f} s, {rate:.3g} run-steps/s = "
              f"{rate / base:,.0f}x the per-run loop ({base:.3g})")


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
    ap.add_argument("--threads", type=int, default=None, help="1, or 2 with --peers")
    ap.add_argument("--rise", action="store_true", help="the cost of max_rise only")
    ap.add_argument("--peers", action="store_true", help="the peers table (see above)")
    ap.add_argument("--kernels", default="eager,compiled,fused", help="with --peers")
    ap.add_argument("--lstsq-side", type=int, default=40, help="with --peers: beta side")
    ap.add_argument("--lstsq-steps", type=int, default=1000, help="with --peers")
    ap.add_argument("--no-jax", action="store_true", help="with --peers")
    ap.add_argument("--no-process", action="store_true", help="with --peers")
    args = ap.parse_args()
    torch.set_num_threads(args.threads or (2 if args.peers else 1))
    if args.rise:
        rise_overhead(args)
        return
    if args.peers:
        if args.problems == ",".join(PROBLEMS):
            args.problems = ",".join(PEER_PROBLEMS)
        peers(args)
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
