"""The fused kernel on a CUDA GPU: one thread per run, the steps looped inside,
zhang2022's state in registers and lstsq's in [d, R] columns (a run per column).

Each kernel is its CPU twin's step (experiments/fused_kernels.py's
_zhang_phases, experiments/fused_lstsq.py's lstsq_steps) operation for
operation, for every clip mode, amsgrad, bias correction, decoupled decay and
schedule, in both dtypes, with max_rise folded after every step as _fold_min
and _fold_rise fold it and the objective written at the checkpoints. A GPU
compiler fuses a multiplication and an addition into one fused multiply-add,
which rounds once where the CPU rounds twice; so every multiplication,
addition, division and square root here is libdevice's correctly rounded one
(`dmul_rn`, `dadd_rn`, `ddiv_rn`, `dsqrt_rn` and their float32 twins), which
the compiler never fuses. With subnormals kept (no fast-math) a run's numbers
are then the CPU kernel's bit for bit, so the kernel is `fused` on either
device and keeps its run keys (tests/experiments/test_fused_cuda.py checks
both: the PTX has no fma, and numba's CUDA simulator gives the CPU kernel's
results bit for bit).

The driver is experiments/fused.py's: it draws the minibatch summaries of every
stream for a block of steps on the CPU (zhang2022's s [K, G], lstsq's sampled
rows and weights) and launches one kernel per block; the state, the
hyperparameters and the curves stay on the GPU until the chunk ends. Nothing
here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from numba import cuda
from numba.core import config

from experiments import fused_kernels as fk
from experiments.kernels import FUSED_PROBLEMS

SIMULATED: bool = bool(getattr(config, "ENABLE_CUDASIM", 0))  # NUMBA_ENABLE_CUDASIM=1
THREADS = 128  # threads per block: one run each


def available() -> bool:
    """Whether this process can run the kernel on a GPU: a CUDA device, its driver
    and NVVM (the `gpu` extra installs it), or numba's simulator (tests)."""
    if SIMULATED:
        return True
    try:
        from numba.cuda.cudadrv import nvvm

        return bool(cuda.is_available()) and bool(nvvm.is_available())
    except Exception:  # noqa: BLE001 (no driver, no NVVM: numba raises several kinds)
        return False


def _ops(dtype: Any) -> tuple[Callable[..., Any], ...]:
    """(mul, add, div, sqrt) rounded once each: libdevice's on a GPU, numpy's
    scalar operations in the simulator (which runs the kernel as Python)."""
    if SIMULATED:
        return (lambda a, b: a * b, lambda a, b: a + b, lambda a, b: a / b, np.sqrt)
    from numba.cuda import libdevice as ld

    if np.dtype(dtype) == np.float64:
        return ld.dmul_rn, ld.dadd_rn, ld.ddiv_rn, ld.dsqrt_rn
    return ld.fmul_rn, ld.fadd_rn, ld.fdiv_rn, ld.fsqrt_rn


