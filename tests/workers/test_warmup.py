"""Engine processes load the fused kernel when they start (workers/warmup.py):
the embedded engine process is spawned by the server's start, and a real
`betascope worker` loads the kernel before it reports ready."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import Settings
from tests.conftest import need
from tests.services import CeleryWorker, pg_schema_url, postgres_ok, redis_ok, wait_for
from workers.embedded import EmbeddedExecutor

pytestmark = pytest.mark.timeout(180)


def loaded_kernels() -> int:
    """In the engine process: how many machine-code versions of the fused kernels and of
    runs_at's pass (experiments/run_kernels.py) it holds."""
    from experiments import fused_kernels, fused_lstsq, run_kernels

    return (len(fused_kernels.zhang_steps.signatures) + len(fused_lstsq.lstsq_steps.signatures)
            + len(run_kernels.grid_runs.signatures))


@pytest.mark.parametrize("warmup", [True, False])
def test_the_embedded_engine_process_loads_the_fused_kernel_at_start(
    tmp_path: Path, warmup: bool
) -> None:
    pytest.importorskip("numba")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/w.db", engine_warmup=warmup)
    ex = EmbeddedExecutor(settings)
    try:
        ex.start()
        assert ex._children is not None
        if warmup:  # started by start(), before any chunk
            wait_for(lambda: ex._children._pool is not None, 30, "the engine process")
        # run in the child after its initializer: 4 kernels (2 problems x 2 dtypes) and
        # runs_at's pass, or none
        loaded = ex._children._get_pool().submit(loaded_kernels).result(timeout=120)
        assert loaded == (5 if warmup else 0)
    finally:
        ex.shutdown()


def test_a_worker_loads_the_fused_kernel_before_it_consumes(tmp_path: Path) -> None:
    pytest.importorskip("numba")
    need(postgres_ok(), "PostgreSQL (BETASCOPE_TEST_DATABASE_URL)")
    need(redis_ok(), "Redis (BETASCOPE_TEST_REDIS_URL)")
    from tests.services import REDIS_URL

    log = tmp_path / "worker.log"
    worker = CeleryWorker({"database_url": pg_schema_url("warmup"), "broker_url": REDIS_URL,
                           "queue": "betascope-warmup-test", "engine_warmup": "true"}, log)
    try:
        worker.start()
        text = log.read_text(errors="replace")
        warm = text.find("engine warm: fused kernel loaded")
        assert 0 <= warm < text.find("ready."), text[-3000:]
    finally:
        worker.stop()


@pytest.mark.parametrize(("warmup", "device", "codecs", "kernel"), [
    (True, "cpu", True, True), (True, "cuda", True, False), (False, "cpu", False, False)])
def test_engine_warm_up_loads_the_record_codecs_whatever_the_device(
    monkeypatch: pytest.MonkeyPatch, warmup: bool, device: str, codecs: bool, kernel: bool
) -> None:
    """The store's first encode would otherwise load Arrow's IPC writer and LZ4 codec in
    the first chunk (3.5 s seen on a loaded machine); a GPU engine stores records too."""
    from api.db import columnar
    from experiments import warmup as kernels
    from workers.warmup import warm_engine

    called: list[str] = []
    monkeypatch.setattr(columnar, "warm_up", lambda: called.append("codecs"))
    monkeypatch.setattr(kernels, "warm", lambda: called.append("kernel") or {})
    warm_engine(Settings(database_url="sqlite://", engine_warmup=warmup, device=device))
    assert called == ["codecs"] * codecs + ["kernel"] * kernel


def test_record_codecs_warm_up_round_trips() -> None:
    from api.db import columnar

    columnar.warm_up()  # raises if a record of any kind does not read back
