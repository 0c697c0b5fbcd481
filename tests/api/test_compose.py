"""docker-compose.yml wires Postgres, Redis, the API and a GPU worker correctly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.services import ROOT


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_health_checks_and_order() -> None:
    services = _compose()["services"]
    assert {"postgres", "redis", "api", "worker"} <= set(services)
    for name in ("postgres", "redis", "api"):
        assert services[name]["healthcheck"]["test"], name
    api, worker = services["api"], services["worker"]
    assert api["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                 "redis": {"condition": "service_healthy"}}
    # the API upgrades the schema before it serves; workers start once it is healthy
    assert api["command"][:2] == ["betascope", "serve"]
    assert worker["depends_on"]["api"]["condition"] == "service_healthy"
    assert worker["command"] == ["betascope", "worker"]
    assert "readyz" in " ".join(api["healthcheck"]["test"])


def test_ports_bind_loopback_only() -> None:
    services = _compose()["services"]
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]
    assert all("ports" not in services[s] for s in ("postgres", "redis", "worker"))


def test_api_and_workers_share_database_and_broker() -> None:
    services = _compose()["services"]
    pg = services["postgres"]["environment"]
    url = (f"postgresql+psycopg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
           f"@postgres:5432/{pg['POSTGRES_DB']}")
    for name in ("api", "worker", "worker-cpu"):
        env = services[name]["environment"]
        assert env["BETASCOPE_DATABASE_URL"] == url, name
        assert env["BETASCOPE_BROKER_URL"] == "redis://redis:6379/0", name
    from api.settings import Settings

    settings = Settings(database_url=url, broker_url="redis://redis:6379/0")
    assert not settings.embedded


def test_gpu_reservation_and_volumes() -> None:
    compose = _compose()
    worker = compose["services"]["worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert device["count"] == "all" and worker["environment"]["BETASCOPE_DEVICE"] == "cuda"
    assert compose["services"]["worker-cpu"]["profiles"] == ["cpu"]
    assert "pgdata:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
    assert set(compose["volumes"]) == {"pgdata", "redisdata"}


def test_dockerfile_serves_with_the_cli() -> None:
    text = Path(ROOT / "Dockerfile").read_text()
    assert "betascope" in text and "serve" in text and "torch==" in text
