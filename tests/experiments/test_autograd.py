"""AutogradProblem: a loss(params, batch) written by a user becomes an engine Problem.

Held to the built-in lstsq: the same objective written as a loss over per-sample
weights gives the same gradients at every minibatch, and the same runs in the
engine. Plug-in loading keeps a broken plug-in's error instead of failing.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest
import torch

from experiments.engine import _Simulation
from experiments.problems import build_problem, plugins
from experiments.problems.autograd import AutogradProblem, Vectorized
from experiments.problems.base import REGISTRY, ProblemBase
from experiments.runs import all_runs
from experiments.spec import LstsqSpec, parse_spec

Tensor = torch.Tensor
F64 = {"dtype": torch.float64, "device": torch.device("cpu")}


class LstsqByAutograd(AutogradProblem):
    """1/(2n) |A x - y|^2 as a weighted sum over samples, in three tensors of
    different shapes (a [2, 2] matrix, a vector, a scalar) to exercise unflattening."""

    def __init__(self, a: Tensor, y: Tensor, x0: float):
        self.a, self.y = a, y
        d = a.shape[1]
        assert d == 7
        x = torch.full((d,), x0, dtype=a.dtype)
        super().__init__(
            params={"m": x[:4].reshape(2, 2), "v": x[4:6], "s": x[6]}, n_samples=a.shape[0]
        )

    def loss(self, params: dict[str, Tensor], batch: Tensor) -> Tensor:
        x = torch.cat([params["m"].reshape(-1), params["v"], params["s"].reshape(1)])
        r = self.a @ x - self.y
        return (batch * r * r).sum() / 2


def _pair() -> tuple[Any, Vectorized]:
    spec = LstsqSpec(
        kind="lstsq",
        n_samples=20,
        block_scales=[1.0, 3.0, 0.5, 2.0, 1.0, 4.0, 1.0],
        block_dim=1,
        x0=0.7,
    )
    builtin = build_problem(spec, **F64)
    return builtin, Vectorized(LstsqByAutograd(builtin.A, builtin.y, 0.7))


def test_shapes_blocks_and_the_full_objective() -> None:
    builtin, auto = _pair()
    assert auto.dim == 7 and auto.blocks == [(0, 4), (4, 6), (6, 7)]
    assert auto.n_stats == 20 and auto.x_star is None and auto.f_star is None
    assert torch.equal(auto.x0(), builtin.x0())
    x = torch.randn(9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    # the full objective is the loss at uniform weights: lstsq's mean
    np.testing.assert_allclose(auto.loss(x).numpy(), builtin.loss(x).numpy(), rtol=1e-13)


@pytest.mark.parametrize(
    ("b", "sampling"), [(1, "with_replacement"), (6, "reshuffle"), (20, "reshuffle")]
)
def test_minibatch_gradients_equal_the_builtin(b: int, sampling: str) -> None:
    builtin, auto = _pair()
    steps = torch.arange(1, 31)
    s_auto = auto.batch_stats(seed=2, batch_size=b, sampling=sampling, steps=steps)
    s_builtin = builtin.batch_stats(seed=2, batch_size=b, sampling=sampling, steps=steps)
    assert torch.equal(s_auto, s_builtin)  # the same samples, as weights summing to 1
    np.testing.assert_allclose(s_auto.sum(dim=1).numpy(), 1.0, rtol=1e-15)
    x = torch.randn(30, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(
        auto.grad(x, s_auto).numpy(), builtin.grad(x, s_builtin).numpy(), rtol=1e-11, atol=1e-13
    )


def test_engine_runs_the_autograd_problem_as_the_builtin() -> None:
    builtin, auto = _pair()
    spec = parse_spec(
        {
            "problem": {
                "kind": "lstsq",
                "n_samples": 20,
                "block_dim": 1,
                "block_scales": [1.0, 3.0, 0.5, 2.0, 1.0, 4.0, 1.0],
                "x0": 0.7,
            },
            "optimizer": {"lr": 0.01},
            "steps": 100,
            "grid": {
                "beta1": [0.0, 0.9],
                "batch_size": [1, 5],
                "seed": [0, 1],
                "clip": [{"mode": "global_norm", "threshold": 1.0}],
            },
        }
    )
    runs = all_runs(spec)
    clip = spec.axis_values()["clip"][0]
    ckpts = [50, 100]
    out = []
    for problem in (builtin, auto):
        sim = _Simulation(spec, problem, runs, clip, torch.device("cpu"), torch.float64, "eager")
        curves, _, final = sim.run(ckpts, lambda _: None, None)
        out.append((curves, final["x"]))
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=1e-10)
    np.testing.assert_allclose(out[1][1], out[0][1], rtol=1e-10, atol=1e-12)


def test_empty_params_and_samples_are_errors() -> None:
    with pytest.raises(ValueError, match="params"):
        AutogradProblem(params={}, n_samples=3)
    with pytest.raises(ValueError, match="n_samples"):
        AutogradProblem(params={"w": torch.zeros(2)}, n_samples=0)


class DuplicateSpec(ProblemBase):
    kind: Literal["lstsq"]

    def build(self, *, dtype: Any, device: Any) -> Any:
        raise AssertionError("never built")


class NoBuildSpec(ProblemBase):
    kind: Literal["nobuild"]


class ZeroChunkSpec(ProblemBase):
    kind: Literal["zerochunk"]
    eager_chunk_runs: ClassVar[int] = 0  # a server would cut chunks of it by this

    def build(self, *, dtype: Any, device: Any) -> Any:
        raise AssertionError("never built")


def test_a_broken_plugin_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [
        EntryPoint("nothere", "no_such_module_xyz:Spec", plugins.GROUP),
        EntryPoint("notaspec", "json:loads", plugins.GROUP),
        EntryPoint("lstsq", f"{__name__}:DuplicateSpec", plugins.GROUP),
        EntryPoint("nobuild", f"{__name__}:NoBuildSpec", plugins.GROUP),
        EntryPoint("wrongname", "experiments.problems.poly:PolySpec", plugins.GROUP),
        EntryPoint("zerochunk", f"{__name__}:ZeroChunkSpec", plugins.GROUP),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: eps)
    before = dict(REGISTRY)
    errors = plugins.load_plugins()
    assert dict(REGISTRY) == before
    assert set(errors) == {"nothere", "notaspec", "lstsq", "nobuild", "wrongname", "zerochunk"}
    assert "has no build" in errors["nobuild"]
    assert "ModuleNotFoundError" in errors["nothere"]
    assert "subclass" in errors["notaspec"]
    assert "already registered" in errors["lstsq"]
    assert "kind 'poly'" in errors["wrongname"]
    assert "eager_chunk_runs must be a whole number of at least 1, got 0" in errors["zerochunk"]


def test_loading_the_plugins_and_validating_a_plugin_spec_imports_no_torch() -> None:
    # the API validates specs naming plug-in kinds; only a chunk run may load torch
    code = (
        "import sys; from experiments.spec import parse_spec; "
        "from experiments.problems import KINDS, PLUGIN_ERRORS; "
        "parse_spec({'problem': {'kind': 'logreg'}, 'steps': 5, 'grid': {}}); "
        "print('logreg' in KINDS, PLUGIN_ERRORS == {}, 'torch' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "True", "False"], out.stdout + out.stderr
