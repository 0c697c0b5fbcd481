"""The problems against DESIGN section 3, written out independently here.

The equivalence tests take each problem's `grad` as given; these tests are
what hold `grad` and `loss` to the papers' definitions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.problems import build_problem
from experiments.sampling import batch_indices
from experiments.spec import LstsqSpec, Reddi2018Spec, Reddi2018StochasticSpec, Zhang2022Spec

F64 = {"dtype": torch.float64, "device": torch.device("cpu")}


def _zhang_components(x: float, n: int) -> list[float]:
    """f_0, ..., f_{n-1} at x, as written in DESIGN section 3 (Zhang et al. eq. 2.5)."""
    a = 1.0 / (n - 1) ** 2
    if x >= -1:
        f0 = (1 + (n - 1) * a) * x
        fi = -a * x
    else:
        f0 = ((1 + (n - 1) * a) / 2) * (x + 2) ** 2 - (3 + 3 * (n - 1) * a) / 2
        fi = -(a / 2) * (x + 2) ** 2 + 3 * a / 2
    return [f0] + [fi] * (n - 1)


def _zhang_component_grads(x: float, n: int) -> list[float]:
    a = 1.0 / (n - 1) ** 2
    h = 1.0 if x >= -1 else x + 2
    return [(1 + (n - 1) * a) * h] + [-a * h] * (n - 1)


XS = [-7.0, -2.5, -2.0, -1.5, -1.0, -0.999, -0.5, 0.0, 3.0]


@pytest.mark.parametrize("n", [3, 20, 101])
def test_zhang_loss_is_the_mean_of_its_components(n: int) -> None:
    p = build_problem(Zhang2022Spec(kind="zhang2022", n=n), **F64)
    got = p.loss(torch.tensor(XS, dtype=torch.float64)[:, None]).numpy()
    want = [np.mean(_zhang_components(x, n)) for x in XS]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert p.f_star == pytest.approx(-3 / (2 * n), rel=1e-15)
    assert float(p.loss(p.x_star[None, :])[0]) == pytest.approx(p.f_star, rel=1e-14)
    # x* is the minimum: the loss is larger everywhere else on a fine grid
    grid = torch.linspace(-10, 10, 4001, dtype=torch.float64)[:, None]
    assert float(p.loss(grid).min()) >= p.f_star - 1e-15


@pytest.mark.parametrize(
    ("n", "b", "sampling"),
    [
        (20, 1, "with_replacement"),
        (20, 4, "reshuffle"),
        (5, 3, "with_replacement"),
        (20, 20, "reshuffle"),
    ],
)
def test_zhang_minibatch_gradient_is_the_mean_of_sampled_component_gradients(
    n: int, b: int, sampling: str
) -> None:
    p = build_problem(Zhang2022Spec(kind="zhang2022", n=n), **F64)
    steps = torch.arange(1, 41, dtype=torch.int64)
    stats = p.batch_stats(seed=3, batch_size=b, sampling=sampling, steps=steps)
    idx = batch_indices(seed=3, batch_size=b, sampling=sampling, steps=steps, n=n).numpy()
    for x in XS:
        comps = np.asarray(_zhang_component_grads(x, n))
        want = comps[idx].mean(axis=1)
        got = p.grad(torch.full((len(steps), 1), x, dtype=torch.float64), stats)[:, 0].numpy()
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-16, err_msg=f"x={x}")


def test_zhang_full_batch_gradient_is_the_derivative_of_the_loss() -> None:
    p = build_problem(Zhang2022Spec(kind="zhang2022", n=20), **F64)
    stats = p.batch_stats(seed=0, batch_size=20, sampling="reshuffle", steps=torch.tensor([1]))
    x = torch.tensor([v for v in XS if v != -1.0], dtype=torch.float64)[:, None].requires_grad_()
    p.loss(x).sum().backward()
    got = p.grad(x.detach(), stats.expand(len(x), -1))
    np.testing.assert_allclose(got.numpy(), x.grad.numpy(), rtol=1e-13)


def test_reddi2018_is_the_online_sequence_of_theorem_1() -> None:
    C = 3.0
    p = build_problem(Reddi2018Spec(kind="reddi2018", C=C), **F64)
    steps = torch.arange(1, 10, dtype=torch.int64)
    stats = p.batch_stats(seed=0, batch_size=1, sampling="with_replacement", steps=steps)
    # f_t = C x for t mod 3 = 1, else -x
    assert stats[:, 0].tolist() == [C, -1, -1] * 3
    x = torch.zeros(len(steps), 1, dtype=torch.float64)
    assert p.grad(x, stats)[:, 0].tolist() == [C, -1, -1] * 3
    # the full objective is the period average, minimised at x* = -1 on [-1, 1]
    xs = torch.tensor([[-1.0], [0.0], [1.0]], dtype=torch.float64)
    np.testing.assert_allclose(p.loss(xs).numpy(), (C - 2) / 3 * xs[:, 0].numpy())
    assert p.f_star == pytest.approx(-(C - 2) / 3)
    assert p.project(torch.tensor([[-3.0], [0.25], [2.0]])).tolist() == [[-1.0], [0.25], [1.0]]


@pytest.mark.parametrize("b", [1, 4])
def test_reddi2018_stochastic_draws_the_large_gradient_with_probability_p(b: int) -> None:
    C, delta = 3.0, 0.2
    p = build_problem(Reddi2018StochasticSpec(kind="reddi2018_stochastic", C=C, delta=delta), **F64)
    stats = p.batch_stats(
        seed=1, batch_size=b, sampling="with_replacement", steps=torch.arange(1, 40_001)
    )[:, 0].numpy()
    share = (stats + 1) / (C + 1)  # the share of C x samples in each batch
    np.testing.assert_allclose(share * b, np.round(share * b), atol=1e-12)
    prob = (1 + delta) / (C + 1)
    draws = 40_000 * b
    assert abs(share.mean() - prob) < 5 * np.sqrt(prob * (1 - prob) / draws)
    # E f(x) = delta x: the mean gradient is delta
    assert abs(stats.mean() - delta) < 5 * (C + 1) * np.sqrt(prob * (1 - prob) / draws)


def _lstsq() -> tuple[LstsqSpec, object]:
    spec = LstsqSpec(kind="lstsq", n_samples=30, block_scales=[1.0, 10.0, 0.3], block_dim=4)
    return spec, build_problem(spec, **F64)


def test_lstsq_optimum_blocks_and_minibatch_gradient() -> None:
    spec, p = _lstsq()
    A, y = p.A.numpy(), p.y.numpy()
    assert p.blocks == [(0, 4), (4, 8), (8, 12)]
    # block scales: column norms of each block in the ratio of block_scales
    norms = [np.linalg.norm(A[:, a:b]) for a, b in p.blocks]
    assert norms[1] / norms[0] == pytest.approx(10.0, rel=0.5)
    assert norms[2] / norms[0] == pytest.approx(0.3, rel=0.5)
    # x* minimises: zero full-batch gradient, and f* = f(x*)
    full = p.batch_stats(seed=0, batch_size=30, sampling="reshuffle", steps=torch.tensor([1]))
    g_star = p.grad(p.x_star[None, :], full)[0].numpy()
    assert np.abs(g_star).max() < 1e-12
    assert float(p.loss(p.x_star[None, :])[0]) == pytest.approx(p.f_star, rel=1e-12)
    # minibatch gradient = mean over the sampled rows (with multiplicity)
    steps = torch.arange(1, 21)
    stats = p.batch_stats(seed=4, batch_size=7, sampling="with_replacement", steps=steps)
    idx = batch_indices(seed=4, batch_size=7, sampling="with_replacement", steps=steps, n=30)
    x = np.random.default_rng(0).standard_normal((20, 12))
    got = p.grad(torch.from_numpy(x), stats).numpy()
    for k in range(20):
        rows = idx[k].numpy()
        want = np.mean([A[i] * (A[i] @ x[k] - y[i]) for i in rows], axis=0)
        np.testing.assert_allclose(got[k], want, rtol=1e-12, atol=1e-14)


def test_lstsq_full_batch_gradient_is_the_derivative_of_the_loss() -> None:
    _, p = _lstsq()
    x = torch.randn(5, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_()
    p.loss(x).sum().backward()
    full = p.batch_stats(seed=0, batch_size=30, sampling="reshuffle", steps=torch.tensor([1]))
    got = p.grad(x.detach(), full.expand(5, -1))
    np.testing.assert_allclose(got.numpy(), x.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_lstsq_data_is_fixed_by_data_seed() -> None:
    spec, p = _lstsq()
    again = build_problem(spec, **F64)
    other = build_problem(spec.model_copy(update={"data_seed": 1}), **F64)
    assert torch.equal(p.A, again.A) and torch.equal(p.y, again.y)
    assert not torch.equal(p.A, other.A)
