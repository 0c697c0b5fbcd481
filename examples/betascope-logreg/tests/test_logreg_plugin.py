"""The logreg plug-in: found through its entry point, its loss as documented, and
betascope's vectorized engine on it against a per-run torch.autograd loop."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from betascope_logreg.problem import make_data
from betascope_logreg.spec import LogRegSpec

from experiments.engine import run_chunk
from experiments.problems import KINDS, PLUGIN_ERRORS, REGISTRY, build_problem
from experiments.runs import all_runs
from experiments.sampling import batch_indices
from experiments.spec import parse_spec

F64 = {"dtype": torch.float64, "device": torch.device("cpu")}
PROBLEM = {"kind": "logreg", "n_samples": 40, "dim": 3, "l2": 0.05, "data_seed": 2, "x0": 0.5}


def test_the_entry_point_registers_the_kind() -> None:
    assert "logreg" in KINDS and "logreg" not in PLUGIN_ERRORS
    entry = REGISTRY["logreg"]
    assert entry.model is LogRegSpec
    assert entry.origin.startswith("betascope-logreg")


def test_loss_gradient_and_optimum_are_logistic_regression() -> None:
    spec = parse_spec({"problem": PROBLEM, "steps": 1, "grid": {}})
    p = build_problem(spec.problem, **F64)
    x, y = make_data(40, 3, 2)
    assert p.dim == 4 and p.blocks == [(0, 3), (3, 4)]  # w, then the bias: two tensors
    theta = np.random.default_rng(0).standard_normal((5, 4))
    z = theta[:, :3] @ x.T + theta[:, 3:]
    want = np.log1p(np.exp(-y * z)).mean(axis=1) + 0.025 * (theta[:, :3] ** 2).sum(axis=1)
    np.testing.assert_allclose(p.loss(torch.from_numpy(theta)).numpy(), want, rtol=1e-13)
    # a minibatch gradient is the weighted per-sample gradient
    steps = torch.arange(1, 6)
    stats = p.batch_stats(seed=1, batch_size=7, sampling="with_replacement", steps=steps)
    idx = batch_indices(seed=1, batch_size=7, sampling="with_replacement", steps=steps, n=40)
    got = p.grad(torch.from_numpy(theta), stats).numpy()
    for r in range(5):
        rows = idx[r].numpy()
        s = 1 / (1 + np.exp(y[rows] * z[r, rows]))
        gw = -(x[rows] * (y[rows] * s)[:, None]).mean(axis=0) + 0.05 * theta[r, :3]
        gb = -(y[rows] * s).mean()
        np.testing.assert_allclose(got[r], [*gw, gb], rtol=1e-12, atol=1e-15)
    # x* (Newton) zeroes the full gradient, and f* is f(x*)
    full = torch.full((1, 40), 1 / 40, dtype=torch.float64)
    assert p.grad(p.x_star[None, :], full).abs().max() < 1e-12
    assert float(p.loss(p.x_star[None, :])[0]) == pytest.approx(p.f_star, rel=1e-14)


def _autograd_loop(
    spec: Any, *, beta1: float, beta2: float, lr: float, seed: int, batch_size: int
) -> np.ndarray:
    """One run: torch.optim on Parameters w and b, gradients by loss.backward() on the
    sampled rows' mean loss (no torch.func, no weights)."""
    x, y = make_data(spec.problem.n_samples, spec.problem.dim, spec.problem.data_seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    w = torch.nn.Parameter(torch.full((spec.problem.dim,), spec.problem.x0, dtype=torch.float64))
    b = torch.nn.Parameter(torch.tensor(spec.problem.x0, dtype=torch.float64))
    if spec.optimizer.kind == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam([w, b], lr=lr, betas=(beta1, beta2))
    else:
        opt = torch.optim.SGD([w, b], lr=lr, momentum=beta1)
    steps = torch.arange(1, spec.steps + 1)
    idx = batch_indices(
        seed=seed,
        batch_size=batch_size,
        sampling=spec.sampling,
        steps=steps,
        n=spec.problem.n_samples,
    )
    for k in range(spec.steps):
        rows = idx[k]
        opt.zero_grad()
        z = xt[rows] @ w + b
        loss = (
            torch.nn.functional.softplus(-yt[rows] * z).mean()
            + 0.5 * spec.problem.l2 * (w**2).sum()
        )
        loss.backward()
        opt.step()
    return torch.cat([w.detach(), b.detach()[None]]).numpy()


@pytest.mark.parametrize(
    ("kind", "sampling"),
    [("adam", "with_replacement"), ("adam", "reshuffle"), ("sgd", "reshuffle")],
)
def test_engine_matches_a_per_run_autograd_loop(kind: str, sampling: str) -> None:
    grid: dict[str, Any] = {"beta1": [0.0, 0.9], "batch_size": [1, 8], "seed": [0, 3]}
    if kind == "adam":
        # Adam moves <= lr a step: 300 * 1e-3 keeps every run in its approach phase
        grid.update(beta2=[0.99, 0.999], lr=[3e-4, 1e-3])
    else:
        grid.update(lr=[0.01, 0.05])
    spec = parse_spec(
        {
            "problem": PROBLEM,
            "optimizer": {"kind": kind},
            "sampling": sampling,
            "steps": 300,
            "grid": grid,
        }
    )
    runs = all_runs(spec)
    result = run_chunk(spec, runs)
    values = spec.axis_values()
    for i in range(len(runs)):
        gi = runs.grid_index[i]
        want = _autograd_loop(
            spec,
            beta1=values["beta1"][gi[0]],
            beta2=values["beta2"][gi[1]],
            lr=values["lr"][gi[4]],
            seed=values["seed"][gi[5]],
            batch_size=values["batch_size"][gi[2]],
        )
        np.testing.assert_allclose(result.x_final[i], want, rtol=1e-10, atol=1e-13, err_msg=str(gi))


def test_results_do_not_depend_on_the_chunking() -> None:
    # torch.func.vmap turns one run's products into batched ones whose rounding may
    # depend on how many runs share them: the contract is rounding level (1e-12)
    spec = parse_spec(
        {
            "problem": PROBLEM,
            "optimizer": {"lr": 0.05},
            "steps": 200,
            "grid": {
                "beta1": [0.0, 0.9],
                "beta2": [0.9, 0.999],
                "batch_size": [1, 8],
                "seed": [0, 1],
                "clip": [{"mode": "none"}, {"mode": "adagc", "threshold": 0.5}],
            },
        }
    )
    runs = all_runs(spec)
    whole = run_chunk(spec, runs)
    order = np.random.default_rng(0).permutation(len(runs))
    for sizes in ([1, 6, len(runs) - 7], [len(runs) // 2, len(runs) - len(runs) // 2]):
        lo = 0
        for size in sizes:
            rows = order[lo : lo + size]
            lo += size
            part = run_chunk(spec, runs.take(rows))
            np.testing.assert_allclose(part.curves, whole.curves[rows], rtol=1e-12, atol=0)
            np.testing.assert_allclose(part.x_final, whole.x_final[rows], rtol=1e-12, atol=1e-15)
            np.testing.assert_array_equal(part.outcomes.code, whole.outcomes.code[rows])
    assert whole.outcomes.clip_fraction.max() > 0
