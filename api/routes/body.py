"""The spec document from a request body: JSON or YAML, with clear 4xx errors."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request, status

JSON_TYPES = {"application/json", ""}
YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}


async def spec_document(request: Request) -> Any:
    """Read the body (async: I/O only) and parse it by its content type."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in JSON_TYPES | YAML_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"unsupported content type {ctype!r}: send the spec as application/json "
                   "or application/yaml",
        )
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="body is not UTF-8") from None
    if not text.strip():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="body is empty: send a spec")
    if ctype in JSON_TYPES:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                detail=f"body is not valid JSON: {exc}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            detail=f"body is not valid YAML: {exc}") from None


def spec_body_openapi() -> dict[str, Any]:
    """The request body for /docs (the route reads it itself, to accept YAML too)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": _example()},
                "application/yaml": {"schema": {"type": "string"}},
            },
            "description": "A sweep spec (DESIGN section 2), as JSON or YAML.",
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
