"""A plug-in that breaks a rule gets one error naming its kind, its module and the
rule, when its problem is built (experiments/problems/plugin_checks.py): through
run_local, the engine call `betascope run` makes, and through `betascope run`
itself (exit 2, one `error:` line, no traceback). The plug-ins are
tests/experiments/fake_plugins.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import experiments.problems as problems
from experiments.local import run_local
from experiments.problems import plugins
from experiments.problems.base import REGISTRY
from experiments.spec import SpecError, SweepSpec, parse_spec
from tests.experiments import fake_plugins as fake

ROOT = Path(__file__).resolve().parents[2]
WHO = re.escape(f"(plug-in {fake.MODULE}): ")

# kind -> the message after "problem <kind> (plug-in <module>): "
EXPECTED = {
    "fake_build_raises": r"build\(\) raised RuntimeError: deliberate failure in build\(\)$",
    "fake_build_none": r"build\(\) must return an AutogradProblem .*got NoneType$",
    "fake_build_object": r"build\(\) must return an AutogradProblem \(or an engine Problem\), "
    r"got object \(no dim, blocks, n_stats, x_star, f_star, x0, loss, batch_stats, grad, "
    r"project\)$",
    "fake_item": r"Faulty\.loss\(params, batch\) must not call \.item\(\) \(it runs under torch"
    r"\.vmap\)$",
    "fake_float32": r"the parameters are float32 \('w'\), the spec asks for float64",
    "fake_x_star": r"x_star\['w'\] has shape \(3,\), the parameters have \(5,\)$",
    "fake_f_star": r"f_star must be finite, got nan$",
    "fake_inplace": r"Faulty\.loss\(params, batch\) must not modify params in place",
    "fake_vector": r"Faulty\.loss must return one scalar per run, got shape \(8,\)$",
    "fake_raises": r"Faulty\.loss\(params, batch\) raised ValueError: deliberate failure in "
    r"loss\(\)$",
    "fake_branch": r"Faulty\.loss\(params, batch\) must not branch on a tensor's value",
    "fake_samples": r"samples\(\) is 64 but Faulty has n_samples=8; they must be equal",
}

SPEC = """\
name: fake plug-in
problem: {{kind: {kind}}}
dtype: float64
steps: 20
grid:
  beta1: [0.0, 0.9]
  beta2: [0.9, 0.999]
  batch_size: [1, 4]
"""


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fake kinds in REGISTRY (through the entry-point loader) for one test."""
    eps = [EntryPoint(fake.kind(s), f"{fake.MODULE}:{s.__name__}", plugins.GROUP)
           for s in fake.SPECS]
    monkeypatch.setattr(plugins, "entry_points", lambda group: eps)
    before = dict(REGISTRY)
    try:
        assert plugins.load_plugins() == {}
        yield
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


def _sweep(spec_model: type[fake.ProblemBase]) -> SweepSpec:
    # the spec union was derived before these kinds were registered: swap the problem in
    base = parse_spec({"problem": {"kind": "zhang2022"}, "steps": 20,
                       "grid": {"beta1": [0.0, 0.9], "batch_size": [1, 4]}})
    return base.model_copy(update={"problem": spec_model(kind=fake.kind(spec_model))})


@pytest.mark.parametrize("spec_model", [s for s in fake.SPECS if s is not fake.Good],
                         ids=fake.kind)
def test_each_broken_rule_is_one_error_naming_the_plugin(
    registered: None, spec_model: type[fake.ProblemBase]
) -> None:
    kind = fake.kind(spec_model)
    with pytest.raises(ValueError) as info:  # what `betascope run` reports as `error: ...`
        run_local(_sweep(spec_model), device="cpu")
    assert isinstance(info.value, plugins.PluginError)
    assert re.match(f"problem {kind} {WHO}{EXPECTED[kind]}", str(info.value)), str(info.value)


def test_a_plugin_keeping_the_rules_runs(registered: None) -> None:
    result = run_local(_sweep(fake.Good), device="cpu")
    assert result.total == 4 and sum(result.outcome_counts().values()) == 4


def test_a_kind_whose_plugin_failed_to_load_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(problems.PLUGIN_ERRORS, "fake_broken",
                        "fakeplug (no_such_module_xyz:Spec): ModuleNotFoundError: no module")
    with pytest.raises(SpecError) as info:
        parse_spec({"problem": {"kind": "fake_broken"}, "steps": 5, "grid": {}})
    assert info.value.errors == [
        ("problem.kind", "plug-in fake_broken failed to load: fakeplug (no_such_module_xyz:Spec): "
                         "ModuleNotFoundError: no module")
    ]
    # any other unknown kind still gets the list of the kinds there are
    with pytest.raises(SpecError, match="problem.kind: must be one of .*zhang2022"):
        parse_spec({"problem": {"kind": "fake_brokn"}, "steps": 5, "grid": {}})


_DRIVER = """
import json, sys
from typer.testing import CliRunner
from api.cli import app
out = {}
for kind, path in json.loads(sys.argv[1]).items():
    res = CliRunner().invoke(app, ["run", path, "--out", path + ".csv", "--device", "cpu"])
    out[kind] = [res.exit_code, res.output, repr(res.exception)]
print(json.dumps(out))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    fake.write_dist_info(tmp_path)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}


def _specs(tmp_path: Path, kinds: list[str]) -> dict[str, str]:
    paths = {}
    for kind in kinds:
        path = tmp_path / f"{kind}.yaml"
        path.write_text(SPEC.format(kind=kind))
        paths[kind] = str(path)
    return paths


def test_betascope_run_prints_one_error_line_per_broken_plugin(tmp_path: Path) -> None:
    # one process (one torch import) runs `betascope run` (typer's CliRunner) on each;
    # the plug-ins are found through real entry points, as an installed package's are
    paths = _specs(tmp_path, [*EXPECTED, "fake_broken", "fake_good"])
    proc = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(paths)], cwd=ROOT,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.splitlines()[-1])
    for kind, want in EXPECTED.items():
        code, output, exc = results[kind]
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert code == 2 and "Traceback" not in output, (kind, output, exc)
        assert len(errors) == 1 and re.match(f"error: problem {kind} {WHO}{want}", errors[0]), (
            kind, output)
    code, output, _ = results["fake_broken"]
    assert code == 2 and "plug-in fake_broken failed to load" in output, output
    assert "ModuleNotFoundError" in output, output
    code, output, exc = results["fake_good"]
    assert code == 0, (output, exc)


def test_betascope_run_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    path = _specs(tmp_path, ["fake_vector"])["fake_vector"]
    proc = subprocess.run(
        [sys.executable, "-m", "api.cli", "run", path, "--out", str(tmp_path / "r.csv"),
         "--device", "cpu"],
        cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: problem fake_vector (plug-in {fake.MODULE}): Faulty.loss must return one "
        "scalar per run, got shape (8,)"
    ]
