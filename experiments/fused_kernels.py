"""The fused kernel's numba functions: many steps of Adam/AdamW for many runs in one call
(zhang2022 here, lstsq in experiments/fused_lstsq.py), and what they share.

Each function advances every run of a clip mode by a block of steps, in place on
its state arrays. Runs are sorted by (seed, batch size) stream and cut into lane
blocks of one stream, spread over the CPU's threads (prange); within a block the
step loop is outside and the loops over the block's runs inside, so those loops
are straight-line code the compiler turns into SIMD (if-converted selects; the
only value carried across runs is a flag saying whether max_rise needs a
division), with the block's state hot in L1.

The arithmetic is the eager step's (DESIGN section 4), operation for operation,
except where a division by a per-step or per-run value becomes a product with
its reciprocal (lr / sqrt(k) -> lr * (1 / sqrt(k)); on lstsq, m / (1 - b1^k) ->
m * (1 / (1 - b1^k)), one division per run instead of one per coordinate), with
no fast-math and no fused multiply-add. So a run agrees with eager to rounding
(torch's own float64 sqrt on this CPU, MKL's, is not correctly rounded either),
and a run's numbers never depend on its lane, block, chunk or thread: no
operation mixes runs. Two shortcuts leave every number as it would be: beta^k is
stored as 0 below eps / 4 (_power), and max_rise skips its division where it
provably cannot rise (_fold_min).

cache=True keeps the machine code on disk (numba's cache, beside this file or in
NUMBA_CACHE_DIR), so a process loads it instead of compiling it.

Flags (int64 array): [clip mode (0 none, 1 global_norm, 2 value, 3 adagc), bias
correction, amsgrad, decoupled decay, track max_rise]. The schedule reaches the
kernels as its factor per step, sc (lr_k = lr * sc_k: 1 / sqrt(k) for inv_sqrt,
warmup_cosine's factor, 1 for constant, where lr * 1 is lr).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# zhang2022's lane block: 2 KB per row of its state (256 float64 or 512 float32 runs),
# so a step is 32 vector iterations in either dtype with the block in L1 (float32 at
# 256 runs ran a fifth slower, float64 at 512 no faster); lstsq uses LSTSQ_LANES
LANE_BYTES = 2048
LSTSQ_LANES = 64  # lstsq's blocks hold d-by-lanes state, so fewer runs stay in L1

# rows of the state matrix [N_STATE, R]
X, M, V, VMAX, B1P, B2P, GAMMA = range(7)
N_STATE = 7
# rows of the per-run hyperparameter matrix [N_HYPER, R]
B1, OMB1, B2, OMB2, LR, THR, RATIO, CBETA, CWARM = range(9)
N_HYPER = 9
# the dtype constants: eps, the clip norm eps, weight decay, n (zhang2022), 2 n, 1,
# the running products' floor (eps / 4: below it 1 - p rounds to 1, see _power) and
# max_rise's safety factor (1 - 4 eps, see _fold_min)
EPS, NORM_EPS, WD, N_F, TWO_N, ONE, POW_FLOOR, RISE_SAFE = range(8)
# the dtype's constants for max_rise: f*, 1 / (f(x0) - f*), the running minimum's floor
F_STAR, INV_DEN, FLOOR = range(3)
# rows of the max_rise state [2, R] (the dtype's): running min of rel, max_rise
REL_MIN, MAX_RISE = range(2)
# rows of a zhang2022 block's work matrix [N_WORK, lanes]: the running minimum of
# rel, max_rise, rel, the clip count, g and u of the phase loops
W_MIN, W_RISE, W_REL, W_NCLIP, W_G, W_U = range(6)
N_WORK = 6


@njit(inline="always", cache=True)
def _tmax(a, b):  # type: ignore[no-untyped-def]
    """torch.maximum: NaN if either is NaN."""
    return a if (a > b or a != a) else b


@njit(inline="always", cache=True)
def _tmin(a, b):  # type: ignore[no-untyped-def]
    """torch.minimum: NaN if either is NaN."""
    return a if (a < b or a != a) else b


@njit(inline="always", cache=True)
def _power(p, floor, zero):  # type: ignore[no-untyped-def]
    """A running product beta^k as stored: 0 once it is below `floor` (2^-54 in float64,
    2^-25 in float32), where 1 - beta^k rounds to 1 and stays 1 (beta < 1): the
    results are the same bit for bit, and the products no longer sink through the
    subnormal range, where each vector multiply takes a microcode assist (float32
    runs pass through it within a few hundred steps and ran at half speed)."""
    return p if p >= floor else zero


@njit(inline="always", cache=True)
def _fold_min(rel, r, rmin, mrise, rels, floor, safe, zero):  # type: ignore[no-untyped-def]
    """Fold rel into run r's running minimum; keep rel for _fold_rise and say whether
    rel / max(min, floor) can exceed max_rise (then _fold_rise divides).

    The test is conservative: where rel <= fl(fl(max_rise * D) * safe), safe =
    1 - 4 eps, rel <= max_rise * D holds exactly, so the correctly rounded rel / D
    is at most max_rise and max(max_rise, rel / D) is max_rise: skipping the
    division leaves max_rise as it would have been, bit for bit."""
    fin = rel - rel == zero
    low = min(rmin[r], rel) if fin else rmin[r]
    rmin[r] = low
    rels[r] = rel
    return fin & (rel > (mrise[r] * max(low, floor)) * safe)


@njit(inline="always", cache=True)
def _fold_rise(rmin, mrise, rels, floor, zero):  # type: ignore[no-untyped-def]
    """max_rise = max(max_rise, rel / max(min, floor)) over a block's runs (finite rel)."""
    for r in range(rels.shape[0]):
        rel = rels[r]
        fin = rel - rel == zero
        up = rel / max(rmin[r], floor)
        mrise[r] = max(mrise[r], up) if fin else mrise[r]


