"""The bad-input corpus: request bodies, spec mistakes, query parameters and ids that
the service must answer with a 4xx naming the problem. Data only; the logic is in
test_bad_input.py. Each row says what is sent, the status expected, and a piece of
text the error message must contain (the field path, the parameter, the cause)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.api.helpers import spec

JSON = "application/json"
YAML = "application/yaml"


def _good() -> dict[str, Any]:
    return spec("bad input", steps=20)


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _deep_yaml_block(depth: int) -> bytes:
    return "".join("  " * i + "a:\n" for i in range(depth)).encode() + b"  " * depth + b"1\n"


def _yaml_bomb() -> bytes:
    """Billion laughs: 9**9 strings if expanded, here as grid.seed of a real spec."""
    import yaml

    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    doc = _good()
    doc["grid"]["seed"] = "BOMB"
    return ("\n".join(lines) + "\n" + yaml.safe_dump(doc).replace("seed: BOMB", "seed: *i")
            ).encode()


def _many_aliases(n: int) -> bytes:
    """A spec whose grid.beta1 is n aliases of one value: a few bytes each, and once
    one error (and one line of the answer) each."""
    import yaml

    doc = _good()
    doc["grid"]["beta1"] = "ALIASES"
    return ("x: &x 0.5\n" + yaml.safe_dump(doc).replace(
        "beta1: ALIASES", "beta1: [" + ", ".join(["*x"] * n) + "]")).encode()


def _long_axis(n: int) -> bytes:
    doc = _good()
    doc["grid"]["beta1"] = [0] * n
    return _json(doc)


def _surrogate_name() -> bytes:
    return _json(_good()).replace(b'"name": "bad input"', b'"name": "x\\ud800y"')


def _over_the_cap() -> bytes:
    doc = _good()
    doc["grid"].update(beta1={"start": 0.0, "stop": 0.9, "num": 100},
                       beta2={"start": 0.0, "stop": 0.9, "num": 100}, seed=[0, 1, 2])
    return _json(doc)  # 30,000 runs; the tests' cap is 20,000


@dataclass(frozen=True)
class Body:
    """A raw body for POST /sweeps and POST /sweeps/validate."""

    name: str
    content: bytes
    content_type: str | None
    status: int
    says: str


BODIES = [
    Body("invalid JSON", b'{"name": ', JSON, 400, "not valid JSON"),
    Body("JSON with trailing text", b'{"name": "x"} and more', JSON, 400, "not valid JSON"),
    Body("JSON single quotes", b"{'name': 'x'}", JSON, 400, "not valid JSON"),
    Body("empty body", b"", JSON, 400, "empty"),
    Body("whitespace only", b" \n\t ", JSON, 400, "empty"),
    Body("empty YAML", b"", YAML, 400, "empty"),
    Body("non-UTF-8 JSON", b'{"name": "\xff\xfe"}', JSON, 400, "not UTF-8"),
    Body("Latin-1 YAML", "name: caf\u00e9\n".encode("latin-1"), YAML, 400, "not UTF-8"),
    Body("UTF-16 JSON", '{"name": "x"}'.encode("utf-16"), JSON, 400, "not UTF-8"),
    Body("lone surrogate in the name", _surrogate_name(), JSON, 422, "name"),
    Body("NUL bytes", b'{"name": "a\x00b"}', JSON, 400, "not valid JSON"),
    Body("10,000 nested JSON arrays", b"[" * 10_000 + b"]" * 10_000, JSON, 400, "nests deeper"),
    Body("10,000 nested JSON objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, JSON, 400,
         "nests deeper"),
    Body("10,000 nested YAML flow lists", b"[" * 10_000 + b"]" * 10_000, YAML, 400,
         "nests deeper"),
    Body("100 nested YAML mappings", _deep_yaml_block(100), YAML, 400, "nests deeper"),
    Body("YAML bomb (billion laughs)", _yaml_bomb(), YAML, 422, "grid.seed"),
    Body("YAML python tag", b"!!python/object/apply:os.system ['true']\n", YAML, 400,
         "not valid YAML"),
    Body("YAML syntax error", b"name: [unclosed\nsteps: 3\n", YAML, 400, "not valid YAML"),
    Body("YAML tab indentation", b"grid:\n\tbeta1: [0.1]\n", YAML, 400, "not valid YAML"),
    Body("YAML impossible date", b"name: 2001-02-30\n", YAML, 400, "not valid YAML"),
    Body("YAML unhashable key", b"? [a, b]\n: 1\n", YAML, 400, "not valid YAML"),
    Body("JSON 5,000-digit integer", b'{"steps": 1' + b"0" * 5000 + b"}", JSON, 400,
         "not valid JSON"),
    Body("YAML 5,000-digit integer", b"steps: 1" + b"0" * 5000 + b"\n", YAML, 400,
         "not valid YAML"),
    Body("YAML with 1,000 aliases", _many_aliases(1000), YAML, 400, "aliases"),
    # a repeated key was once merged silently, the last one winning
    Body("JSON key twice", b'{"steps": 10, "name": "x", "steps": 30}', JSON, 400,
         "the key 'steps' appears twice"),
    Body("YAML key twice", b"steps: 10\ngrid:\n  beta1: [0.5]\n  beta1: [0.9]\n", YAML, 400,
         "line 4, column 3: the key 'beta1' appears twice in one mapping (first on line 3)"),
    Body("a 20,000-value axis", _long_axis(20_000), JSON, 422, "at most 10000"),
    Body("JSON array", b"[1, 2, 3]", JSON, 422, "mapping"),
    Body("JSON string", b'"a spec"', JSON, 422, "mapping"),
    Body("JSON null", b"null", JSON, 422, "mapping"),
    Body("YAML scalar", b"just some words\n", YAML, 422, "mapping"),
    Body("YAML list", b"- name: x\n", YAML, 422, "mapping"),
    # a page on another site can send a body with no type, or as text/plain, without
    # a preflight: neither may count as JSON
    Body("no content type", _json(_good()), None, 415, "application/json"),
    Body("text/plain", _json(_good()), "text/plain", 415, "application/json"),
    Body("form encoded", b"name=x&steps=3", "application/x-www-form-urlencoded", 415,
         "application/json"),
    Body("multipart", b"--b\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b", 415,
         "application/json"),
    Body("XML", b"<spec name='x'/>", "application/xml", 415, "application/json"),
    Body("grid over BETASCOPE_MAX_RUNS", _over_the_cap(), JSON, 413, "exceed the cap"),
    Body("200 kB body", b'{"name": "' + b"x" * 200_000 + b'"}', JSON, 413,
         "BETASCOPE_MAX_BODY_BYTES"),
    Body("5 MB body", b"[" + b"0," * 2_500_000 + b"0]", JSON, 413, "BETASCOPE_MAX_BODY_BYTES"),
]


@dataclass(frozen=True)
class SpecMistake:
    """A change to a good spec; the 422 must name `field` (a prefix of some error's path)."""

    name: str
    change: dict[str, Any]
    field: str
    drop: tuple[str, ...] = ()


NAN, INF = float("nan"), float("inf")  # json.dumps writes NaN and Infinity

SPECS = [
    SpecMistake("beta1 = 1", {"grid": {"beta1": [0.0, 1.0]}}, "grid.beta1"),
    SpecMistake("beta1 negative", {"grid": {"beta1": [-0.1]}}, "grid.beta1"),
    SpecMistake("beta2 = 1", {"grid": {"beta2": [0.5, 1.0]}}, "grid.beta2"),
    SpecMistake("beta2 NaN", {"grid": {"beta2": [NAN]}}, "grid.beta2"),
    SpecMistake("beta1 infinite", {"grid": {"beta1": [INF]}}, "grid.beta1"),
    SpecMistake("beta1 range past 1", {"grid": {"beta1": {"start": 0, "stop": 1.5, "num": 3}}},
                "grid.beta1"),
    SpecMistake("beta2 log1m of 0", {"grid": {"beta2": {"log1m": [0.0, 1.0], "num": 3}}},
                "grid.beta2"),
    SpecMistake("log1m on beta1", {"grid": {"beta1": {"log1m": [0.1, 1.0], "num": 3}}},
                "grid.beta1"),
    SpecMistake("linspace of no points", {"grid": {"beta1": {"start": 0, "stop": 0.5,
                                                             "num": 0}}}, "grid.beta1.num"),
    SpecMistake("beta as text", {"grid": {"beta1": ["half"]}}, "grid.beta1"),
    SpecMistake("beta axis as text", {"grid": {"beta1": "0.5"}}, "grid.beta1"),
    SpecMistake("steps as text", {"steps": "many"}, "steps"),
    SpecMistake("steps zero", {"steps": 0}, "steps"),
    SpecMistake("steps negative", {"steps": -5}, "steps"),
    SpecMistake("steps fractional", {"steps": 1.5}, "steps"),
    SpecMistake("steps too many", {"steps": 10**9}, "steps"),
    SpecMistake("steps NaN", {"steps": NAN}, "steps"),
    SpecMistake("steps a boolean list", {"steps": [True]}, "steps"),
    SpecMistake("lr zero", {"optimizer": {"lr": 0.0}}, "optimizer.lr"),
    SpecMistake("lr negative", {"optimizer": {"lr": -0.1}}, "optimizer.lr"),
    SpecMistake("lr infinite", {"optimizer": {"lr": INF}}, "optimizer.lr"),
    SpecMistake("lr as text", {"optimizer": {"lr": "fast"}}, "optimizer.lr"),
    SpecMistake("lr axis negative", {"grid": {"lr": [0.1, -1.0]}}, "grid.lr"),
    SpecMistake("lr axis empty", {"grid": {"lr": []}}, "grid.lr"),
    SpecMistake("eps negative", {"optimizer": {"eps": -1e-8}}, "optimizer.eps"),
    SpecMistake("weight decay on adam", {"optimizer": {"weight_decay": 0.1}},
                "optimizer.weight_decay"),
    SpecMistake("unknown optimizer", {"optimizer": {"kind": "adamax"}}, "optimizer.kind"),
    SpecMistake("field the kind lacks", {"optimizer": {"kind": "lion", "eps": 1e-8}},
                "optimizer.eps"),
    SpecMistake("sgd with a beta2 axis", {"optimizer": {"kind": "sgd"},
                                          "grid": {"beta2": [0.9, 0.99]}}, "grid.beta2"),
    SpecMistake("unknown schedule", {"optimizer": {"schedule": "cosine"}}, "optimizer.schedule"),
    SpecMistake("bias_correction as text", {"optimizer": {"bias_correction": "perhaps"}},
                "optimizer.bias_correction"),
    SpecMistake("unknown problem", {"problem": {"kind": "mnist"}}, "problem"),
    SpecMistake("problem without kind", {"problem": {"n": 20}}, "problem", drop=("problem",)),
    SpecMistake("problem as text", {"problem": "zhang2022"}, "problem"),
    SpecMistake("zhang n too small", {"problem": {"kind": "zhang2022", "n": 2}}, "problem.n"),
    SpecMistake("start at the optimum", {"problem": {"kind": "zhang2022", "x0": -2.0}},
                "problem.x0"),
    SpecMistake("reddi2018 with batches", {"problem": {"kind": "reddi2018"}}, "grid.batch_size"),
    SpecMistake("unknown top-level key", {"colour": "blue"}, "colour"),
    SpecMistake("unknown optimizer key", {"optimizer": {"momentum": 0.9}}, "optimizer.momentum"),
    SpecMistake("unknown grid axis", {"grid": {"beta3": [0.1]}}, "grid.beta3"),
    SpecMistake("unknown problem key", {"problem": {"kind": "zhang2022", "m": 3}}, "problem.m"),
    SpecMistake("extra axis on an unknown field", {"grid": {"problem.m": [3, 4]}},
                "grid.problem.m"),
    SpecMistake("extra axis on a text field", {"grid": {"optimizer.schedule": [1, 2]}},
                "grid.optimizer.schedule"),
    SpecMistake("extra axis on a boolean field", {"grid": {"optimizer.bias_correction": [0, 1]}},
                "grid.optimizer.bias_correction"),
    SpecMistake("extra axis value out of range", {"grid": {"problem.n": [5, 2]}},
                "grid.problem.n[1]"),
    SpecMistake("extra axis of text", {"grid": {"optimizer.eps": ["tiny"]}},
                "grid.optimizer.eps"),
    SpecMistake("extra axis on lr", {"grid": {"optimizer.lr": [0.1, 0.2]}}, "grid.optimizer.lr"),
    SpecMistake("extra axis of another section", {"grid": {"criteria.converge_rel": [0.1]}},
                "grid.criteria.converge_rel"),
    SpecMistake("unknown criteria key", {"criteria": {"patience": 3}}, "criteria.patience"),
    SpecMistake("unknown clip mode", {"grid": {"clip": [{"mode": "magic"}]}}, "grid.clip[0]"),
    SpecMistake("clip without threshold", {"grid": {"clip": [{"mode": "value"}]}},
                "grid.clip[0].threshold"),
    SpecMistake("clip threshold negative", {"grid": {"clip": [{"mode": "global_norm",
                                                               "threshold": -1}]}},
                "grid.clip[0].threshold"),
    SpecMistake("adagc beta of 1", {"grid": {"clip": [{"mode": "adagc", "threshold": 1,
                                                       "beta": 1.0}]}}, "grid.clip[0].beta"),
    SpecMistake("empty beta1", {"grid": {"beta1": []}}, "grid.beta1"),
    SpecMistake("empty seeds", {"grid": {"seed": []}}, "grid.seed"),
    SpecMistake("empty batch sizes", {"grid": {"batch_size": []}}, "grid.batch_size"),
    SpecMistake("empty clip list", {"grid": {"clip": []}}, "grid.clip"),
    SpecMistake("batch over the sample count", {"grid": {"batch_size": [1, 40]}},
                "grid.batch_size"),
    SpecMistake("batch zero", {"grid": {"batch_size": [0]}}, "grid.batch_size"),
    SpecMistake("batch fractional", {"grid": {"batch_size": [1.5]}}, "grid.batch_size"),
    SpecMistake("seed negative", {"grid": {"seed": [-1]}}, "grid.seed"),
    SpecMistake("seed over 2**31", {"grid": {"seed": [2**31]}}, "grid.seed"),
    SpecMistake("seed 400 digits", {"grid": {"seed": [10**400]}}, "grid.seed"),
    SpecMistake("unknown dtype", {"dtype": "float16"}, "dtype"),
    SpecMistake("unknown sampling", {"sampling": "sometimes"}, "sampling"),
    SpecMistake("empty name", {"name": ""}, "name"),
    SpecMistake("name too long", {"name": "x" * 201}, "name"),
    SpecMistake("name a number", {"name": 5}, "name"),
    SpecMistake("name an object", {"name": {"first": "x"}}, "name"),
    # a NUL, a newline or an escape can cut or forge a line in a log or a listing; a
    # bidi override makes "run-gpj.exe" read "run-exe.jpg"
    SpecMistake("name with a NUL", {"name": "a\x00b"}, "name"),
    SpecMistake("name with a newline", {"name": "line one\nline two"}, "name"),
    SpecMistake("name with an escape", {"name": "\x1b[31mred"}, "name"),
    SpecMistake("name with DEL", {"name": "a\x7fb"}, "name"),
    SpecMistake("name with a bidi override", {"name": "run-\u202egpj.exe"}, "name"),
    SpecMistake("name with a bidi isolate", {"name": "a\u2067b"}, "name"),
    SpecMistake("criteria inverted", {"criteria": {"converge_rel": 5.0, "diverge_rel": 1.0}},
                "criteria.diverge_rel"),
    SpecMistake("grid as a list", {"grid": [0.1, 0.2]}, "grid"),
    SpecMistake("no problem", {}, "problem", drop=("problem",)),
    SpecMistake("no grid", {}, "grid", drop=("grid",)),
    SpecMistake("no steps", {}, "steps", drop=("steps",)),
]


def apply(mistake: SpecMistake) -> dict[str, Any]:
    """The good spec with the mistake merged in (one level of nesting, like a user's edit)."""
    doc = _good()
    for key in mistake.drop:
        del doc[key]
    for key, value in mistake.change.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict) and "kind" not in value:
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


