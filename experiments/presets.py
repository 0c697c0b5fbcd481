"""Built-in sweeps that reproduce the papers' claims (a catalogue; may grow long)."""

from __future__ import annotations

from typing import Any


def _lstsq_family(kind: str, lr: float) -> dict[str, Any]:
    """One optimizer of the family on the block-scaled least squares."""
    uses_beta2 = kind != "sgd"  # sgd's beta1 is its momentum; it has no beta2
    return {
        "name": f"{kind} on least squares with feature blocks of scales 1 and 10",
        "problem": {"kind": "lstsq", "n_samples": 64, "block_scales": [1.0, 10.0], "block_dim": 4},
        "optimizer": {"kind": kind, "lr": lr, "schedule": "constant"},
        "sampling": "reshuffle",
        "steps": 2000,
        "grid": {
            "beta1": {"start": 0.0, "stop": 0.9, "num": 6},
            "beta2": {"log1m": [0.001, 1.0], "num": 12} if uses_beta2 else [0.0],
            "batch_size": [8, 64],
            "clip": [{"mode": "none"}],
            "seed": [0, 1],
        },
    }


# Three 8-dimensional blocks, as in "Why Transformers Need Adam": far-apart spectra
# (heterogeneous) against three blocks that each span the whole range (homogeneous;
# the same condition number, 1e5). Each block's Hessian is rotated by its own Q_b.
QUADRATIC_BLOCKS = {
    "heterogeneous": [[1e-2, 1e-1], [1.0, 10.0], [100.0, 1000.0]],
    "homogeneous": [[1e-2, 1e3]] * 3,
}
# 21 learning rates, 10**-5 ... 1, so each optimizer's best lr lies inside the grid
QUADRATIC_LRS = [float(f"{10 ** (-5 + i / 4):.4g}") for i in range(21)]


def _quadratic(blocks: str, kind: str) -> dict[str, Any]:
    """Adam or SGD on one of the quadratics, over the lr axis.

    An optimizer kind is fixed per sweep (its fields differ), so the comparison is two
    presets with the same problem, steps and lr grid: `<blocks>-quadratic` (adam) and
    `<blocks>-quadratic-sgd`. Adam's advantage is best-lr SGD's final_rel over best-lr
    Adam's; map each with ?x=lr&y=beta1, or read the runs' final_rel by lr.
    """
    adam = kind == "adam"
    return {
        "name": f"{kind} on the {blocks} quadratic (three blocks of 8), best lr of 21",
        "problem": {
            "kind": "quadratic",
            "blocks": [{"dim": 8, "eig": eig} for eig in QUADRATIC_BLOCKS[blocks]],
            "noise": 0.0,
            "data_seed": 0,
            "x0": 0.0,
        },
        "optimizer": {"kind": kind, "lr": 1e-3, "schedule": "constant"},
        "steps": 2000,
        "dtype": "float64",
        # a converged run here is one that lost 99.99 % of its loss in 2,000 steps
        "criteria": {"converge_rel": 1e-4, "diverge_rel": 10.0},
        "grid": {
            # sgd: plain gradient descent and heavy-ball momentum 0.9 (beta1)
            "beta1": [0.9] if adam else [0.0, 0.9],
            "beta2": [0.999] if adam else [0.0],
            "lr": QUADRATIC_LRS,
        },
    }


# Bai et al. 2026's (beta1, beta2) plane on x^4/4 from x0 = 1 at a constant lr. rel =
# x^4, so the default converge_rel (0.05) would call |x| = 0.47 converged: 1e-8 asks
# for |x| <= 0.01. Measured (5,000 steps, lr 0.1): small beta1 converges smoothly,
# beta1 >= 0.9 converges through loss spikes, large beta1 with small beta2 keeps
# oscillating about 0 like SignGD (not converged), and beta2 = 0 with momentum diverges.
BAI2026_POLY: dict[str, Any] = {
    "name": "Bai et al. 2026: stable, spiky and SignGD-like Adam on x^4/4",
    "problem": {"kind": "poly", "k": 4, "dim": 1, "x0": 1.0},
    "optimizer": {"kind": "adam", "lr": 0.1, "schedule": "constant", "eps": 1e-8},
    "steps": 5000,
    "dtype": "float64",
    "criteria": {"converge_rel": 1e-8, "diverge_rel": 10.0},
    "grid": {
        "beta1": {"start": 0.0, "stop": 0.99, "num": 12},
        "beta2": {"log1m": [1e-4, 1.0], "num": 12},
        "batch_size": [1],
        "seed": [0],
    },
}


