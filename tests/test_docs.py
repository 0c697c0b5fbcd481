"""README and docs/ are the user's whole manual: self-contained, linked, and complete
for the spec fields, the REST routes and the CSV columns the code has."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from api.routes import analysis, export, meta, runs, sweeps, validate
from experiments import spec as spec_models
from experiments.export import CELL_COLUMNS, RUN_COLUMNS
from experiments.optimizers import REGISTRY as OPTIMIZERS
from experiments.problems import REGISTRY as PROBLEMS
from experiments.problems.quadratic import QuadraticBlock

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", page.read_text(), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_stay_inside_the_repository(page: Path) -> None:
    text = page.read_text()
    assert "../shared" not in text and "DESIGN.md" not in text
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists() and dest.is_relative_to(ROOT), f"{page.name}: {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.name}: no heading for {target}"


def test_readme_links_every_doc() -> None:
    readme = ROOT / "README.md"
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(readme.read_text())}
    assert {"spec.md", "problems.md", "optimizers.md", "outcomes.md", "rest.md"} <= {
        p.name for p in DOCS
    }
    assert set(DOCS) <= linked


def test_every_rest_route_is_documented() -> None:
    text = (ROOT / "docs" / "rest.md").read_text()
    routes = [r for m in (sweeps, runs, analysis, export, meta, validate) for r in m.router.routes]
    assert len(routes) >= 14
    for route in routes:
        path = route.path.removeprefix("/api/v1")  # type: ignore[attr-defined]
        path = re.sub(r"\{sweep_id\}", "{id}", path)
        for method in route.methods:  # type: ignore[attr-defined]
            assert f"`{method} {path}`" in text, f"{method} {path} missing from docs/rest.md"


def _fields(model: type) -> list[str]:
    return [name for name in model.model_fields if name not in ("kind", "mode")]  # type: ignore[attr-defined]


def test_every_spec_field_is_documented() -> None:
    spec_doc = (ROOT / "docs" / "spec.md").read_text()
    problems_doc = (ROOT / "docs" / "problems.md").read_text()
    for model in (
        spec_models.SweepSpec,
        *(entry.model for entry in OPTIMIZERS.values()),
        spec_models.GridSpec,
        spec_models.Criteria,
        spec_models.ClipGlobalNorm,
        spec_models.ClipValue,
        spec_models.ClipAdaGC,
        spec_models.Linspace,
        spec_models.Log1m,
    ):
        for name in _fields(model):
            assert f"`{name}`" in spec_doc, f"{model.__name__}.{name} missing from docs/spec.md"
    optimizers_doc = (ROOT / "docs" / "optimizers.md").read_text()
    for kind in OPTIMIZERS:
        assert f"`{kind}`" in spec_doc, f"optimizer kind {kind} missing from docs/spec.md"
        assert f"## `{kind}`" in optimizers_doc, f"{kind} has no section in docs/optimizers.md"
    # every built-in kind (plug-ins document themselves), and the block model of quadratic
    for kind, entry in PROBLEMS.items():
        if not entry.origin.startswith("experiments."):
            continue
        assert f"## {kind}" in problems_doc
        for name in _fields(entry.model):
            assert f"`{name}`" in problems_doc, f"{kind}.{name} missing from docs/problems.md"
    for name in _fields(QuadraticBlock):
        assert f"`{name}`" in problems_doc, f"quadratic blocks[].{name} missing"


@pytest.mark.parametrize("page", ["README.md", "docs/rest.md"])
def test_csv_columns_are_documented_in_order(page: str) -> None:
    """Every header written out on the page is the whole header (README's cells header
    once stopped two columns short, which a substring check let through)."""
    headers = re.findall(r"`((?:run_key|beta1),[a-z0-9_,]+)`", (ROOT / page).read_text())
    assert ",".join(RUN_COLUMNS) in headers and ",".join(CELL_COLUMNS) in headers, headers
    assert set(headers) <= {",".join(RUN_COLUMNS), ",".join(CELL_COLUMNS)}, headers


def test_the_embedded_database_files_are_ignored() -> None:
    names = [
        "betascope.db",
        "betascope.db-shm",
        "betascope.db-wal",
        "betascope.db-journal",
        ".venv/bin/python",
    ]
    out = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", *names], capture_output=True, text=True
    )
    assert out.stdout.split() == names
