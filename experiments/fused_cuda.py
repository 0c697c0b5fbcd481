"""The fused kernel on a CUDA GPU (zhang2022): one thread per run, the steps looped
inside, the run's state in registers.

It is experiments/fused_kernels.py's zhang2022 step, operation for operation
(the phases of _zhang_phases, max_rise folded after every step as _fold_min and
_fold_rise fold it, the objective written at the checkpoints), for every clip
mode, amsgrad, bias correction, decoupled decay and schedule, in both dtypes. A
GPU compiler fuses a multiplication and an addition into one fused
multiply-add, which rounds once where the CPU rounds twice; so every
multiplication, addition, division and square root here is libdevice's
correctly rounded one (`dmul_rn`, `dadd_rn`, `ddiv_rn`, `dsqrt_rn` and their
float32 twins), which the compiler never fuses. With subnormals kept (no
fast-math) a run's numbers are then the CPU kernel's bit for bit, so the kernel
is `fused` on either device and keeps its run keys (tests/experiments/
test_fused_cuda.py checks both: the PTX has no fma, and numba's CUDA simulator
gives the CPU kernel's results bit for bit).

The driver is experiments/fused.py's: it draws the minibatch summaries of every
stream for a block of steps on the CPU (s [K, G], a few kB) and launches one
kernel per block; the state, the hyperparameters and the curves stay on the GPU
until the chunk ends. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from numba import cuda
from numba.core import config

from experiments import fused_kernels as fk

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
        b1, omb1, b2, omb2, lr = (
            hp[fk.B1, r],
            hp[fk.OMB1, r],
            hp[fk.B2, r],
            hp[fk.OMB2, r],
            hp[fk.LR, r],
        )
        thr, ratio, cbeta, cwarm = hp[fk.THR, r], hp[fk.RATIO, r], hp[fk.CBETA, r], hp[fk.CWARM, r]
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


@cache
def zhang_kernel(dtype_name: str) -> Any:
    """The dtype's kernel, compiled for the GPU on its first launch."""
    return cuda.jit(zhang_source(np.dtype(dtype_name)))


class ZhangOnDevice:
    """One clip mode's zhang2022 runs on the GPU: their arrays there, a block of
    steps per launch, the results back on the host at the end."""

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
        self.kernel = zhang_kernel(st.dtype.name)
        self.host = (st, nclip, rise, curves)
        self.dev = [cuda.to_device(a) for a in (st, hp, group, c, rc, flags, nclip, rise, curves)]
        self.runs = st.shape[1]

    def steps(self, s: np.ndarray, kf: np.ndarray, sc: np.ndarray, slot: np.ndarray) -> None:
        st, hp, grp, c, rc, flags, nclip, rise, curves = self.dev
        per_step = [cuda.to_device(np.ascontiguousarray(a)) for a in (s, kf, sc, slot)]
        blocks = max(1, -(-self.runs // THREADS))
        self.kernel[blocks, THREADS](
            st,
            hp,
            grp,
            per_step[0],
            per_step[1],
            per_step[2],
            c,
            rc,
            flags,
            nclip,
            rise,
            per_step[3],
            curves,
        )
        cuda.synchronize()  # progress is reported after each block: the block is done

    def finish(self) -> None:
        """Copy the state, clip counts, max_rise and curves back into the host arrays."""
        st, nclip, rise, curves = self.dev[0], self.dev[6], self.dev[7], self.dev[8]
        for dev, host in zip((st, nclip, rise, curves), self.host, strict=True):
            dev.copy_to_host(host)
