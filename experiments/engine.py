"""The engine: thousands of optimizer runs as one vectorized tensor program.

A chunk of runs is split by clip mode (each mode is one chain of transforms;
thresholds, betas and lr stay per-run tensors) and simulated step by step.
The loss curve keeps the full objective at checkpoints; it is also evaluated
after every step for each run's max_rise (a spike between two checkpoints must
count, DESIGN section 5), folded into two [R] tensors inside the step block.
The step itself is a pure function of tensors (`_step`), so the `compiled`
kernel is the same code fused by torch.compile over blocks of steps; `eager`
runs it op by op.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from experiments import optim
from experiments.optimizers import ChainEnv, build_optimizer
from experiments.outcomes import Outcomes, checkpoint_steps, classify, rise_floor
from experiments.problems import Problem, build_problem
from experiments.runs import RunTable
from experiments.spec import AXES, SweepSpec

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:  # torch loads on first use: a fused sweep never needs it
    from experiments.lazy import torch

    Tensor = Any  # in the type aliases below

BLOCK_STEPS = 8  # steps fused into one compiled call
STATS_STEPS = 256  # minibatch summaries are drawn this many steps at a time
PROGRESS_BLOCKS = 64  # report progress about this often per chunk
# benchmarks/engine.py turns this off to measure what max_rise costs; results
# computed without it have max_rise nan
TRACK_RISE = True


class Canceled(Exception):
    """The caller's should_stop() returned True between step blocks."""


@dataclass(frozen=True)
class ChunkResult:
    """Per-run results of a chunk, in the order of the RunTable given."""

    outcomes: Outcomes
    curve_steps: np.ndarray  # int64 [C]
    curves: np.ndarray  # float64 [R, C]: full objective at each checkpoint
    x_final: np.ndarray  # float64 [R, d]: parameters after the last step
    # the optimizer's state["moments"] m and v after the last step (NaN where the kind
    # keeps none; adam_mini's per-tensor v is repeated over its tensor's columns)
    m_final: np.ndarray  # float64 [R, d]
    v_final: np.ndarray  # float64 [R, d]


def resolve_device(device: str) -> str:
    """The device `device` (auto, cpu, cuda, cuda:N) means here, as torch names it.

    Where the machine has no GPU driver at all, `auto` is the CPU without asking
    torch: a fused sweep then never loads it (about a second per process)."""
    if device == "auto":
        if not _gpu_driver_present():
            return "cpu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but no CUDA device is available")
    return str(torch.device(device))


@functools.cache
def _gpu_driver_present() -> bool:
    """False where no CUDA device can be available: torch's CUDA needs the driver's
    library (libcuda.so.1, nvcuda.dll), and its ROCm builds AMD's kernel driver
    (/dev/kfd); macOS has neither. Loading the library finds it wherever torch
    would (WSL's and Jetson's included); asked once per process."""
    import ctypes
    import os
    import sys

    if sys.platform == "darwin":
        return False
    if os.path.exists("/dev/kfd"):
        return True
    try:
        ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
    except OSError:
        return False
    return True


