"""A spec's text: the rules beyond PyYAML's own (experiments/spec_text.py), as every
reader of a spec applies them."""

from __future__ import annotations

import pytest
import yaml

from experiments.spec import SpecError, load_spec_text
from experiments.spec_text import load_document, load_json, yaml_problem

GOOD = "problem: {kind: zhang2022}\ngrid: {beta1: [0.0], beta2: [0.5]}\n"


@pytest.mark.parametrize(("text", "where"), [
    ("steps: 10\nsteps: 30\n", "line 2, column 1: the key 'steps' appears twice in one "
                               "mapping (first on line 1)"),
    ("grid:\n  beta1: [0.0]\n  beta2: [0.5]\n  beta1: [0.9]\n", "line 4, column 3: the key "
                                                                  "'beta1'"),
    ('{"steps": 10, "steps": 30}', "line 1, column 15: the key 'steps'"),
    ("grid: {beta1: [0.0], beta1: [0.9]}", "line 1, column 22: the key 'beta1'"),
])
def test_a_key_given_twice_is_an_error_naming_it_and_its_lines(text: str, where: str) -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        load_document(text)
    assert yaml_problem(caught.value).startswith(where), yaml_problem(caught.value)
    with pytest.raises(SpecError, match="appears twice"):
        load_spec_text(GOOD + text if not text.startswith(("{", "grid")) else text)


def test_keys_a_merge_brings_may_be_overridden() -> None:
    doc = load_document("base: &b {lr: 0.1, eps: 1.0e-8}\noptimizer:\n  <<: *b\n  lr: 0.3\n")
    assert doc["optimizer"] == {"lr": 0.3, "eps": 1e-8}


def test_the_same_key_in_different_mappings_is_fine() -> None:
    assert load_document("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}


@pytest.mark.parametrize(("text", "value"), [
    ("1e5", 100000.0), ("-2E-3", -0.002), ("1.5e3", 1500.0), ("3e+2", 300.0),
    ("1.0e+3", 1000.0), ("10", 10), ("0.5", 0.5), ("'1e5'", "1e5"), ("e5", "e5"),
    ("1e", "1e"), ("abc1e5", "abc1e5"),
])
def test_exponents_are_numbers_as_in_json(text: str, value: object) -> None:
    got = load_document(f"v: {text}\n")["v"]
    assert got == value and type(got) is type(value), got


def test_steps_written_with_an_exponent() -> None:
    spec = load_spec_text(GOOD + "steps: 1e3\n")
    assert spec.steps == 1000
    with pytest.raises(SpecError, match="steps"):
        load_spec_text(GOOD + "steps: 1.5e0\n")  # not a whole number of steps


def test_json_with_a_key_twice_is_refused() -> None:
    assert load_json('{"a": {"b": 1}, "b": 2}') == {"a": {"b": 1}, "b": 2}
    with pytest.raises(ValueError, match="the key 'b' appears twice"):
        load_json('{"a": 1, "b": 2, "b": 3}')
