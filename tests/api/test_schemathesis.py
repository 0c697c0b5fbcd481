"""schemathesis against the app's own OpenAPI schema, in process, on the embedded default.

Every operation gets positive and negative generated requests; GET routes under a
sweep also get requests pinned to real sweeps (one with runs that overflowed to inf
and nan), so phase maps, run pages and exports answer from stored results. No
response may be a 5xx, use an undeclared status code, or break its declared schema.
Mutating operations run last (with the token), since DELETE may remove the data.
Derandomized: the same cases every run.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.helpers import spec
from tests.conftest import ARTIFACTS
from tests.services import FAST

warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")

TOKEN = "schemathesis-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
# examples per operation and mode; hypothesis stops early where a schema has
# fewer distinct cases (healthz has one), so the total is counted, not assumed
EXAMPLES = {GenerationMode.POSITIVE: 60, GenerationMode.NEGATIVE: 30}
PINNED_EXAMPLES = 40  # GETs under /sweeps/{id}, with a real sweep id
MIN_CASES = 1000


def _diverging(name: str, dtype: str, lrs: list[float]) -> dict[str, Any]:
    doc = spec(
        name, steps=30, beta1=[0.0, 0.9], beta2=[0.5, 0.999], batch_size=[1], seed=[0], lr=lrs
    )
    doc["dtype"] = dtype
    doc["optimizer"]["schedule"] = "constant"
    return doc


@pytest.fixture(scope="module")
def app_with_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ...]]:
    """The app on a fresh SQLite file with three finished sweeps: a plain one, and
    float32 and float64 ones whose runs end at inf or nan."""
    from api.app import create_app
    from api.settings import Settings

    db = tmp_path_factory.mktemp("schemathesis") / "st.db"
    app = create_app(Settings(**dict(FAST, database_url=f"sqlite:///{db}", api_token=TOKEN)))
    ids = []
    with asgi.get_client(app) as client:  # starts the lifespan: executor and reconciler
        for doc in (
            spec("plain <b>", steps=40),
            _diverging("=overflow f32", "float32", [1e38, 3e38]),
            _diverging("+overflow f64", "float64", [1e305, 1.7e308]),
        ):
            resp = client.post("/api/v1/sweeps", json=doc, headers=AUTH)
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
        deadline = time.monotonic() + 120
        for sweep_id in ids:
            while client.get(f"/api/v1/sweeps/{sweep_id}").json()["status"] != "done":
                assert time.monotonic() < deadline, f"sweep {sweep_id} did not finish"
                time.sleep(0.1)
        runs = [
            (sweep_id, r)
            for sweep_id in ids
            for r in client.get(f"/api/v1/sweeps/{sweep_id}/runs").json()["items"]
        ]
    # one run of each kind of final loss: finite, inf and nan
    kinds = {_kind(r["final_loss"]): (sweep_id, r["run_key"]) for sweep_id, r in runs}
    assert set(kinds) == {"finite", "Infinity", "NaN"}, kinds
    try:
        yield app, ids, list(kinds.values())
    finally:
        asgi.shutdown_lifespans()


def _kind(value: Any) -> str:
    return value if isinstance(value, str) else "finite"


def _order(op: Any) -> tuple[int, str]:
    # reads first, while every sweep is there; DELETE last of all
    rank = {"GET": 0, "POST": 1, "DELETE": 2}[op.method.upper()]
    return rank, op.path


def _has_inputs(op: Any) -> bool:
    return bool(list(op.iter_parameters())) or bool(op.body)


def _has_query(op: Any) -> bool:
    return any(p.location == "query" for p in op.iter_parameters())


def test_no_server_error_and_no_schema_violation(app_with_data: tuple[Any, ...]) -> None:
    app, ids, run_keys = app_with_data
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = sorted((result.ok() for result in schema.get_all_operations()), key=_order)
    assert len(ops) >= 15, [op.label for op in ops]

    cases: Counter[str] = Counter()
    failures: list[str] = []
    client = asgi.get_client(app)

    def run(op: Any, mode: GenerationMode, n: int, **pinned: Any) -> None:
        strategy = op.as_strategy(generation_mode=mode, **pinned)

        @given(case=strategy)
        @settings(
            max_examples=n,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            cases[op.label] += 1
            response = case.call(session=client, headers=AUTH)
            extra = [negative_data_rejection] if mode is GenerationMode.NEGATIVE else []
            case.validate_response(response, checks=CHECKS + extra)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # one report per operation and mode
            failures.append(
                f"{op.label} [{mode.value}{' pinned' if pinned else ''}]: {str(exc)[:3000]}"
            )

    with client:
        for op in ops:
            for mode, n in EXAMPLES.items():
                if mode is GenerationMode.NEGATIVE and not _has_inputs(op):
                    continue  # nothing to make invalid
                run(op, mode, n)
            if op.method.upper() == "GET" and "{sweep_id}" in op.path:
                for sweep_id in ids:
                    for mode in GenerationMode:
                        if mode is GenerationMode.NEGATIVE and not _has_query(op):
                            continue  # the pinned id is the only input
                        run(
                            op,
                            mode,
                            PINNED_EXAMPLES // len(ids),
                            path_parameters={"sweep_id": sweep_id},
                        )
            if op.method.upper() == "GET" and "{run_key}" in op.path:
                for sweep_id, key in run_keys:
                    run(
                        op,
                        GenerationMode.POSITIVE,
                        1,
                        path_parameters={"sweep_id": sweep_id, "run_key": key},
                    )

    total = sum(cases.values())
    lines = [f"schemathesis: {total} cases over {len(ops)} operations"]
    lines += [f"  {n:5d}  {label}" for label, n in sorted(cases.items())]
    print("\n" + "\n".join(lines))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "schemathesis.txt").write_text("\n".join(lines) + "\n")
    assert not failures, "\n\n".join(failures)
    assert total >= MIN_CASES, cases