def run_chunk(
    spec: SweepSpec,
    runs: RunTable,
    *,
    device: str = "cpu",
    kernel: str = "eager",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ChunkResult:
    """Simulate every run of `runs`; progress(done, total) counts run-steps.

    Runs that differ in an extra axis (problem.n, optimizer.eps, ...) differ in
    their problem or optimizer, so they cannot share one tensor program: each
    point of the extra axes is simulated as a group of its own, as each clip
    mode is within it. kernel `auto` is resolved here as experiments.kernels does
    for a whole sweep (callers that compute run_keys resolve it first)."""
    if kernel == "auto":
        from experiments.kernels import resolve_kernel

        kernel = resolve_kernel(spec, kernel, device)
    if not spec.extra_axes() or len(runs) == 0:
        return _run_program(spec, runs, device, kernel, progress, should_stop)
    points, group_of_run = np.unique(runs.grid_index[:, len(AXES) :], axis=0, return_inverse=True)
    group_of_run = group_of_run.reshape(-1)
    total = len(runs) * spec.steps
    parts: list[tuple[np.ndarray, ChunkResult]] = []
    done = 0
    for g, point in enumerate(points):
        rows = np.flatnonzero(group_of_run == g)

        def group_progress(d: int, _t: int, base: int = done) -> None:
            if progress is not None:
                progress(base + d, total)

        result = _run_program(
            spec.at_point(point), runs.take(rows), device, kernel, group_progress, should_stop
        )
        parts.append((rows, result))
        done += len(rows) * spec.steps
    # problems of different dimension (an axis over a problem's size) pad with nan
    dim = max(r.x_final.shape[1] for _, r in parts)
    final = {k: np.full((len(runs), dim), np.nan) for k in ("x", "m", "v")}
    curves = np.full((len(runs), len(parts[0][1].curve_steps)), np.nan)
    for rows, r in parts:
        curves[rows] = r.curves
        for k, arr in (("x", r.x_final), ("m", r.m_final), ("v", r.v_final)):
            final[k][rows, : arr.shape[1]] = arr
    return ChunkResult(
        Outcomes.gather([(rows, r.outcomes) for rows, r in parts], len(runs)),
        parts[0][1].curve_steps,
        curves,
        x_final=final["x"],
        m_final=final["m"],
        v_final=final["v"],
    )


def _run_program(
    spec: SweepSpec,
    runs: RunTable,
    device: str,
    kernel: str,
    progress: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None,
) -> ChunkResult:
    """The runs of one problem and optimizer (one point of any extra axes)."""
    if kernel not in ("eager", "compiled", "fused"):
        raise ValueError(f"kernel: must be eager, compiled or fused, got {kernel!r}")
    name = resolve_device(device)
    problem: Any
    if kernel == "fused":
        # the fused kernel reads the problem's constants on the host (zhang2022's
        # without torch); it runs on a GPU where numba can compile for it
        # (experiments/fused_cuda.py), else on the CPU, where its numbers are the
        # same bit for bit
        from experiments.fused import host_problem

        fused_gpu = False
        if name.startswith("cuda"):
            from experiments.fused_cuda import available

            fused_gpu = available()
        problem = host_problem(spec)
    else:
        dev = torch.device(name)
        dtype = torch.float64 if spec.dtype == "float64" else torch.float32
        problem = build_problem(spec.problem, dtype=dtype, device=dev)
        if kernel == "compiled":
            _prepare_compiler(spec, dev)
    ckpts = checkpoint_steps(spec.steps)
    n = len(runs)
    parts: list[tuple[np.ndarray, Outcomes]] = []
    total = n * spec.steps
    done = 0

    def report(group_done: int) -> None:
        if progress is not None:
            progress(done + group_done, total)

    clips = spec.axis_values()["clip"]
    # A problem whose minibatch summary is as wide as the batch (mlp: the sampled
    # indices) runs each batch size as a program of its own, so that no run is
    # padded to its chunk's widest batch (DESIGN section 3: chunk invariance).
    by_batch = getattr(problem, "per_batch_size", False)
    batch = runs.batch_size if by_batch else np.zeros_like(runs.batch_size)
    # one int64 per (clip, batch) pair: np.unique over rows (axis=0) sorts 20x slower
    width = int(batch.max(initial=0)) + 1
    code = runs.clip_index.astype(np.int64) * width + batch
    if n and code.min() == code.max():  # one program: no sort, no copy of the run table
        codes, program_of_run = code[:1], np.zeros(n, dtype=np.int64)
    else:
        codes, program_of_run = np.unique(code, return_inverse=True)
    keys = np.stack(np.divmod(codes, width), axis=1)  # (clip index, batch size) per program
    several = len(keys) > 1  # one program: its arrays are the chunk's, in order
    curves = np.full((n if several else 0, len(ckpts)), np.nan)
    final = {k: np.full((n if several else 0, problem.dim), np.nan) for k in ("x", "m", "v")}
    for program, (clip_index, _) in enumerate(keys):
        rows = np.flatnonzero(program_of_run.reshape(-1) == program)
        group = runs.take(rows) if several else runs
        clip = clips[int(clip_index)]
        sim: Any
        if kernel == "fused":
            from experiments.fused import FusedSimulation

            sim = FusedSimulation(spec, problem, group, clip, on_gpu=fused_gpu)
        else:
            sim = _Simulation(spec, problem, group, clip, dev, dtype, kernel)
        group_curves, outcomes, group_final = sim.run(ckpts, report, should_stop)
        parts.append((rows, outcomes))
        done += len(rows) * spec.steps
        if not several:
            curves, final = group_curves, group_final
            continue
        curves[rows] = group_curves
        for k, arr in group_final.items():
            final[k][rows] = arr
    if progress is not None:
        progress(total, total)
    return ChunkResult(
        parts[0][1] if len(parts) == 1 and len(parts[0][0]) == n else Outcomes.gather(parts, n),
        np.asarray(ckpts, dtype=np.int64),
        curves,
        x_final=final["x"],
        m_final=final["m"],
        v_final=final["v"],
    )


def build_chain(spec: SweepSpec, clip: Any, problem: Problem) -> optim.Transform:
    """clip -> the optimizer kind's named chain (moments -> schedule -> decay).

    The chain holds only what is shared by the runs of a clip mode; per-run
    values reach its update as a Hyper (see hyper)."""
    if clip.mode == "none":
        clip_t = optim.identity()
    elif clip.mode == "global_norm":
        clip_t = optim.clip_by_global_norm(problem.blocks)
    elif clip.mode == "value":
        clip_t = optim.clip_by_value()
    else:
        clip_t = optim.clip_by_adagc(problem.blocks)
    env = ChainEnv(steps=spec.steps, blocks=problem.blocks, dtype=spec.dtype)
    opt_chain = build_optimizer(spec.optimizer, env)
    return optim.named_chain(("clip", clip_t), *opt_chain.links)


def hyper(clip: Any, runs: RunTable, dev: torch.device, dtype: torch.dtype) -> optim.Hyper:
    """The runs' hyperparameters as [R, 1] tensors (clip fields: 0 where unused)."""

    def col(values: np.ndarray | float) -> Tensor:
        if np.ndim(values) == 0:  # one value for every run (torch.tensor of a broadcast
            # view copies it element by element: 4 ms per 50,000 runs)
            out = torch.full((len(runs),), float(values), dtype=torch.float64)
        else:  # a copy: the tensor must not share the run table's memory
            out = torch.from_numpy(np.array(values, dtype=np.float64))
        return out.to(dtype=dtype, device=dev)[:, None]

    return optim.Hyper(
        beta1=col(runs.beta1),
        beta2=col(runs.beta2),
        lr=col(runs.lr),
        clip_threshold=col(getattr(clip, "threshold", 0.0)),
        clip_ratio=col(getattr(clip, "ratio", 0.0)),
        clip_beta=col(getattr(clip, "beta", 0.0)),
        clip_warmup=col(float(getattr(clip, "warmup", 0))),
    )


def _make_step(problem: Problem, chain: optim.Transform) -> Callable[..., tuple[Tensor, Any]]:
    def step(x: Tensor, state: Any, stats: Tensor, k: Tensor, h: optim.Hyper) -> tuple[Tensor, Any]:
        g = problem.grad(x, stats)
        u, state = chain.update(g, state, x, k, h)
        return problem.project(x + u), state

    return step


class RiseState(NamedTuple):
    """Each run's max_rise so far (outcomes.py defines it): [R] tensors."""

    low: Tensor  # running minimum of rel since the first checkpoint (inf before)
    top: Tensor  # the largest rel / max(low, floor) so far (1 before)


class RelScale(NamedTuple):
    """rel = (f - shift) / scale: shift = f*, scale = f(x0) - f* (or 0 and f(x0))."""

    shift: Tensor  # shape []
    scale: Tensor  # shape []


def scale_by_rise(rise: RiseState, rel: Tensor, on: Tensor, floor: float) -> RiseState:
    """Fold one step's rel [R] into the running max_rise; `on` is k >= c1.

    low = min(low, rel);  top = max(top, rel / max(low, floor)), on finite rel only.
    """
    ok = torch.isfinite(rel) & on
    low = torch.where(ok, torch.minimum(rise.low, rel), rise.low)
    top = torch.where(ok, torch.maximum(rise.top, rel / torch.clamp(low, min=floor)), rise.top)
    return RiseState(low, top)


def _make_block(
    step: Callable[..., tuple[Tensor, Any]],
    loss: Callable[[Tensor], Tensor] | None,
    first: int,
    floor: float,
) -> Callable[..., tuple[Tensor, Any, RiseState]]:
    """Steps ks in order; after each, the full objective updates max_rise from
    step `first` (the first checkpoint) on. loss None: max_rise is not tracked."""

    def block(
        x: Tensor,
        state: Any,
        group_stats: Tensor,
        group_of_run: Tensor,
        ks: Tensor,
        h: optim.Hyper,
        rise: RiseState,
        ref: RelScale,
    ) -> tuple[Tensor, Any, RiseState]:
        for i in range(ks.shape[0]):
            x, state = step(x, state, group_stats[i][group_of_run], ks[i], h)
            if loss is not None:
                rel = (loss(x) - ref.shift) / ref.scale
                rise = scale_by_rise(rise, rel, ks[i] >= first, floor)
        return x, state, rise

    return block


class _Simulation:
    """One clip mode's runs of a chunk: state tensors and the step loop."""

    def __init__(
        self,
        spec: SweepSpec,
        problem: Problem,
        runs: RunTable,
        clip: Any,
        dev: torch.device,
        dtype: torch.dtype,
        kernel: str,
    ):
        self.spec, self.problem, self.runs = spec, problem, runs
        self.dev, self.dtype = dev, dtype
        streams = np.stack([runs.seed, runs.batch_size], axis=1)
        self.streams, group_of_run = np.unique(streams, axis=0, return_inverse=True)
        self.group_of_run = torch.tensor(group_of_run.reshape(-1), device=dev)
        self.chain = build_chain(spec, clip, problem)
        self.h = hyper(clip, runs, dev, dtype)
        step = _make_step(problem, self.chain)
        loss = problem.loss if TRACK_RISE else None
        first = checkpoint_steps(spec.steps)[0]
        floor = rise_floor(spec.criteria.converge_rel, float(torch.finfo(dtype).tiny))
        self.block = _make_block(step, loss, first, floor)
        # A compiled block has a fixed length (so only two graphs are ever built);
        # remainders run one step at a time through the same compiled code.
        self.single = self.block
        if kernel == "compiled":
            self.block = _compiled(self.block)
            self.single = _compiled(_make_block(step, loss, first, floor))

    def _stats(self, ks: Tensor) -> Tensor:
        """Minibatch summaries of every (seed, batch size) stream: [K, G, S]."""
        per_stream = [
            self.problem.batch_stats(
                seed=int(seed), batch_size=int(b), sampling=self.spec.sampling, steps=ks
            )
            for seed, b in self.streams
        ]
        return torch.stack(per_stream, dim=1)

    def run(
        self,
        ckpts: list[int],
        report: Callable[[int], None],
        should_stop: Callable[[], bool] | None,
    ) -> tuple[np.ndarray, Outcomes, dict[str, np.ndarray]]:
        r = len(self.runs)
        x = self.problem.x0().expand(r, -1).clone()
        state = self.chain.init(x)
        f0 = float(self.problem.loss(self.problem.x0()[None, :])[0])
        f_star = self.problem.f_star
        ref = RelScale(
            *(
                torch.tensor(v, dtype=self.dtype, device=self.dev)
                for v in ((0.0, f0) if f_star is None else (f_star, f0 - f_star))
            )
        )
        rise = RiseState(
            torch.full((r,), torch.inf, dtype=self.dtype, device=self.dev),
            torch.ones(r, dtype=self.dtype, device=self.dev),
        )
        losses = []
        step, next_report = 0, 0
        report_every = max(BLOCK_STEPS, self.spec.steps // PROGRESS_BLOCKS)
        for ckpt in ckpts:
            while step < ckpt:
                n_stats = min(STATS_STEPS, ckpt - step)
                ks = torch.arange(step + 1, step + n_stats + 1, dtype=torch.int64, device=self.dev)
                stats = self._stats(ks)
                for lo in range(0, n_stats, BLOCK_STEPS):
                    hi = min(lo + BLOCK_STEPS, n_stats)
                    if hi - lo == BLOCK_STEPS:
                        x, state, rise = self.block(
                            x, state, stats[lo:hi], self.group_of_run, ks[lo:hi], self.h, rise, ref
                        )
                    else:
                        for i in range(lo, hi):
                            x, state, rise = self.single(
                                x,
                                state,
                                stats[i : i + 1],
                                self.group_of_run,
                                ks[i : i + 1],
                                self.h,
                                rise,
                                ref,
                            )
                step += n_stats
                if should_stop is not None and should_stop():
                    raise Canceled()
                if step >= next_report:
                    report(r * step)
                    next_report = step + report_every
            losses.append(self.problem.loss(x))
        curves = torch.stack(losses, dim=1).to(torch.float64).cpu().numpy()
        x_final = x.to(torch.float64).cpu()
        clip_state = state["clip"]
        outcomes = classify(
            curves=curves,
            ckpts=ckpts,
            x_finite=torch.isfinite(x_final).all(dim=1).numpy(),
            gap=_gap(x_final, self.problem.x_star),
            f0=f0,
            f_star=self.problem.f_star,
            criteria=self.spec.criteria,
            n_clipped=clip_state.n_clipped.cpu().numpy(),
            steps=self.spec.steps,
            max_rise=rise.top.to(torch.float64).cpu().numpy() if TRACK_RISE else np.full(r, np.nan),
        )
        d, blocks = self.problem.dim, self.problem.blocks
        final = {
            "x": x_final.numpy(),
            **{
                name: np.full((r, d), np.nan) if t is None else t.to(torch.float64).cpu().numpy()
                for name in ("m", "v")
                for t in [optim.moment(state["moments"], name, blocks, d)]
            },
        }
        return curves, outcomes, final


def _gap(x: Tensor, x_star: Tensor | None) -> np.ndarray:
    if x_star is None:
        return np.full(x.shape[0], np.nan)
    return torch.linalg.vector_norm(x - x_star.to(torch.float64).cpu(), dim=1).numpy()


_last_program: list[str] = []


def _prepare_compiler(spec: SweepSpec, device: torch.device) -> None:
    """Keep torch.compile's cache to the graphs of one kind of sweep.

    Every chunk of a sweep reuses the same graphs (a block, a single step, per
    clip mode); a worker that moves on to another problem or optimizer starts
    afresh rather than piling up entries. Hitting the recompile limit raises
    instead of silently falling back to eager code, since results of the two
    kernels are kept apart by run_key.
    """
    import torch._dynamo

    program = spec.model_dump_json(include={"problem", "optimizer", "dtype", "sampling"})
    program += str(device)
    torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    if _last_program != [program]:
        torch._dynamo.reset()
        _last_program[:] = [program]


def _compiled(block: Callable[..., Any]) -> Callable[..., Any]:
    """torch.compile over a block of steps: one fused kernel per block, dynamic in R."""
    return torch.compile(block, dynamic=True)