def zhang_source(dtype: Any) -> Callable[..., Any]:
    """The kernel as a Python function over the dtype's rounded operations (not yet
    compiled: zhang_kernel compiles it, tests compile it to PTX)."""
    mul, add, div, sqrt = _ops(dtype)

    def zhang(st, hp, grp, s, kf, sc, c, rc, flags, nclip, rise, slot, curves):  # type: ignore[no-untyped-def]
        """K steps of every run (zhang_steps' arguments, the runs in their own order:
        grp [R] their streams, curves [R, C])."""
        r: int = cuda.grid(1)  # type: ignore[call-arg]
        if r >= st.shape[1]:
            return
        clip, bias, ams, decay, track = flags[0], flags[1], flags[2], flags[3], flags[4]
        eps, neps, wd, n_f, two_n = c[fk.EPS], c[fk.NORM_EPS], c[fk.WD], c[fk.N_F], c[fk.TWO_N]
        one, pfloor, safe = c[fk.ONE], c[fk.POW_FLOOR], c[fk.RISE_SAFE]
        f_star, inv_den, floor = rc[fk.F_STAR], rc[fk.INV_DEN], rc[fk.FLOOR]
        zero = add(one, -one)
        two = add(one, one)
        three = add(two, one)
        inv_n, inv_2n = div(one, n_f), div(one, two_n)
        x, m, v, vmax = st[fk.X, r], st[fk.M, r], st[fk.V, r], st[fk.VMAX, r]
        b1p, b2p, gam = st[fk.B1P, r], st[fk.B2P, r], st[fk.GAMMA, r]
        b1, omb1, b2, omb2 = hp[fk.B1, r], hp[fk.OMB1, r], hp[fk.B2, r], hp[fk.OMB2, r]
        lr, thr, ratio = hp[fk.LR, r], hp[fk.THR, r], hp[fk.RATIO, r]
        cbeta, cwarm = hp[fk.CBETA, r], hp[fk.CWARM, r]
        nc, rmin, mrise = nclip[r], rise[fk.REL_MIN, r], rise[fk.MAX_RISE, r]
        g_of = grp[r]
        for i in range(s.shape[0]):
            sv = s[i, g_of]
            g = mul(sv, one if x >= -one else add(x, two))
            if clip == 1:
                coef = div(thr, add(sqrt(mul(g, g)), neps))
                cl = coef < one
                g = mul(g, coef) if cl else g
                nc = add(nc, one if cl else zero)
            elif clip == 2:
                nc = add(nc, one if abs(g) > thr else zero)
                hi = g if (g > -thr or g != g) else -thr  # torch.maximum, then minimum
                g = hi if (hi < thr or hi != hi) else thr
            elif clip == 3:
                norm = sqrt(mul(g, g))
                if kf[i] <= cwarm:
                    coef = div(thr, add(norm, neps))
                    cl = coef < one
                    g = mul(g, coef) if cl else g
                    a = sqrt(mul(g, g))
                    gam = gam if (gam < a or gam != gam) else a
                else:
                    limit = mul(ratio, gam)
                    cl = norm > limit
                    scale = div(limit, add(norm, neps))
                    g = mul(g, scale) if cl else g
                    norm = mul(norm, scale) if cl else norm
                    gam = add(mul(cbeta, gam), mul(add(one, -cbeta), norm))
                nc = add(nc, one if cl else zero)
            m = add(mul(b1, m), mul(omb1, g))
            v = add(mul(b2, v), mul(omb2, mul(g, g)))
            p = mul(b1p, b1)
            b1p = p if p >= pfloor else zero
            p = mul(b2p, b2)
            b2p = p if p >= pfloor else zero
            sd = v
            if ams:
                vmax = vmax if (vmax > v or vmax != vmax) else v
                sd = vmax
            if bias:
                u = div(div(m, add(one, -b1p)), add(sqrt(div(sd, add(one, -b2p))), eps))
            else:
                u = div(m, add(sqrt(sd), eps))
            eta = mul(lr, sc[i])
            step = -mul(eta, u)
            x = add(x, add(step, -mul(mul(eta, wd), x)) if decay else step)
            if track:  # _fold_min, then _fold_rise where it can raise max_rise
                if x >= -one:
                    f = mul(x, inv_n)
                else:
                    f = mul(add(mul(add(x, two), add(x, two)), -three), inv_2n)
                rel = mul(add(f, -f_star), inv_den)
                if add(rel, -rel) == zero:
                    rmin = rmin if rmin < rel else rel
                    low = rmin if rmin > floor else floor
                    if rel > mul(mul(mrise, low), safe):
                        up = div(rel, low)
                        mrise = mrise if mrise > up else up
            if slot[i] >= 0:  # Zhang2022.loss's formula, as _zhang_f
                if x >= -one:
                    curves[r, slot[i]] = div(x, n_f)
                else:
                    curves[r, slot[i]] = div(add(mul(add(x, two), add(x, two)), -three), two_n)
        st[fk.X, r], st[fk.M, r], st[fk.V, r], st[fk.VMAX, r] = x, m, v, vmax
        st[fk.B1P, r], st[fk.B2P, r], st[fk.GAMMA, r] = b1p, b2p, gam
        nclip[r], rise[fk.REL_MIN, r], rise[fk.MAX_RISE, r] = nc, rmin, mrise

    return zhang


