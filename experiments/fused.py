"""The fused kernel's driver: one clip mode's runs of a chunk through numba.

The engine hands a clip mode's runs here instead of to its tensor program
(engine._Simulation) when the kernel is `fused`. The per-run inputs are the
eager kernel's own values (engine.hyper's, built here in numpy; the problem's x0,
f0 and f*), the minibatch summaries of all (seed, batch size) streams come from
one vectorized call of experiments.sampling.stream_indices per block of steps,
and the numba function (experiments/fused_kernels.py, fused_lstsq.py) advances
every run by that block, writing the full objective at the checkpoints it passes
straight into the float64 [R, C] curves (the problem's loss formula, computed in
the kernel so that no [R]-sized temporaries are made per checkpoint).
zhang2022's state is kept sorted by stream (lstsq's kernel gathers its blocks'
runs itself) and put back in the runs' order at the end. The result is assembled
as engine._Simulation assembles it (classify, x, m, v).

max_rise (experiments/outcomes.py defines it) is folded in at every step in the
kernel, as the eager step block folds it: the largest rel_k / max(m_k, floor)
over steps k >= 1 (the first checkpoint), m_k the least finite rel_j for j <= k,
floor the convergence threshold.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments import fused_kernels as fk
from experiments import fused_lstsq, optim
from experiments.outcomes import Outcomes, classify, rise_floor
from experiments.problems import Lstsq, Problem, Zhang2022, build_problem
from experiments.runs import RunTable
from experiments.sampling import stream_indices

if TYPE_CHECKING:
    import torch
else:  # zhang2022's sweeps never load torch; lstsq's data are torch tensors
    from experiments.lazy import torch

STATS_STEPS = 512  # steps per kernel call (their minibatch summaries are drawn at once)
CLIP_CODES = {"none": 0, "global_norm": 1, "value": 2, "adagc": 3}


def set_threads() -> None:
    """Run the kernel on as many threads as torch's CPU kernels use where torch is
    loaded (workers set that per process), else on numba's default, one per core."""
    import numba

    most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    n = torch.get_num_threads() if "torch" in sys.modules else most
    numba.set_num_threads(max(1, min(n, most)))


def host_problem(spec: Any) -> Problem:
    """The sweep's problem as the fused kernel reads it: zhang2022's constants
    without a tensor (torch is not loaded for it), lstsq's data as CPU tensors in the
    sweep's dtype."""
    if spec.problem.kind == "zhang2022":
        return Zhang2022.on_host(spec.problem)
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    return build_problem(spec.problem, dtype=dtype, device=torch.device("cpu"))


def zhang_loss(x: float, n: int, dtype: type[np.floating]) -> float:
    """Zhang2022.loss at one x, in the dtype: the kernel's own formula
    (fused_kernels._zhang_f, its Python source on numpy scalars), which torch's loss
    matches bit for bit (tests/experiments/test_fused.py)."""
    f = fk._zhang_f.py_func  # type: ignore[attr-defined]
    return float(f(dtype(x), dtype(1), dtype(2), dtype(3), dtype(n), dtype(2 * n)))


def hyper_rows(
    clip: Any, runs: RunTable, dtype: type[np.floating], order: np.ndarray | None = None
) -> np.ndarray:
    """[N_HYPER, R]: engine.hyper's per-run values in the dtype (rounded from float64
    as its .to(dtype) rounds them) and 1 - beta in the dtype, as the eager step
    computes it; the runs taken in `order` where given. Built in numpy,
    single-threaded: a two-thread torch op waits until both its threads get a core,
    which on a busy two-core machine took 5-50 ms per 50,000-run op (measured);
    numpy's twin takes well under a millisecond."""
    take = (lambda a: a) if order is None else (lambda a: a[order])
    hp = np.empty((fk.N_HYPER, len(runs)), dtype)
    hp[fk.B1], hp[fk.B2], hp[fk.LR] = take(runs.beta1), take(runs.beta2), take(runs.lr)
    hp[fk.OMB1], hp[fk.OMB2] = 1.0 - hp[fk.B1], 1.0 - hp[fk.B2]
    hp[fk.THR] = float(getattr(clip, "threshold", 0.0))
    hp[fk.RATIO] = float(getattr(clip, "ratio", 0.0))
    hp[fk.CBETA] = float(getattr(clip, "beta", 0.0))
    hp[fk.CWARM] = float(getattr(clip, "warmup", 0))
    return hp


