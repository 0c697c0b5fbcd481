"""quadratic and poly against their definitions, written out again here.

- Each problem's loss, Hessian, x* and noise against a numpy rebuild from the
  documented recipe (docs/problems.md).
- The engine on each, run by run, against torch.optim.Adam and torch.optim.SGD
  fed with the numpy gradient (float64, 1e-10, in the approach phase).
- Chunk invariance: bit-identical results whatever the chunking, noise included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from experiments.engine import run_chunk
from experiments.problems import build_problem
from experiments.runs import all_runs
from experiments.sampling import normals
from experiments.spec import SpecError, parse_spec

from .test_engine import _arrays, _assert_bit_identical, _in_chunks, _layouts

F64 = {"dtype": torch.float64, "device": torch.device("cpu")}
RTOL = 1e-10
BLOCKS = [
    {"dim": 3, "eig": [0.01, 0.1]},
    {"dim": 4, "eig": [1.0, 10.0]},
    {"dim": 2, "eig": [5.0, 5.0]},
]


def _quadratic(**fields: Any) -> dict[str, Any]:
    return {"kind": "quadratic", "blocks": BLOCKS, "data_seed": 3, "x0": 5.0, **fields}


def _numpy_quadratic(doc: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(H, x*) from the recipe: default_rng(data_seed); x* ~ N(0, I_d); then per block
    Q = the Haar orthogonal QR(G) with R's diagonal signs; H_b = Q diag(geomspace) Q^T."""
    rng = np.random.default_rng(doc["data_seed"])
    d = sum(b["dim"] for b in doc["blocks"])
    x_star = rng.standard_normal(d)
    h = np.zeros((d, d))
    lo = 0
    for b in doc["blocks"]:
        q, r = np.linalg.qr(rng.standard_normal((b["dim"], b["dim"])))
        q = q @ np.diag(np.sign(np.diag(r)))
        lam = np.exp(np.linspace(np.log(b["eig"][0]), np.log(b["eig"][1]), b["dim"]))
        h[lo : lo + b["dim"], lo : lo + b["dim"]] = q @ np.diag(lam) @ q.T
        lo += b["dim"]
    return h, x_star


# --- the definitions ------------------------------------------------------------------------


def test_quadratic_is_the_documented_block_quadratic() -> None:
    doc = _quadratic()
    spec = parse_spec({"problem": doc, "steps": 1, "grid": {}}).problem
    p = build_problem(spec, **F64)
    h, x_star = _numpy_quadratic(doc)
    assert p.blocks == [(0, 3), (3, 7), (7, 9)]
    np.testing.assert_allclose(p.x_star.numpy(), x_star, rtol=0, atol=0)
    for (a, b), blk in zip(p.blocks, BLOCKS, strict=True):
        eig = np.linalg.eigvalsh(h[a:b, a:b])
        want = np.geomspace(*blk["eig"], blk["dim"])
        np.testing.assert_allclose(np.sort(eig), want, rtol=1e-12)
        np.testing.assert_allclose(
            np.linalg.eigvalsh(p.H[len(p.H) - 3 + p.blocks.index((a, b))]), want, rtol=1e-12
        )
    x = np.random.default_rng(0).standard_normal((6, 9)) * 3
    y = x - x_star
    f = 0.5 * np.einsum("ri,ij,rj->r", y, h, y)
    np.testing.assert_allclose(p.loss(torch.from_numpy(x)).numpy(), f, rtol=1e-12)
    assert p.f_star == 0.0 and float(p.loss(p.x_star[None, :])[0]) == 0.0
    zero = p.batch_stats(
        seed=0, batch_size=1, sampling="with_replacement", steps=torch.arange(1, 3)
    )
    assert not zero.any()  # noise 0 is deterministic
    g = p.grad(torch.from_numpy(x), zero[:1].expand(6, -1)).numpy()
    np.testing.assert_allclose(g, y @ h, rtol=1e-12, atol=1e-14)


