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
