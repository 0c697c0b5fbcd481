"""A notebook's maps over extra axes and any two axes: `Result.phase_map(...)` slices an
extra axis by its path and maps any two axes as GET /phase-map does, `scaling()` draws
one point of the extra axes, and a scale that is not one of the page's is an error."""

from __future__ import annotations

from typing import Any

import pytest

import betascope
from experiments import analysis
from experiments.outcomes import OUTCOMES

# zhang2022 over n = 5, 50: 288 runs of 200 steps, a few tenths of a second; beta2* exists
# for beta1 = 0.9, 0.97 at lr 0.1 for both n, and differs between them
N_SPEC: dict[str, Any] = {
    "name": "notebook n axis",
    "problem": {"kind": "zhang2022", "x0": -0.5},
    "optimizer": {"schedule": "inv_sqrt", "bias_correction": False},
    "steps": 200,
    "grid": {
        "beta1": [0.0, 0.9, 0.97],
        "beta2": {"log1m": [0.0001, 1.0], "num": 6},
        "batch_size": [1, 4],
        "lr": [0.1, 0.3],
        "seed": [0, 1],
        "problem.n": [5, 50],
    },
}
N = {"problem.n": 50}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread: None) -> None:
    """The engine runs here on one torch thread (conftest.one_thread)."""


@pytest.fixture(scope="module")
def result() -> Any:
    return betascope.run(N_SPEC, device="cpu", progress=False)


def majority(result: Any, n: int, batch_size: int = 1, lr: float = 0.1) -> list[list[float]]:
    """The majority outcome per (beta2, beta1), rows over beta2, from the cells table."""
    c = result.cells
    c = c[(c["problem.n"] == n) & (c["batch_size"] == batch_size) & (c["lr"] == lr)
          & (c["clip"] == "none")]
    grid = c.pivot(index="beta2", columns="beta1", values="outcome").sort_index()
    return [[float(OUTCOMES.index(o)) for o in row] for row in grid[sorted(grid.columns)].values]


def test_an_extra_axis_is_sliced_by_its_path(result: Any) -> None:
    first, fifty = result.phase_map(), result.phase_map(**N)
    assert [list(r) for r in first.data[0].z] == majority(result, 5)
    assert [list(r) for r in fifty.data[0].z] == majority(result, 50)
    assert fifty.data[0].z != first.data[0].z
    # the star is the n = 50 slice's, as analysis finds it for GET /phase-map
    local = result._local
    sl = analysis.slice_index(result.spec, **N)
    want = analysis.beta2_star(result.spec, analysis.cells_at(result.spec, local.cells(), sl), sl)
    lines = [t for t in fifty.data if t.name.startswith("β2*")]  # none where all are null
    star = ([None if v is None else 1 - 10 ** v for v in lines[0].y] if lines
            else [None] * len(want))
    assert star == pytest.approx(want) and want != local.phase_map()["beta2_star"]
    with pytest.raises(ValueError, match="problem.n"):
        result.phase_map(**{"problem.n": 7})
    with pytest.raises(ValueError, match="bogus"):
        result.phase_map(bogus=1)


def test_any_two_axes_are_mapped_as_the_rest_api_maps_them(result: Any) -> None:
    fig = result.phase_map("diverged_frac", x="lr", y="beta2", beta1=0.9, batch_size=4, **N)
    pm = result._local.phase_map("diverged_frac", "lr", "beta2", beta1=0.9, batch_size=4, **N)
    assert pm["x"]["name"] == "lr" and pm["slice"] == {"beta1": 0.9, "batch_size": 4,
                                                         "clip": "none", "problem.n": 50}
    assert [list(r) for r in fig.data[0].z] == pm["z"]
    assert len(fig.data) == 1  # no sqrt curve nor beta2* off the (beta1, beta2) plane
    assert fig.layout.xaxis.title.text == "lr" and fig.data[0].text[0][0].startswith("lr = 0.1")
    by_n = result.phase_map(x="problem.n", y="beta2", scale={"x": "log"})
    assert by_n.layout.xaxis.title.text == "problem.n  (log spaced)"
    assert list(by_n.layout.xaxis.ticktext) == ["5", "50"]
    with pytest.raises(ValueError, match="lr: not a slice axis"):
        result.phase_map(x="lr", lr=0.1)
    with pytest.raises(ValueError, match="x: 'seed'"):
        result.phase_map(x="seed")


def test_scaling_draws_one_point_of_the_extra_axes(result: Any) -> None:
    rows = {n: [r for r in result.boundary()["by_batch"]
                if r["problem.n"] == n and r["lr"] == 0.1 and r["clip"] == "none"]
            for n in (5, 50)}
    for fig, n in ((result.scaling(), 5), (result.scaling(**{"problem.n": 50}), 50)):
        names = [t.name for t in fig.data]
        assert len(names) == len(set(names)) == 2, names
        drawn = {t.name.split(" ·")[0]: [None if v is None else 1 - 10 ** v for v in t.y]
                 for t in fig.data}
        want = {f"β1 = {r['beta1']:g}": r["beta2_star"] for r in rows[n]
                if any(v is not None for v in r["beta2_star"])}
        assert drawn.keys() == want.keys()
        for k, stars in want.items():
            assert drawn[k] == pytest.approx(stars)
    assert rows[5] != rows[50]
    with pytest.raises(ValueError, match="problem.n"):
        result.scaling(**{"problem.n": 6})
    with pytest.raises(ValueError, match="batch_size"):
        result.scaling(batch_size=1)


@pytest.mark.parametrize("scale", ["foo", "log", {"x": "log"}, {"y": "lin"}, {"z": "linear"},
                                   3, ["linear"]])
def test_a_scale_the_page_does_not_draw_is_an_error(result: Any, scale: Any) -> None:
    with pytest.raises(ValueError, match=r"^scale: .*'linear'"):
        result.phase_map(scale=scale)


def test_the_scales_each_axis_allows(result: Any) -> None:
    assert result.phase_map(scale={"x": "linear"}).layout.xaxis.title.text == "β1"
    lr = result.phase_map(x="lr", scale={"x": "log", "y": "log1m"})
    assert lr.layout.xaxis.title.text == "lr  (log spaced)"
    with pytest.raises(ValueError, match="scale: 'log1m' does not suit lr"):
        result.phase_map(x="lr", scale="log1m")