def test_quadratic_noise_is_gaussian_with_variance_noise2_over_b() -> None:
    noise = 0.7
    p = build_problem(
        parse_spec({"problem": _quadratic(noise=noise), "steps": 1, "grid": {}}).problem, **F64
    )
    steps = torch.arange(1, 20_001)
    for b in (1, 16):
        s = p.batch_stats(seed=5, batch_size=b, sampling="with_replacement", steps=steps).numpy()
        z = s.ravel() / (noise / np.sqrt(b))
        n = z.size
        assert abs(z.mean()) < 5 / np.sqrt(n)
        assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
        # the shape: normal quantiles, and the coordinates are uncorrelated
        qs = np.quantile(z, [0.01, 0.1, 0.5, 0.9, 0.99])
        np.testing.assert_allclose(qs, [-2.326, -1.2816, 0.0, 1.2816, 2.326], atol=0.02)
        c = np.corrcoef(s.T)
        assert np.abs(c - np.eye(9)).max() < 5 / np.sqrt(len(steps))
        assert abs(np.corrcoef(s[:-1, 0], s[1:, 0])[0, 1]) < 5 / np.sqrt(len(steps))


def test_quadratic_noise_is_a_function_of_seed_batch_size_and_step() -> None:
    steps = torch.arange(1, 301)
    whole = normals(seed=2, batch_size=4, steps=steps, n=9)
    # any block of steps, in any order, draws the same numbers
    part = normals(seed=2, batch_size=4, steps=torch.tensor([300, 7, 1]), n=9)
    assert torch.equal(part, whole[[299, 6, 0]])
    # and a larger problem's first coordinates are this one's
    assert torch.equal(normals(seed=2, batch_size=4, steps=steps, n=20)[:, :9], whole)
    for other in (
        normals(seed=3, batch_size=4, steps=steps, n=9),
        normals(seed=2, batch_size=5, steps=steps, n=9),
    ):
        assert abs(np.corrcoef(other.ravel(), whole.ravel())[0, 1]) < 0.1


def test_poly_is_x_to_the_k_over_k() -> None:
    spec = parse_spec(
        {"problem": {"kind": "poly", "k": 6, "dim": 3, "x0": 0.5}, "steps": 1, "grid": {}}
    )
    p = build_problem(spec.problem, **F64)
    x = np.random.default_rng(1).standard_normal((5, 3)) * 2
    np.testing.assert_allclose(p.loss(torch.from_numpy(x)).numpy(), (x**6 / 6).sum(1), rtol=1e-14)
    g = p.grad(torch.from_numpy(x), torch.zeros(5, 1, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(g, x**5, rtol=1e-14)
    assert p.f_star == 0.0 and not p.x_star.any()
    assert p.x0().tolist() == [0.5] * 3


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"problem": {"kind": "poly", "k": 3}}, "problem.k"),
        ({"problem": {"kind": "poly", "x0": 0.0}}, "problem.x0"),
        ({"problem": {"kind": "poly"}, "grid": {"batch_size": [2]}}, "grid.batch_size"),
        ({"problem": {"kind": "quadratic", "blocks": [{"dim": 2}]}}, "problem.blocks[0].eig"),
        (
            {"problem": {"kind": "quadratic", "blocks": [{"dim": 2, "eig": [0, 1]}]}},
            "problem.blocks[0].eig",
        ),
        (
            {"problem": {"kind": "quadratic", "blocks": [{"dim": 2, "eig": [2, 1]}]}},
            "problem.blocks[0].eig",
        ),
        ({"problem": {"kind": "quadratic", "blocks": []}}, "problem.blocks"),
        (
            {"problem": {"kind": "quadratic", "blocks": [{"dim": 1024, "eig": [1, 2]}] * 5}},
            "problem.blocks",
        ),
        ({"problem": _quadratic(noise=0.1), "sampling": "reshuffle"}, "sampling"),
    ],
)
def test_bad_problem_fields_name_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"steps": 10, "grid": {}, **doc})
    fields = [f for f, _ in err.value.errors]
    assert field in fields, err.value.errors


# --- the engine against torch.optim per run -------------------------------------------------


def _reference(
    spec: Any,
    grad: Any,
    x0: np.ndarray,
    *,
    beta1: float,
    beta2: float,
    lr: float,
    seed: int,
    batch_size: int,
) -> np.ndarray:
    """One run: torch.optim.Adam or SGD on one Parameter, fed the numpy gradient."""
    x = torch.nn.Parameter(torch.from_numpy(x0.copy()))
    if spec.optimizer.kind == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(
            [x], lr=lr, betas=(beta1, beta2), eps=spec.optimizer.eps
        )
    else:
        opt = torch.optim.SGD([x], lr=lr, momentum=beta1)
    for k in range(1, spec.steps + 1):
        x.grad = torch.from_numpy(grad(x.detach().numpy(), k, seed, batch_size))
        opt.step()
    return x.detach().numpy()


