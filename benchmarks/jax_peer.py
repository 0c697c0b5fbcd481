"""The JAX peer of benchmarks/engine.py --peers: what a researcher would write in JAX.

Arrays over runs, lax.scan over steps, jit. Adam with bias correction and the
spec's schedule (constant or inv_sqrt), the minibatch summaries of each
(seed, batch size) stream given as a [K, G, S] array (drawn by betascope's own
sampler, outside the timing) and gathered to the runs at every step. It returns
the final x only: no checkpoint losses, no clip counts, no max_rise.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def make_run(problem: str, dtype: str, data: dict[str, np.ndarray], eps: float,
             inv_sqrt: bool) -> Any:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", dtype == "float64")
    f = jnp.float64 if dtype == "float64" else jnp.float32
    a = jnp.asarray(data["A"], f) if problem == "lstsq" else None
    y = jnp.asarray(data["y"], f) if problem == "lstsq" else None

    def grad(x: Any, s: Any) -> Any:  # s: this step's summary, gathered to the runs
        if problem == "zhang2022":
            return s * jnp.where(x >= -1, 1.0, x + 2)
        return ((x @ a.T - y) * s) @ a

    def run(x: Any, b1: Any, b2: Any, lr: Any, group: Any, stats: Any) -> Any:
        def step(carry: Any, inp: Any) -> Any:
            x, m, v, b1p, b2p = carry
            s, k = inp
            g = grad(x, s[group])
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            b1p, b2p = b1p * b1, b2p * b2
            eta = lr / jnp.sqrt(k) if inv_sqrt else lr
            x = x - eta * (m / (1 - b1p)) / (jnp.sqrt(v / (1 - b2p)) + eps)
            return (x, m, v, b1p, b2p), None

        ks = jnp.arange(1, stats.shape[0] + 1, dtype=f)
        ones = jnp.ones_like(b1)
        init = (x, jnp.zeros_like(x), jnp.zeros_like(x), ones, ones)
        return jax.lax.scan(step, init, (stats, ks))[0][0]

    jitted = jax.jit(run)

    def call(**arrays: np.ndarray) -> np.ndarray:
        args = {k: jnp.asarray(v, jnp.int32 if k == "group" else f) for k, v in arrays.items()}
        return np.asarray(jitted(**args).block_until_ready())

    return call
