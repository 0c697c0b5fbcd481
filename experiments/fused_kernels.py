"""The fused kernel's numba functions: many steps of Adam/AdamW for many runs in one call.

Each function advances every run of a clip mode by a block of steps, in place on
its state arrays. Runs are cut into lane blocks of at most LANES runs spread over
the CPU's threads (prange); within a block the step loop is outside and the loops
over the block's runs inside, so those loops are straight-line code the compiler
turns into SIMD (if-converted selects, no reductions across runs), with the
block's state hot in L1.

The arithmetic is the eager step's (DESIGN section 4), operation for operation,
except where a division by a per-step or per-run value becomes a product with
its reciprocal (lr / sqrt(k) -> lr * (1 / sqrt(k)); on lstsq, m / (1 - b1^k) ->
m * (1 / (1 - b1^k)), one division per run instead of one per coordinate), with
no fast-math and no fused multiply-add. So a run agrees with eager to rounding
(torch's own float64 sqrt on this CPU, MKL's, is not correctly rounded either),
and a run's numbers never depend on its lane, block, chunk or thread: no
operation mixes runs.

cache=True keeps the machine code on disk (numba's cache, beside this file or in
NUMBA_CACHE_DIR), so a process loads it instead of compiling it.

Flags (int64 array): [clip mode (0 none, 1 global_norm, 2 value, 3 adagc),
schedule (0 constant, 1 inv_sqrt: lr times sk = 1 / sqrt(k), 2 lr times a factor),
bias correction, amsgrad, decoupled decay, track max_rise].
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

LANES = 256  # runs per lane block (zhang2022); lstsq uses LSTSQ_LANES
LSTSQ_LANES = 64  # lstsq's blocks hold d-by-lanes state, so fewer runs stay in L1

# rows of the state matrix [N_STATE, R]
X, M, V, VMAX, B1P, B2P, GAMMA = range(7)
N_STATE = 7
# rows of the per-run hyperparameter matrix [N_HYPER, R]
B1, OMB1, B2, OMB2, LR, THR, RATIO, CBETA, CWARM = range(9)
N_HYPER = 9
# the dtype constants: eps, the clip norm eps, weight decay, n (zhang2022), 2 n, 1
EPS, NORM_EPS, WD, N_F, TWO_N, ONE = range(6)
# the dtype's constants for max_rise: f*, 1 / (f(x0) - f*), the running minimum's floor
F_STAR, INV_DEN, FLOOR = range(3)
# rows of the max_rise state [2, R] (the dtype's): running min of rel, max_rise
REL_MIN, MAX_RISE = range(2)


@njit(inline="always", cache=True)
def _tmax(a, b):  # type: ignore[no-untyped-def]
    """torch.maximum: NaN if either is NaN."""
    return a if (a > b or a != a) else b


@njit(inline="always", cache=True)
def _tmin(a, b):  # type: ignore[no-untyped-def]
    """torch.minimum: NaN if either is NaN."""
    return a if (a < b or a != a) else b


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def zhang_steps(st, hp, group, s, kf, sk, fac, c, rc, flags, nclip, rise, slot, curves):  # type: ignore[no-untyped-def]
    """K steps of zhang2022 (d = 1): g = s_k * (1 if x >= -1 else x + 2), s [K, G].

    After step i, where slot[i] >= 0, the full objective f(x) (Zhang2022.loss's
    formula) goes to curves[slot[i], r].

    st [N_STATE, R] and hp [N_HYPER, R] in the dtype; nclip [R] and rise [2, R] in
    the dtype too (counts stay exact below 2**24 steps), so float32 runs keep
    float32 vectors throughout. Each phase of a step is its own loop over the
    lane block's runs, the uniform flags tested outside it."""
    clip, sched, bias, ams, decay, track = (
        flags[0],
        flags[1],
        flags[2],
        flags[3],
        flags[4],
        flags[5],
    )
    eps, neps, wd, n_f, two_n = c[EPS], c[NORM_EPS], c[WD], c[N_F], c[TWO_N]
    one = c[ONE]  # 1 in the state's dtype (an int literal would promote float32)
    zero = one - one
    two, three = one + one, one + one + one
    inv_n, inv_2n = one / n_f, one / two_n
    f_star, inv_den, floor = rc[F_STAR], rc[INV_DEN], rc[FLOOR]
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
                    eta = lr[r] * sk[i]
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
                    f = xr * inv_n if xr >= -one else ((xr + two) * (xr + two) - three) * inv_2n
                    rel = (f - f_star) * inv_den
                    fin = rel - rel == zero
                    lo_r = min(rmin[r], rel) if fin else rmin[r]
                    rmin[r] = lo_r
                    up = rel / max(lo_r, floor)
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


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def lstsq_steps(  # type: ignore[no-untyped-def]
    xs,
    ms,
    vs,
    vmaxs,
    pows,
    gammas,
    hp,
    order,
    blk_lo,
    blk_hi,
    blk_grp,
    cols,
    vals,
    nnz,
    a,
    y,
    gram,
    x_star,
    bounds,
    kf,
    sk,
    fac,
    c,
    rc,
    flags,
    nclip,
    rise,
    slot,
    curves,
):
    """K steps of lstsq (state [R, d]; per-tensor gamma [R, n_blocks]).

    Lane blocks hold runs of one stream (positions blk_lo..blk_hi of `order`, the
    runs sorted by stream), so a step's sampled rows are shared by the block and
    every loop over its runs is SIMD with the row's numbers broadcast. The
    minibatch of stream g at step i is the nnz[i, g] distinct samples
    cols[i, g, :nnz] with weights vals (count / b), ascending: the eager gradient
    A^T (w * (A x - y)) without its zero terms. Where slot[i] >= 0 the full
    objective ||A x - y||^2 / (2 n) goes to curves[slot[i], r]. rel for max_rise
    is (x - x*)^T G (x - x*) / (2 n) * inv_den with G = A^T A: f(x) - f* without
    the cancellation of subtracting two nearly equal losses. The clip settings are
    one clip spec's (a FusedSimulation is one clip mode), so AdaGC's warm-up test
    is the same for every run."""
    clip, sched, bias, ams, decay, track = (
        flags[0],
        flags[1],
        flags[2],
        flags[3],
        flags[4],
        flags[5],
    )
    eps, neps, wd, two_n = c[EPS], c[NORM_EPS], c[WD], c[TWO_N]
    one = c[ONE]
    zero = one - one
    inv_den, floor = rc[INV_DEN], rc[FLOOR]
    d = xs.shape[1]
    n_tb = bounds.shape[0] - 1
    n_rows = a.shape[0]
    for blk in prange(blk_lo.shape[0]):
        lo, hi, grp = blk_lo[blk], blk_hi[blk], blk_grp[blk]
        nl = hi - lo
        idx = order[lo:hi]
        x = np.empty((d, nl), xs.dtype)
        m = np.empty((d, nl), xs.dtype)
        v = np.empty((d, nl), xs.dtype)
        vmax = np.empty((d, nl), xs.dtype)
        gam = np.empty((n_tb, nl), xs.dtype)
        for q in range(nl):
            r = idx[q]
            for j in range(d):
                x[j, q], m[j, q], v[j, q], vmax[j, q] = xs[r, j], ms[r, j], vs[r, j], vmaxs[r, j]
            for b in range(n_tb):
                gam[b, q] = gammas[r, b]
        b1p = pows[idx, 0]
        b2p = pows[idx, 1]
        b1 = hp[B1, idx]
        omb1 = hp[OMB1, idx]
        b2 = hp[B2, idx]
        omb2 = hp[OMB2, idx]
        lr = hp[LR, idx]
        thr = hp[THR, idx]
        ratio = hp[RATIO, idx]
        cbeta = hp[CBETA, idx]
        cwarm0 = hp[CWARM, idx[0]]
        nc = nclip[idx]
        rmin = rise[REL_MIN, idx]
        mrise = rise[MAX_RISE, idx]
        g = np.empty((d, nl), xs.dtype)
        norms = np.empty((n_tb, nl), xs.dtype)
        e = np.empty(nl, xs.dtype)
        acc = np.empty(nl, xs.dtype)
        cl = np.empty(nl, xs.dtype)
        eta = np.empty(nl, xs.dtype)
        inv1 = np.empty(nl, xs.dtype)
        inv2 = np.empty(nl, xs.dtype)
        for i in range(kf.shape[0]):
            g[:, :] = zero
            for q in range(nnz[i, grp]):
                row = cols[i, grp, q]
                w = vals[i, grp, q]
                e[:] = zero
                for j in range(d):
                    arj = a[row, j]
                    for r in range(nl):
                        e[r] += x[j, r] * arj
                yr = y[row]
                for r in range(nl):
                    e[r] = (e[r] - yr) * w
                for j in range(d):
                    arj = a[row, j]
                    for r in range(nl):
                        g[j, r] += e[r] * arj
            for b in range(n_tb):
                acc[:] = zero
                for j in range(bounds[b], bounds[b + 1]):
                    for r in range(nl):
                        acc[r] += g[j, r] * g[j, r]
                for r in range(nl):
                    norms[b, r] = np.sqrt(acc[r])
            warm = clip == 3 and kf[i] <= cwarm0
            if clip == 1 or warm:
                if n_tb == 1:
                    for r in range(nl):
                        acc[r] = norms[0, r]
                else:
                    acc[:] = zero
                    for b in range(n_tb):
                        for r in range(nl):
                            acc[r] += norms[b, r] * norms[b, r]
                    for r in range(nl):
                        acc[r] = np.sqrt(acc[r])
                for r in range(nl):
                    coef = thr[r] / (acc[r] + neps)
                    clipped = coef < one
                    cl[r] = coef if clipped else one
                    nc[r] += one if clipped else zero
                for j in range(d):
                    for r in range(nl):
                        g[j, r] = g[j, r] * cl[r]
                if warm:
                    for b in range(n_tb):
                        acc[:] = zero
                        for j in range(bounds[b], bounds[b + 1]):
                            for r in range(nl):
                                acc[r] += g[j, r] * g[j, r]
                        for r in range(nl):
                            gam[b, r] = _tmin(gam[b, r], np.sqrt(acc[r]))
            elif clip == 2:
                cl[:] = zero
                for j in range(d):
                    for r in range(nl):
                        gj = g[j, r]
                        cl[r] = one if abs(gj) > thr[r] else cl[r]
                        g[j, r] = _tmin(_tmax(gj, -thr[r]), thr[r])
                for r in range(nl):
                    nc[r] += cl[r]
            elif clip == 3:
                cl[:] = zero
                for b in range(n_tb):
                    for r in range(nl):
                        limit = ratio[r] * gam[b, r]
                        norm = norms[b, r]
                        over = norm > limit
                        scale = limit / (norm + neps)
                        acc[r] = scale if over else one
                        norm = norm * scale if over else norm
                        cl[r] = one if over else cl[r]
                        gam[b, r] = cbeta[r] * gam[b, r] + (one - cbeta[r]) * norm
                    for j in range(bounds[b], bounds[b + 1]):
                        for r in range(nl):
                            g[j, r] = g[j, r] * acc[r]
                for r in range(nl):
                    nc[r] += cl[r]
            for r in range(nl):
                b1p[r] = b1p[r] * b1[r]
                b2p[r] = b2p[r] * b2[r]
                inv1[r] = one / (one - b1p[r])
                inv2[r] = one / (one - b2p[r])
                if sched == 1:
                    eta[r] = lr[r] * sk[i]
                elif sched == 2:
                    eta[r] = lr[r] * fac[i]
                else:
                    eta[r] = lr[r]
            for j in range(d):
                for r in range(nl):
                    gj = g[j, r]
                    mj = b1[r] * m[j, r] + omb1[r] * gj
                    vj = b2[r] * v[j, r] + omb2[r] * (gj * gj)
                    m[j, r] = mj
                    v[j, r] = vj
                    sd = vj
                    if ams:
                        sd = _tmax(vmax[j, r], vj)
                        vmax[j, r] = sd
                    if bias:
                        u = (mj * inv1[r]) / (np.sqrt(sd * inv2[r]) + eps)
                    else:
                        u = mj / (np.sqrt(sd) + eps)
                    u = -(eta[r] * u)
                    if decay:
                        u = u - (eta[r] * wd) * x[j, r]
                    x[j, r] = x[j, r] + u
            if slot[i] >= 0:
                acc[:] = zero
                for row in range(n_rows):
                    e[:] = zero
                    for j in range(d):
                        arj = a[row, j]
                        for r in range(nl):
                            e[r] += x[j, r] * arj
                    yr = y[row]
                    for r in range(nl):
                        er = e[r] - yr
                        acc[r] += er * er
                for r in range(nl):
                    curves[slot[i], idx[r]] = acc[r] / two_n
            if track:
                acc[:] = zero
                for j in range(d):
                    e[:] = zero
                    for jj in range(d):
                        gjj = gram[j, jj]
                        xs_jj = x_star[jj]
                        for r in range(nl):
                            e[r] += gjj * (x[jj, r] - xs_jj)
                    xs_j = x_star[j]
                    for r in range(nl):
                        acc[r] += (x[j, r] - xs_j) * e[r]
                for r in range(nl):
                    rel = (acc[r] / two_n) * inv_den
                    fin = rel - rel == zero
                    low = min(rmin[r], rel) if fin else rmin[r]
                    rmin[r] = low
                    up = rel / max(low, floor)
                    mrise[r] = max(mrise[r], up) if fin else mrise[r]
        for q in range(nl):
            r = idx[q]
            for j in range(d):
                xs[r, j], ms[r, j], vs[r, j], vmaxs[r, j] = x[j, q], m[j, q], v[j, q], vmax[j, q]
            for b in range(n_tb):
                gammas[r, b] = gam[b, q]
            pows[r, 0], pows[r, 1] = b1p[q], b2p[q]
            nclip[r] = nc[q]
            rise[REL_MIN, r], rise[MAX_RISE, r] = rmin[q], mrise[q]


def stream_blocks(group, lanes=LSTSQ_LANES):  # type: ignore[no-untyped-def]
    """(order, blk_lo, blk_hi, blk_grp): the runs sorted by stream (stable) and cut
    into blocks of at most `lanes` runs of one stream each."""
    order = np.argsort(group, kind="stable")
    sorted_g = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_g[1:] != sorted_g[:-1]])
    ends = np.r_[starts[1:], len(group)]
    lo = np.concatenate(
        [np.arange(a, b, lanes) for a, b in zip(starts, ends, strict=True)]
        or [np.zeros(0, np.int64)]
    )
    hi = np.minimum(lo + lanes, np.repeat(ends, -(-(ends - starts) // lanes)))
    return order.astype(np.int64), lo.astype(np.int64), hi.astype(np.int64), sorted_g[lo]


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
