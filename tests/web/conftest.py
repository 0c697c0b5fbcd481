"""Browser-test fixtures: a real uvicorn server on the embedded default and Chromium.

The server is a subprocess with a SQLite file in a temporary directory and the
in-process executor (no broker), exactly what `betascope serve` runs. It
serves on a loopback socket this process binds and hands over (uvicorn
--fd), so no other process can take the port between choosing and binding.
Chromium is Debian's, driven by Playwright; without
either, these tests skip locally and fail under BETASCOPE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS, need

CHROMIUM = os.environ.get("BETASCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = Path(__file__).resolve().parents[2]


def _listening_socket() -> socket.socket:
    """A bound, listening loopback socket on a port the kernel picks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Server:
    """A running `uvicorn api.app:create_app` and a tiny JSON client for set-up."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path, database_url: str):
        self.url, self.proc, self.log = url, proc, log
        self.database_url = database_url

    def api(self, method: str, path: str, body: Any = None, timeout: float = 120) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + "/api/v1" + path, data=data, method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
        return json.loads(text) if text else None

    def create(self, spec: dict[str, Any]) -> int:
        return int(self.api("POST", "/sweeps", spec)["id"])

    def wait_done(self, sweep_id: int, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.api("GET", f"/sweeps/{sweep_id}")
            if s["status"] in ("done", "failed", "canceled"):
                assert s["status"] == "done", s
                return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep_id} still {s['status']}: {s}")
            time.sleep(0.2)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@contextmanager
def start_server(tmp: Path, **extra_env: str) -> Iterator[Server]:
    """`uvicorn api.app:create_app` on its own listening socket (handed over, so the
    port cannot be taken in between) with its own SQLite file in `tmp`."""
    sock = _listening_socket()
    port = int(sock.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("BETASCOPE_")}
    database_url = f"sqlite:///{tmp / 'web.db'}"
    env.update(
        BETASCOPE_DATABASE_URL=database_url,
        BETASCOPE_DEVICE="cpu",
        # small chunks, so a page can be seen filling in as they finish
        BETASCOPE_CHUNK_RUNS="20",
        BETASCOPE_EMBEDDED_WORKERS="2",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.update(extra_env)
    log = tmp / "server.log"
    with log.open("wb") as out, sock:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
             "--fd", str(sock.fileno()), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, pass_fds=(sock.fileno(),),
        )
    srv = Server(f"http://127.0.0.1:{port}", proc, log, database_url)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{srv.log_tail()}")
            try:
                urllib.request.urlopen(srv.url + "/api/v1/healthz", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"server did not start:\n{srv.log_tail()}")
                time.sleep(0.2)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("betascope-web")) as srv:
        yield srv


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    need(sync_playwright is not None, "the playwright Python package")
    need(Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None, f"Chromium at {CHROMIUM}")
    assert sync_playwright is not None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page plus what it did that a test must rule out: dialogs, script errors and
    requests that left the machine."""

    def __init__(self, page: Any, base: str):
        self.page, self.base = page, base
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.external: list[str] = []

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def shot(self, name: str, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@contextmanager
def open_page(browser: Any, server: Server) -> Iterator[Watched]:
    """A fresh browser context on `server` whose requests to any other host are blocked."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    w = Watched(page, server.url)

    def on_dialog(d: Any) -> None:
        w.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(server.url) or url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            w.external.append(url)
            r.abort()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda e: w.errors.append(str(e)))
    page.route("**/*", route)
    try:
        yield w
    finally:
        context.close()
    assert not w.errors, f"script errors on the page: {w.errors}"
    assert not w.external, f"the page tried to reach other hosts: {w.external}"


@pytest.fixture
def web(browser: Any, server: Server) -> Iterator[Watched]:
    with open_page(browser, server) as w:
        yield w
