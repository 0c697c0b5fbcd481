"""The spec document from a request body: JSON or YAML, with clear 4xx errors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from api.deps import SettingsDep
from experiments.spec import RunCapError, SpecError, SweepSpec, parse_spec
from experiments.spec_text import load_json

# Exactly these, never a missing type: a page on another site can POST a body without
# one (or as text/plain) with no preflight, so accepting it would let that page submit.
JSON_TYPES = {"application/json"}
YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
# A spec nests four levels deep (grid.clip[0].mode). Anything far deeper is a mistake
# or an attack, and would otherwise end in a RecursionError, a 500.
MAX_DEPTH = 32
TOO_DEEP = f"body nests deeper than {MAX_DEPTH} levels: a spec needs far fewer"
# Limits on the work one body can cause before and while it is validated. A list
# is checked item by item (each bad item one error), and a YAML alias repeats a
# whole subtree for the price of a few bytes: 330,000 "*a" in a megabyte once
# made a 50 MB answer. No spec comes near these.
MAX_LIST = 10_000
MAX_ALIASES = 100
MAX_ERRORS = 50


async def spec_document(request: Request) -> Any:
    """Read the body (async: I/O only) and parse it, off the event loop, by content type."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in JSON_TYPES | YAML_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"unsupported content type {ctype!r}: send the spec as application/json "
                   "or application/yaml",
        )
    raw = await request.body()
    # a megabyte of YAML takes seconds to parse; every other request must not wait for it
    return await run_in_threadpool(parse_body, raw, yaml=ctype in YAML_TYPES)


SpecDocument = Annotated[Any, Depends(spec_document)]


def valid_spec(doc: SpecDocument, settings: SettingsDep) -> SweepSpec:
    """The body as a validated spec: 422 listing each bad field, 413 over the run cap."""
    try:
        return parse_spec(doc, max_runs=settings.max_runs)
    except RunCapError as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=str(exc)) from None
    except SpecError as exc:
        raise spec_errors(exc.errors) from None


def spec_errors(errors: list[tuple[str, str]]) -> HTTPException:
    """422 listing (field, message) pairs: the first MAX_ERRORS, then how many more."""
    detail = [{"loc": ["body", *_loc(field)], "field": field, "msg": msg, "type": "spec"}
              for field, msg in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        detail.append({"loc": ["body"], "field": "", "type": "spec_truncated",
                       "msg": f"{len(errors) - MAX_ERRORS} more errors not shown "
                              f"(at most {MAX_ERRORS} are listed)"})
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


SpecDep = Annotated[SweepSpec, Depends(valid_spec)]


def _loc(field: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in field.replace("[", ".[").split("."):
        if piece.startswith("[") and piece.endswith("]") and piece[1:-1].isdigit():
            parts.append(int(piece[1:-1]))
        elif piece:
            parts.append(piece)
    return parts


def parse_body(raw: bytes, *, yaml: bool) -> Any:
    """The document in `raw` (UTF-8 JSON, or YAML); HTTP 400 naming what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise _bad("body is empty: send a spec")
    if yaml:
        doc = _parse_yaml(text)
    else:
        try:
            doc = load_json(text)
        except RecursionError:
            raise _bad(TOO_DEEP) from None
        except ValueError as exc:  # JSONDecodeError, or an integer of over 4300 digits
            raise _bad(f"body is not valid JSON: {exc}") from None
        if _deeper_than(doc, MAX_DEPTH):
            raise _bad(TOO_DEEP)
    long = _long_lists(doc)
    if long:
        raise spec_errors([(path, f"{n} values; a list may hold at most {MAX_LIST} (a long "
                                  "axis is written {start, stop, num})") for path, n in long])
    return doc


def _parse_yaml(text: str) -> Any:
    import yaml

    from experiments.spec_text import SpecLoader, yaml_problem

    class Loader(SpecLoader):
        """SafeLoader that stops composing past MAX_DEPTH (fails fast, before the
        scanner's cost, which grows with the square of the depth, adds up) or past
        MAX_ALIASES, and says where a value it cannot build is."""

        depth = 0
        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.depth >= MAX_DEPTH:
                raise _bad(TOO_DEEP)
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    mark = self.peek_event().start_mark
                    raise _bad(f"body is not valid YAML: line {mark.line + 1}, column "
                               f"{mark.column + 1}: more than {MAX_ALIASES} aliases (*name); "
                               "write the values out")
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except (ValueError, TypeError) as exc:  # 2001-02-30, a 5,000-digit integer
                problem = ("an integer of over 4300 digits" if "digits" in str(exc)
                           else str(exc))
                raise yaml.constructor.ConstructorError(
                    None, None, problem, node.start_mark) from None

    try:
        # aliases (a "billion laughs" body) build shared references, not copies
        return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader)
    except RecursionError:
        raise _bad(TOO_DEEP) from None
    except yaml.reader.ReaderError as exc:  # a character YAML forbids: it gives an offset
        before = text[:exc.position]
        line, column = before.count("\n") + 1, exc.position - before.rfind("\n")
        raise _bad(f"body is not valid YAML: line {line}, column {column}: character "
                   f"U+{exc.character:04X} is not allowed" if isinstance(exc.character, int)
                   else f"body is not valid YAML: line {line}, column {column}: "
                        f"{exc.reason}") from None
    except yaml.YAMLError as exc:
        raise _bad(f"body is not valid YAML: {yaml_problem(exc)}") from None


def _deeper_than(doc: Any, limit: int) -> bool:
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict)
                                                   else node))
    return False


def _long_lists(doc: Any) -> list[tuple[str, int]]:
    """(path, length) of every list over MAX_LIST items. Each container is visited
    once, however many aliases share it, so the walk costs what the body does."""
    found: list[tuple[str, int]] = []
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        node, path = stack.pop()
        if not isinstance(node, dict | list) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in node.items())
        elif len(node) > MAX_LIST:
            found.append((path, len(node)))
        else:
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
    return sorted(found)


def _bad(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail=detail)


def spec_body_openapi() -> dict[str, Any]:
    """The request body for /docs (the route reads it itself, to accept YAML too)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": _example()},
                "application/yaml": {"schema": {"type": "string"}},
            },
            "description": "A sweep spec, as JSON or YAML (the fields: docs/spec.md).",
        }
    }


def _example() -> dict[str, Any]:
    return {
        "name": "zhang n=20, small",
        "problem": {"kind": "zhang2022", "n": 20, "x0": -0.5},
        "optimizer": {"kind": "adam", "lr": 0.1, "schedule": "inv_sqrt",
                      "bias_correction": False},
        "steps": 2000,
        "grid": {"beta1": {"start": 0.0, "stop": 0.9, "num": 4},
                 "beta2": {"log1m": [0.01, 1.0], "num": 8},
                 "batch_size": [1, 4], "seed": [0, 1]},
    }