@dataclass(frozen=True)
class Query:
    """A GET under a real, finished sweep ('{id}' and '{key}' are filled in)."""

    name: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    status: int = 422
    says: str = ""


QUERIES = [
    Query("unknown metric", "/phase-map", {"metric": "colour"}, says="metric"),
    Query("batch size not on the grid", "/phase-map", {"batch_size": 3}, says="batch_size"),
    Query("batch size as text", "/phase-map", {"batch_size": "four"}, says="batch_size"),
    Query("batch size of 400 digits", "/phase-map", {"batch_size": "1" + "0" * 400},
          says="batch_size"),
    Query("batch size negative", "/phase-map", {"batch_size": -1}, says="batch_size"),
    Query("clip not on the grid", "/phase-map", {"clip": "value:0.5"}, says="clip"),
    Query("clip threshold not a number", "/phase-map", {"clip": "global_norm:abc"},
          says="clip"),
    Query("clip of an unknown mode", "/phase-map", {"clip": "magic"}, says="clip"),
    Query("lr not on the grid", "/phase-map", {"lr": 0.2}, says="lr"),
    Query("lr NaN", "/phase-map", {"lr": "nan"}, says="lr"),
    Query("lr infinite", "/phase-map", {"lr": "inf"}, says="lr"),
    Query("lr as text", "/phase-map", {"lr": "fast"}, says="lr"),
    Query("lr of 400 digits", "/phase-map", {"lr": "1" + "0" * 400}, says="lr"),
    Query("map axis unknown", "/phase-map", {"x": "gamma"}, says="gamma"),
    Query("map axis seed", "/phase-map", {"x": "seed"}, says="seed"),
    Query("map axes the same", "/phase-map", {"x": "beta2", "y": "beta2"}, says="y"),
    Query("map axis with one value", "/phase-map", {"x": "lr"}, says="lr"),
    Query("slice on an axis the sweep lacks", "/phase-map", {"problem.n": 20},
          says="problem.n"),
    Query("slice on a mapped axis", "/phase-map", {"beta1": 0.0}, says="beta1"),
    Query("runs: beta1 not on the grid", "/runs", {"beta1": 0.25}, says="beta1"),
    Query("runs: beta2 as text", "/runs", {"beta2": "high"}, says="beta2"),
    Query("runs: seed not on the grid", "/runs", {"seed": 7}, says="seed"),
    Query("runs: seed of 400 digits", "/runs", {"seed": "9" * 400}, says="seed"),
    Query("runs: batch size not on the grid", "/runs", {"batch_size": 2}, says="batch_size"),
    Query("runs: clip not on the grid", "/runs", {"clip": "adagc:1.0"}, says="clip"),
    Query("runs: unknown outcome", "/runs", {"outcome": "maybe"}, says="outcome"),
    Query("runs: negative limit", "/runs", {"limit": -1}, says="limit"),
    Query("runs: zero limit", "/runs", {"limit": 0}, says="limit"),
    Query("runs: limit too large", "/runs", {"limit": 100_000}, says="limit"),
    Query("runs: limit as text", "/runs", {"limit": "all"}, says="limit"),
    Query("runs: cursor as text", "/runs", {"cursor": "abc"}, says="cursor"),
    Query("runs: negative cursor", "/runs", {"cursor": "-1"}, says="cursor"),
    Query("runs: cursor of a unicode digit", "/runs", {"cursor": "\u00b2"}, says="cursor"),
    Query("runs: cursor of 30 digits", "/runs", {"cursor": "9" * 30}, says="cursor"),
    Query("runs: fractional cursor", "/runs", {"cursor": "1.5"}, says="cursor"),
    Query("export: unknown level", "/export.csv", {"level": "everything"}, says="level"),
    Query("run key too short", "/runs/abc", says="run_key"),
    Query("run key in capitals", "/runs/" + "A" * 64, says="run_key"),
    Query("run key not in this sweep", "/runs/" + "0" * 64, status=404, says="no result"),
    Query("list: negative limit", "/api/v1/sweeps", {"limit": -5}, says="limit"),
    Query("list: zero limit", "/api/v1/sweeps", {"limit": 0}, says="limit"),
    Query("list: cursor as text", "/api/v1/sweeps", {"cursor": "x"}, says="cursor"),
    Query("list: negative cursor", "/api/v1/sweeps", {"cursor": "-3"}, says="cursor"),
]

UNKNOWN = 987654
# (method, path) with an id no sweep has: 404 naming the sweep; ids that cannot be
# ids at all: 422 naming sweep_id.
UNKNOWN_IDS = [
    (method, f"/api/v1/sweeps/{UNKNOWN}{suffix}")
    for method, suffix in [("GET", ""), ("GET", "/runs"), ("GET", "/runs/" + "0" * 64),
                           ("GET", "/phase-map"), ("GET", "/boundary"), ("GET", "/export.csv"),
                           ("POST", "/cancel"), ("POST", "/retry"), ("DELETE", "")]
]
NOT_IDS = ["0", "-1", "abc", "1.5", str(2**31), "9" * 30, "\u0661"]
