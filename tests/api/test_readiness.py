"""/readyz answers 503 when the database or the broker is down."""

from __future__ import annotations

import time
import warnings

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings

warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")


def test_readyz_is_503_when_the_database_is_down() -> None:
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none", auto_upgrade=False)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        resp = client.get("/api/v1/readyz")
        assert resp.status_code == 503
        assert resp.json()["checks"]["database"].startswith("unreachable")
        assert client.get("/api/v1/healthz").status_code == 200


def test_readyz_is_503_when_the_broker_is_down(tmp_path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/b.db",
                        broker_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        resp = client.get("/api/v1/readyz")
        assert resp.status_code == 503
        assert resp.json()["checks"]["database"] == "ok"
        assert resp.json()["checks"]["broker"].startswith("broker unreachable")


def test_readyz_says_while_the_engine_loads_its_kernels(tmp_path, monkeypatch, caplog) -> None:
    """On a fresh install the embedded engine compiles its kernels at start (a minute or
    two on two cores): a sweep submitted meanwhile sat queued with nothing saying why."""
    import logging
    import threading

    from workers import embedded

    release = threading.Event()

    class SlowPool:  # the engine process, still in its initializer
        def submit(self, fn, *args):
            class Done:
                def result(self):
                    release.wait(10)
            return Done()

    monkeypatch.setattr(embedded, "SLOW_WARMUP_S", 0.2)
    monkeypatch.setattr(embedded._Children, "_get_pool", lambda self: SlowPool())
    monkeypatch.setattr(embedded._Children, "shutdown", lambda self: None)
    caplog.set_level(logging.INFO, logger="betascope.embedded")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/e.db", engine_warmup=True,
                        embedded_process=True)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        time.sleep(0.5)
        warming = client.get("/api/v1/readyz")
        release.set()
        deadline = time.monotonic() + 10
        while "engine" in client.get("/api/v1/readyz").json()["checks"]:
            assert time.monotonic() < deadline, "the note outlived the warm-up"
            time.sleep(0.05)
    assert warming.status_code == 200 and warming.json()["status"] == "ok"
    assert "compiles them for this machine" in warming.json()["checks"]["engine"]
    logged = [r.getMessage() for r in caplog.records]
    assert any("still loading its kernels" in m for m in logged), logged
    assert any("ready after" in m for m in logged), logged
