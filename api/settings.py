"""Service configuration from BETASCOPE_* environment variables (DESIGN section 8).

Imported by the API and by workers, so it imports neither FastAPI nor torch.
Every field is validated when Settings() is built: a typo in a URL or a lease
shorter than its heartbeat fails at start-up, not an hour into a sweep.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected URL may hold a password; the validators below
    # name what they got with the password masked instead
    model_config = SettingsConfigDict(env_prefix="BETASCOPE_", extra="ignore", frozen=True,
                                      hide_input_in_errors=True)

    database_url: str = Field(
        "sqlite:///./betascope.db", description="SQLAlchemy URL: sqlite:///FILE or postgresql://..."
    )
    broker_url: str | None = Field(
        None, description="Celery broker (redis://host:6379/0); unset = in-process executor"
    )
    api_token: SecretStr | None = Field(
        None, description="when set, mutating requests need 'Authorization: Bearer <token>'"
    )
    max_runs: int = Field(10_000_000, ge=1, description="largest grid a sweep may hold")
    chunk_runs: int = Field(
        50_000, ge=1, le=10_000_000,
        description="most runs per chunk (task); sweeps get about 16 chunks, fewer runs each "
                    "when small, and every chunk holds whole cells (all seeds of a point)")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N, where workers compute")
    kernel: Literal["auto", "eager", "compiled", "fused"] = Field(
        "auto", description="engine kernel (auto: fused where it supports the sweep and the "
        "sweep is large enough, else eager; resolved per sweep); part of every run_key"
    )
    host: str = Field("127.0.0.1", description="address `betascope serve` binds")
    port: int = Field(8000, ge=1, le=65535, description="port `betascope serve` binds")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated Host names served besides localhost, 127.0.0.1, ::1 and "
        "the bind address ('*.example.org' for subdomains, '*' for any)",
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="a connection that has not sent its request headers in this "
        "time is closed (408)",
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="a request body not received in full in this time gets 408"
    )
    max_connections: int = Field(
        200, ge=1, description="open connections each API process of `betascope serve` "
                          "holds; more get 503"
    )
    queue: str = Field("betascope", min_length=1, description="Celery queue name")
    lease_seconds: float = Field(120.0, gt=0, description="a claimed chunk's lease")
    heartbeat_seconds: float = Field(
        1.0, gt=0, description="progress writes, lease renewal and cancel polls"
    )
    reconcile_seconds: float = Field(
        15.0, gt=0, description="how often the service re-enqueues lost chunks"
    )
    requeue_after_seconds: float = Field(
        600.0, ge=0, description="re-send a queued chunk no worker took within this time"
    )
    max_attempts: int = Field(3, ge=1, le=100, description="engine failures before a chunk fails")
    max_worker_losses: int = Field(
        20, ge=1, le=1000,
        description="workers lost under a chunk (lease expired) before it fails",
    )
    retry_backoff_seconds: float = Field(
        2.0, ge=0, description="first retry delay after an engine failure (doubles)"
    )
    embedded_workers: int = Field(1, ge=1, le=64, description="chunks the in-process executor "
                                  "runs at once")
    embedded_process: bool = Field(
        True, description="the in-process executor computes in a spawned child process, so "
                          "the engine never holds the API's GIL (false: in threads)")
    engine_warmup: bool = Field(
        True, description="engine processes (workers, the embedded engine process) load the "
                          "fused kernel when they start, so the first sweep does not wait ~1 s")
    prepare_finished: bool = Field(
        True, description="each API process prepares a sweep's reads (status, runs page, "
                          "maps) when it finishes, before a client asks (api/prepare.py)")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest accepted request body")
    max_concurrent_creates: int = Field(
        4, ge=1, le=1000,
        description="sweep creations one API process handles at once; more get 429")
    max_queued_run_steps: int | None = Field(
        100_000_000_000, ge=1,
        description="runs x steps still to compute over all queued and running chunks; a "
                    "sweep that would exceed it gets 429 (unset/empty: no bound)")
    auto_upgrade: bool = Field(True, description="upgrade the database schema when serving")
    fault_inject: Path | None = Field(
        None, description="test only: while this file exists, the first chunk of each sweep "
        "whose name contains the file's text raises in the engine",
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        v = v.strip()
        if v.startswith(("postgres://", "postgresql://")):
            # psycopg 3 is the driver we ship; a bare URL would ask for psycopg2
            v = "postgresql+psycopg://" + v.split("://", 1)[1]
        if not v.startswith(("sqlite://", "postgresql+psycopg://")):
            raise ValueError(
                f"must be sqlite:///PATH or postgresql://USER@HOST/DB, not {redact_url(v)!r}"
            )
        return v

    @field_validator("broker_url", mode="before")
    @classmethod
    def _broker_url(cls, v: str | None) -> str | None:
        if v is None or not str(v).strip():
            return None
        v = str(v).strip()
        if not v.startswith(("redis://", "rediss://", "amqp://", "amqps://", "memory://")):
            raise ValueError(
                f"must be a redis://, rediss:// or amqp:// URL (or unset), not {redact_url(v)!r}"
            )
        return v

    @field_validator("max_queued_run_steps", mode="before")
    @classmethod
    def _no_bound(cls, v: object) -> object:
        return None if isinstance(v, str) and v.strip().lower() in ("", "none") else v

    @field_validator("api_token", mode="before")
    @classmethod
    def _token(cls, v: object) -> object:
        """Stripped (a trailing newline from a secrets file must not lock every client
        out), and printable ASCII: HTTP headers carry bytes, not text."""
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if v is None or not isinstance(v, str):
            return v
        v = v.strip()
        if not v:
            return None
        if not all("!" <= c <= "~" for c in v):
            raise ValueError(
                "must be printable ASCII without spaces (letters, digits, punctuation); "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return v

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.split(",")
        if isinstance(v, list | tuple):
            return [h.strip().lower().removeprefix("[").removesuffix("]") for h in v
                    if isinstance(h, str) and h.strip()]
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        ok = v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return v

    @model_validator(mode="after")
    def _timings(self) -> Settings:
        if self.heartbeat_seconds * 3 > self.lease_seconds:
            raise ValueError(
                "lease_seconds must be at least 3 heartbeats, or live chunks lose their lease"
            )
        return self

    @property
    def embedded(self) -> bool:
        """No broker: chunks run in a thread pool inside the API process."""
        return self.broker_url is None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def token(self) -> str | None:
        return self.api_token.get_secret_value() if self.api_token is not None else None

    def served_hosts(self) -> frozenset[str]:
        """Host names (no port) the service answers to: loopback, the bind address and
        BETASCOPE_ALLOWED_HOSTS. Anything else is a DNS-rebinding attempt or a typo."""
        hosts = {"localhost", "127.0.0.1", "::1", *self.allowed_hosts}
        if self.host not in ("0.0.0.0", "::", ""):
            hosts.add(self.host.lower().removeprefix("[").removesuffix("]"))
        return frozenset(hosts)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, fit for a log or a message. Whatever
    stands between '://' and the last '@' of the authority counts as credentials, so
    a URL too malformed to parse is masked as well."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***" if "@" in url else url
    netloc, slash, path = rest.partition("/")
    if "@" not in netloc:
        return url
    user, host = netloc.rsplit("@", 1)
    if ":" not in user:
        return url
    return f"{scheme}://{user.split(':', 1)[0]}:***@{host}{slash}{path}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