PRESETS: dict[str, dict[str, Any]] = {
    "zhang2022-batch": {
        "name": "Zhang et al. 2022: critical beta2 against batch size (n=20)",
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {
            "kind": "adam",
            "lr": 0.1,
            "schedule": "inv_sqrt",
            "eps": 1e-8,
            "bias_correction": False,
        },
        "sampling": "with_replacement",
        "steps": 20000,
        "dtype": "float64",
        "grid": {
            "beta1": {"start": 0.0, "stop": 0.9, "num": 10},
            "beta2": {"log1m": [0.01, 1.0], "num": 24},
            "batch_size": [1, 2, 4, 8],
            "clip": [{"mode": "none"}],
            "seed": [0, 1, 2],
        },
    },
    "reddi2018-theorem1": {
        "name": "Reddi et al. 2018, Theorem 1: Adam drifts to x=+1 for small beta2",
        "problem": {"kind": "reddi2018", "C": 3.0, "x0": 0.0},
        "optimizer": {
            "kind": "adam",
            "lr": 0.05,
            "schedule": "inv_sqrt",
            "eps": 1e-8,
            "bias_correction": False,
        },
        "sampling": "with_replacement",
        "steps": 30000,
        "dtype": "float64",
        "grid": {
            "beta1": {"start": 0.0, "stop": 0.9, "num": 10},
            "beta2": {"log1m": [0.001, 1.0], "num": 24},
            "batch_size": [1],
            "clip": [{"mode": "none"}],
            "seed": [0],
        },
    },
    "zhang2022-clipping": {
        "name": "Zhang et al. 2022 with clipping: none, global norm, value, AdaGC",
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {
            "kind": "adam",
            "lr": 0.1,
            "schedule": "inv_sqrt",
            "bias_correction": False,
        },
        "steps": 5000,
        "grid": {
            "beta1": {"start": 0.0, "stop": 0.9, "num": 10},
            "beta2": {"log1m": [0.01, 1.0], "num": 20},
            "batch_size": [1, 4],
            "clip": [
                {"mode": "none"},
                {"mode": "global_norm", "threshold": 0.5},
                {"mode": "value", "threshold": 0.5},
                {"mode": "adagc", "threshold": 0.5, "ratio": 1.05, "beta": 0.98, "warmup": 100},
            ],
            "seed": [0, 1, 2],
        },
    },
    "lstsq-blocks": {
        "name": "Least squares with heterogeneous feature blocks",
        "problem": {"kind": "lstsq", "n_samples": 64, "block_scales": [1.0, 10.0], "block_dim": 4},
        "optimizer": {"kind": "adam", "lr": 0.01, "schedule": "constant"},
        "sampling": "reshuffle",
        "steps": 2000,
        "grid": {
            "beta1": {"start": 0.0, "stop": 0.9, "num": 6},
            "beta2": {"log1m": [0.001, 1.0], "num": 12},
            "batch_size": [8, 64],
            "clip": [{"mode": "none"}, {"mode": "adagc", "threshold": 1.0}],
            "seed": [0, 1],
        },
    },
    "zhang2022-n": {
        "name": "Zhang et al. 2022: the divergence region grows with n (batch 1)",
        "problem": {"kind": "zhang2022", "x0": -0.5},
        "optimizer": {
            "kind": "adam",
            "lr": 0.1,
            "schedule": "inv_sqrt",
            "eps": 1e-8,
            "bias_correction": False,
        },
        "sampling": "with_replacement",
        "steps": 20000,
        "dtype": "float64",
        "grid": {
            "beta1": {"start": 0.0, "stop": 0.9, "num": 10},
            "beta2": {"log1m": [0.01, 1.0], "num": 24},
            "batch_size": [1],
            "seed": [0, 1, 2],
            "problem.n": [5, 10, 20, 50],
        },
    },
    "sohl-lr": {
        "name": "Trainability after Sohl-Dickstein 2024: lr x beta2 on Zhang et al. (n=20)",
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {
            "kind": "adam",
            "schedule": "inv_sqrt",
            "eps": 1e-8,
            "bias_correction": False,
        },
        "sampling": "with_replacement",
        "steps": 5000,
        "dtype": "float64",
        "grid": {
            "beta1": [0.9],
            "beta2": {"log1m": [0.001, 1.0], "num": 24},
            "batch_size": [1],
            # 10**-3 ... 10**1 in 24 log-spaced steps: map it with x=lr, y=beta2
            "lr": [float(f"{10 ** (-3 + 4 * i / 23):.4g}") for i in range(24)],
            "seed": [0, 1, 2],
        },
    },
    **{
        f"{blocks}-quadratic{'' if kind == 'adam' else '-sgd'}": _quadratic(blocks, kind)
        for blocks in QUADRATIC_BLOCKS
        for kind in ("adam", "sgd")
    },
    "bai2026-poly": BAI2026_POLY,
    "zhang2022-digits": {
        # Zhang et al.'s batch-size claim (smaller batches need larger beta2) on a
        # real network: a 64-32-10 tanh MLP on scikit-learn's digits. Every batch
        # size takes the same steps, as in zhang2022-batch.
        "name": "Zhang et al. 2022 on an MLP: critical beta2 against batch size (digits)",
        "problem": {"kind": "mlp", "dataset": "digits", "hidden": [32], "activation": "tanh"},
        "optimizer": {"kind": "adam", "lr": 0.003, "schedule": "constant"},
        "sampling": "with_replacement",
        "steps": 3000,
        "dtype": "float64",
        "grid": {
            "beta1": [0.0, 0.5, 0.9],
            "beta2": {"log1m": [0.001, 1.0], "num": 10},
            "batch_size": [1, 4, 16, 64],
            "clip": [{"mode": "none"}],
            "seed": [0, 1],
        },
    },
    # The optimizer family on one problem: a preset is one spec, so one per kind,
    # named optimizers-lstsq-<kind>, with the same problem, steps and batch sizes
    # (compare their maps side by side on the compare page).
    **{
        f"optimizers-lstsq-{kind}": _lstsq_family(kind, lr)
        for kind, lr in (
            ("adam", 0.01),
            ("adam_mini", 0.01),
            ("sgd", 0.003),
            ("lion", 0.001),
            ("rmsprop", 0.01),
        )
    },
}


# Theorem 1's sweep again with AMSGrad (v_max in place of v): it converges to x* = -1
# in every cell where Adam drifts to +1
PRESETS["reddi2018-amsgrad"] = {
    **PRESETS["reddi2018-theorem1"],
    "name": "Reddi et al. 2018: AMSGrad converges to x=-1 where Adam drifts to x=+1",
    "optimizer": {**PRESETS["reddi2018-theorem1"]["optimizer"], "amsgrad": True},
}


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    import copy

    return copy.deepcopy(PRESETS[name])