def lstsq_source(dtype: Any) -> Callable[..., Any]:
    """fused_lstsq.lstsq_steps' step as a kernel of one thread per run, over the
    dtype's rounded operations. Each run's vectors are columns of [d, R] arrays
    (x, m, v, vmax, the gradient g, AdaGC's gamma and the block norms [B, R]), so
    that neighbouring threads read neighbouring addresses; the data (A, y, A^T A,
    x*) and the sampled rows of each stream (cols, vals, nnz) are read by all."""
    mul, add, div, sqrt = _ops(dtype)

    def lstsq(x, m, v, vmax, g, gam, norms, pows, hp, grp, cols, vals, nnz, a, y, gram, x_star,  # type: ignore[no-untyped-def]
              bounds, kf, sc, c, rc, flags, nclip, rise, slot, curves):  # fmt: skip
        r: int = cuda.grid(1)  # type: ignore[call-arg]
        if r >= x.shape[1]:
            return
        clip, bias, ams, decay, track = flags[0], flags[1], flags[2], flags[3], flags[4]
        eps, neps, wd, two_n = c[fk.EPS], c[fk.NORM_EPS], c[fk.WD], c[fk.TWO_N]
        one, pfloor, safe = c[fk.ONE], c[fk.POW_FLOOR], c[fk.RISE_SAFE]
        inv_den, floor = rc[fk.INV_DEN], rc[fk.FLOOR]
        zero = add(one, -one)
        d, n_tb, n_rows = x.shape[0], bounds.shape[0] - 1, a.shape[0]
        b1p, b2p = pows[r, 0], pows[r, 1]
        b1, omb1, b2, omb2 = hp[fk.B1, r], hp[fk.OMB1, r], hp[fk.B2, r], hp[fk.OMB2, r]
        lr, thr, ratio = hp[fk.LR, r], hp[fk.THR, r], hp[fk.RATIO, r]
        cbeta, cwarm = hp[fk.CBETA, r], hp[fk.CWARM, r]
        nc, rmin, mrise = nclip[r], rise[fk.REL_MIN, r], rise[fk.MAX_RISE, r]
        g_of = grp[r]
        for i in range(kf.shape[0]):
            for j in range(d):
                g[j, r] = zero
            for q in range(nnz[i, g_of]):  # A^T (w * (A x - y)) over the sampled rows
                row, w = cols[i, g_of, q], vals[i, g_of, q]
                e = zero
                for j in range(d):
                    e = add(e, mul(x[j, r], a[row, j]))
                e = mul(add(e, -y[row]), w)
                for j in range(d):
                    g[j, r] = add(g[j, r], mul(e, a[row, j]))
            for b in range(n_tb):
                acc = zero
                for j in range(bounds[b], bounds[b + 1]):
                    acc = add(acc, mul(g[j, r], g[j, r]))
                norms[b, r] = sqrt(acc)
            warm = clip == 3 and kf[i] <= cwarm
            if clip == 1 or warm:
                if n_tb == 1:
                    tot = norms[0, r]
                else:
                    tot = zero
                    for b in range(n_tb):
                        tot = add(tot, mul(norms[b, r], norms[b, r]))
                    tot = sqrt(tot)
                coef = div(thr, add(tot, neps))
                clipped = coef < one
                factor = coef if clipped else one
                nc = add(nc, one if clipped else zero)
                for j in range(d):
                    g[j, r] = mul(g[j, r], factor)
                if warm:
                    for b in range(n_tb):
                        acc = zero
                        for j in range(bounds[b], bounds[b + 1]):
                            acc = add(acc, mul(g[j, r], g[j, r]))
                        low = sqrt(acc)
                        gam[b, r] = (
                            gam[b, r] if (gam[b, r] < low or gam[b, r] != gam[b, r]) else low
                        )
            elif clip == 2:
                hit = zero
                for j in range(d):
                    gj = g[j, r]
                    hit = one if abs(gj) > thr else hit
                    hi = gj if (gj > -thr or gj != gj) else -thr
                    g[j, r] = hi if (hi < thr or hi != hi) else thr
                nc = add(nc, hit)
            elif clip == 3:
                hit = zero
                for b in range(n_tb):
                    limit = mul(ratio, gam[b, r])
                    norm = norms[b, r]
                    over = norm > limit
                    scale = div(limit, add(norm, neps))
                    factor = scale if over else one
                    norm = mul(norm, scale) if over else norm
                    hit = one if over else hit
                    gam[b, r] = add(mul(cbeta, gam[b, r]), mul(add(one, -cbeta), norm))
                    for j in range(bounds[b], bounds[b + 1]):
                        g[j, r] = mul(g[j, r], factor)
                nc = add(nc, hit)
            p = mul(b1p, b1)
            b1p = p if p >= pfloor else zero
            p = mul(b2p, b2)
            b2p = p if p >= pfloor else zero
            inv1, inv2 = div(one, add(one, -b1p)), div(one, add(one, -b2p))
            eta = mul(lr, sc[i])
            for j in range(d):
                gj = g[j, r]
                mj = add(mul(b1, m[j, r]), mul(omb1, gj))
                vj = add(mul(b2, v[j, r]), mul(omb2, mul(gj, gj)))
                m[j, r], v[j, r] = mj, vj
                sd = vj
                if ams:
                    sd = vmax[j, r] if (vmax[j, r] > vj or vmax[j, r] != vmax[j, r]) else vj
                    vmax[j, r] = sd
                if bias:
                    u = div(mul(mj, inv1), add(sqrt(mul(sd, inv2)), eps))
                else:
                    u = div(mj, add(sqrt(sd), eps))
                u = -mul(eta, u)
                if decay:
                    u = add(u, -mul(mul(eta, wd), x[j, r]))
                x[j, r] = add(x[j, r], u)
            if slot[i] >= 0:  # ||A x - y||^2 / (2 n)
                acc = zero
                for row in range(n_rows):
                    e = zero
                    for j in range(d):
                        e = add(e, mul(x[j, r], a[row, j]))
                    er = add(e, -y[row])
                    acc = add(acc, mul(er, er))
                curves[r, slot[i]] = div(acc, two_n)
            if track:  # rel = (x - x*)^T G (x - x*) / (2 n) / (f(x0) - f*), then folded
                acc = zero
                for j in range(d):
                    e = zero
                    for jj in range(d):
                        e = add(e, mul(gram[j, jj], add(x[jj, r], -x_star[jj])))
                    acc = add(acc, mul(add(x[j, r], -x_star[j]), e))
                rel = mul(div(acc, two_n), inv_den)
                if add(rel, -rel) == zero:
                    rmin = rmin if rmin < rel else rel
                    low = rmin if rmin > floor else floor
                    if rel > mul(mul(mrise, low), safe):
                        up = div(rel, low)
                        mrise = mrise if mrise > up else up
        pows[r, 0], pows[r, 1] = b1p, b2p
        nclip[r], rise[fk.REL_MIN, r], rise[fk.MAX_RISE, r] = nc, rmin, mrise

    return lstsq


