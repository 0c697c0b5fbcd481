"""Workers import the data layer; it must not drag in FastAPI or torch (DESIGN section 1)."""

from __future__ import annotations

import subprocess
import sys

from tests.services import ROOT


def _loaded_after(*modules: str) -> set[str]:
    code = (
        f"import sys; import {', '.join(modules)}; "
        "print(' '.join(m for m in ('fastapi', 'torch', 'starlette') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_settings_and_db_import_neither_fastapi_nor_torch() -> None:
    assert (
        _loaded_after("api.settings", "api.db", "api.db.chunks", "api.db.columnar",
                      "api.db.store", "api.db.migrate")
        == set()
    )


def test_the_api_does_not_import_torch_until_a_chunk_runs() -> None:
    assert "torch" not in _loaded_after("api.app", "workers.dispatch", "workers.reconcile")


def test_experiments_import_nothing_of_the_service_or_the_web() -> None:
    """experiments/ is the pure science (DESIGN section 1): every module of it loads
    without api, workers or web."""
    modules = sorted(
        "experiments." + ".".join(p.relative_to(ROOT / "experiments").with_suffix("").parts)
        for p in (ROOT / "experiments").rglob("*.py") if p.name != "__init__.py"
    )
    code = (
        f"import sys; import {', '.join(modules)}; "
        "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('api', 'workers', 'web')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == []
