"""Configuration tables for the engine's equivalence tests, drawn once from fixed seeds.

Kept apart from the test logic (after torch's test_optim): a failing test id
names a row here, and the row's drawn values are printed with the failure.

Every problem runs with a deterministic gradient (full batch: `reshuffle` with
batch_size = n, the online `reddi2018`, or `reddi2018_stochastic`'s seed-0
stream, which the reference replays through the same sampler), so a
per-configuration reference sees exactly the gradients the engine saw.

Why the ranges are what they are: two correct Adam implementations differ in
the last bit (torch.optim.Adam interpolates with lerp and raises beta to the
k-th power; the engine multiplies and keeps a running product). Once a run
oscillates around its minimum (|x - x*| about lr) those last bits grow
exponentially, by 1e10 within a few hundred steps on lstsq, so comparing there
would measure the Lyapunov exponent, not the formulas. The learning rates and
starting points below keep every run in its approach phase for the 1,000
steps, where the maps contract and 1e-10 is a sharp test of the update rule.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STEPS = 1000
RTOL = 1e-10

# float32 rows are shorter, so that rounding cannot add up past what a wrong
# formula costs. Engine and torch.optim round differently (torch.optim takes
# 1 - beta in float64, uses lerp and beta**k; the engine stays in float32 and
# keeps a running product), each step a few units of 2**-24 = 6e-8 in x, m
# and v. In the approach phase the map contracts, so that stays near
# 4 * K * 2**-24 = 5e-5 after K = 200 steps, relative to the largest element
# of a run's vector (test_optim measures float32 rows so: lstsq's small-scale
# gradients are differences of far larger terms); the worst seen is 2.6e-5.
# 1 - beta2 >= 1e-2 keeps float32's own rounding of beta2 (2**-24 / (1 - beta2)
# relative, in 1 - beta2) below 1e-5. The tolerance is twice that bound; a
# wrong formula costs far more: eps 100 times too large moves each step of
# the zhang2022 rows (eps = 1e-5, |g| = 0.05) by 2 % and x by 4e-3 or more.
STEPS_FLOAT32 = 200
RTOL_FLOAT32 = 1e-4

# name -> (problem spec, full batch size, constant-lr range, typical gradient norm)
PROBLEMS: dict[str, tuple[dict[str, Any], int, tuple[float, float], float]] = {
    # x0 = -0.5 moves at most lr per step: 1,000 * 1e-3 never reaches x* = -2.
    "zhang2022": ({"kind": "zhang2022", "n": 20, "x0": -0.5}, 20, (1e-4, 1e-3), 0.05),
    # The projection onto [-1, 1] is a contraction, so any lr is safe.
    "reddi2018": ({"kind": "reddi2018", "C": 3.0, "x0": 0.0}, 1, (1e-3, 0.5), 2.0),
    # Theorem 3's stochastic samples, batch 2 (w in {0, 1/2, 1}): projected like reddi2018.
    "reddi2018_stochastic": (
        {"kind": "reddi2018_stochastic", "C": 3.0, "delta": 0.1, "x0": 0.0},
        2,
        (1e-3, 0.5),
        2.0,
    ),
    # Several blocks (parameter tensors) of very different scales; x0 = 5 lies
    # at least 2 from every coordinate of x*.
    "lstsq": (
        {
            "kind": "lstsq",
            "n_samples": 32,
            "block_scales": [1.0, 10.0, 0.3],
            "block_dim": 3,
            "noise": 0.1,
            "data_seed": 3,
            "x0": 5.0,
        },
        32,
        (1e-4, 2e-3),
        20.0,
    ),
}

# inv_sqrt travels sum_k lr/sqrt(k) ~ 63 lr in 1,000 steps instead of 1,000 lr.
INV_SQRT_LR_FACTOR = 15.0


@dataclass(frozen=True)
class Case:
    """One engine call: n_configs random (beta1, beta2, lr) triples, each run under
    every clip setting of the row, compared run by run with `reference`."""

    id: str
    problem: str
    reference: str  # "torch" (torch.optim) or "loop" (the hand-written per-run loop)
    clip_mode: str = "none"
    optimizer: dict[str, Any] = field(default_factory=dict)
    n_configs: int = 3
    n_clips: int = 2
    beta1: tuple[float, float] = (0.0, 0.95)
    log10_one_minus_beta2: tuple[float, float] = (-4.0, -0.3)
    # axes not drawn: config i takes values[i] (axis values must be distinct)
    fixed: dict[str, list[float]] = field(default_factory=dict)
    dtype: str = "float64"
    lr_factor: float = 1.0  # scales the problem's lr range (kinds whose step is not ~lr)

    @property
    def steps(self) -> int:
        return STEPS if self.dtype == "float64" else STEPS_FLOAT32

    @property
    def rtol(self) -> float:
        return RTOL if self.dtype == "float64" else RTOL_FLOAT32


# Clipped rows run each configuration under two thresholds on lstsq (several
# tensors) and one elsewhere; the per-run references are what costs time.
def _torch(problem: str, clip: str = "none", dtype: str = "float64", **opt: Any) -> Case:
    kind = opt.get("kind", "adam")
    n_clips = 2 if problem == "lstsq" else 1
    n = 3 if clip == "none" else 2
    if dtype == "float64":
        return Case(f"torch-{kind}-{clip}-{problem}", problem, "torch", clip, opt, n, n_clips)
    return Case(
        f"torch-{kind}-{clip}-{problem}-{dtype}", problem, "torch", clip, opt, n, n_clips,
        log10_one_minus_beta2=(-2.0, -0.3), dtype=dtype,
    )


def _loop(name: str, problem: str, clip: str = "none", **opt: Any) -> Case:
    n_clips = 2 if problem == "lstsq" else 1
    n = 3 if clip == "none" else 2
    return Case(f"loop-{name}-{problem}", problem, "loop", clip, opt, n, n_clips)


_ALL = ("zhang2022", "reddi2018", "lstsq")

TORCH_CASES: list[Case] = [
    *(_torch(p) for p in _ALL),
    *(_torch(p, kind="adamw", weight_decay=0.05) for p in _ALL),
    *(_torch(p, "global_norm") for p in _ALL),
    *(_torch(p, "value") for p in _ALL),
    _torch("lstsq", "global_norm", kind="adamw", weight_decay=0.2, eps=1e-6),
    # Edge cases against the same reference: beta2 a hair below 1, and an eps
    # far below every sqrt(v).
    Case(
        "torch-beta2-near-1-lstsq",
        "lstsq",
        "torch",
        n_configs=2,
        fixed={"beta2": [0.999999, 0.9999995]},
    ),
    Case(
        "torch-beta2-near-1-zhang2022",
        "zhang2022",
        "torch",
        n_configs=1,
        fixed={"beta2": [0.999999]},
    ),
    Case("torch-tiny-eps-lstsq", "lstsq", "torch", optimizer={"eps": 1e-16}, n_configs=2),
    Case("torch-tiny-eps-reddi2018", "reddi2018", "torch", optimizer={"eps": 1e-16}, n_configs=1),
    # Theorem 3's stochastic problem, with and without clipping.
    _torch("reddi2018_stochastic"),
    _torch("reddi2018_stochastic", "value"),
    # value clipping with decoupled decay and a larger eps
    _torch("lstsq", "value", kind="adamw", weight_decay=0.1, eps=1e-6),
]

# float32 against torch.optim in float32 (a float32 Parameter, float32 gradients).
FLOAT32_CASES: list[Case] = [
    _torch("zhang2022", dtype="float32", eps=1e-5),
    _torch("zhang2022", "global_norm", dtype="float32", eps=1e-5),
    _torch("reddi2018", "value", dtype="float32"),
    _torch("lstsq", dtype="float32"),
    _torch("lstsq", "global_norm", dtype="float32", kind="adamw", weight_decay=0.05),
    _torch("zhang2022", "value", dtype="float32", kind="adamw", weight_decay=0.05, eps=1e-5),
]

LOOP_CASES: list[Case] = [
    *(_loop("no-bias-correction", p, bias_correction=False) for p in _ALL),
    *(_loop("inv-sqrt", p, schedule="inv_sqrt") for p in _ALL),
    *(_loop("no-bias-inv-sqrt", p, schedule="inv_sqrt", bias_correction=False) for p in _ALL),
    *(_loop("adagc", p, "adagc") for p in _ALL),
    _loop("adagc-no-bias-inv-sqrt", "lstsq", "adagc", schedule="inv_sqrt", bias_correction=False),
    _loop("adamw-inv-sqrt", "lstsq", kind="adamw", weight_decay=0.1, schedule="inv_sqrt"),
    _loop("global-norm-inv-sqrt", "lstsq", "global_norm", schedule="inv_sqrt"),
    _loop("value-no-bias", "zhang2022", "value", bias_correction=False),
    *(
        _loop("adamw-no-bias", p, kind="adamw", weight_decay=0.1, bias_correction=False)
        for p in _ALL
    ),
    _loop("adamw-no-bias-inv-sqrt-value", "lstsq", "value", kind="adamw", weight_decay=0.1,
          bias_correction=False, schedule="inv_sqrt"),
    _loop("value-inv-sqrt", "lstsq", "value", schedule="inv_sqrt"),
    _loop("value-no-bias-inv-sqrt", "reddi2018", "value", schedule="inv_sqrt",
          bias_correction=False),
    _loop("no-bias-inv-sqrt", "reddi2018_stochastic", schedule="inv_sqrt", bias_correction=False),
    _loop("adagc", "reddi2018_stochastic", "adagc"),
    _loop("value-no-bias", "reddi2018_stochastic", "value", bias_correction=False),
]


# --- the optimizer family -------------------------------------------------------------------
#
# Every kind against its reference, with and without each clip mode, on the
# three problems (lstsq: several parameter tensors). torch.optim is the
# reference where it has the kind (AdaGC, which torch lacks, clips by the
# loop's rule before torch's step); per-run loops written from the papers for
# Lion, Signum, Adam-mini and the warmup_cosine schedule.

_CLIP_MODES = ("none", "global_norm", "value", "adagc")

# Why some rows narrow their draws: RMSprop has no bias correction, so its first
# steps are lr / sqrt(1 - beta2) long; with beta2 near 1 and momentum that throws
# a run past x* into its oscillating phase within the 1,000 steps.
_RMSPROP = {"beta1": (0.0, 0.9), "log10_one_minus_beta2": (-2.0, -0.3)}


def _family(kind_id: str, problem: str, clip: str, reference: str, **opt: Any) -> Case:
    extra: dict[str, Any] = opt.pop("case", {})
    n_clips = 2 if problem == "lstsq" and clip != "none" else 1
    n = 3 if clip == "none" else 2
    return Case(f"{reference}-{kind_id}-{clip}-{problem}", problem, reference, clip, opt, n,
                n_clips, **extra)


FAMILY_TORCH_CASES: list[Case] = [
    *(
        _family(kind_id, p, clip, "torch", **opt)
        for kind_id, opt in (
            ("amsgrad", {"kind": "adam", "amsgrad": True}),
            ("sgd", {"kind": "sgd"}),
            ("rmsprop", {"kind": "rmsprop", "case": _RMSPROP}),
            ("adagrad", {"kind": "adagrad", "initial_accumulator_value": 0.1}),
        )
        for clip in _CLIP_MODES
        for p in _ALL
    ),
    *(
        _family(kind_id, p, clip, "torch", **opt)
        for kind_id, opt in (
            ("adamw-amsgrad", {"kind": "adamw", "amsgrad": True, "weight_decay": 0.1}),
            ("sgd-nesterov-decay", {"kind": "sgd", "nesterov": True, "weight_decay": 0.05}),
            ("sgd-dampening", {"kind": "sgd", "dampening": 0.3}),
            ("adagrad-eps", {"kind": "adagrad", "eps": 1e-6}),
        )
        for clip, p in (("none", "zhang2022"), ("none", "lstsq"), ("adagc", "lstsq"))
    ),
    # centered: sqrt(v - g_avg**2) is the gradient's spread, about 0 for a full batch
    # gradient that drifts slowly (zhang2022, lstsq), where any rounding dominates it;
    # the online reddi2018 and Theorem 3's samples alternate, so their spread is large.
    *(
        _family("rmsprop-centered", p, clip, "torch", kind="rmsprop", centered=True,
                case=_RMSPROP)
        for clip, p in (("none", "reddi2018"), ("adagc", "reddi2018"),
                        ("value", "reddi2018"), ("none", "reddi2018_stochastic"))
    ),
]

FAMILY_LOOP_CASES: list[Case] = [
    *(
        _family(kind, p, clip, "loop", kind=kind)
        for kind in ("lion", "signum", "adam_mini")
        for clip in _CLIP_MODES
        for p in _ALL
    ),
    _family("lion-decay", "lstsq", "value", "loop", kind="lion", weight_decay=0.1),
    _family("adam_mini-decay", "lstsq", "global_norm", "loop", kind="adam_mini",
            weight_decay=0.1),
    _family("signum-inv-sqrt", "reddi2018", "none", "loop", kind="signum", schedule="inv_sqrt"),
    _family("sgd-inv-sqrt", "lstsq", "none", "loop", kind="sgd", schedule="inv_sqrt"),
    _family("amsgrad-no-bias", "lstsq", "none", "loop", kind="adam", amsgrad=True,
            bias_correction=False),
    *(
        _family(f"{kind}-warmup-cosine", p, clip, "loop", kind=kind, schedule="warmup_cosine",
                warmup_steps=100, final_lr_ratio=0.1,
                **({"case": _RMSPROP} if kind == "rmsprop" else {}))
        for kind in ("adam", "adamw", "sgd", "rmsprop", "adagrad", "lion", "signum", "adam_mini")
        for clip, p in (("global_norm", "lstsq"), ("none", "zhang2022"))
    ),
    _family("adam-warmup-cosine", "reddi2018", "adagc", "loop", kind="adam",
            schedule="warmup_cosine", warmup_steps=0, final_lr_ratio=0.0),
    _family("adam-warmup-cosine-no-bias", "lstsq", "value", "loop", kind="adam",
            schedule="warmup_cosine", warmup_steps=300, final_lr_ratio=0.5,
            bias_correction=False),
]


def _uses(kind: str) -> tuple[str, ...]:
    from experiments.optimizers import REGISTRY

    return REGISTRY[kind].uses


def _rng(case: Case) -> np.random.Generator:
    # One stream per row: adding a row does not change the draws of the others.
    return np.random.default_rng(zlib.crc32(case.id.encode()))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> list[float]:
    return [float(v) for v in 10.0 ** rng.uniform(np.log10(lo), np.log10(hi), n)]


def _clips(rng: np.random.Generator, mode: str, scale: float, n: int) -> list[dict[str, Any]]:
    if mode == "none":
        return [{"mode": "none"}]
    # Thresholds around the gradient's size: some steps clip, some do not.
    thresholds = _log_uniform(rng, scale / 10.0, scale, n)
    if mode != "adagc":
        return [{"mode": mode, "threshold": t} for t in thresholds]
    return [
        {
            "mode": "adagc",
            "threshold": t,
            "ratio": float(rng.uniform(1.0, 1.2)),
            "beta": float(rng.uniform(0.8, 0.99)),
            "warmup": int(rng.integers(1, 60)),
        }
        for t in thresholds
    ]


def spec_document(case: Case) -> dict[str, Any]:
    """The sweep spec of a row: drawn axes as explicit lists (the runs used are its
    diagonal: config i takes beta1[i], beta2[i], lr[i], under every clip)."""
    problem, batch, (lo, hi), grad_scale = PROBLEMS[case.problem]
    rng = _rng(case)
    n = case.n_configs
    kind = case.optimizer.get("kind", "adam")
    optimizer: dict[str, Any] = {"kind": kind, "schedule": "constant"}
    if kind in ("adam", "adamw"):
        optimizer.update(bias_correction=True, eps=1e-8)
    optimizer.update(case.optimizer)
    lo, hi = lo * case.lr_factor, hi * case.lr_factor
    if optimizer["schedule"] == "inv_sqrt":
        lo, hi = lo * INV_SQRT_LR_FACTOR, hi * INV_SQRT_LR_FACTOR
    lo1m, hi1m = case.log10_one_minus_beta2
    axes = {
        "beta1": [float(v) for v in rng.uniform(*case.beta1, n)],
        "beta2": [float(1.0 - 10.0**e) for e in rng.uniform(lo1m, hi1m, n)],
        "lr": _log_uniform(rng, lo, hi, n),
    }
    for name, values in case.fixed.items():
        axes[name] = list(values)[:n]
    for name in ("beta1", "beta2"):
        if name not in _uses(kind):  # an unused beta axis holds one value
            axes[name] = [0.0]
    return {
        "name": case.id,
        "problem": problem,
        "optimizer": optimizer,
        # reddi2018_stochastic draws i.i.d. samples, so only with_replacement applies
        "sampling": "with_replacement" if case.problem == "reddi2018_stochastic" else "reshuffle",
        "steps": case.steps,
        "dtype": case.dtype,
        "grid": {
            "beta1": axes["beta1"],
            "beta2": axes["beta2"],
            "batch_size": [batch],
            "clip": _clips(rng, case.clip_mode, grad_scale, case.n_clips),
            "lr": axes["lr"],
            "seed": [0],
        },
    }
