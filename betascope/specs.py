"""What `betascope.run(...)` and `Client.submit(...)` accept as a spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def spec_document(spec: Any, presets: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
    """A spec document from a dict, a preset name, a YAML or JSON file, or YAML/JSON text.

    `presets` gives the preset documents by name (asked only when a name may be one).
    Raises ValueError saying what was expected.
    """

    if isinstance(spec, Mapping):
        return dict(spec)
    if hasattr(spec, "model_dump"):  # a parsed SweepSpec
        from experiments.spec import document

        return document(spec)
    if isinstance(spec, Path):
        return _load(_read(spec.expanduser()), str(spec))
    if not isinstance(spec, str):
        raise ValueError(f"a spec is a dict, a preset name, a file or YAML text, not {type(spec)}")
    text = spec.strip()
    if "\n" not in text and ":" not in text and "{" not in text:
        known = presets()
        if text in known:
            return dict(known[text])
        path = Path(text).expanduser()
        if path.is_file():
            return _load(_read(path), str(path))
        raise ValueError(f"{text!r} is neither a preset ({', '.join(sorted(known))}) nor a file")
    if "\n" not in text and Path(text).expanduser().is_file():
        return _load(_read(Path(text).expanduser()), text)
    return _load(text, "the spec")


def _read(path: Path) -> str:
    """A spec file's text; ValueError (not OSError) for a path that is not a readable file."""
    if path.is_dir():
        raise ValueError(f"spec: {str(path)!r} is a directory, not a YAML or JSON spec file")
    if not path.is_file():
        raise ValueError(f"spec: no such file {str(path)!r}")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"spec: cannot read {str(path)!r}: {exc}") from None


def _load(text: str, where: str) -> dict[str, Any]:
    """The document, read as every reader of a spec reads one (a key given twice is an
    error, 1e5 a number; experiments.spec_text, which loads YAML only, not the engine),
    its mistake on one line."""
    import yaml

    from experiments.spec_text import load_document, yaml_problem

    try:
        doc = load_document(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{where} is not valid YAML or JSON: {yaml_problem(exc)}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: the spec must be a mapping (a YAML or JSON object)")
    return doc