def _compare(doc: dict[str, Any], grad: Any, x0: np.ndarray) -> None:
    spec = parse_spec(doc)
    runs = all_runs(spec)
    result = run_chunk(spec, runs)
    values = spec.axis_values()
    for i in range(len(runs)):
        gi = runs.grid_index[i]
        want = _reference(
            spec,
            grad,
            x0,
            beta1=values["beta1"][gi[0]],
            beta2=values["beta2"][gi[1]],
            lr=values["lr"][gi[4]],
            batch_size=values["batch_size"][gi[2]],
            seed=values["seed"][gi[5]],
        )
        np.testing.assert_allclose(result.x_final[i], want, rtol=RTOL, atol=0, err_msg=str(gi))


def _adam_or_sgd(kind: str, lrs: list[float]) -> dict[str, Any]:
    if kind == "adam":
        return {
            "optimizer": {"kind": "adam"},
            "grid_betas": {"beta1": [0.0, 0.9], "beta2": [0.99, 0.999], "lr": lrs},
        }
    return {"optimizer": {"kind": "sgd"}, "grid_betas": {"beta1": [0.0, 0.9], "lr": lrs}}


@pytest.mark.parametrize("kind", ["adam", "sgd"])
@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_quadratic_engine_matches_torch_optim(kind: str, noise: float) -> None:
    doc = _quadratic(noise=noise)
    h, x_star = _numpy_quadratic(doc)

    def grad(x: np.ndarray, k: int, seed: int, b: int) -> np.ndarray:
        xi = normals(seed=seed, batch_size=b, steps=torch.tensor([k]), n=len(x))[0].numpy()
        return h @ (x - x_star) + noise / np.sqrt(b) * xi

    # x0 = 5 is at least 1.5 from every coordinate of x*; Adam moves <= lr a step, and
    # SGD's lr is below 1 / lambda_max (a contraction), so no run nears x*
    lrs = [1e-4, 1e-3] if kind == "adam" else [0.01, 0.05]
    opt = _adam_or_sgd(kind, lrs)
    assert np.abs(x_star - 5.0).min() > 1.5
    _compare(
        {
            "problem": doc,
            "optimizer": opt["optimizer"],
            "steps": 1000,
            "grid": {**opt["grid_betas"], "batch_size": [1, 4] if noise else [1], "seed": [0, 1]},
        },
        grad,
        np.full(9, 5.0),
    )


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_poly_engine_matches_torch_optim(kind: str) -> None:
    # Adam travels <= 1000 * 1e-4 from x0 = 1; SGD on x^3 contracts for lr < 1
    lrs = [1e-5, 1e-4] if kind == "adam" else [0.01, 0.1]
    opt = _adam_or_sgd(kind, lrs)
    _compare(
        {
            "problem": {"kind": "poly", "k": 4, "dim": 2, "x0": 1.0},
            "optimizer": opt["optimizer"],
            "steps": 1000,
            "grid": opt["grid_betas"],
        },
        lambda x, k, seed, b: x**3,
        np.full(2, 1.0),
    )


# --- chunk invariance -----------------------------------------------------------------------


CLIPS = [
    {"mode": "none"},
    {"mode": "global_norm", "threshold": 1.0},
    {"mode": "adagc", "threshold": 2.0, "warmup": 20},
]


@pytest.mark.parametrize(
    "doc",
    [
        {
            "problem": _quadratic(noise=0.3, x0=0.0),
            "optimizer": {"lr": 0.05},
            "steps": 300,
            "grid": {
                "beta1": [0.0, 0.9],
                "beta2": [0.9, 0.999],
                "batch_size": [1, 3],
                "clip": CLIPS,
                "seed": [0, 4],
            },
        },
        {
            "problem": {"kind": "poly", "k": 4, "dim": 3, "x0": 1.0},
            "optimizer": {"lr": 0.1},
            "steps": 300,
            "grid": {
                "beta1": [0.0, 0.5, 0.95],
                "beta2": [0.5, 0.9, 0.999],
                "clip": CLIPS,
                "lr": [0.1, 0.5],
            },
        },
    ],
    ids=["quadratic", "poly"],
)
def test_bit_identical_whatever_the_chunking(doc: dict[str, Any]) -> None:
    spec = parse_spec(doc)
    runs = all_runs(spec)
    whole = _arrays(run_chunk(spec, runs))
    assert whole["clip_fraction"].max() > 0
    for order, sizes in _layouts(len(runs), seed=11, both=True):
        _assert_bit_identical(whole, _in_chunks(spec, order, sizes))
