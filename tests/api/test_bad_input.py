"""Bad input gets a 4xx naming the problem: never a 5xx, never a hang.

The corpus is in bad_inputs.py. Each table runs in one test per backend (a fresh
app per row would cost a schema upgrade each), and every row is reported: the test
fails listing all rows that went wrong, not just the first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.bad_inputs import BODIES, NOT_IDS, QUERIES, SPECS, UNKNOWN_IDS, apply
from tests.api.helpers import spec, submit, wait_status
from tests.api.live import LiveServer
from tests.services import FAST

pytestmark = [pytest.mark.services, pytest.mark.timeout(300)]
SLOW = 10.0  # seconds: any answer slower than this counts as a hang


def message(resp: Any) -> str:
    """The error's text: the detail string, or 'loc: msg' for each listed error."""
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    detail = resp.json()["detail"]
    if isinstance(detail, str):
        return detail
    return "; ".join(".".join(str(p) for p in e["loc"]) + f" ({e.get('field', '')}): {e['msg']}"
                     for e in detail)


class Report:
    """Collects what went wrong over a table, so one run shows every bad row."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, name: str, resp: Any, elapsed: float, status: int, says: str) -> None:
        text = resp.text[:300]
        if resp.status_code != status:
            self.problems.append(f"{name}: HTTP {resp.status_code}, wanted {status}: {text}")
        elif elapsed > SLOW:
            self.problems.append(f"{name}: took {elapsed:.1f} s")
        elif says.lower() not in message(resp).lower():
            self.problems.append(f"{name}: message does not say {says!r}: {text}")

    def done(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def newest(client: Any) -> int | None:
    """The newest sweep's id (the Postgres backend shares its database between tests)."""
    items = client.get("/api/v1/sweeps", params={"limit": 1}).json()["items"]
    return items[0]["id"] if items else None


