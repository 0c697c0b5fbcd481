"""Specs the browser tests submit: small versions of the presets."""

from __future__ import annotations

from typing import Any

from experiments.presets import preset


def small_zhang(
    name: str | None = None, *, steps: int = 300, lr: float | None = None
) -> dict[str, Any]:
    """Zhang et al.'s batch study cut down: 4 x 5 (beta1, beta2), batch sizes 1 and 2, 2 seeds."""
    spec = preset("zhang2022-batch")
    spec["steps"] = steps
    spec["grid"].update(
        beta1={"start": 0.0, "stop": 0.9, "num": 4},
        beta2={"log1m": [0.01, 1.0], "num": 5},
        batch_size=[1, 2],
        seed=[0, 1],
    )
    if name is not None:
        spec["name"] = name
    if lr is not None:
        spec["optimizer"]["lr"] = lr
    return spec


def grid_shape(spec: dict[str, Any]) -> tuple[int, int]:
    """(rows, columns) of its phase map: (n_beta2, n_beta1)."""
    g = spec["grid"]
    return int(g["beta2"]["num"]), int(g["beta1"]["num"])


def runs_of(spec: dict[str, Any]) -> int:
    g = spec["grid"]
    return (g["beta1"]["num"] * g["beta2"]["num"] * len(g["batch_size"]) * len(g.get("clip", [1]))
            * len(g.get("lr") or [1]) * len(g["seed"]))


def regimes_zhang(name: str = "zhang regimes") -> dict[str, Any]:
    """zhang2022 at a constant lr 0.1, 3 x 4 (beta1, beta2), batch sizes 1 and 2, 3 seeds:
    converged, not converged and diverged cells on maps of two batch sizes."""
    return {
        "name": name,
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {"kind": "adam", "lr": 0.1, "schedule": "constant"},
        "steps": 400,
        "grid": {"beta1": [0.0, 0.5, 0.9], "beta2": [0.1, 0.5, 0.9, 0.999], "batch_size": [1, 2],
                 "seed": [0, 1, 2]},
    }


def regimes_poly(name: str = "poly regimes") -> dict[str, Any]:
    """Adam at a constant lr 0.1 on x^4/4 (Bai et al. 2026), 3 x 4 (beta1, beta2), two
    seeds: every regime shows on the one map: converged (beta1 0 and 0.5), converged
    with spikes (beta1 0.99, beta2 >= 0.99: momentum overshoots x* again and again),
    not converged (beta1 0.99, beta2 0.9: SignGD-like oscillation) and diverged
    (beta2 0, beta1 > 0)."""
    return {
        "name": name,
        "problem": {"kind": "poly", "k": 4, "dim": 1, "x0": 1.0},
        "optimizer": {"kind": "adam", "lr": 0.1, "schedule": "constant"},
        "steps": 2000,
        "criteria": {"converge_rel": 1e-8},
        "grid": {"beta1": [0.0, 0.5, 0.99], "beta2": [0.0, 0.9, 0.99, 0.999],
                 "batch_size": [1], "seed": [0, 1]},
    }