SOURCES = {"zhang2022": zhang_source, "lstsq": lstsq_source}
assert tuple(SOURCES) == FUSED_PROBLEMS


@cache
def kernel(problem: str, dtype_name: str) -> Any:
    """The problem's kernel in the dtype, compiled for the GPU on its first launch."""
    return cuda.jit(SOURCES[problem](np.dtype(dtype_name)))


def _launch(fn: Any, runs: int, *args: Any) -> None:
    fn[max(1, -(-runs // THREADS)), THREADS](*args)
    cuda.synchronize()  # progress is reported after each block: the block is done


class ZhangOnDevice:
    """One clip mode's zhang2022 runs on the GPU: their arrays there, a block of
    steps per launch, the results back in the host's arrays at the end."""

    def __init__(
        self,
        st: np.ndarray,
        hp: np.ndarray,
        group: np.ndarray,
        c: np.ndarray,
        rc: np.ndarray,
        flags: np.ndarray,
        nclip: np.ndarray,
        rise: np.ndarray,
        curves: np.ndarray,
    ):
        self.kernel = kernel("zhang2022", st.dtype.name)
        self.host = (st, nclip, rise, curves)  # what comes back, into these arrays
        self.st, self.nclip, self.rise, self.curves = (cuda.to_device(a) for a in self.host)
        self.inputs = [cuda.to_device(a) for a in (hp, group)]
        self.consts = [cuda.to_device(a) for a in (c, rc, flags)]

    def steps(self, s: np.ndarray, kf: np.ndarray, sc: np.ndarray, slot: np.ndarray) -> None:
        s_d, kf_d, sc_d, slot_d = (
            cuda.to_device(np.ascontiguousarray(a)) for a in (s, kf, sc, slot)
        )
        _launch(self.kernel, self.st.shape[1], self.st, *self.inputs, s_d, kf_d, sc_d,
                *self.consts, self.nclip, self.rise, slot_d, self.curves)  # fmt: skip

    def finish(self) -> None:
        for dev, host in zip((self.st, self.nclip, self.rise, self.curves), self.host, strict=True):
            dev.copy_to_host(host)


class LstsqOnDevice:
    """One clip mode's lstsq runs on the GPU, as ZhangOnDevice; the runs' vectors
    go there as [d, R] (a run per column) and come back as the host's [R, d]."""

    VECTORS = ("x", "m", "v", "vmax", "gamma")

    def __init__(
        self,
        state: dict[str, np.ndarray],
        hp: np.ndarray,
        group: np.ndarray,
        data: tuple[np.ndarray, ...],
        c: np.ndarray,
        rc: np.ndarray,
        flags: np.ndarray,
        nclip: np.ndarray,
        rise: np.ndarray,
        curves: np.ndarray,
    ):
        self.kernel = kernel("lstsq", hp.dtype.name)
        self.state, self.host = state, (nclip, rise, curves)
        self.vec = {k: cuda.to_device(np.ascontiguousarray(state[k].T)) for k in self.VECTORS}
        d, r = self.vec["x"].shape
        # the gradient [d, R] and the block norms [B, R]
        self.work = (cuda.device_array((d, r), hp.dtype),
                     cuda.device_array(self.vec["gamma"].shape, hp.dtype))  # fmt: skip
        self.pows = cuda.to_device(state["pows"])
        self.rest = [cuda.to_device(a) for a in (hp, group)]
        self.data = [cuda.to_device(a) for a in data]  # A, y, A^T A, x*, block bounds
        self.consts = [cuda.to_device(a) for a in (c, rc, flags)]
        self.out = [cuda.to_device(a) for a in (nclip, rise)]
        self.curves = cuda.to_device(curves)

    def steps(
        self,
        cols: np.ndarray,
        vals: np.ndarray,
        nnz: np.ndarray,
        kf: np.ndarray,
        sc: np.ndarray,
        slot: np.ndarray,
    ) -> None:
        per_step = [
            cuda.to_device(np.ascontiguousarray(a)) for a in (cols, vals, nnz, kf, sc, slot)
        ]
        v = self.vec
        _launch(
            self.kernel,
            v["x"].shape[1],
            v["x"],
            v["m"],
            v["v"],
            v["vmax"],
            self.work[0],
            v["gamma"],
            self.work[1],
            self.pows,
            *self.rest,
            *per_step[:3],
            *self.data,
            per_step[3],
            per_step[4],
            *self.consts,
            *self.out,
            per_step[5],
            self.curves,
        )

    def finish(self) -> None:
        for k in self.VECTORS:
            self.state[k][...] = self.vec[k].copy_to_host().T
        self.pows.copy_to_host(self.state["pows"])
        for dev, host in zip((*self.out, self.curves), self.host, strict=True):
            dev.copy_to_host(host)
