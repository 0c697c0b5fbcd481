"""`betascope serve` as a user runs it: a real uvicorn process on a free loopback port,
its whole output captured in a log file the test can read."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.services import ROOT, env_for, wait_for


class _PortTaken(Exception):
    """Another process bound the port between free_port() and the server."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """`python -m api.cli serve` with BETASCOPE_* settings; stop() ends it.

    The port is found free and then bound by the server, so another process may
    take it in between; wait_ready() then starts the server again on another
    port (the CLI binds the port it is given, as a user runs it).
    """

    ATTEMPTS = 3

    def __init__(self, settings: dict[str, Any], log_path: Path, *args: str):
        self._settings, self._args = settings, args
        self.log_path = log_path
        self._start()

    def _start(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = env_for({**self._settings, "port": self.port})
        env["PYTHONUNBUFFERED"] = "1"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", *self._args], cwd=ROOT, env=env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90) -> LiveServer:
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                wait_for(self._up, timeout, "betascope serve to answer /readyz", interval=0.2)
                return self
            except _PortTaken:
                self._log.close()
                if attempt == self.ATTEMPTS:
                    raise AssertionError(f"no free port in {attempt} tries:\n{self.log()}") \
                        from None
                self._start()
        raise AssertionError("unreachable")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            if "address already in use" in self.log().lower():
                raise _PortTaken()
            raise AssertionError(f"betascope serve exited:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/api/v1/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