@njit(inline="always", cache=True)
def _zhang_f(xr, one, two, three, n_f, two_n):  # type: ignore[no-untyped-def]
    """Zhang2022.loss's formula: x / n above -1, ((x + 2)^2 - 3) / (2 n) below."""
    return xr / n_f if xr >= -one else ((xr + two) * (xr + two) - three) / two_n


@njit(inline="always", cache=True)
def _zhang_rel(xr, one, two, three, rk):  # type: ignore[no-untyped-def]
    """rel of x for max_rise; rk = (1 / n, 1 / (2 n), f*, 1 / (f(x0) - f*))."""
    inv_n, inv_2n, f_star, inv_den = rk
    f = xr * inv_n if xr >= -one else ((xr + two) * (xr + two) - three) * inv_2n
    return (f - f_star) * inv_den


@njit(inline="always", cache=True)
def _zhang_fold(x, rmin, mrise, rels, ck, rk):  # type: ignore[no-untyped-def]
    """Fold every run's rel at x into max_rise."""
    one, floor, safe = ck[3], ck[5], ck[6]
    zero = one - one
    need = False
    for r in range(x.shape[0]):
        rel = _zhang_rel(x[r], one, one + one, one + one + one, rk)
        need |= _fold_min(rel, r, rmin, mrise, rels, floor, safe, zero)
    if need:
        _fold_rise(rmin, mrise, rels, floor, zero)


@njit(inline="always", cache=True)
def _zhang_curve(x, curves, col, pos, ck):  # type: ignore[no-untyped-def]
    """The full objective of the block's runs into curves[pos[r], col] (float64)."""
    one, n_f, two_n = ck[3], ck[7], ck[8]
    for r in range(x.shape[0]):
        curves[pos[r], col] = _zhang_f(x[r], one, one + one, one + one + one, n_f, two_n)


