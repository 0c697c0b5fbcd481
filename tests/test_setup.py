"""README's first command on a distribution's own Python (PEP 668), from a fresh clone.

A Debian/Ubuntu/Fedora Python refuses `pip install` outside a virtualenv, so
`bash scripts/serve` must make and use the project's `.venv`, leave `git status`
as it was, and skip pip entirely when run again with nothing changed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parent.parent
MANAGED_PYTHON = Path("/usr/bin/python3")
# the first run installs torch and every dependency into a new virtualenv
FIRST_ANSWER_BUDGET_S = 780


def _externally_managed(python: Path) -> bool:
    """True when `python` is a PEP 668 Python that can still make virtualenvs."""
    if not python.exists():
        return False
    probe = (
        "import sysconfig, os, ensurepip, venv;"
        "print(os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))"
    )
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == "True"


def _clean_env(path: str) -> dict[str, str]:
    """The environment of a user who has set nothing up: no venv, no betascope settings."""
    drop = ("VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("BETASCOPE_")}
    env["PATH"] = path
    return env


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _fresh_clone(dest: Path) -> Path:
    """`git clone` of this repository, with the working tree's uncommitted files on top."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    for name in _git(ROOT, "ls-files", "-co", "--exclude-standard", "-z").split("\0"):
        if not name:
            continue
        src, dst = ROOT / name, dest / name
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif dst.exists():
            dst.unlink()
    return dest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    # this machine's pip config names index folders that do not all exist
    return "\n".join(line for line in text if "is ignored" not in line)[-6000:]


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary folder removed at once (a virtualenv with torch is over 1 GB)."""
    path = Path(tempfile.mkdtemp(prefix="betascope-setup-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(FIRST_ANSWER_BUDGET_S + 120)
def test_serve_from_a_fresh_clone_with_an_externally_managed_python(scratch: Path) -> None:
    need(
        _externally_managed(MANAGED_PYTHON),
        f"an externally managed (PEP 668) Python with venv at {MANAGED_PYTHON}"
        " (Debian: apt install python3 python3-venv)",
    )
    clone = _fresh_clone(scratch / "betascope")
    before = _git(clone, "status", "--porcelain", "--untracked-files=all")
    env = _clean_env(f"{MANAGED_PYTHON.parent}:/usr/bin:/bin")
    port = _free_port()
    env["BETASCOPE_PORT"] = str(port)
    log = scratch / "serve.log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/serve"],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while True:
            assert proc.poll() is None, f"scripts/serve exited ({proc.returncode}):\n{_tail(log)}"
            assert time.monotonic() - started < FIRST_ANSWER_BUDGET_S, _tail(log)
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=5)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        first_answer_s = time.monotonic() - started
        assert r.json()["status"] == "ok"
        ready = httpx.get(f"http://127.0.0.1:{port}/api/v1/readyz", timeout=10).json()
        assert ready["status"] == "ok", ready
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(f"bash scripts/serve from a fresh clone: first answer after {first_answer_s:.1f} s")

    # the environment is the project's .venv, made from the distribution's Python
    cfg = (clone / ".venv" / "pyvenv.cfg").read_text()
    assert f"home = {MANAGED_PYTHON.parent}" in cfg, cfg
    assert "include-system-site-packages = false" in cfg
    assert "installed in .venv" in _tail(log)
    # the embedded default: SQLite in the clone, in its WAL files too
    assert (clone / "betascope.db").exists()
    assert _git(clone, "status", "--porcelain", "--untracked-files=all") == before

    # running it again finds everything installed and runs no pip
    stamp = clone / ".venv" / ".betascope-setup"
    stamped = stamp.stat().st_mtime_ns
    again = subprocess.run(
        ["bash", "scripts/setup"], cwd=clone, env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert again.stderr.strip() == f"betascope: up to date in {clone / '.venv'}"
    assert stamp.stat().st_mtime_ns == stamped
    # a changed pyproject.toml is a different install: pip runs again (offline here,
    # so it stops at once; what matters is that it ran)
    (clone / "pyproject.toml").write_text((clone / "pyproject.toml").read_text() + "\n")
    offline = {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    changed = subprocess.run(
        ["bash", "scripts/setup"],
        cwd=clone,
        env=offline,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert f"installing into {clone / '.venv'}" in changed.stderr, changed.stderr
    assert changed.returncode != 0 and stamp.stat().st_mtime_ns == stamped


def _setup_copy(dest: Path) -> Path:
    """Just what scripts/setup reads, so a failing run can never install anything."""
    shutil.copytree(ROOT / "scripts", dest / "scripts")
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _bin_with(dest: Path, tools: tuple[str, ...]) -> Path:
    """A PATH folder holding only the named commands (and so no real Python)."""
    dest.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found, tool
        (dest / tool).symlink_to(found)
    return dest


TOOLS = ("bash", "sh", "cat", "dirname", "rm")
# not a virtualenv's python, which would make the fake look like an active virtualenv
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def _old_python(dest: Path) -> Path:
    """A python3 that answers every version check as Python 3.9 would."""
    fake = dest / "python3"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "-c" ] || exit 2\n'
        f"exec {BASE_PYTHON} -c \"import sys; sys.version_info = (3, 9, 2, 'final', 0)\n$2\"\n"
    )
    fake.chmod(0o755)
    return fake


def test_an_old_python_gets_one_message_saying_what_to_install(tmp_path: Path) -> None:
    repo = _setup_copy(tmp_path / "repo")
    path = _bin_with(tmp_path / "bin", TOOLS)
    fake = _old_python(path)
    out = subprocess.run(
        ["bash", "scripts/setup"],
        cwd=repo,
        env=_clean_env(str(path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    (message,) = out.stderr.strip().splitlines()
    assert message.startswith("error: betascope needs Python 3.11 or newer; found ")
    assert f"{fake} (3.9)" in message and "apt install python3 python3-venv" in message
    assert not (repo / ".venv").exists()


def test_no_python_at_all_gets_the_same_message(tmp_path: Path) -> None:
    repo = _setup_copy(tmp_path / "repo")
    path = _bin_with(tmp_path / "bin", TOOLS)
    out = subprocess.run(
        ["bash", "scripts/serve"],
        cwd=repo,
        env=_clean_env(str(path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    (message,) = out.stderr.strip().splitlines()
    assert "needs Python 3.11 or newer; found no Python on PATH" in message
    assert not (repo / ".venv").exists()


def _env_of(repo: Path, env: dict[str, str]) -> str:
    return subprocess.run(
        ["bash", "-c", ". scripts/env.sh; betascope_find_env; echo $BETASCOPE_PREFIX"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def test_an_active_virtualenv_or_conda_env_is_used_instead_of_dot_venv(tmp_path: Path) -> None:
    repo = _setup_copy(tmp_path / "repo")
    venv = tmp_path / "mine"
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    plain = _clean_env("/usr/bin:/bin")
    assert _env_of(repo, plain) == str(repo / ".venv")
    assert _env_of(repo, {**plain, "VIRTUAL_ENV": str(venv)}) == str(venv)
    assert _env_of(repo, {**plain, "CONDA_PREFIX": str(venv)}) == str(venv)
    # a virtualenv whose python3 is first on PATH (a container's /venv) counts too
    assert _env_of(repo, {**plain, "PATH": f"{venv}/bin:/usr/bin:/bin"}) == str(venv)


def test_an_active_virtualenv_with_an_old_python_is_refused(tmp_path: Path) -> None:
    repo = _setup_copy(tmp_path / "repo")
    venv = tmp_path / "old"
    (venv / "bin").mkdir(parents=True)
    fake = _old_python(venv / "bin")
    fake.rename(venv / "bin" / "python")
    out = subprocess.run(
        ["bash", "scripts/setup"],
        cwd=repo,
        env={**_clean_env(str(_bin_with(tmp_path / "bin", TOOLS))), "VIRTUAL_ENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    (message,) = out.stderr.strip().splitlines()
    assert f"the active virtualenv {venv} has 3.9" in message and "deactivate" in message
