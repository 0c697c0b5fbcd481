"""The fused kernel's lstsq functions (see experiments/fused_kernels.py for the
shared rules: lane blocks, the eager step's arithmetic, the flags)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from experiments.fused_kernels import (
    B1,
    B2,
    CBETA,
    CWARM,
    EPS,
    FLOOR,
    INV_DEN,
    LR,
    MAX_RISE,
    NORM_EPS,
    OMB1,
    OMB2,
    ONE,
    POW_FLOOR,
    RATIO,
    REL_MIN,
    RISE_SAFE,
    THR,
    TWO_N,
    WD,
    _fold_min,
    _fold_rise,
    _power,
    _tmax,
    _tmin,
)


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
    sc,
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
    clip, bias, ams, decay, track = flags[0], flags[1], flags[2], flags[3], flags[4]
    eps, neps, wd, two_n = c[EPS], c[NORM_EPS], c[WD], c[TWO_N]
    one = c[ONE]
    pfloor, safe = c[POW_FLOOR], c[RISE_SAFE]
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
        rels = np.empty(nl, xs.dtype)
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
                b1p[r] = _power(b1p[r] * b1[r], pfloor, zero)
                b2p[r] = _power(b2p[r] * b2[r], pfloor, zero)
                inv1[r] = one / (one - b1p[r])
                inv2[r] = one / (one - b2p[r])
                eta[r] = lr[r] * sc[i]
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
                    curves[idx[r], slot[i]] = acc[r] / two_n
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
                need = False
                for r in range(nl):
                    rel = (acc[r] / two_n) * inv_den
                    need |= _fold_min(rel, r, rmin, mrise, rels, floor, safe, zero)
                if need:
                    _fold_rise(rmin, mrise, rels, floor, zero)
        for q in range(nl):
            r = idx[q]
            for j in range(d):
                xs[r, j], ms[r, j], vs[r, j], vmaxs[r, j] = x[j, q], m[j, q], v[j, q], vmax[j, q]
            for b in range(n_tb):
                gammas[r, b] = gam[b, q]
            pows[r, 0], pows[r, 1] = b1p[q], b2p[q]
            nclip[r] = nc[q]
            rise[REL_MIN, r], rise[MAX_RISE, r] = rmin[q], mrise[q]


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
