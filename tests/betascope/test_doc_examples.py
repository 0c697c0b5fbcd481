"""The Python examples of docs/notebook.md and README run as written: a new user
pastes them into a notebook, and an example that raises is the first thing they
see. Each block runs in a fresh interpreter in a temporary directory; the client's
blocks run against a real `betascope serve` with only the server's address and
token put in."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.live import LiveServer
from tests.services import ROOT

TOKEN = "doc-examples-token"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
# the engine on one thread, as the suite's other pytest runs beside this one
ONE_THREAD = "import torch\ntorch.set_num_threads(1)\n"


def _blocks(page: str) -> list[str]:
    return BLOCK.findall((ROOT / page).read_text())


def _run(code: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"the example raised:\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("doc-examples")
    srv = LiveServer({"database_url": f"sqlite:///{tmp}/docs.db", "device": "cpu",
                      "api_token": TOKEN}, tmp / "serve.log")
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def _for(server: LiveServer, code: str, address: str, token: str, ours: str) -> str:
    """The block with the server's address and token where the docs show theirs."""
    assert address in code and token in code, "the example's Client line changed"
    return code.replace(address, repr(server.url)).replace(token, ours)


def test_the_notebook_pages_local_examples_run_as_written(tmp_path: Path) -> None:
    first, table, _client = _blocks("docs/notebook.md")
    _run(ONE_THREAD + first + "\n" + table, tmp_path)
    # the files its last lines write
    assert (tmp_path / "map.html").stat().st_size > 0
    assert (tmp_path / "runs.csv").read_text().startswith("run_key,beta1,beta2,")


def test_the_notebook_pages_client_example_runs_as_written(server: LiveServer,
                                                           tmp_path: Path) -> None:
    client = _blocks("docs/notebook.md")[2]
    _run(_for(server, client, '"http://gpu-head:8000"', 'token="..."', f"token={TOKEN!r}"),
         tmp_path)
    assert (tmp_path / "runs.csv").read_text().startswith("run_key,beta1,beta2,")
    assert (tmp_path / "cells.parquet").read_bytes()[:4] == b"PAR1"


def test_the_readmes_example_runs_as_written(server: LiveServer, tmp_path: Path) -> None:
    readme = _blocks("README.md")[0]
    _run(ONE_THREAD + _for(server, readme, '"http://127.0.0.1:8000"', "token=None",
                           f"token={TOKEN!r}"), tmp_path)
    assert (tmp_path / "runs.csv").read_text().startswith("run_key,beta1,beta2,")