@njit(inline="always", cache=True)
def _zhang_phases(  # type: ignore[no-untyped-def]
    x, m, v, vmax, b1p, b2p, gam, b1, omb1, b2, omb2, lr, thr, ratio, cbeta, cwarm, g, u, nc,
    sv, sc, k_f, flags, ck,
):  # fmt: skip
    """One step of a block in every configuration, each phase (gradient, clip,
    moments, update) its own loop over the block's runs, the uniform flags tested
    outside it (g, u: work rows; nc: the clip counts)."""
    clip, bias, ams, decay = flags[0], flags[1], flags[2], flags[3]
    eps, neps, wd, one, pfloor = ck[0], ck[1], ck[2], ck[3], ck[4]
    zero = one - one
    two = one + one
    nl = x.shape[0]
    for r in range(nl):
        xr = x[r]
        g[r] = sv * (one if xr >= -one else xr + two)
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
        b1p[r] = _power(b1p[r] * b1[r], pfloor, zero)
        b2p[r] = _power(b2p[r] * b2[r], pfloor, zero)
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
    for r in range(nl):
        eta = lr[r] * sc
        x[r] = x[r] + (-(eta * u[r]) - (eta * wd) * x[r] if decay else -(eta * u[r]))


@njit(inline="always", cache=True)
def _zhang_fused(  # type: ignore[no-untyped-def]
    x, m, v, b1p, b2p, b1, omb1, b2, omb2, lr, rmin, mrise, rels, sv, sc, ck, rk, bias, decay
):
    """One step of a block in one loop over its runs: the common configuration (no
    clipping, no amsgrad) with `bias` and `decay` fixed at compile time, so the loop
    is one straight SIMD body. Each run's rel is folded in for x as the loop finds
    it, i.e. the previous step's x: that chain then runs beside the update's, not
    after it. Returns whether some run needs _fold_rise."""
    eps, wd, one, pfloor, floor, safe = ck[0], ck[2], ck[3], ck[4], ck[5], ck[6]
    zero = one - one
    two, three = one + one, one + one + one
    need = False
    for r in range(x.shape[0]):
        xr = x[r]
        rel = _zhang_rel(xr, one, two, three, rk)
        need |= _fold_min(rel, r, rmin, mrise, rels, floor, safe, zero)
        gr = sv * (one if xr >= -one else xr + two)
        mr = b1[r] * m[r] + omb1[r] * gr
        vr = b2[r] * v[r] + omb2[r] * (gr * gr)
        m[r] = mr
        v[r] = vr
        p1 = b1p[r] * b1[r]
        p2 = b2p[r] * b2[r]
        b1p[r] = _power(p1, pfloor, zero)
        b2p[r] = _power(p2, pfloor, zero)
        if bias:
            u = (mr / (one - p1)) / (np.sqrt(vr / (one - p2)) + eps)
        else:
            u = mr / (np.sqrt(vr) + eps)
        eta = lr[r] * sc
        x[r] = xr + (-(eta * u) - (eta * wd) * xr if decay else -(eta * u))
    return need


@njit(inline="always", cache=True)
def _zhang_fused_steps(  # type: ignore[no-untyped-def]
    i0, sb, hb, wb, sv, sc, slot, curves, pos, ck, rk, bias, decay
):
    """Steps i0, i0 + 1, ... of a block through _zhang_fused, then the last x's rel.

    The rows are taken out of sb, hb and wb once, before the step loop: an array
    made or dropped inside it (a row, a tuple of arrays) makes numba update
    reference counts every step, atomic operations, each a full memory barrier
    between one step's loop and the next (the kernel ran five times slower that way
    in the process that compiled it). Folding an x twice changes nothing (the
    running minimum and maximum are idempotent), so the x a call starts from (folded
    at the end of the previous call, or by the phase step before) may be folded
    again."""
    x, m, v, b1p, b2p = sb[X], sb[M], sb[V], sb[B1P], sb[B2P]
    b1, omb1, b2, omb2, lr = hb[B1], hb[OMB1], hb[B2], hb[OMB2], hb[LR]
    rmin, mrise, rels = wb[W_MIN], wb[W_RISE], wb[W_REL]
    floor, zero = ck[5], ck[3] - ck[3]
    for i in range(i0, sv.shape[0]):
        need = _zhang_fused(
            x, m, v, b1p, b2p, b1, omb1, b2, omb2, lr, rmin, mrise, rels, sv[i], sc[i], ck, rk,
            bias, decay,
        )  # fmt: skip
        if need:
            _fold_rise(rmin, mrise, rels, floor, zero)
        if slot[i] >= 0:
            _zhang_curve(x, curves, slot[i], pos, ck)
    _zhang_fold(x, rmin, mrise, rels, ck, rk)


