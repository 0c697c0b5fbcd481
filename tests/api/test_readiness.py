"""/readyz answers 503 when the database or the broker is down."""

from __future__ import annotations

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