def _timed(send: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.monotonic()
    resp = send(*args, **kwargs)
    return resp, time.monotonic() - t0


@pytest.mark.parametrize("path", ["/api/v1/sweeps", "/api/v1/sweeps/validate"])
def test_bad_bodies(client: Any, path: str) -> None:
    before = newest(client)
    report = Report()
    for body in BODIES:
        headers = {"content-type": body.content_type} if body.content_type else {}
        resp, took = _timed(client.post, path, content=body.content, headers=headers)
        report.check(body.name, resp, took, body.status, body.says)
    report.done()
    assert newest(client) == before  # nothing was created


@pytest.mark.parametrize("path", ["/api/v1/sweeps", "/api/v1/sweeps/validate"])
def test_spec_mistakes_name_the_field(client: Any, path: str) -> None:
    report = Report()
    for mistake in SPECS:
        resp, took = _timed(client.post, path, content=json.dumps(apply(mistake)),
                            headers={"content-type": "application/json"})
        report.check(mistake.name, resp, took, 422, mistake.field)
        if resp.status_code == 422:
            for err in resp.json()["detail"]:  # the shape pages and the CLI read
                if not (err["loc"][0] == "body" and err["msg"] and "field" in err):
                    report.problems.append(f"{mistake.name}: malformed error {err}")
    report.done()


def test_the_same_mistakes_in_yaml(client: Any) -> None:
    import yaml

    report = Report()
    for mistake in SPECS:
        doc = apply(mistake)
        if any(isinstance(v, float) and v != v for v in _leaves(doc)):
            continue  # YAML's .nan is read as a float too; JSON covers it
        resp, took = _timed(client.post, "/api/v1/sweeps", content=yaml.safe_dump(doc),
                            headers={"content-type": "application/yaml"})
        report.check(mistake.name, resp, took, 422, mistake.field)
    report.done()


def _leaves(doc: Any) -> Iterator[Any]:
    if isinstance(doc, dict):
        for v in doc.values():
            yield from _leaves(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _leaves(v)
    else:
        yield doc


def test_a_grid_that_wraps_int64_is_over_the_cap(client: Any) -> None:
    """2**16 * 2**16 * 2**8 * 2**8 * 2**8 * 2**8 = 2**64 runs, which an int64 product
    reads as 0: a 20 kB body that once slipped under the run cap."""
    doc = spec("wraps", steps=1, beta1={"start": 0.0, "stop": 0.9, "num": 2**16},
               beta2={"start": 0.0, "stop": 0.9, "num": 2**16},
               batch_size=list(range(1, 257)), seed=list(range(256)),
               lr=[0.001 * (i + 1) for i in range(256)],
               clip=[{"mode": "value", "threshold": i + 1} for i in range(256)])
    doc["problem"]["n"] = 256
    for path in ("/api/v1/sweeps", "/api/v1/sweeps/validate"):
        resp, took = _timed(client.post, path, json=doc)
        assert resp.status_code == 413, resp.text[:300]
        assert "18446744073709551616 runs exceed the cap" in resp.json()["detail"]
        assert took < SLOW


def test_bad_query_parameters_and_ids(client: Any) -> None:
    sweep = submit(client, spec("queries", steps=20))
    wait_status(client, sweep["id"], "done")
    base = f"/api/v1/sweeps/{sweep['id']}"
    report = Report()
    for q in QUERIES:
        path = q.path if q.path.startswith("/api/") else base + q.path
        resp, took = _timed(client.get, path, params=q.params)
        report.check(q.name, resp, took, q.status, q.says)
    for method, path in UNKNOWN_IDS:
        resp, took = _timed(client.request, method, path)
        report.check(f"{method} {path}", resp, took, 404, "sweep 987654 not found")
    for bad in NOT_IDS:
        for suffix in ("", "/runs", "/phase-map", "/export.csv"):
            resp, took = _timed(client.get, f"/api/v1/sweeps/{bad}{suffix}")
            report.check(f"id {bad!r}{suffix}", resp, took, 422, "sweep_id")
        resp, took = _timed(client.delete, f"/api/v1/sweeps/{bad}")
        report.check(f"DELETE id {bad!r}", resp, took, 422, "sweep_id")
    report.done()
    assert client.get(base).json()["status"] == "done"  # none of that touched the sweep


# --- the same over a real socket: a real server, real limits, real timeouts -------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("bad-input")
    server = LiveServer(dict(FAST, database_url=f"sqlite:///{tmp}/live.db"), tmp / "serve.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def _chunks(total: int, size: int = 65536) -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


def test_multi_megabyte_bodies_over_a_socket(live: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=live.url, timeout=SLOW) as http:
        json_headers = {"content-type": "application/json"}
        # declared length: refused before the body is read
        resp = http.post("/api/v1/sweeps", content=b"x" * (8 << 20), headers=json_headers)
        assert resp.status_code == 413 and "BETASCOPE_MAX_BODY_BYTES" in resp.json()["detail"]
        # chunked, no length: refused once the limit is crossed
        resp = http.post("/api/v1/sweeps", content=_chunks(8 << 20), headers=json_headers)
        assert resp.status_code == 413 and "BETASCOPE_MAX_BODY_BYTES" in resp.json()["detail"]
        # and the server still answers
        for body in BODIES:
            if body.content_type is None or len(body.content) > 1 << 20:
                continue
            resp = http.post("/api/v1/sweeps/validate", content=body.content,
                             headers={"content-type": body.content_type})
            assert resp.status_code == body.status, (body.name, resp.text[:200])
        assert http.get("/api/v1/healthz").status_code == 200
    assert "Traceback" not in live.log(), live.log()[-3000:]


# --- one answer says everything, plainly --------------------------------------------------

YAML_MISTAKES = [
    (b"name: [unclosed\nsteps: 3\n", 2, 6),
    (b"grid:\n\tbeta1: [0.1]\n", 2, 1),
    (b"name: x\nsteps: 3\n  grid: 1\n", 3, 7),
    (b"name: 2001-02-30\n", 1, 7),
    (b"steps: 1" + b"0" * 5000 + b"\n", 1, 8),
    (b"? [a, b]\n: 1\n", 1, 3),
    (b"name: ok\nsteps: 3\x07\n", 2, 9),
]


def test_yaml_errors_say_line_and_column_plainly(client: Any) -> None:
    """The new-sweep page puts a YAML error beside the line it names: one line of text,
    'line L, column C: what is wrong', none of PyYAML's multi-line context or caret."""
    for text, line, column in YAML_MISTAKES:
        resp = client.post("/api/v1/sweeps/validate", content=text,
                           headers={"content-type": "application/yaml"})
        assert resp.status_code == 400, (text[:40], resp.text)
        detail = resp.json()["detail"]
        assert detail.startswith(f"body is not valid YAML: line {line}, column {column}: "), (
            text[:40], detail)
        assert "\n" not in detail and "^" not in detail, detail


def test_every_spec_error_is_reported_at_once(client: Any) -> None:
    """A bad field and the checks that span fields (batch size against the problem,
    repeated values, float32 rounding) in one 422, not one after the other."""
    doc = spec("all at once", steps=20)
    doc.update(steps=0, dtype="float32", sampling="sometimes")
    doc["grid"].update(batch_size=[1, 40], seed=[3, 3], beta2=[0.5, 1 - 1e-9])
    for path in ("/api/v1/sweeps/validate", "/api/v1/sweeps"):
        resp = client.post(path, json=doc)
        assert resp.status_code == 422, resp.text
        fields = sorted(e["field"] for e in resp.json()["detail"])
        assert fields == ["grid.batch_size", "grid.beta2", "grid.seed", "sampling", "steps"], (
            resp.json())
    # and with every field valid, every cross-field mistake at once
    doc.update(steps=20, sampling="with_replacement")
    resp = client.post("/api/v1/sweeps/validate", json=doc)
    assert sorted(e["field"] for e in resp.json()["detail"]) == [
        "grid.batch_size", "grid.beta2", "grid.seed"], resp.json()
