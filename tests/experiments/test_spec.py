"""Sweep spec validation (DESIGN section 2) and run_key properties."""

from __future__ import annotations

import copy
import re
from typing import Any

import numpy as np
import pytest

from experiments import version
from experiments.presets import PRESETS
from experiments.runs import all_runs, runs_at
from experiments.spec import (
    DEFAULT_MAX_RUNS,
    RunCapError,
    SpecError,
    load_spec_text,
    parse_spec,
    parse_stored,
    run_keys,
)

BASE: dict[str, Any] = {
    "name": "base",
    "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
    "optimizer": {"kind": "adam", "lr": 0.1},
    "steps": 100,
    "grid": {
        "beta1": [0.0, 0.5],
        "beta2": [0.9, 0.99],
        "batch_size": [1, 2],
        "clip": [{"mode": "none"}, {"mode": "global_norm", "threshold": 1.0}],
        "seed": [0, 1],
    },
}

DESIGN_EXAMPLE = """
name: zhang n=20, batch study
problem: {kind: zhang2022, n: 20, x0: -0.5}
optimizer:
  kind: adam
  lr: 0.1
  schedule: inv_sqrt
  eps: 1.0e-8
  bias_correction: false
  weight_decay: 0.0
sampling: with_replacement
steps: 20000
dtype: float64
grid:
  beta1: {start: 0.0, stop: 0.99, num: 25}
  beta2: {start: 0.0, stop: 0.999, num: 25}
  batch_size: [1, 2, 4, 8]
  clip:
    - {mode: none}
    - {mode: global_norm, threshold: 1.0}
    - {mode: value, threshold: 0.5}
    - {mode: adagc, threshold: 1.0, ratio: 1.05, beta: 0.98, warmup: 100}
  lr: [0.1]
  seed: [0, 1, 2]
criteria: {converge_rel: 0.05, diverge_rel: 10.0}
"""


def _with(*changes: tuple[str, Any]) -> dict[str, Any]:
    """BASE with dotted paths set (value DELETE removes the key)."""
    doc = copy.deepcopy(BASE)
    for path, value in changes:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if value is DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return doc


DELETE = object()

