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
    every regime (converged, converged with spikes, not converged, diverged) shows on
    the batch-1 map."""
    return {
        "name": name,
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {"kind": "adam", "lr": 0.1, "schedule": "constant"},
        "steps": 400,
        "grid": {"beta1": [0.0, 0.5, 0.9], "beta2": [0.1, 0.5, 0.9, 0.999], "batch_size": [1, 2],
                 "seed": [0, 1, 2]},
    }
