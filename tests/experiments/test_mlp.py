"""The mlp problem against torch.nn and torch.optim, run one configuration at a time.

The references build the network from torch.nn.Linear layers (as DESIGN section 3
says anyone can), take their gradients from autograd and step torch.optim, so
what they check is the problem's data, initial weights, loss and hand-written
backward pass together with the engine. Learning rates keep every run in its
approach phase for the steps compared (see configs.py on why).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from experiments.engine import run_chunk
from experiments.problems import build_problem
from experiments.problems.mlp import MAX_PARAMS, MlpSpec
from experiments.runs import all_runs, runs_at
from experiments.sampling import batch_indices
from experiments.spec import SpecError, parse_spec

F64 = {"dtype": torch.float64, "device": torch.device("cpu")}
RTOL = 1e-8

# --- the torch.nn reference -------------------------------------------------------------------


def _network(problem: dict[str, Any]) -> torch.nn.Sequential:
    """torch.nn.Linear layers input to output under manual_seed(init_seed), float64."""
    spec = MlpSpec(**problem)
    widths = spec.widths()
    torch.manual_seed(spec.init_seed)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU() if spec.activation == "relu" else torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def _data(problem: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    p = build_problem(MlpSpec(**problem), **F64)
    return p.X[:, : p.widths[0]], p.y


def _loss(problem: dict[str, Any], out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if problem.get("dataset", "digits") == "digits":
        return torch.nn.functional.cross_entropy(out, y)
    return torch.nn.functional.mse_loss(out, y)


def _torch_run(
    doc: dict[str, Any], *, beta1: float, beta2: float, lr: float, batch: int, seed: int = 0
) -> np.ndarray:
    """One configuration: torch.nn + torch.optim, the minibatch of step k from
    experiments.sampling.batch_indices (every sample at once for the full batch)."""
    problem = doc["problem"]
    net = _network(problem)
    X, y = _data(problem)
    params = list(net.parameters())
    if doc["optimizer"]["kind"] == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr, momentum=beta1)
    else:
        opt = torch.optim.Adam(params, lr=lr, betas=(beta1, beta2))
    for k in range(1, doc["steps"] + 1):
        if batch == len(X):
            xb, yb = X, y
        else:
            idx = batch_indices(
                seed=seed, batch_size=batch, sampling=doc["sampling"],
                steps=torch.tensor([k]), n=len(X),
            )[0]
            xb, yb = X[idx], y[idx]
        opt.zero_grad()
        _loss(problem, net(xb), yb).backward()
        opt.step()
    return torch.cat([p.detach().reshape(-1) for p in params]).numpy()


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


DIGITS = {"kind": "mlp", "dataset": "digits", "hidden": [32], "activation": "tanh"}
TEACHER = {"kind": "mlp", "dataset": "teacher", "hidden": [7, 5], "activation": "relu",
           "n_samples": 300, "n_inputs": 9, "n_outputs": 3, "init_seed": 2}

# (problem, optimizer kind, [(beta1, beta2, lr), ...]): the configurations. On
# digits a beta2 of 0.95 or less leaves the approach phase even at full batch:
# Adam's normalised step turns last-bit differences in the small gradients of
# rarely lit pixels into sign flips, and (0.5, 0.9, 1e-3) grew them from 3e-16
# at step 100 to 2.6e-8 at 250 and 6.6e-6 at 500 (0.5, 0.95, 3e-4: 1.7e-5).
FULL_BATCH = [
    ("digits-adam", DIGITS, "adam",
     [(0.9, 0.999, 1e-3), (0.0, 0.99, 3e-3), (0.5, 0.99, 1e-3)]),
    ("digits-sgd", DIGITS, "sgd", [(0.0, 0.0, 0.3), (0.9, 0.0, 0.05)]),
    ("teacher-adam", TEACHER, "adam", [(0.9, 0.999, 3e-3), (0.3, 0.95, 1e-3)]),
    ("teacher-sgd", TEACHER, "sgd", [(0.5, 0.0, 0.05)]),
]


def _doc(problem: dict[str, Any], kind: str, configs: list[tuple[float, float, float]],
         batch: list[int], steps: int, sampling: str = "reshuffle") -> dict[str, Any]:
    return {
        "problem": problem,
        "optimizer": {"kind": kind, "lr": configs[0][2], "schedule": "constant"},
        "sampling": sampling,
        "steps": steps,
        "grid": {
            "beta1": sorted({c[0] for c in configs}),
            "beta2": sorted({c[1] for c in configs}),
            "batch_size": batch,
            "lr": sorted({c[2] for c in configs}),
            "seed": [0],
        },
    }


def _rows(spec: Any, configs: list[tuple[float, float, float]], batch_index: int = 0):
    values = spec.axis_values()
    rows = [
        np.ravel_multi_index(
            (values["beta1"].index(b1), values["beta2"].index(b2), batch_index, 0,
             values["lr"].index(lr), 0),
            spec.axis_sizes(),
        )
        for b1, b2, lr in configs
    ]
    return runs_at(spec, rows)


def test_initial_weights_are_torch_nn_linear_under_the_seed() -> None:
    for problem in (DIGITS, {**DIGITS, "init_seed": 5, "hidden": [9, 4]}, TEACHER):
        net = _network(problem)
        want = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        p = build_problem(MlpSpec(**problem), **F64)
        assert torch.equal(p.x0(), want)
        assert p.blocks == [(a, b) for a, b in _offsets(net)]
        f32 = build_problem(MlpSpec(**problem), dtype=torch.float32, device=torch.device("cpu"))
        torch.manual_seed(MlpSpec(**problem).init_seed)
        first = torch.nn.Linear(f32.widths[0], f32.widths[1], dtype=torch.float32)
        assert torch.equal(f32.x0()[: first.weight.numel()], first.weight.detach().reshape(-1))


def _offsets(net: torch.nn.Module) -> list[tuple[int, int]]:
    out, at = [], 0
    for p in net.parameters():
        out.append((at, at + p.numel()))
        at += p.numel()
    return out


def test_digits_is_sklearns_bundled_data_over_16() -> None:
    d = load_digits()
    p = build_problem(MlpSpec(kind="mlp"), **F64)
    assert p.n == 1797 and p.widths == [64, 32, 10]
    np.testing.assert_array_equal(p.X[:, :64].numpy(), d.data / 16.0)
    np.testing.assert_array_equal(p.y.numpy(), d.target)
    assert p.f_star is None and p.x_star is None
    # the full objective is torch's mean cross-entropy over every sample
    net = _network(DIGITS)
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(net(torch.tensor(d.data / 16.0)),
                                                 torch.tensor(d.target))
    assert float(p.loss(p.x0()[None])[0]) == pytest.approx(want.item(), rel=1e-13)


def test_teacher_data_is_fixed_by_data_seed() -> None:
    a = build_problem(MlpSpec(**TEACHER), **F64)
    b = build_problem(MlpSpec(**TEACHER), **F64)
    c = build_problem(MlpSpec(**{**TEACHER, "data_seed": 1}), **F64)
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    assert not torch.equal(a.X, c.X)
    assert a.X.shape == (300, 16) and a.y.shape == (300, 3)  # 9 inputs padded to 16
    assert float(a.y.std()) > 0.1  # the teacher's outputs are not flat


@pytest.mark.parametrize("problem", [DIGITS, {**DIGITS, "hidden": []}, TEACHER,
                                     {**TEACHER, "hidden": [3, 17, 4], "activation": "tanh"}])
def test_minibatch_gradient_is_autograds_of_the_sampled_mean(problem: dict[str, Any]) -> None:
    p = build_problem(MlpSpec(**problem), **F64)
    g = torch.Generator().manual_seed(0)
    x = p.x0()[None] + 0.1 * torch.randn(4, p.dim, generator=g, dtype=torch.float64)
    steps = torch.arange(1, 5)
    for b in (1, 6, 40):
        stats = p.batch_stats(seed=2, batch_size=b, sampling="with_replacement", steps=steps)
        idx = batch_indices(seed=2, batch_size=b, sampling="with_replacement", steps=steps, n=p.n)
        got = p.grad(x, stats)
        for r in range(4):
            net = _network(problem)
            torch.nn.utils.vector_to_parameters(x[r].clone(), net.parameters())
            X, y = _data(problem)
            _loss(problem, net(X[idx[r]]), y[idx[r]]).backward()
            want = torch.cat([q.grad.reshape(-1) for q in net.parameters()])
            np.testing.assert_allclose(got[r].numpy(), want.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("name", "problem", "kind", "configs"), FULL_BATCH,
                         ids=[c[0] for c in FULL_BATCH])
def test_full_batch_matches_torch_nn_and_torch_optim(
    name: str, problem: dict[str, Any], kind: str, configs: list[tuple[float, float, float]]
) -> None:
    n = MlpSpec(**problem).samples()
    doc = _doc(problem, kind, configs, [n], steps=500)
    spec = parse_spec(doc)
    runs = _rows(spec, configs)
    result = run_chunk(spec, runs)
    for i, (b1, b2, lr) in enumerate(configs):
        want = _torch_run(doc, beta1=b1, beta2=b2, lr=lr, batch=n)
        moved = _relative_error(want, build_problem(spec.problem, **F64).x0().numpy())
        assert moved > 1e-3, f"{name} {b1, b2, lr}: the run barely moved ({moved:.1e})"
        err = _relative_error(result.x_final[i], want)
        assert err <= RTOL, f"{name} beta1={b1} beta2={b2} lr={lr}: relative error {err:.2e}"
    assert np.all(result.outcomes.final_rel < 1.0)  # every run trains


@pytest.mark.parametrize(("sampling", "problem"), [("with_replacement", DIGITS),
                                                   ("reshuffle", TEACHER)])
def test_minibatches_match_a_per_run_loop_over_batch_indices(
    sampling: str, problem: dict[str, Any]
) -> None:
    configs = [(0.9, 0.999, 3e-3)]
    batches = [1, 5, 32]
    doc = _doc(problem, "adam", configs, batches, steps=200, sampling=sampling)
    spec = parse_spec(doc)
    runs = all_runs(spec)
    result = run_chunk(spec, runs)  # one chunk holding every batch size
    for i in range(len(runs)):
        b = int(runs.batch_size[i])
        want = _torch_run(doc, beta1=0.9, beta2=0.999, lr=3e-3, batch=b)
        err = _relative_error(result.x_final[i], want)
        assert err <= RTOL, f"batch {b}: relative error {err:.2e}"


# --- chunk invariance -------------------------------------------------------------------------

INVARIANCE = {
    "problem": {"kind": "mlp", "hidden": [12], "init_seed": 1},
    "optimizer": {"kind": "adam", "lr": 0.02},
    "sampling": "with_replacement",
    "steps": 60,
    "grid": {
        "beta1": [0.0, 0.9],
        "beta2": [0.5],
        "batch_size": [1, 5, 16],
        "clip": [{"mode": "none"}, {"mode": "global_norm", "threshold": 0.5}],
        "seed": [0, 1],
    },
}


def _arrays(spec: Any, runs: Any) -> dict[str, np.ndarray]:
    r = run_chunk(spec, runs)
    return {"code": r.outcomes.code, "final_loss": r.outcomes.final_loss,
            "clip_fraction": r.outcomes.clip_fraction, "curves": r.curves,
            "x": r.x_final, "m": r.m_final, "v": r.v_final}


def test_results_are_bit_identical_whatever_the_chunking() -> None:
    spec = parse_spec(INVARIANCE)
    runs = all_runs(spec)
    whole = _arrays(spec, runs)
    assert whole["clip_fraction"].max() > 0
    n = len(runs)
    perm = np.random.default_rng(0).permutation(n)
    for sizes in ([1, 7, n - 21, 13], [n // 2, n - n // 2]):
        lo = 0
        for size in sizes:
            rows = perm[lo : lo + size]
            lo += size
            part = _arrays(spec, runs.take(rows))
            for name, arr in part.items():
                assert np.array_equal(arr, whole[name][rows], equal_nan=True), (name, sizes)


def test_float32_teacher_is_bit_identical_whatever_the_chunking() -> None:
    doc = {**INVARIANCE, "dtype": "float32",
           "problem": {**TEACHER, "hidden": [7], "n_samples": 200}}
    spec = parse_spec(doc)
    runs = all_runs(spec)
    whole = _arrays(spec, runs)
    for rows in (np.arange(len(runs))[::-1][:11], np.asarray([3]), np.arange(5, 20)):
        part = _arrays(spec, runs.take(rows))
        for name, arr in part.items():
            assert np.array_equal(arr, whole[name][rows], equal_nan=True), name


def test_thread_count_does_not_change_results() -> None:
    doc = {**INVARIANCE, "steps": 12}
    doc["grid"] = {**doc["grid"], "beta1": [0.9], "batch_size": [5, 16],
                   "clip": [{"mode": "none"}]}
    spec = parse_spec(doc)
    runs = all_runs(spec)
    one = _arrays(spec, runs)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two = _arrays(spec, runs)
    finally:
        torch.set_num_threads(before)
    for name, arr in one.items():
        assert np.array_equal(arr, two[name], equal_nan=True), name


# --- science ----------------------------------------------------------------------------------


def test_default_adam_fits_digits_at_batch_32() -> None:
    # Adam's defaults (0.9, 0.999), lr 1e-2: the train loss falls below 0.1 (from 2.3)
    doc = {
        "problem": {"kind": "mlp", "dataset": "digits"},
        "optimizer": {"kind": "adam", "lr": 0.01, "schedule": "constant"},
        "sampling": "reshuffle",
        "steps": 600,
        "grid": {"beta1": [0.9], "beta2": [0.999], "batch_size": [32], "seed": [0, 1]},
    }
    spec = parse_spec(doc)
    result = run_chunk(spec, all_runs(spec))
    assert result.curves[:, 0].min() > 1.0
    assert np.all(result.outcomes.final_loss < 0.1), result.outcomes.final_loss


# --- the spec -----------------------------------------------------------------------------------


def _errors(problem: dict[str, Any], batch: list[int] | None = None) -> list[tuple[str, str]]:
    doc = {"problem": {"kind": "mlp", **problem}, "steps": 10,
           "grid": {"batch_size": batch or [1]}}
    with pytest.raises(SpecError) as exc:
        parse_spec(doc)
    return exc.value.errors


@pytest.mark.parametrize(
    ("problem", "batch", "field"),
    [
        ({"dataset": "mnist"}, None, "problem.dataset"),
        ({"hidden": [0]}, None, "problem.hidden[0]"),
        ({"hidden": [32, -1]}, None, "problem.hidden[1]"),
        ({"hidden": [5000]}, None, "problem.hidden[0]"),
        ({"hidden": [4096, 4096]}, None, "problem.hidden"),
        ({"hidden": [1] * 9}, None, "problem.hidden"),
        ({"activation": "gelu"}, None, "problem.activation"),
        ({"init_seed": -1}, None, "problem.init_seed"),
        ({"n_samples": 100}, None, "problem.n_samples"),
        ({"n_inputs": 3}, None, "problem.n_inputs"),
        ({"dataset": "teacher", "n_samples": 0}, None, "problem.n_samples"),
        ({"width": 3}, None, "problem.width"),
        ({}, [1798], "grid.batch_size"),
        ({"dataset": "teacher", "n_samples": 100}, [128], "grid.batch_size"),
    ],
)
def test_bad_specs_name_the_field(problem: dict[str, Any], batch: list[int] | None,
                                  field: str) -> None:
    errors = _errors(problem, batch)
    assert field in [loc for loc, _ in errors], errors


def test_parameter_cap_is_stated() -> None:
    (loc, msg), *_ = _errors({"hidden": [2048, 512]})
    assert loc == "problem.hidden" and f"{MAX_PARAMS:,}" in msg


def test_init_seed_is_an_axis_and_teacher_fields_are_not_for_digits() -> None:
    doc = {"problem": {"kind": "mlp", "hidden": [8]}, "steps": 3,
           "grid": {"batch_size": [4], "problem.init_seed": [0, 1, 2]}}
    spec = parse_spec(doc)
    result = run_chunk(spec, all_runs(spec))
    first = result.curves[:, 0]
    assert len(set(first.tolist())) == 3  # three initial networks
    doc["grid"] = {"batch_size": [4], "problem.n_samples": [100, 200]}
    with pytest.raises(SpecError) as exc:
        parse_spec(doc)
    assert exc.value.errors[0][0] == "grid.problem.n_samples[0]", exc.value.errors