# (id, changes, field the single error must name, words its message must contain)
BAD_SPECS: list[tuple[str, tuple[tuple[str, Any], ...], str, str]] = [
    ("beta1-repeated", (("grid.beta1", [0.1, 0.1]),), "grid.beta1", "distinct"),
    (
        "clip-repeated",
        (("grid.clip", [{"mode": "value", "threshold": 1.0}] * 2),),
        "grid.clip",
        "distinct",
    ),
    ("beta1-one", (("grid.beta1", [0.0, 1.0]),), "grid.beta1", "[0, 1)"),
    ("beta1-negative", (("grid.beta1", [-0.1]),), "grid.beta1", "[0, 1)"),
    ("beta2-nan", (("grid.beta2", [float("nan")]),), "grid.beta2", "[0, 1)"),
    ("beta2-above-one", (("grid.beta2", [0.5, 1.5]),), "grid.beta2", "[0, 1)"),
    (
        "beta1-linspace-to-one",
        (("grid.beta1", {"start": 0, "stop": 1, "num": 3}),),
        "grid.beta1",
        "[0, 1)",
    ),
    (
        "beta2-linspace-negative",
        (("grid.beta2", {"start": -0.5, "stop": 0.9, "num": 3}),),
        "grid.beta2",
        "[0, 1)",
    ),
    (
        "linspace-num-zero",
        (("grid.beta1", {"start": 0, "stop": 0.5, "num": 0}),),
        "grid.beta1.num",
        "greater than or equal to 1",
    ),
    (
        "log1m-zero",
        (("grid.beta2", {"log1m": [0.0, 1.0], "num": 4}),),
        "grid.beta2.log1m",
        "(0, 1]",
    ),
    (
        "log1m-above-one",
        (("grid.beta2", {"log1m": [0.01, 2.0], "num": 4}),),
        "grid.beta2.log1m",
        "(0, 1]",
    ),
    # 1 - 1e-20 rounds to 1.0: caught as a beta, not let through as a log1m end.
    (
        "log1m-rounds-to-one",
        (("grid.beta2", {"log1m": [1e-20, 1.0], "num": 4}),),
        "grid.beta2",
        "[0, 1)",
    ),
    ("log1m-for-beta1", (("grid.beta1", {"log1m": [0.01, 1.0], "num": 4}),), "grid.beta1", "beta2"),
    # below 1 in float64, exactly 1.0 in float32
    (
        "beta2-rounds-to-one-in-float32",
        (("dtype", "float32"), ("grid.beta2", {"log1m": [1e-9, 1e-3], "num": 3})),
        "grid.beta2",
        "float32",
    ),
    # distinct in float64, one number in float32: two map columns, one computation
    (
        "beta2-twice-in-float32",
        (("dtype", "float32"), ("grid.beta2", [0.99, 0.9900000001])),
        "grid.beta2",
        "0.99 and 0.9900000001 are one number in float32",
    ),
    (
        "lr-twice-in-float32",
        (("dtype", "float32"), ("grid.lr", [0.1, 0.10000000001])),
        "grid.lr",
        "one number in float32",
    ),
    # float32 would run these as inf and 0 (numpy only warned of the overflow)
    (
        "lr-overflows-float32",
        (("dtype", "float32"), ("grid.lr", [0.1, 1e39])),
        "grid.lr",
        "1e+39 is beyond float32's range",
    ),
    (
        "lr-underflows-float32",
        (("dtype", "float32"), ("optimizer.lr", 1e-50)),
        "optimizer.lr",
        "1e-50 is below float32's range",
    ),
    # lax pydantic read true as 1 (one step) and false as 0.0
    ("steps-true", (("steps", True),), "steps", "true or false where a number goes"),
    ("beta-false", (("grid.beta1", [False, 0.5]),), "grid.beta1", "true or false"),
    ("batch-true", (("grid.batch_size", [True]),), "grid.batch_size", "true or false"),
    ("seed-false", (("grid.seed", [False]),), "grid.seed", "true or false"),
    ("problem-n-true", (("problem.n", True),), "problem.n", "true or false"),
    ("lr-true", (("optimizer.lr", True),), "optimizer.lr", "true or false"),
    ("threshold-true", (("grid.clip.1.threshold", True),), "grid.clip[1].threshold", "true or"),
    ("linspace-false", (("grid.beta1", {"start": False, "stop": 0.5, "num": 2}),),
     "grid.beta1.start", "true or false"),
    ("unknown-top-key", (("stpes", 10),), "stpes", "not permitted"),
    ("unknown-problem-key", (("problem.nn", 10),), "problem.nn", "not permitted"),
    ("unknown-optimizer-key", (("optimizer.betas", [0.9]),), "optimizer.betas", "not permitted"),
    ("unknown-grid-key", (("grid.beta3", [0.1]),), "grid.beta3", "not permitted"),
    (
        "unknown-linspace-key",
        (("grid.beta1", {"start": 0, "stop": 0.5, "num": 2, "step": 1}),),
        "grid.beta1.step",
        "not permitted",
    ),
    (
        "unknown-log1m-key",
        (("grid.beta2", {"log1m": [0.01, 1], "num": 2, "base": 10}),),
        "grid.beta2.base",
        "not permitted",
    ),
    ("unknown-clip-key", (("grid.clip.1.thresh", 2.0),), "grid.clip[1].thresh", "not permitted"),
    ("unknown-criteria-key", (("criteria.converge", 0.1),), "criteria.converge", "not permitted"),
    ("unknown-problem-kind", (("problem.kind", "rosenbrock"),), "problem.kind", "zhang2022"),
    ("unknown-optimizer-kind", (("optimizer.kind", "adamax"),), "optimizer.kind", "adam_mini"),
    ("field-the-kind-lacks", (("optimizer", {"kind": "sgd", "eps": 1e-8}),
                              ("grid.beta2", [0.9])), "optimizer.eps", "not permitted"),
    ("adam-field-on-lion", (("optimizer", {"kind": "lion", "amsgrad": True}),),
     "optimizer.amsgrad", "not permitted"),
    ("sgd-momentum-1", (("optimizer", {"kind": "sgd"}), ("grid.beta1", [0.5, 1.0]),
                        ("grid.beta2", [0.9])), "grid.beta1", "[0, 1)"),
    ("negative-eps", (("optimizer.eps", -1e-8),), "optimizer.eps", "greater than or equal to 0"),
    ("negative-rmsprop-eps", (("optimizer", {"kind": "rmsprop", "eps": -1.0}),),
     "optimizer.eps", "greater than or equal to 0"),
    ("sgd-two-beta2", (("optimizer.kind", "sgd"),), "grid.beta2",
     "sgd does not use beta2; give one value"),
    ("adagrad-two-beta1", (("optimizer.kind", "adagrad"), ("grid.beta2", [0.9])), "grid.beta1",
     "adagrad does not use beta1"),
    ("signum-two-beta2", (("optimizer.kind", "signum"),), "grid.beta2", "signum does not use"),
    ("nesterov-dampening", (("optimizer", {"kind": "sgd", "nesterov": True, "dampening": 0.1}),
                            ("grid.beta2", [0.9])), "optimizer.dampening", "nesterov"),
    ("warmup-past-steps", (("optimizer", {"kind": "adam", "schedule": "warmup_cosine",
                                          "warmup_steps": 100}),),
     "optimizer.warmup_steps", "below steps"),
    ("final-lr-ratio-over-1", (("optimizer.final_lr_ratio", 1.5),), "optimizer.final_lr_ratio",
     "less than or equal to 1"),
    ("unknown-clip-mode", (("grid.clip.0", {"mode": "norm"}),), "grid.clip[0]", "norm"),
    ("unknown-schedule", (("optimizer.schedule", "cosine"),), "optimizer.schedule", "inv_sqrt"),
    ("unknown-sampling", (("sampling", "shuffle"),), "sampling", "reshuffle"),
    ("unknown-dtype", (("dtype", "float16"),), "dtype", "float32"),
    ("empty-beta1", (("grid.beta1", []),), "grid.beta1", "empty"),
    ("empty-beta2", (("grid.beta2", []),), "grid.beta2", "empty"),
    ("empty-batch", (("grid.batch_size", []),), "grid.batch_size", "empty"),
    ("empty-clip", (("grid.clip", []),), "grid.clip", "empty"),
    ("empty-lr", (("grid.lr", []),), "grid.lr", "empty"),
    ("empty-seed", (("grid.seed", []),), "grid.seed", "empty"),
    ("batch-over-samples", (("grid.batch_size", [1, 21]),), "grid.batch_size", "21"),
    (
        "batch-over-lstsq-samples",
        (("problem", {"kind": "lstsq", "n_samples": 16}), ("grid.batch_size", [17])),
        "grid.batch_size",
        "17",
    ),
    ("reddi-batch", (("problem", {"kind": "reddi2018"}),), "grid.batch_size", "1"),
    ("batch-zero", (("grid.batch_size", [0]),), "grid.batch_size", "at least 1"),
    ("steps-zero", (("steps", 0),), "steps", "greater than or equal to 1"),
    ("steps-negative", (("steps", -5),), "steps", "greater than or equal to 1"),
    ("steps-missing", (("steps", DELETE),), "steps", "required"),
    ("lr-zero", (("optimizer.lr", 0.0),), "optimizer.lr", "greater than 0"),
    ("lr-negative", (("optimizer.lr", -0.1),), "optimizer.lr", "greater than 0"),
    ("grid-lr-zero", (("grid.lr", [0.1, 0.0]),), "grid.lr", "positive"),
    ("grid-lr-inf", (("grid.lr", [float("inf")]),), "grid.lr", "positive"),
    ("decay-with-adam", (("optimizer.weight_decay", 0.01),), "optimizer.weight_decay", "adamw"),
    (
        "threshold-zero",
        (("grid.clip.1.threshold", 0.0),),
        "grid.clip[1].threshold",
        "greater than 0",
    ),
    (
        "criteria-order",
        (("criteria", {"converge_rel": 1.0, "diverge_rel": 0.5}),),
        "criteria.diverge_rel",
        "converge_rel",
    ),
    # rel = (f - f*) / (f(x0) - f*) is undefined for a run that starts at x*
    ("zhang-x0-at-optimum", (("problem.x0", -2.0),), "problem.x0", "x*"),
    (
        "reddi-x0-at-optimum",
        (("problem", {"kind": "reddi2018", "x0": -1.0}), ("grid.batch_size", [1])),
        "problem.x0",
        "x*",
    ),
    (
        "reddi-stochastic-x0-at-optimum",
        (("problem", {"kind": "reddi2018_stochastic", "x0": -1.0}),),
        "problem.x0",
        "x*",
    ),
    ("zhang-n-small", (("problem.n", 2),), "problem.n", "greater than or equal to 3"),
    (
        "reddi-C-small",
        (("problem", {"kind": "reddi2018", "C": 2.0}), ("grid.batch_size", [1])),
        "problem.C",
        "greater than 2",
    ),
]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [case[1:] for case in BAD_SPECS],
    ids=[case[0] for case in BAD_SPECS],
)
def test_bad_spec_is_rejected_with_one_message_naming_the_field(
    changes: tuple[tuple[str, Any], ...], field: str, words: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_with(*changes))
    errors = info.value.errors
    assert len(errors) == 1, f"want one error naming {field!r}, got {errors}"
    ((loc, message),) = errors
    assert loc == field, errors
    assert words in message, errors
    assert str(info.value).startswith(f"{field}: "), str(info.value)


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_with(("steps", 0), ("grid.beta1", [2.0]), ("optimizer.lr", -1.0)))
    assert {loc for loc, _ in info.value.errors} == {"steps", "grid.beta1", "optimizer.lr"}


