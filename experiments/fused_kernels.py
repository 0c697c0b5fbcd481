"""The fused kernel's numba functions: many steps of Adam/AdamW for many runs in one call.

Each function advances every run of a clip mode by a block of steps, in place on
its state arrays. Runs are split into lanes of LANES consecutive runs across the
CPU's threads (prange); within a lane block the step loop is outside and the loop
over runs inside, so that loop is straight-line code the compiler turns into SIMD
(if-converted selects, no reductions across runs), with the block's state hot in
L1. Every operation is the eager kernel's, in the same order and dtype, with no
fast-math and no fused multiply-add: a run's numbers are those of the eager engine
on zhang2022 (bit for bit, tested) and agree to rounding on lstsq (whose matrix
products BLAS orders its own way), and they never depend on a run's lane.

cache=True keeps the machine code on disk (numba's cache, beside this file or in
NUMBA_CACHE_DIR), so a process loads it instead of compiling it.

Flags (int64 array): [clip mode (0 none, 1 global_norm, 2 value, 3 adagc),
schedule (0 constant, 1 inv_sqrt: lr / sqrt(k), 2 multiplied by a factor),
bias correction, amsgrad, decoupled decay, track max_rise].
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

LANES = 64

# rows of the state matrix [N_STATE, R]
X, M, V, VMAX, B1P, B2P, GAMMA = range(7)
N_STATE = 7
# rows of the per-run hyperparameter matrix [N_HYPER, R]
B1, OMB1, B2, OMB2, LR, THR, RATIO, CBETA, CWARM = range(9)
N_HYPER = 9
# the dtype constants: eps, the clip norm eps, weight decay, n (zhang2022), 2 n, 1
EPS, NORM_EPS, WD, N_F, TWO_N, ONE = range(6)
# the dtype's constants for max_rise: f*, 1 / (f(x0) - f*), finfo(dtype).tiny
F_STAR, INV_DEN, TINY = range(3)
# rows of the max_rise state [2, R] (the dtype's): running min of rel, max_rise
REL_MIN, MAX_RISE = range(2)

_OPTS = {"parallel": True, "cache": True, "nogil": True, "error_model": "numpy"}


@njit(inline="always", cache=True)
def _tmax(a, b):  # type: ignore[no-untyped-def]
    """torch.maximum: NaN if either is NaN."""
    return a if (a > b or a != a) else b


@njit(inline="always", cache=True)
def _tmin(a, b):  # type: ignore[no-untyped-def]
    """torch.minimum: NaN if either is NaN."""
    return a if (a < b or a != a) else b


@njit(**_OPTS)
def zhang_steps(st, hp, group, s, kf, sk, fac, c, rc, flags, nclip, rise, slot, curves):  # type: ignore[no-untyped-def]
    """K steps of zhang2022 (d = 1): g = s_k * (1 if x >= -1 else x + 2), s [K, G].

    After step i, where slot[i] >= 0, the full objective f(x) (Zhang2022.loss's
    formula) goes to curves[slot[i], r].

    st [N_STATE, R] and hp [N_HYPER, R] in the dtype; nclip [R] and rise [2, R] in
    the dtype too (counts stay exact below 2**24 steps), so float32 runs keep
    float32 vectors throughout. Each phase of a step is its own loop over the
    lane block's runs, the uniform flags tested outside it."""
    clip, sched, bias, ams, decay, track = (
        flags[0], flags[1], flags[2], flags[3], flags[4], flags[5]
    )
    eps, neps, wd, n_f, two_n = c[EPS], c[NORM_EPS], c[WD], c[N_F], c[TWO_N]
    one = c[ONE]  # 1 in the state's dtype (an int literal would promote float32)
    zero = one - one
    two, three = one + one, one + one + one
    f_star, inv_den, tiny = rc[F_STAR], rc[INV_DEN], rc[TINY]
    r_all = st.shape[1]
    n_blocks = (r_all + LANES - 1) // LANES
    for blk in prange(n_blocks):
        lo = blk * LANES
        hi = min(lo + LANES, r_all)
        x = st[X, lo:hi].copy()
        m = st[M, lo:hi].copy()
        v = st[V, lo:hi].copy()
        vmax = st[VMAX, lo:hi].copy()
        b1p = st[B1P, lo:hi].copy()
        b2p = st[B2P, lo:hi].copy()
        gam = st[GAMMA, lo:hi].copy()
        b1 = hp[B1, lo:hi].copy()
        omb1 = hp[OMB1, lo:hi].copy()
        b2 = hp[B2, lo:hi].copy()
        omb2 = hp[OMB2, lo:hi].copy()
        lr = hp[LR, lo:hi].copy()
        thr = hp[THR, lo:hi].copy()
        ratio = hp[RATIO, lo:hi].copy()
        cbeta = hp[CBETA, lo:hi].copy()
        cwarm = hp[CWARM, lo:hi].copy()
        grp = group[lo:hi].copy()
        nc = nclip[lo:hi].copy()
        rmin = rise[REL_MIN, lo:hi].copy()
        mrise = rise[MAX_RISE, lo:hi].copy()
        g = np.empty_like(x)
        u = np.empty_like(x)
        nl = hi - lo
        for i in range(s.shape[0]):
            si = s[i]
            k_f = kf[i]
            for r in range(nl):
                xr = x[r]
                g[r] = si[grp[r]] * (one if xr >= -one else xr + two)
            if clip == 1:
                for r in range(nl):
                    gr = g[r]
                    coef = thr[r] / (np.sqrt(gr * gr) + neps)
                    cl = coef < one
                    g[r] = gr * coef if cl else gr
                    nc[r] += one if cl else zero
            elif clip == 2:
                for r in range(nl):
                    gr = g[r]
                    nc[r] += one if abs(gr) > thr[r] else zero
                    g[r] = _tmin(_tmax(gr, -thr[r]), thr[r])
            elif clip == 3:
                for r in range(nl):
                    gr = g[r]
                    norm = np.sqrt(gr * gr)
                    if k_f <= cwarm[r]:
                        coef = thr[r] / (norm + neps)
                        cl = coef < one
                        gr = gr * coef if cl else gr
                        gam[r] = _tmin(gam[r], np.sqrt(gr * gr))
                    else:
                        limit = ratio[r] * gam[r]
                        cl = norm > limit
                        scale = limit / (norm + neps)
                        gr = gr * scale if cl else gr
                        norm = norm * scale if cl else norm
                        gam[r] = cbeta[r] * gam[r] + (one - cbeta[r]) * norm
                    g[r] = gr
                    nc[r] += one if cl else zero
            for r in range(nl):
                gr = g[r]
                m[r] = b1[r] * m[r] + omb1[r] * gr
                v[r] = b2[r] * v[r] + omb2[r] * (gr * gr)
                b1p[r] = b1p[r] * b1[r]
                b2p[r] = b2p[r] * b2[r]
            if ams:
                for r in range(nl):
                    vmax[r] = _tmax(vmax[r], v[r])
                sd = vmax
            else:
                sd = v
            if bias:
                for r in range(nl):
                    u[r] = (m[r] / (one - b1p[r])) / (np.sqrt(sd[r] / (one - b2p[r])) + eps)
            else:
                for r in range(nl):
                    u[r] = m[r] / (np.sqrt(sd[r]) + eps)
            if sched == 1:
                for r in range(nl):
                    eta = lr[r] / sk[i]
                    x[r] = x[r] + (-(eta * u[r]) - (eta * wd) * x[r] if decay else -(eta * u[r]))
            elif sched == 2:
                for r in range(nl):
                    eta = lr[r] * fac[i]
                    x[r] = x[r] + (-(eta * u[r]) - (eta * wd) * x[r] if decay else -(eta * u[r]))
            else:
                for r in range(nl):
                    eta = lr[r]
                    x[r] = x[r] + (-(eta * u[r]) - (eta * wd) * x[r] if decay else -(eta * u[r]))
            col = slot[i]
            if col >= 0:
                for r in range(nl):
                    xr = x[r]
                    f = xr / n_f if xr >= -one else ((xr + two) * (xr + two) - three) / two_n
                    curves[col, lo + r] = f
            if track:
                for r in range(nl):
                    xr = x[r]
                    f = xr / n_f if xr >= -one else ((xr + two) * (xr + two) - three) / two_n
                    rel = (f - f_star) * inv_den
                    fin = rel - rel == zero
                    lo_r = min(rmin[r], rel) if fin else rmin[r]
                    rmin[r] = lo_r
                    up = rel / max(lo_r, tiny)
                    mrise[r] = max(mrise[r], up) if fin else mrise[r]
        st[X, lo:hi] = x
        st[M, lo:hi] = m
        st[V, lo:hi] = v
        st[VMAX, lo:hi] = vmax
        st[B1P, lo:hi] = b1p
        st[B2P, lo:hi] = b2p
        st[GAMMA, lo:hi] = gam
        nclip[lo:hi] = nc
        rise[REL_MIN, lo:hi] = rmin
        rise[MAX_RISE, lo:hi] = mrise