def exact_shortcuts(dtype: type[np.floating]) -> tuple[float, float]:
    """(the running products' floor, max_rise's safety factor) in the dtype: eps / 4,
    below which 1 - beta^k rounds to 1 (fused_kernels._power), and 1 - 4 eps, under
    which a rel cannot raise max_rise (fused_kernels._fold_min)."""
    eps = float(np.finfo(dtype).eps)
    return eps / 4, 1 - 4 * eps


def stream_groups(seed: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (seed, batch size) streams in ascending order [G, 2] and each run's stream
    [R], as np.unique over the rows gives them: one int64 code per run, and a table
    instead of a sort where the codes span little more than the runs."""
    width = int(batch.max(initial=0)) + 1
    code = seed.astype(np.int64) * width + batch
    low = int(code.min(initial=0))
    span = int(code.max(initial=0)) - low + 1
    if span <= 4 * len(code) + 1024:
        present = np.zeros(span, dtype=bool)
        present[code - low] = True
        uniq = np.flatnonzero(present) + low
        group = (np.cumsum(present) - 1)[code - low]
    else:
        uniq, group = np.unique(code, return_inverse=True)
    return np.stack(np.divmod(uniq, width), 1), np.ascontiguousarray(group, dtype=np.int64)


def zhang_summaries(
    problem: Zhang2022, idx: np.ndarray, valid: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """Zhang2022.batch_stats of every stream at once, [K, G] in the dtype of `sizes`
    (the streams' batch sizes), from stream_indices' (idx, valid)."""
    w0 = ((idx == 0) & valid).astype(sizes.dtype).sum(axis=2) / sizes
    return w0 * problem.c0 - (1 - w0) * problem.a


def lstsq_weights(n: int, idx: np.ndarray, valid: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Lstsq.batch_stats of every stream at once (each sample's count in the batch
    over the batch size), [K, G, n] in the dtype of `sizes`."""
    k, g, _ = idx.shape
    cell = np.arange(k * g, dtype=np.int64).reshape(k, g, 1) * n + idx
    counts = np.bincount(cell[np.broadcast_to(valid, idx.shape)], minlength=k * g * n)
    return counts.reshape(k, g, n).astype(sizes.dtype) / sizes[None, :, None]


class FusedSimulation:
    """One clip mode's runs; run() returns what engine._Simulation.run returns."""

    def __init__(
        self, spec: Any, problem: Problem, runs: RunTable, clip: Any, on_gpu: bool = False
    ):
        if not isinstance(problem, Zhang2022 | Lstsq):
            raise ValueError(f"kernel: fused does not support problem {type(problem).__name__}")
        self.spec, self.problem, self.runs, self.clip = spec, problem, runs, clip
        # on a GPU (experiments/fused_cuda.py) a thread per run: the runs stay in
        # their order and each reads its stream's summaries
        self.on_gpu = on_gpu
        self.gpu: Any = None  # its arrays on the GPU while run() runs
        self.np_dtype = np.float64 if spec.dtype == "float64" else np.float32
        self.streams, self.group = stream_groups(runs.seed, runs.batch_size)
        opt = spec.optimizer
        self.order: np.ndarray | None = None
        if on_gpu:  # no lane blocks: a thread per run
            self.blocks: tuple[np.ndarray, ...] = ()
        elif isinstance(problem, Lstsq):
            self.blocks = fk.stream_blocks(self.group)
        else:
            # zhang2022's state is kept in stream order, so that each lane block
            # holds one stream and its minibatch summary is one number per step
            lanes = fk.LANE_BYTES // np.dtype(self.np_dtype).itemsize
            order, *blocks = fk.stream_blocks(self.group, lanes)
            self.blocks = tuple(blocks)
            self.order = order
        self.hp = hyper_rows(clip, runs, self.np_dtype, self.order)
        decay = opt.kind == "adamw" and opt.weight_decay > 0.0
        self.flags = np.array(
            [
                CLIP_CODES[clip.mode],
                opt.bias_correction,
                opt.amsgrad,
                decay,
                1,
            ],
            dtype=np.int64,
        )
        n_f = float(getattr(problem, "n", 1))
        self.c = np.array(
            [opt.eps, optim._NORM_EPS, opt.weight_decay, n_f, 2 * n_f, 1.0,
             *exact_shortcuts(self.np_dtype)],
            dtype=self.np_dtype,
        )  # fmt: skip
        self.schedule = optim.Schedule(
            opt.schedule, opt.warmup_steps, opt.final_lr_ratio, spec.steps
        )
        if isinstance(problem, Zhang2022):
            self.f0 = zhang_loss(problem.x0_value, problem.n, self.np_dtype)
        else:
            self.f0 = float(problem.loss(problem.x0()[None, :])[0])
        f_star = problem.f_star
        den = self.f0 - f_star if f_star is not None else self.f0
        self.rc = np.array(
            [
                f_star or 0.0,
                1.0 / den if den != 0 else np.inf,
                rise_floor(spec.criteria.converge_rel, float(np.finfo(self.np_dtype).tiny)),
            ],
            dtype=self.np_dtype,
        )
        self.lstsq_data = self._lstsq_data() if isinstance(problem, Lstsq) else ()

    def _per_step(self, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """k and the schedule's factor of each step in the dtype (lr_k = lr * factor):
        1 / sqrt(k) for inv_sqrt, warmup_cosine's factor, 1 for constant."""
        k_np = ks.astype(self.np_dtype)
        if self.schedule.kind == "warmup_cosine":
            # lr * factor with lr = 1 is the eager step's factor itself, bit for bit
            one = torch.ones(1, dtype=getattr(torch, self.spec.dtype))
            fac = optim.learning_rate(one, self.schedule, torch.from_numpy(ks)).numpy()
        elif self.schedule.kind == "inv_sqrt":
            fac = 1 / np.sqrt(k_np)
        else:
            fac = np.ones_like(k_np)
        return k_np, np.ascontiguousarray(fac)

    def _indices(self, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sizes = self.streams[:, 1]
        idx, valid = stream_indices(
            seeds=self.streams[:, 0],
            batch_sizes=sizes,
            sampling=self.spec.sampling,
            steps=ks,
            n=self.problem.n,  # type: ignore[attr-defined]
        )
        return idx, valid, sizes.astype(self.np_dtype)

    def run(
        self,
        ckpts: list[int],
        report: Callable[[int], None],
        should_stop: Callable[[], bool] | None,
    ) -> tuple[np.ndarray, Outcomes, dict[str, np.ndarray]]:
        problem, r = self.problem, len(self.runs)
        d = problem.dim
        dt = self.np_dtype
        state: dict[str, np.ndarray]
        if isinstance(problem, Zhang2022):
            st = np.zeros((fk.N_STATE, r), dt)
            st[fk.X], st[fk.B1P], st[fk.B2P], st[fk.GAMMA] = problem.x0_value, 1.0, 1.0, np.inf
            state = {"st": st}
        else:
            x0 = problem.x0().numpy()
            state = {
                "x": np.repeat(x0[None, :], r, axis=0),
                "m": np.zeros((r, d), dt),
                "v": np.zeros((r, d), dt),
                "vmax": np.zeros((r, d), dt),
                "pows": np.ones((r, 2), dt),
                "gamma": np.full((r, len(problem.blocks)), np.inf, dt),
            }
        nclip = np.zeros(r, dtype=dt)  # exact counts below 2**24 steps
        rise = np.empty((2, r), dtype=dt)
        rise[fk.REL_MIN], rise[fk.MAX_RISE] = np.inf, 1.0
        set_threads()
        # float64 [R, C] in the runs' order, filled by the kernels: every checkpoint
        # is a step they take, so no entry stays unwritten
        curves = np.empty((r, len(ckpts)), dtype=np.float64)
        col_of_step = np.full(self.spec.steps + 1, -1, dtype=np.int64)
        col_of_step[np.asarray(ckpts, dtype=np.int64)] = np.arange(len(ckpts))
        if self.on_gpu:
            from experiments import fused_cuda

            common = (self.c, self.rc, self.flags, nclip, rise, curves)
            if "st" in state:
                self.gpu = fused_cuda.ZhangOnDevice(state["st"], self.hp, self.group, *common)
            else:
                self.gpu = fused_cuda.LstsqOnDevice(
                    state, self.hp, self.group, self.lstsq_data, *common
                )
        step = 0
        while step < self.spec.steps:
            n_steps = min(STATS_STEPS, self.spec.steps - step)
            ks = np.arange(step + 1, step + n_steps + 1, dtype=np.int64)
            slot = np.ascontiguousarray(col_of_step[step + 1 : step + n_steps + 1])
            self._advance(state, ks, nclip, rise, slot, curves)
            step += n_steps
            if should_stop is not None and should_stop():
                from experiments.engine import Canceled

                raise Canceled()
            report(r * step)
        if self.on_gpu:
            self.gpu.finish()
        if "st" in state:
            xmv = self._unsort(state["st"][: fk.V + 1])  # rows X, M, V
            x_final, m, v = xmv[fk.X][:, None], xmv[fk.M][:, None], xmv[fk.V][:, None]
            nclip, max_rise = self._unsort(nclip), self._unsort(rise[fk.MAX_RISE])
        else:
            x_final, m, v, max_rise = state["x"], state["m"], state["v"], rise[fk.MAX_RISE]
        x_final = x_final.astype(np.float64)
        f_star = problem.f_star
        criteria = self.spec.criteria
        outcomes = classify(
            curves=curves,
            ckpts=ckpts,
            x_finite=np.asarray(np.isfinite(x_final).all(axis=1)),
            gap=self._gap(x_final),
            f0=self.f0,
            f_star=f_star,
            criteria=criteria,
            n_clipped=nclip.astype(np.int64),
            steps=self.spec.steps,
            max_rise=max_rise.astype(np.float64),
            summary=fk.curve_summary(
                curves,
                f_star if f_star is not None else 0.0,
                self.f0 - f_star if f_star is not None else self.f0,
                float(criteria.diverge_rel),
            ),
        )
        final = {"x": x_final, "m": m.astype(np.float64), "v": v.astype(np.float64)}
        return curves, outcomes, final

    def _unsort(self, a: np.ndarray) -> np.ndarray:
        """Per-run values in stream order (the last axis) back in the runs' order."""
        if self.order is None:
            return a
        out = np.empty_like(a)
        out[..., self.order] = a
        return out

    def _gap(self, x_final: np.ndarray) -> np.ndarray:
        """engine._gap's ||x - x*||; with d = 1 it is |x - x*|, which torch's norm over
        one element returns bit for bit, in numpy (see hyper_rows for why)."""
        from experiments.engine import _gap

        if isinstance(self.problem, Zhang2022):
            return np.abs(x_final[:, 0] - Zhang2022.X_STAR)
        x_star = self.problem.x_star
        if x_star is None or x_final.shape[1] != 1:
            return _gap(torch.from_numpy(x_final), x_star)
        return np.abs(x_final[:, 0] - float(x_star.to(torch.float64)[0]))

    def _advance(
        self,
        state: dict[str, np.ndarray],
        ks: np.ndarray,
        nclip: np.ndarray,
        rise: np.ndarray,
        slot: np.ndarray,
        curves: np.ndarray,
    ) -> None:
        kf, sc = self._per_step(ks)
        idx, valid, sizes = self._indices(ks)
        problem = self.problem
        if isinstance(problem, Zhang2022):
            # Zhang2022.batch_stats for every stream at once
            s = zhang_summaries(problem, idx, valid, sizes)
            if self.on_gpu:
                self.gpu.steps(s, kf, sc, slot)
                return
            fk.zhang_steps(  # type: ignore[call-arg]
                state["st"],
                self.hp,
                *self.blocks,
                np.ascontiguousarray(s),
                kf,
                sc,
                self.c,
                self.rc,
                self.flags,
                nclip,
                rise,
                slot,
                curves,
                self.order,
            )
            return
        # Lstsq.batch_stats for every stream at once: sample counts / b
        w = lstsq_weights(problem.n, idx, valid, sizes)
        cols, vals, nnz = fused_lstsq.compress_weights(w, idx.shape[2])
        if self.on_gpu:
            self.gpu.steps(cols, vals, nnz, kf, sc, slot)
            return
        fused_lstsq.lstsq_steps(  # type: ignore[call-arg]
            state["x"],
            state["m"],
            state["v"],
            state["vmax"],
            state["pows"],
            state["gamma"],
            self.hp,
            *self.blocks,
            cols,
            vals,
            nnz,
            *self.lstsq_data,
            kf,
            sc,
            self.c,
            self.rc,
            self.flags,
            nclip,
            rise,
            slot,
            curves,
        )

    def _lstsq_data(self) -> tuple[np.ndarray, ...]:
        p = self.problem
        assert isinstance(p, Lstsq)
        a = p.A.numpy()
        gram = (a.astype(np.float64).T @ a.astype(np.float64)).astype(self.np_dtype)
        bounds = np.array([0] + [b for _, b in p.blocks], dtype=np.int64)
        return (np.ascontiguousarray(a), p.y.numpy(), gram, p.x_star.numpy(), bounds)