def test_grid_over_the_cap_raises_run_cap_error() -> None:
    doc = _with(
        ("grid.beta1", {"start": 0.0, "stop": 0.9, "num": 2000}),
        ("grid.beta2", {"log1m": [1e-4, 1.0], "num": 2001}),
    )
    total = 2000 * 2001 * 2 * 2 * 2
    with pytest.raises(RunCapError) as info:
        parse_spec(doc, max_runs=total - 1)
    assert (info.value.total, info.value.cap) == (total, total - 1)
    assert info.value.errors == [("grid", f"{total} runs exceed the cap of {total - 1} runs")]
    assert isinstance(info.value, SpecError)  # callers that catch SpecError see it too
    assert parse_spec(doc, max_runs=total).total_runs() == total
    # The default cap is DESIGN's 10,000,000, without materializing the grid.
    assert total > DEFAULT_MAX_RUNS == 10_000_000
    with pytest.raises(RunCapError):
        parse_spec(doc)


@pytest.mark.parametrize(
    "text",
    [
        "problem: {kind: zhang2022\nsteps: 3\n",
        "grid:\n  beta1: [0.0\n  beta2: [0.5]\n",
        "name: 'unterminated\n",
        "\tsteps: 3\n",
    ],
)
def test_yaml_syntax_error_is_one_line_with_its_position(text: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(text)
    message = str(info.value)
    assert message.startswith("not valid YAML or JSON"), message
    assert "\n" not in message, message
    assert re.search(r"line \d+, column \d+", message), message


@pytest.mark.parametrize("text", ["", "- 1\n- 2\n", "just text\n", "42\n"])
def test_document_that_is_not_a_mapping_is_rejected(text: str) -> None:
    with pytest.raises(SpecError, match="mapping"):
        load_spec_text(text)


def test_design_example_and_presets_are_valid() -> None:
    spec = load_spec_text(DESIGN_EXAMPLE)
    assert spec.axis_sizes() == (25, 25, 4, 4, 1, 3)
    assert spec.total_runs() == 30_000
    for name, doc in PRESETS.items():
        assert parse_spec(doc).total_runs() > 0, name
    assert {"zhang2022-batch", "reddi2018-theorem1"} <= set(PRESETS)


def test_json_is_accepted_as_yaml() -> None:
    import json

    assert load_spec_text(json.dumps(BASE)) == parse_spec(BASE)


def test_log1m_axis_is_ascending_with_one_minus_beta_log_spaced() -> None:
    spec = parse_spec(_with(("grid.beta2", {"log1m": [1e-4, 1.0], "num": 5})))
    beta2 = spec.axis_values()["beta2"]
    assert beta2 == sorted(beta2) and beta2[0] == 0.0
    np.testing.assert_allclose(1.0 - np.asarray(beta2), [1.0, 0.1, 0.01, 1e-3, 1e-4], rtol=1e-9)


def test_linspace_axis_matches_numpy() -> None:
    spec = parse_spec(_with(("grid.beta1", {"start": 0.0, "stop": 0.99, "num": 25})))
    assert spec.axis_values()["beta1"] == np.linspace(0.0, 0.99, 25).tolist()


def test_a_bool_is_kept_where_a_field_takes_one() -> None:
    spec = parse_spec(_with(("optimizer.amsgrad", True)))
    assert spec.optimizer.amsgrad is True


def test_beta_close_to_one_is_fine_in_float64_and_representable_float32() -> None:
    near = {"log1m": [1e-9, 1e-3], "num": 3}
    assert parse_spec(_with(("grid.beta2", near))).axis_values()["beta2"][-1] == 1 - 1e-9
    parse_spec(_with(("dtype", "float32"), ("grid.beta2", [0.999999])))


def test_grid_lr_overrides_optimizer_lr() -> None:
    spec = parse_spec(_with(("grid.lr", [0.5, 0.25])))
    assert spec.axis_values()["lr"] == [0.5, 0.25]
    assert parse_spec(BASE).axis_values()["lr"] == [0.1]


# --- run_key ----------------------------------------------------------------------------------

ONE_RUN = {"beta1": 0.5, "beta2": 0.99, "batch_size": 2, "clip": 1, "lr": 0.1, "seed": 1}


def _key_of(doc: dict[str, Any], kernel: str = "eager", **run: Any) -> str:
    """The run_key of the run with axis values ONE_RUN (clip by index) in `doc`."""
    spec = parse_spec(doc)
    want = {**ONE_RUN, **run}
    values = spec.axis_values()
    index = []
    for axis, v in want.items():
        if axis == "clip":
            target = parse_spec(BASE).axis_values()["clip"][v].model_dump()
            index.append([c.model_dump() for c in values["clip"]].index(target))
        else:
            index.append(values[axis].index(v))
    flat = np.ravel_multi_index(tuple(index), spec.axis_sizes())
    (key,) = run_keys(spec, runs_at(spec, [flat]), kernel=kernel)
    return key


def test_run_key_is_stable_and_shaped_like_sha256() -> None:
    spec = parse_spec(BASE)
    keys = run_keys(spec, all_runs(spec)).astype(str).tolist()
    assert keys == run_keys(parse_spec(copy.deepcopy(BASE)), all_runs(spec)).astype(str).tolist()
    assert all(re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)
    assert len(set(keys)) == len(keys) == spec.total_runs()


# Specs that differ only in what does not determine the run: same key.
SAME_KEY: list[tuple[str, tuple[tuple[str, Any], ...]]] = [
    ("name", (("name", "another name"),)),
    ("other-beta1-values", (("grid.beta1", [0.9, 0.5, 0.1]),)),
    ("other-beta2-values", (("grid.beta2", [0.99]),)),
    ("other-batches", (("grid.batch_size", [2, 8, 20]),)),
    ("other-clips", (("grid.clip", [{"mode": "global_norm", "threshold": 1.0}]),)),
    ("other-seeds", (("grid.seed", [5, 1]),)),
    ("lr-on-the-grid", (("optimizer.lr", 0.7), ("grid.lr", [0.3, 0.1]))),
    (
        "explicit-defaults",
        (
            (
                "optimizer",
                {
                    "kind": "adam",
                    "lr": 0.1,
                    "schedule": "constant",
                    "eps": 1e-8,
                    "bias_correction": True,
                    "weight_decay": 0.0,
                },
            ),
            ("criteria", {"converge_rel": 0.05, "diverge_rel": 10.0}),
            ("sampling", "with_replacement"),
            ("dtype", "float64"),
        ),
    ),
    ("beta1-as-linspace", (("grid.beta1", {"start": 0.0, "stop": 0.5, "num": 2}),)),
]


@pytest.mark.parametrize("changes", [c for _, c in SAME_KEY], ids=[i for i, _ in SAME_KEY])
def test_run_key_ignores_what_does_not_determine_the_run(changes: Any) -> None:
    assert _key_of(_with(*changes)) == _key_of(BASE)


# Changes to anything that determines the run: another key.
OTHER_KEY: list[tuple[str, tuple[tuple[str, Any], ...], dict[str, Any]]] = [
    ("problem-n", (("problem.n", 21),), {}),
    ("problem-x0", (("problem.x0", -0.25),), {}),
    ("problem-kind", (("problem", {"kind": "lstsq"}),), {}),
    ("optimizer-kind", (("optimizer.kind", "adamw"),), {}),
    ("weight-decay", (("optimizer", {"kind": "adamw", "lr": 0.1, "weight_decay": 0.01}),), {}),
    ("schedule", (("optimizer.schedule", "inv_sqrt"),), {}),
    ("eps", (("optimizer.eps", 1e-10),), {}),
    ("bias-correction", (("optimizer.bias_correction", False),), {}),
    ("amsgrad", (("optimizer.amsgrad", True),), {}),
    ("warmup-cosine", (("optimizer.schedule", "warmup_cosine"),), {}),
    ("warmup-steps", (("optimizer", {"kind": "adam", "schedule": "warmup_cosine",
                                     "warmup_steps": 10}),), {}),
    ("optimizer-rmsprop", (("optimizer.kind", "rmsprop"),), {}),
    ("sampling", (("sampling", "reshuffle"),), {}),
    ("steps", (("steps", 101),), {}),
    ("dtype", (("dtype", "float32"),), {}),
    ("converge-rel", (("criteria", {"converge_rel": 0.01}),), {}),
    ("diverge-rel", (("criteria", {"diverge_rel": 100.0}),), {}),
    ("beta1", (), {"beta1": 0.0}),
    ("beta2", (), {"beta2": 0.9}),
    ("batch", (), {"batch_size": 1}),
    ("clip-mode", (), {"clip": 0}),
    ("clip-threshold", (("grid.clip.1.threshold", 2.0),), {"clip": None}),
    (
        "clip-adagc-ratio",
        (("grid.clip.1", {"mode": "adagc", "threshold": 1.0, "ratio": 1.1}),),
        {"clip": None},
    ),
    ("lr", (("grid.lr", [0.1, 0.2]),), {"lr": 0.2}),
    ("seed", (), {"seed": 0}),
]


@pytest.mark.parametrize(
    ("changes", "run"), [c[1:] for c in OTHER_KEY], ids=[c[0] for c in OTHER_KEY]
)
def test_run_key_changes_with_everything_that_determines_the_run(
    changes: Any, run: dict[str, Any]
) -> None:
    doc = _with(*changes)
    if run.get("clip", 1) is None:
        # the changed clip setting itself: compare BASE's run with the same index
        spec = parse_spec(doc)
        values = spec.axis_values()
        flat = np.ravel_multi_index(
            tuple(values[a].index(ONE_RUN[a]) if a != "clip" else 1 for a in ONE_RUN),
            spec.axis_sizes(),
        )
        (key,) = run_keys(spec, runs_at(spec, [flat]))
    else:
        key = _key_of(doc, **run)
    assert key != _key_of(BASE)


def test_run_key_changes_with_the_kernel_and_the_engine_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eager = _key_of(BASE)
    assert _key_of(BASE, kernel="compiled") != eager
    monkeypatch.setattr(version, "ENGINE_VERSION", version.ENGINE_VERSION + "-next")
    assert _key_of(BASE) != eager
    with pytest.raises(ValueError, match="kernel"):
        _key_of(BASE, kernel="jit")


@pytest.mark.parametrize("kernel", ["eager", "compiled"])
@pytest.mark.parametrize("preset_name", sorted(PRESETS))
def test_run_keys_of_every_preset_equal_the_per_run_definition(
    preset_name: str, kernel: str
) -> None:
    # run_keys sums per-axis hashes with numpy; any drift from the definition
    # (tests/experiments/test_keys.py writes it out per run) would change every key
    from tests.experiments.test_keys import reference_keys

    doc = PRESETS[preset_name]
    spec = parse_spec({**doc, "grid": {**doc["grid"], "lr": [0.1, 3e-4]}})
    runs = all_runs(spec)
    assert run_keys(spec, runs, kernel=kernel).astype(str).tolist() == reference_keys(
        spec, runs, kernel)


# Keys computed before the optimizer registry existed (engine version
# betascope-engine/2): adam and adamw documents must keep them, or every stored
# result of a sweep written before would be recomputed.
PINNED_KEYS = {
    "adam": (
        {"kind": "adam", "lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
        "6afe9ddbc9bd4e9fad50956f1944584564b893e706bf42b6be991a9e8081275a",
    ),
    "adamw": (
        {"kind": "adamw", "lr": 0.1, "weight_decay": 0.01, "eps": 1e-6},
        "4c8f9b944c7b70f752115e89aeb513e364b893e706bf42b6be991a9e8081275a",
    ),
    "default": (None, "8c3fd1189dca6b1952b2f42fad91d3ea64b893e706bf42b6be991a9e8081275a"),
}


@pytest.mark.parametrize("name", sorted(PINNED_KEYS))
def test_adam_run_keys_are_those_of_before_the_optimizer_family(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(version, "ENGINE_VERSION", "betascope-engine/2")
    optimizer, pinned = PINNED_KEYS[name]
    doc: dict[str, Any] = {
        "name": "pin",
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "steps": 1000,
        "grid": {"beta1": [0.9], "beta2": [0.999], "batch_size": [1], "seed": [0]},
    }
    if optimizer is not None:
        doc["optimizer"] = optimizer
    spec = parse_spec(doc)
    assert run_keys(spec, runs_at(spec, [0]))[0].decode() == pinned
    # the new fields at their defaults stay out of the document
    dumped = spec.optimizer.model_dump(mode="json")
    assert not {"amsgrad", "warmup_steps", "final_lr_ratio"} & set(dumped)


def test_a_stored_sweep_reads_back_past_checks_added_since_it_was_stored() -> None:
    """The float32 grid checks refuse a new sweep's values; a sweep stored before a
    check existed was computed with them and must still be read (every page and
    chunk of it parses its stored spec)."""
    stored = [
        _with(("dtype", "float32"), ("grid.lr", [0.1, 1e39])),
        _with(("dtype", "float32"), ("grid.beta2", [0.99, 0.9900000001])),
    ]
    for doc in stored:
        with pytest.raises(SpecError, match="float32"):
            parse_spec(doc)
        assert parse_stored(doc).dtype == "float32"
        with pytest.raises(SpecError, match="float32"):
            parse_spec(doc)  # the leniency ends with the read
    assert parse_stored(_with(("grid.seed", list(range(10**6))))).total_runs() > DEFAULT_MAX_RUNS
    with pytest.raises(SpecError, match="steps"):
        parse_stored(_with(("steps", 0)))  # anything else is still an error