@njit(inline="always", cache=True)
def _zhang_phase_steps(n, sb, hb, wb, sv, sc, kf, flags, slot, curves, pos, ck, rk):  # type: ignore[no-untyped-def]
    """Steps 0 .. n - 1 of a block through _zhang_phases, each x's rel folded in
    after its step (flags[4]: max_rise tracked); rows taken out once, as in
    _zhang_fused_steps."""
    x, m, v, vmax, b1p, b2p, gam = sb[X], sb[M], sb[V], sb[VMAX], sb[B1P], sb[B2P], sb[GAMMA]
    b1, omb1, b2, omb2, lr = hb[B1], hb[OMB1], hb[B2], hb[OMB2], hb[LR]
    thr, ratio, cbeta, cwarm = hb[THR], hb[RATIO], hb[CBETA], hb[CWARM]
    rmin, mrise, rels, nc, g, u = wb[W_MIN], wb[W_RISE], wb[W_REL], wb[W_NCLIP], wb[W_G], wb[W_U]
    for i in range(n):
        _zhang_phases(
            x, m, v, vmax, b1p, b2p, gam, b1, omb1, b2, omb2, lr, thr, ratio, cbeta, cwarm, g,
            u, nc, sv[i], sc[i], kf[i], flags, ck,
        )  # fmt: skip
        if flags[4]:
            _zhang_fold(x, rmin, mrise, rels, ck, rk)
        if slot[i] >= 0:
            _zhang_curve(x, curves, slot[i], pos, ck)


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def zhang_steps(  # type: ignore[no-untyped-def]
    st, hp, blk_lo, blk_hi, blk_grp, s, kf, sc, c, rc, flags, nclip, rise, slot, curves, pos
):
    """K steps of zhang2022 (d = 1): g = s_k * (1 if x >= -1 else x + 2), s [K, G];
    the learning rate of step k is lr * sc[k] (the schedule's factor, 1 if constant).

    Lane blocks hold runs of one stream (positions blk_lo..blk_hi of the state,
    which the driver keeps sorted by stream), so s_k is one number per block and
    step. After step i, where slot[i] >= 0, the full objective f(x)
    (Zhang2022.loss's formula) goes to curves[pos[r], slot[i]] (curves [R, C] in
    float64, pos the runs' places in the caller's order).

    st [N_STATE, R] and hp [N_HYPER, R] in the dtype; nclip [R] and rise [2, R] in
    the dtype too (counts stay exact below 2**24 steps), so float32 runs keep
    float32 vectors throughout. Without clipping or amsgrad a step is one loop
    over the block (_zhang_fused); otherwise, and at a run's first step (whose
    start, x0, max_rise leaves out), one loop per phase (_zhang_phases)."""
    clip, bias, ams, decay, track = flags[0], flags[1], flags[2], flags[3], flags[4]
    one = c[ONE]  # 1 in the state's dtype (an int literal would promote float32)
    n_f, two_n = c[N_F], c[TWO_N]
    ck = (c[EPS], c[NORM_EPS], c[WD], one, c[POW_FLOOR], rc[FLOOR], c[RISE_SAFE], n_f, two_n)
    rk = (one / n_f, one / two_n, rc[F_STAR], rc[INV_DEN])
    fused = clip == 0 and not ams and track
    for blk in prange(blk_lo.shape[0]):
        lo, hi, grp = blk_lo[blk], blk_hi[blk], blk_grp[blk]
        sb = st[:, lo:hi].copy()
        hb = hp[:, lo:hi].copy()
        wb = np.empty((N_WORK, hi - lo), st.dtype)
        wb[W_MIN], wb[W_RISE], wb[W_NCLIP] = (
            rise[REL_MIN, lo:hi],
            rise[MAX_RISE, lo:hi],
            nclip[lo:hi],
        )
        sv = np.ascontiguousarray(s[:, grp])
        at = pos[lo:hi]
        # phase loops for every step or, fused, for a run's first step only: max_rise
        # leaves x0 out, and a fused step folds the x it starts from
        i0 = s.shape[0] if not fused else (1 if kf[0] == one else 0)
        _zhang_phase_steps(i0, sb, hb, wb, sv, sc, kf, flags, slot, curves, at, ck, rk)
        if fused and bias and decay:
            _zhang_fused_steps(i0, sb, hb, wb, sv, sc, slot, curves, at, ck, rk, True, True)
        elif fused and bias:
            _zhang_fused_steps(i0, sb, hb, wb, sv, sc, slot, curves, at, ck, rk, True, False)
        elif fused and decay:
            _zhang_fused_steps(i0, sb, hb, wb, sv, sc, slot, curves, at, ck, rk, False, True)
        elif fused:
            _zhang_fused_steps(i0, sb, hb, wb, sv, sc, slot, curves, at, ck, rk, False, False)
        st[:, lo:hi] = sb
        rise[REL_MIN, lo:hi], rise[MAX_RISE, lo:hi], nclip[lo:hi] = (
            wb[W_MIN],
            wb[W_RISE],
            wb[W_NCLIP],
        )


