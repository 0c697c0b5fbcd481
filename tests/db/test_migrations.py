"""Models and migrations agree, on Postgres and SQLite, and migrations revert."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from api.db.migrate import current, downgrade, head, upgrade
from api.db.models import Base


def _diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrations_match_the_models(empty_url: str) -> None:
    upgrade(empty_url)
    assert current(empty_url) == head() == "20261207_answer_storage"
    assert _diff(empty_url) == []
    assert _tables(empty_url) == {"sweep", "chunk", "answer"}


def _bytea_storage(url: str) -> dict[str, str] | None:
    """{table.column: attstorage} of the chunk and answer tables' bytea columns (Postgres;
    None elsewhere)."""
    engine = create_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            return None
        with engine.connect() as conn:
            return dict(conn.exec_driver_sql(
                "SELECT attrelid::regclass::text || '.' || attname, attstorage FROM pg_attribute "
                "WHERE attrelid IN ('chunk'::regclass, 'answer'::regclass) "
                "AND atttypid = 'bytea'::regtype").all())
    finally:
        engine.dispose()


def test_stored_bytes_skip_postgres_compression(empty_url: str) -> None:
    """Records are LZ4 already and answers are read whole: pglz would only cost the
    database server CPU (4.6 ms per 50 kB answer measured)."""
    upgrade(empty_url)
    storage = _bytea_storage(empty_url)
    if storage is None:
        return
    assert storage == {"chunk.runs_data": "e", "chunk.cells_data": "e",
                       "chunk.curves_data": "e", "answer.body": "e"}
    downgrade(empty_url, "20261206_answers")
    after = _bytea_storage(empty_url)
    assert after is not None
    assert after["answer.body"] == "x"  # extended: Postgres's default, as before


def test_migrations_revert_and_reapply(empty_url: str) -> None:
    upgrade(empty_url)
    downgrade(empty_url, "base")
    assert _tables(empty_url) == set()
    assert current(empty_url) is None
    upgrade(empty_url)
    assert _diff(empty_url) == []


def test_chunk_failures_migration_reverts_to_the_initial_schema(empty_url: str) -> None:
    upgrade(empty_url, "20261122_chunk_failures")
    downgrade(empty_url, "20261122_initial")
    engine = create_engine(empty_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("chunk")}
    finally:
        engine.dispose()
    assert "failures" not in columns and "attempts" in columns
    upgrade(empty_url)
    assert _diff(empty_url) == []


def test_constraints_and_indexes_are_named() -> None:
    names = []
    for table in Base.metadata.sorted_tables:
        names += [c.name for c in table.constraints] + [i.name for i in table.indexes]
    assert all(isinstance(n, str) and n for n in names)
    assert "ix_sweep_program_key" in names and "ck_chunk_status" in names


def test_columnar_migration_keeps_every_sweeps_maps_and_csv(empty_url: str) -> None:
    """Sweeps written in the row-per-run layout read the same after the upgrade (maps,
    cells CSV and every runs CSV field but run_key, whose definition changed), and
    the downgrade brings the rows back."""
    import json

    import numpy as np

    from api.db.models import Sweep
    from api.db.session import get_database
    from api.services import results
    from api.services.sweeps import stored_spec
    from experiments import analysis, export
    from experiments.local import run_local
    from experiments.spec import parse_spec

    doc = {"name": "old layout", "problem": {"kind": "zhang2022", "n": 20},
           "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
           "steps": 40, "grid": {"beta1": [0.0, 0.9], "beta2": [0.0, 0.5, 0.99],
                                 "batch_size": [1, 4], "seed": [0, 1]}}
    spec = parse_spec(doc)
    local = run_local(spec, device="cpu")
    upgrade(empty_url, "20261122_chunk_failures")
    _write_old_layout(empty_url, spec, local)
    upgrade(empty_url)
    db = get_database(empty_url)
    with db.session(read_only=True) as s:
        sweep = s.get(Sweep, 1)
        assert sweep.status == "done" and sweep.n_chunks >= 1
        got = results.sweep_cells(s, sweep, stored_spec(sweep))[0]
    want = local.cells()
    for name in ("n_runs", "outcome", "diverged_frac"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    assert np.allclose(got.final_rel, want.final_rel, equal_nan=True, rtol=0, atol=0)
    # the old layout never measured spikes: those columns are empty, the rest the same
    spike = {"spiky_frac", "median_max_rise", "max_rise", "spiky"}
    for level, columns, rows in (("cells", export.CELL_COLUMNS, local.cell_rows()),
                                 ("runs", export.RUN_COLUMNS, local.run_rows())):
        text = b"".join(results.export_csv(db, 1, spec, level, "eager")).decode()
        got_rows = [r.split(",") for r in text.splitlines()]
        ref = [r.split(",") for r in export.csv_lines([columns, *rows]).decode().splitlines()]
        assert got_rows[0] == ref[0]
        keep = [i for i, c in enumerate(columns) if c not in spike and c != "run_key"]
        gone = [i for i, c in enumerate(columns) if c in spike]
        assert [[r[i] for i in keep] for r in got_rows] == [[r[i] for i in keep] for r in ref]
        assert {r[i] for r in got_rows[1:] for i in gone} == {""}, level
    assert analysis.boundary(spec, got) == analysis.boundary(spec, want)
    downgrade(empty_url, "20261122_chunk_failures")
    assert _tables(empty_url) == {"sweep", "run", "chunk", "sweep_run"}
    engine = create_engine(empty_url)
    try:
        with engine.connect() as conn:
            n = conn.exec_driver_sql("SELECT count(*) FROM run WHERE outcome IS NOT NULL")
            assert n.scalar() == local.total
            rows = conn.exec_driver_sql("SELECT curve FROM run LIMIT 1").scalar()
            assert len(json.loads(rows) if isinstance(rows, str) else rows) == len(
                local.curve_steps)
    finally:
        engine.dispose()


def test_curves_migration_moves_curves_out_of_the_run_records_and_back(empty_url: str) -> None:
    """A sweep computed by workers reads the same (runs CSV bytes, a run's curve, the
    phase map) after its curves move back into the run records and out again."""
    import numpy as np

    from api.db import columnar
    from api.db.models import Sweep
    from api.db.session import forget_databases, get_database
    from api.services import results
    from api.services.sweeps import create_sweep, stored_spec
    from api.settings import Settings
    from experiments.spec import parse_spec
    from tests.services import FAST
    from workers.chunks import process_chunk

    upgrade(empty_url)
    settings = Settings(**{**FAST, "database_url": empty_url})
    doc = {"name": "curves", "problem": {"kind": "zhang2022", "n": 20}, "steps": 60,
           "optimizer": {"lr": 0.1, "schedule": "inv_sqrt", "bias_correction": False},
           "grid": {"beta1": [0.0, 0.5, 0.9], "beta2": [0.0, 0.5, 0.9, 0.99],
                    "batch_size": [1, 4], "seed": [0, 1]}}
    with get_database(empty_url).session() as s:
        sweep, ids = create_sweep(session=s, spec=parse_spec(doc), settings=settings)
        sweep_id = sweep.id
    assert len(ids) > 1
    for chunk_id in ids:
        assert process_chunk(chunk_id, token=f"t{chunk_id}", settings=settings,
                             enqueue=lambda *_: None) == "done"

    def read() -> tuple[bytes, list[float], Any]:
        db = get_database(empty_url)
        with db.session(read_only=True) as s:
            sw = s.get(Sweep, sweep_id)
            spec = stored_spec(sw)
            csv = b"".join(results.export_csv(db, sweep_id, spec, "runs", sw.kernel))
            page, _ = results.list_runs(s, sw, spec, filters={}, outcome=None, cursor=None,
                                        limit=3)
            curve = results.run_detail(s, sw, spec, page[2]["run_key"])["curve"]["loss"]
            pm = results.phase_map(s, sw, spec, metric="final_rel", chosen={})
        return csv, curve, pm["z"]

    def records() -> list[tuple[bytes, bytes | None]]:
        engine = create_engine(empty_url)
        try:
            with engine.connect() as conn:
                return [(bytes(r), None if c is None else bytes(c)) for r, c in
                        conn.exec_driver_sql(
                            "SELECT runs_data, curves_data FROM chunk ORDER BY id").all()]
        finally:
            engine.dispose()

    before = read()
    stored = records()
    assert all(c is not None and columnar.CURVE not in columnar.decode_runs(r)
               for r, c in stored)
    forget_databases()
    downgrade(empty_url, "20261201_cells_before_runs")  # curves back in the run records
    engine = create_engine(empty_url)
    try:
        with engine.connect() as conn:
            old = [bytes(r[0]) for r in conn.exec_driver_sql(
                "SELECT runs_data FROM chunk ORDER BY id").all()]
    finally:
        engine.dispose()
    for data, (_, curves) in zip(old, stored, strict=True):
        assert np.array_equal(columnar.decode_runs(data)[columnar.CURVE],
                              columnar.decode_runs(curves)[columnar.CURVE])
    upgrade(empty_url)
    assert records() == stored  # moved out again: the same records, byte for byte
    assert read() == before


def _write_old_layout(url: str, spec: Any, local: Any) -> None:
    """What the row-per-run service stored for a done sweep (one run and one
    sweep_run row per run, curves as JSON), written with plain SQL."""
    import hashlib
    import json
    from datetime import UTC, datetime

    from experiments.spec import _run_prefix, canonical_json

    engine = create_engine(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    prefix = _run_prefix(spec, "eager")
    clips = spec.axis_values()["clip"]
    o = local.outcomes
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sweep (id, name, spec, kernel, engine_version, status, total_runs, "
            "cached_runs, n_chunks, created_at, started_at, finished_at) VALUES "
            "(1, 'old', %s, 'eager', 'betascope-engine/2', 'done', %s, 0, 1, %s, %s, %s)"
            .replace("%s", "?" if url.startswith("sqlite") else "%s"),
            (json.dumps(spec.model_dump(mode="json")), local.total, now, now, now))
        conn.exec_driver_sql(
            "INSERT INTO chunk (id, sweep_id, seq, status, n_runs, n_compute, progress, "
            "attempts, failures) VALUES (1, 1, 0, 'done', %s, %s, 1.0, 1, 0)"
            .replace("%s", "?" if url.startswith("sqlite") else "%s"), (local.total, local.total))
        mark = "?" if url.startswith("sqlite") else "%s"
        for i in range(local.total):
            r = local.runs
            doc = dict(prefix, beta1=float(r.beta1[i]), beta2=float(r.beta2[i]),
                       batch_size=int(r.batch_size[i]),
                       clip=clips[int(r.clip_index[i])].model_dump(mode="json"),
                       lr=float(r.lr[i]), seed=int(r.seed[i]))
            key = hashlib.sha256(canonical_json(doc).encode()).hexdigest()
            gap = float(o.final_gap[i])
            div = int(o.div_step[i])
            conn.exec_driver_sql(
                "INSERT INTO run (run_key, beta1, beta2, batch_size, clip_mode, clip_threshold, "
                "lr, seed, steps, outcome, final_loss, final_rel, final_gap, final_gap_kind, "
                "div_step, clip_fraction, curve_steps, curve, computed_at) VALUES ("
                + ", ".join([mark] * 19) + ")",
                (key, float(r.beta1[i]), float(r.beta2[i]), int(r.batch_size[i]), "none", None,
                 float(r.lr[i]), int(r.seed[i]), spec.steps, o.labels[i],
                 float(o.final_loss[i]), float(o.final_rel[i]),
                 None if gap != gap else gap, "nan" if gap != gap else None,
                 div if div >= 0 else None, float(o.clip_fraction[i]),
                 json.dumps(local.curve_steps.tolist()), json.dumps(local.curves[i].tolist()),
                 now))
            g = r.grid_index[i].tolist()
            conn.exec_driver_sql(
                "INSERT INTO sweep_run (sweep_id, flat_index, run_key, chunk_id, i_beta1, "
                "i_beta2, i_batch_size, i_clip, i_lr, i_seed) VALUES ("
                + ", ".join([mark] * 10) + ")", (1, int(r.index[i]), key, 1, *g))
    engine.dispose()
