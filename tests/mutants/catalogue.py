"""The curated mutants: each is one plausible mistake that would show a researcher
a wrong phase diagram (or a wrong export) with every test green, unless the
suite catches it.

A mutant replaces `old` (which must occur exactly once in `path`) by `new` and
names the tests that must then fail. Ids group them: S seeds and sampling,
K steps off by one, B bias correction, A Adam and AdamW, C clipping, M
majority and boundary, X axis order, W the drawn map (web/static), V CSV
columns and fields, R run_key (the result cache), O outcome rules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


OPTIM = ("tests/experiments/test_optim.py", "-k", "not compiled")
FLOAT32 = ("tests/experiments/test_optim.py", "-k", "float32 and not compiled")
SEEDS = ("tests/experiments/test_seeds.py",)
SAMPLING = ("tests/experiments/test_sampling.py", "tests/experiments/test_seeds.py")
ANALYSIS = ("tests/experiments/test_analysis.py",)
OUTCOMES = ("tests/experiments/test_outcomes.py", "tests/experiments/test_engine.py")
KEYS = ("tests/experiments/test_spec.py", "tests/experiments/test_engine.py",
        "tests/experiments/test_keys.py")
EXPORT = ("tests/experiments/test_export.py", "tests/test_cli.py")
MAP = ("tests/web/test_map_content.py",)

MUTANTS: list[Mutant] = [
    # --- seeds and sampling -----------------------------------------------------------------
    Mutant("S1", "experiments/engine.py",
           "streams = np.stack([runs.seed, runs.batch_size], axis=1)",
           "streams = np.stack([runs.seed * 0, runs.batch_size], axis=1)",
           SEEDS, "every run uses seed 0's minibatches"),
    Mutant("S2", "experiments/sampling.py",
           "parts = torch.tensor([seed, batch_size, _SAMPLING_IDS[sampling]], dtype=torch.int64)",
           "parts = torch.tensor([seed, batch_size, 1], dtype=torch.int64)",
           SAMPLING, "the stream key ignores the sampling scheme"),
    Mutant("S3", "experiments/sampling.py",
           "return _hash2(key, steps[:, None], j[None, :])",
           "return _hash2(key, steps[:, None] - 1, j[None, :])",
           SAMPLING, "step k draws the samples of step k - 1"),
    Mutant("S4", "experiments/sampling.py",
           "pos = (steps[:, None] - 1) * batch_size",
           "pos = steps[:, None] * batch_size",
           SAMPLING, "reshuffle skips the first batch of the stream"),
    Mutant("S5", "experiments/problems/reddi2018.py",
           "self.p = (1.0 + delta) / (C + 1.0)",
           "self.p = (1.0 + delta) / C",
           ("tests/experiments/test_problems.py", "tests/experiments/test_seeds.py"),
           "Theorem 3's probability of the large sample"),
    Mutant("S6", "experiments/engine.py",
           "seed=int(seed), batch_size=int(b), sampling=self.spec.sampling, steps=ks",
           "seed=int(seed), batch_size=int(b), sampling=self.spec.sampling, steps=ks * 0 + 1",
           SEEDS, "every step reuses the first step's minibatch"),
    # --- steps off by one -------------------------------------------------------------------
    Mutant("K1", "experiments/engine.py",
           "ks = torch.arange(step + 1, step + n_stats + 1, dtype=torch.int64, device=self.dev)",
           "ks = torch.arange(step, step + n_stats, dtype=torch.int64, device=self.dev)",
           OPTIM, "steps are counted from 0"),
    Mutant("K2", "experiments/optim.py",
           "return lr / step.to(lr.dtype).sqrt()",
           "return lr / (step.to(lr.dtype) + 1).sqrt()",
           OPTIM, "inv_sqrt uses lr / sqrt(k + 1)"),
    Mutant("K3", "experiments/optim.py",
           "in_warmup = step <= warmup  # [R, 1]",
           "in_warmup = step < warmup  # [R, 1]",
           OPTIM, "AdaGC's warmup ends one step early"),
    Mutant("K4", "experiments/outcomes.py",
           "pts = np.unique(np.round(np.geomspace(1, steps, num)).astype(np.int64))",
           "pts = np.unique(np.round(np.geomspace(1, steps - 1, num)).astype(np.int64))",
           OUTCOMES, "the last checkpoint is one step before the end"),
    # --- bias correction --------------------------------------------------------------------
    Mutant("B1", "experiments/optim.py",
           "b1_pow, b2_pow = state.b1_pow * b1, state.b2_pow * b2",
           "b1_pow, b2_pow = state.b1_pow * b1, state.b2_pow * b1",
           OPTIM, "v's correction uses beta1**k"),
    Mutant("B2", "experiments/optim.py",
           "u = (m / (1.0 - b1_pow)) / ((v / (1.0 - b2_pow)).sqrt() + eps)",
           "u = (m / (1.0 - b1_pow)) / ((v / (1.0 - b2_pow * b2)).sqrt() + eps)",
           OPTIM, "v corrected by beta2**(k+1)"),
    Mutant("B3", "experiments/optim.py",
           "u = (m / (1.0 - b1_pow)) / ((v / (1.0 - b2_pow)).sqrt() + eps)",
           "u = (m / (1.0 - b1_pow * b1)) / ((v / (1.0 - b2_pow)).sqrt() + eps)",
           OPTIM, "m corrected by beta1**(k+1)"),
    Mutant("B4", "experiments/optim.py",
           "u = (m / (1.0 - b1_pow)) / ((v / (1.0 - b2_pow)).sqrt() + eps)",
           "u = (m / (1.0 - b1_pow)) / (v.sqrt() / (1.0 - b2_pow) + eps)",
           OPTIM, "v's correction outside the square root"),
    Mutant("B5", "experiments/optim.py",
           "        if bias_correction:\n",
           "        if not bias_correction:\n",
           OPTIM, "the bias_correction flag inverted"),
    # --- Adam and AdamW ---------------------------------------------------------------------
    Mutant("A1", "experiments/optim.py",
           "v = b2 * state.v + (1.0 - b2) * (g * g)",
           "v = b2 * state.v + (1.0 - b1) * (g * g)",
           OPTIM, "v averaged with 1 - beta1"),
    Mutant("A2", "experiments/optim.py",
           "u = m / (v.sqrt() + eps)",
           "u = m / (v + eps).sqrt()",
           OPTIM, "eps inside the square root (no bias correction)"),
    Mutant("A3", "experiments/engine.py",
           "optim.scale_by_adam(col(runs.beta1), col(runs.beta2), opt.eps, opt.bias_correction)",
           "optim.scale_by_adam(col(runs.beta1), col(runs.beta2), "
           "opt.eps * (100.0 if dtype == torch.float32 else 1.0), opt.bias_correction)",
           FLOAT32, "eps 100 times too large in float32 only"),
    Mutant("A4", "experiments/optim.py",
           "return g - learning_rate(lr, schedule, step) * weight_decay * x, state",
           "return g - lr * weight_decay * x, state",
           OPTIM, "AdamW's decay ignores the lr schedule"),
    Mutant("A5", "experiments/engine.py",
           'if opt.kind == "adamw" and opt.weight_decay > 0.0:',
           'if opt.kind == "adamw" and opt.weight_decay > 0.1:',
           OPTIM, "small AdamW decays dropped"),
    # --- clipping ---------------------------------------------------------------------------
    Mutant("C1", "experiments/optim.py",
           "clipped = coef < 1.0",
           "clipped = coef < 0.9",
           OPTIM, "global-norm clipping only 10 % over the threshold"),
    Mutant("C2", "experiments/optim.py",
           "clipped = (g.abs() > threshold).any(dim=1)",
           "clipped = (g.abs() > threshold).all(dim=1)",
           OPTIM, "value clipping counted only when every coordinate clips"),
    Mutant("C3", "experiments/optim.py",
           "g = torch.minimum(torch.maximum(g, -threshold), threshold)",
           "g = torch.minimum(g, threshold)",
           OPTIM, "value clipping only from above"),
    Mutant("C4", "experiments/optim.py",
           "_NORM_EPS = 1e-6",
           "_NORM_EPS = 1e-3",
           OPTIM, "clip_grad_norm_'s 1e-6 as 1e-3"),
    Mutant("C5", "experiments/optim.py",
           "    return (norms * norms).sum(dim=1, keepdim=True).sqrt()",
           "    return norms.max(dim=1, keepdim=True).values",
           OPTIM, "global norm = the largest tensor's norm"),
    Mutant("C6", "experiments/optim.py",
           "over = norms > limit",
           "over = norms > state.gamma",
           OPTIM, "AdaGC ignores its ratio"),
    Mutant("C7", "experiments/optim.py",
           "gamma_ada = beta * state.gamma + (1.0 - beta) * clipped_norms",
           "gamma_ada = beta * state.gamma + (1.0 - beta) * norms",
           OPTIM, "AdaGC's reference norm tracks unclipped norms"),
    # --- majority and boundary --------------------------------------------------------------
    Mutant("M1", "experiments/analysis.py",
           "(d >= nc) & (d >= c), DIVERGED, np.where(nc >= c, NOT_CONVERGED, CONVERGED)",
           "(d > nc) & (d > c), DIVERGED, np.where(nc > c, NOT_CONVERGED, CONVERGED)",
           ANALYSIS, "majority ties break toward the better outcome"),
    Mutant("M2", "experiments/analysis.py",
           "while first > 0 and ok[first - 1]:",
           "while first > 1 and ok[first - 1]:",
           ANALYSIS, "beta2* never at the lowest grid beta2"),
    Mutant("M3", "experiments/analysis.py",
           "ok = col[order] == CONVERGED",
           "ok = col[order] != DIVERGED",
           ANALYSIS, "beta2* counts not-converged cells as converged"),
    Mutant("M4", "experiments/analysis.py",
           "out[g[starts]] = np.where(lo == hi, lo, (lo + hi) / 2)",
           "out[g[starts]] = np.where(lo == hi, lo, hi)",
           ANALYSIS, "median of an even count is the upper middle"),
    Mutant("M5", "experiments/analysis.py",
           "converged_frac=shaped(frac[0]),",
           "converged_frac=shaped(frac[1]),",
           ANALYSIS, "converged_frac counts not-converged runs"),
    # --- axis order -------------------------------------------------------------------------
    Mutant("X1", "experiments/analysis.py",
           "    return part if axes.index(y) < axes.index(x) else part.T",
           "    return part if axes.index(y) < axes.index(x) else part",
           (*ANALYSIS, *MAP), "phase-map z rows over beta1 instead of beta2"),
    Mutant("X2", "experiments/analysis.py",
           "flat = np.ravel_multi_index(tuple(frame.grid[:, i] for i in keep), shape)",
           "flat = np.ravel_multi_index(tuple(frame.grid[:, i] for i in [keep[1], keep[0],"
           " *keep[2:]]), shape)",
           ANALYSIS, "cells aggregate beta1 and beta2 swapped"),
    Mutant("X3", "api/routes/analysis.py",
           'chosen = {"batch_size": batch_size, "clip": clip, "lr": lr, "beta1": beta1,',
           'chosen = {"batch_size": None, "clip": clip, "lr": lr, "beta1": beta1,',
           MAP, "the phase-map route ignores the batch size asked for"),
    # --- the drawn map ----------------------------------------------------------------------
    Mutant("W1", "web/static/maps.js",
           "z: colourTransform(metric, pm.z), zsmooth: false,",
           "z: colourTransform(metric, pm.z).slice().reverse(), zsmooth: false,",
           MAP, "heatmap drawn upside down"),
    Mutant("W2", "web/static/maps.js",
           "range: [Math.max(lo, hi), Math.min(lo, hi)], tickvals:",
           "range: [Math.min(lo, hi), Math.max(lo, hi)], tickvals:",
           MAP, "log(1 - beta) axis not reversed: beta2 grows downward"),
    Mutant("W3", "web/static/maps.js",
           'const COLOURS = ["#0072B2", "#F0E442", "#D55E00"];',
           'const COLOURS = ["#D55E00", "#F0E442", "#0072B2"];',
           MAP, "converged and diverged colours swapped"),
    Mutant("W4", "web/static/maps.js",
           '[-k - Math.log10(2), nines + "5", 1]',
           '[-k - Math.log10(2), nines + "8", 1]',
           MAP, "a beta2 tick label at the wrong position"),
    Mutant("W5", "web/static/maps.js",
           'const lines = [sx + " = " + fx(b1), sy + " = " + fy(b2)];',
           'const lines = [sx + " = " + fx(b2), sy + " = " + fy(b1)];',
           MAP, "hover names beta1 and beta2 swapped"),
    Mutant("W6", "web/static/sweep.js",
           'if (sel && sel.value !== "") p[axis] = sel.value;',
           'if (sel && sel.value !== "" && axis !== "batch_size") p[axis] = sel.value;',
           MAP, "the page asks for the first batch size whatever is picked"),
    Mutant("W7", "web/static/maps.js",
           "zmin: 0, zmax: 2,",
           "zmin: 0, zmax: 3,",
           MAP, "outcome colour scale stretched: the colour bar names the wrong colours"),
    # --- CSV --------------------------------------------------------------------------------
    Mutant("V1", "experiments/export.py",
           '    "beta1",\n    "beta2",\n    "batch_size",\n    "clip_mode",',
           '    "beta2",\n    "beta1",\n    "batch_size",\n    "clip_mode",',
           EXPORT, "runs CSV columns beta1 and beta2 swapped"),
    Mutant("V2", "experiments/export.py",
           "return repr(float(value))",
           'return format(float(value), ".10g")',
           EXPORT, "floats written with 10 digits, not repr"),
    # --- run_key (the result cache) ---------------------------------------------------------
    Mutant("R1", "experiments/spec.py",
           '        "criteria": spec.criteria.model_dump(mode="json"),\n',
           "",
           KEYS, "run_key leaves out the outcome criteria"),
    Mutant("R2", "experiments/spec.py",
           '        "dtype": spec.dtype,\n',
           "",
           KEYS, "run_key leaves out the dtype"),
    Mutant("R3", "experiments/spec.py",
           "    for i, axis in enumerate(spec.axes()):\n        lanes +=",
           "    for i, axis in enumerate(spec.axes()[:-1]):\n        lanes +=",
           KEYS, "run_key leaves out the seed"),
    Mutant("R4", "experiments/spec.py",
           '"optimizer": spec.optimizer.model_dump(mode="json", exclude=swept["optimizer"]),',
           '"optimizer": spec.optimizer.model_dump(mode="json",'
           ' exclude=swept["optimizer"] | {"eps"}),',
           KEYS, "run_key leaves out eps"),
    Mutant("R5", "experiments/reuse.py",
           "    for axis, values in spec.axis_values().items():\n        h.update(",
           "    for axis, values in list(spec.axis_values().items())[:-1]:\n        h.update(",
           KEYS, "an identical grid is recognised whatever its seeds (served from the cache)"),
    Mutant("R6", "experiments/reuse.py",
           "        if int((m >= 0).sum()) != len(iv[axis]):",
           "        if int((m >= 0).sum()) == 0:",
           KEYS, "a grid counts as containing another that it only overlaps"),
    # --- outcome rules ----------------------------------------------------------------------
    Mutant("O1", "experiments/outcomes.py",
           "return (f - f_star) / (f0 - f_star)",
           "return f / (f0 - f_star)",
           OUTCOMES, "rel forgets to subtract f*"),
    Mutant("O2", "experiments/outcomes.py",
           "first_bad = np.where(bad.any(axis=1), np.argmax(bad, axis=1), len(ckpts) - 1)",
           "first_bad = np.where(bad.any(axis=1), len(ckpts) - 1 - np.argmax(bad[:, ::-1], "
           "axis=1), len(ckpts) - 1)",
           OUTCOMES, "div_step is the last bad checkpoint, not the first"),
]