@njit(**_OPTS)
def lstsq_steps(  # type: ignore[no-untyped-def]
    xs, ms, vs, vmaxs, pows, gammas, hp, group, cols, vals, nnz, a, y, gram, x_star,
    bounds, kf, sk, fac, c, rc, flags, nclip, rise, slot, curves,
):
    """K steps of lstsq for every run (state [R, d]; per-tensor gamma [R, n_blocks]).

    Where slot[i] >= 0, f(x) = ||A x - y||^2 / (2 n) after step i goes to
    curves[slot[i], r].

    The minibatch of stream g at step i is the nnz[i, g] distinct samples
    cols[i, g, :nnz] with weights vals (count / b), ascending: the eager gradient
    A^T (w * (A x - y)) without its zero terms. rel for max_rise is
    (x - x*)^T G (x - x*) / (2 n) * inv_den, G = A^T A: f(x) - f* without the
    cancellation of subtracting two nearly equal losses."""
    clip, sched, bias, ams, decay, track = (
        flags[0], flags[1], flags[2], flags[3], flags[4], flags[5]
    )
    eps, neps, wd, two_n = c[EPS], c[NORM_EPS], c[WD], c[TWO_N]
    one = c[ONE]
    zero = one - one
    inv_den, tiny = rc[INV_DEN], rc[TINY]
    r_all, d = xs.shape
    n_blk = bounds.shape[0] - 1
    for r in prange(r_all):
        x = xs[r].copy()
        m = ms[r].copy()
        v = vs[r].copy()
        vmax = vmaxs[r].copy()
        gam = gammas[r].copy()
        g = np.empty(d, dtype=xs.dtype)
        norms = np.empty(n_blk, dtype=xs.dtype)
        b1p, b2p = pows[r, 0], pows[r, 1]
        b1, omb1, b2, omb2 = hp[B1, r], hp[OMB1, r], hp[B2, r], hp[OMB2, r]
        thr, lr = hp[THR, r], hp[LR, r]
        grp = group[r]
        nc = nclip[r]
        rmin, mrise = rise[REL_MIN, r], rise[MAX_RISE, r]
        for i in range(kf.shape[0]):
            for j in range(d):
                g[j] = zero
            for q in range(nnz[i, grp]):
                row = cols[i, grp, q]
                e = zero
                for j in range(d):
                    e += x[j] * a[row, j]
                e = (e - y[row]) * vals[i, grp, q]
                for j in range(d):
                    g[j] += e * a[row, j]
            for b in range(n_blk):
                acc = zero
                for j in range(bounds[b], bounds[b + 1]):
                    acc += g[j] * g[j]
                norms[b] = np.sqrt(acc)
            warm = clip == 3 and kf[i] <= hp[CWARM, r]
            if clip == 1 or warm:
                if n_blk == 1:
                    total = norms[0]
                else:
                    acc = zero
                    for b in range(n_blk):
                        acc += norms[b] * norms[b]
                    total = np.sqrt(acc)
                coef = thr / (total + neps)
                if coef < one:
                    for j in range(d):
                        g[j] = g[j] * coef
                    nc += one
                if warm:
                    for b in range(n_blk):
                        acc = zero
                        for j in range(bounds[b], bounds[b + 1]):
                            acc += g[j] * g[j]
                        gam[b] = _tmin(gam[b], np.sqrt(acc))
            elif clip == 2:
                over = False
                for j in range(d):
                    if abs(g[j]) > thr:
                        over = True
                    g[j] = _tmin(_tmax(g[j], -thr), thr)
                if over:
                    nc += one
            elif clip == 3:
                over = False
                for b in range(n_blk):
                    limit = hp[RATIO, r] * gam[b]
                    norm = norms[b]
                    if norm > limit:
                        scale = limit / (norm + neps)
                        for j in range(bounds[b], bounds[b + 1]):
                            g[j] = g[j] * scale
                        norm = norm * scale
                        over = True
                    gam[b] = hp[CBETA, r] * gam[b] + (one - hp[CBETA, r]) * norm
                if over:
                    nc += one
            b1p = b1p * b1
            b2p = b2p * b2
            if sched == 1:
                eta = lr / sk[i]
            elif sched == 2:
                eta = lr * fac[i]
            else:
                eta = lr
            for j in range(d):
                gj = g[j]
                mj = b1 * m[j] + omb1 * gj
                vj = b2 * v[j] + omb2 * (gj * gj)
                m[j] = mj
                v[j] = vj
                sd = vj
                if ams:
                    sd = _tmax(vmax[j], vj)
                    vmax[j] = sd
                if bias:
                    u = (mj / (one - b1p)) / (np.sqrt(sd / (one - b2p)) + eps)
                else:
                    u = mj / (np.sqrt(sd) + eps)
                u = -(eta * u)
                if decay:
                    u = u - (eta * wd) * x[j]
                x[j] = x[j] + u
            if slot[i] >= 0:
                loss = zero
                for row in range(a.shape[0]):
                    e = zero
                    for j in range(d):
                        e += x[j] * a[row, j]
                    e = e - y[row]
                    loss += e * e
                curves[slot[i], r] = loss / two_n
            if track:
                quad = zero
                for j in range(d):
                    row = zero
                    for jj in range(d):
                        row += gram[j, jj] * (x[jj] - x_star[jj])
                    quad += (x[j] - x_star[j]) * row
                rel = (quad / two_n) * inv_den
                if rel - rel == 0.0:
                    rmin = min(rmin, rel)
                    mrise = max(mrise, rel / max(rmin, tiny))
        xs[r] = x
        ms[r] = m
        vs[r] = v
        vmaxs[r] = vmax
        gammas[r] = gam
        pows[r, 0], pows[r, 1] = b1p, b2p
        nclip[r] = nc
        rise[REL_MIN, r], rise[MAX_RISE, r] = rmin, mrise


@njit(cache=True)
def compress_weights(w, nnz_max):  # type: ignore[no-untyped-def]
    """Dense minibatch weights [K, G, n] -> (cols, vals [K, G, nnz_max], nnz [K, G]),
    the nonzero weights of each (step, stream) in ascending sample order."""
    k_all, g_all, n = w.shape
    cols = np.zeros((k_all, g_all, nnz_max), dtype=np.int64)
    vals = np.zeros((k_all, g_all, nnz_max), dtype=w.dtype)
    nnz = np.zeros((k_all, g_all), dtype=np.int64)
    for i in range(k_all):
        for g in range(g_all):
            q = 0
            for j in range(n):
                if w[i, g, j] != 0:
                    cols[i, g, q] = j
                    vals[i, g, q] = w[i, g, j]
                    q += 1
            nnz[i, g] = q
    return cols, vals, nnz