def stream_blocks(group, lanes=LSTSQ_LANES):  # type: ignore[no-untyped-def]
    """(order, blk_lo, blk_hi, blk_grp): the runs sorted by stream (stable) and cut
    into blocks of at most `lanes` runs of one stream each."""
    # a 16-bit key sorts by radix (a tenth of the time of int64's merge sort)
    narrow = len(group) and group.min() >= 0 and group.max() < 1 << 16
    order = np.argsort(group.astype(np.uint16) if narrow else group, kind="stable")
    sorted_g = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_g[1:] != sorted_g[:-1]])
    ends = np.r_[starts[1:], len(group)]
    lo = np.concatenate(
        [np.arange(a, b, lanes) for a, b in zip(starts, ends, strict=True)]
        or [np.zeros(0, np.int64)]
    )
    hi = np.minimum(lo + lanes, np.repeat(ends, -(-(ends - starts) // lanes)))
    return order.astype(np.int64), lo.astype(np.int64), hi.astype(np.int64), sorted_g[lo]


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def curve_summary(curves, shift, den, diverge_rel):  # type: ignore[no-untyped-def]
    """outcomes.curve_summary in one pass over curves [R, C] (float64), with rel =
    (f - shift) / den (shift f* and den f(x0) - f*, or 0 and f(x0) where f* is
    unknown: f - 0 is f bit for bit). Per run: whether some f is non-finite, the
    first bad checkpoint (C - 1 if none) and the last rel. numpy's version makes
    six [R, C] temporaries; this one makes none."""
    r_all, c_all = curves.shape
    any_nonfinite = np.zeros(r_all, np.bool_)
    first_bad = np.empty(r_all, np.int64)
    final_rel = np.empty(r_all, np.float64)
    for r in prange(r_all):
        nonfinite = False
        first = c_all - 1
        found = False
        rel = 0.0
        for j in range(c_all):
            f = curves[r, j]
            rel = (f - shift) / den
            bad_f = not np.isfinite(f)
            nonfinite |= bad_f
            if (bad_f or rel > diverge_rel) and not found:
                first, found = j, True
        any_nonfinite[r], first_bad[r], final_rel[r] = nonfinite, first, rel
    return any_nonfinite, first_bad, final_rel
