"""A spec's text read into a document: YAML (JSON is YAML), the same rules everywhere a
spec is read (`betascope run` and `submit`, `betascope.run`, the REST API's bodies).

Two rules beyond PyYAML's own:
- a key repeated in one mapping is an error naming the key and both lines (PyYAML,
  and Python's json, keep the last one silently: `steps: 10` ... `steps: 30` ran 30);
- `1e5` and `1.5e3` are numbers, as in JSON (YAML 1.1's float needs a dot and a
  signed exponent, so PyYAML read them as text, and `steps: 1e5` was refused as
  "not an integer").
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

# exponents YAML 1.1's float pattern leaves out (it needs a dot and a signed exponent),
# as JSON writes them: 1e5, -2E-3, 1.5e3
_EXPONENT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class SpecLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in a mapping and reads 1e5 as a number."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # <<: *defaults may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"the key {key!r} appears twice in one mapping (first on "
                        f"line {first}); keep one",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT, list("-+0123456789"))


def load_document(text: str) -> Any:
    """The document in `text`; yaml.YAMLError (see yaml_problem) when it is not one."""
    return yaml.load(text, Loader=SpecLoader)  # noqa: S506 (a SafeLoader)


def yaml_problem(exc: Exception) -> str:
    """PyYAML's complaint on one line, led by where it found it: "line 3, column 5:
    mapping values are not allowed here" (its str() spans several lines of context
    and a caret, which a CLI error or a 400 cannot show)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads's object_pairs_hook: a key repeated in one object is a ValueError."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object; keep one")
        out[key] = value
    return out


def load_json(text: str) -> Any:
    """JSON with repeated keys refused (ValueError)."""
    return json.loads(text, object_pairs_hook=unique_keys)
