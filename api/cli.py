"""The `betascope` command line."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="betascope: phase diagrams of Adam.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _one_source(spec_path: Path | None, preset_name: str | None) -> None:
    """A SPEC file or --preset NAME: exactly one."""
    if spec_path is None and preset_name is None:
        _fail("give a SPEC file or --preset NAME")
    if spec_path is not None and preset_name is not None:
        _fail(f"give a SPEC file or --preset NAME, not both ({spec_path} and --preset "
              f"{preset_name})")


def _load_spec(spec_path: Path | None, preset_name: str | None, max_runs: int) -> Any:
    from experiments.presets import preset
    from experiments.spec import SpecError, load_spec_text, parse_spec

    _one_source(spec_path, preset_name)
    try:
        if preset_name is not None:
            return parse_spec(preset(preset_name), max_runs=max_runs)
        assert spec_path is not None
        try:
            text = spec_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {spec_path}: {exc}")
        return load_spec_text(text, max_runs=max_runs)
    except SpecError as exc:
        _fail(f"invalid spec: {exc}")
    except KeyError as exc:
        _fail(str(exc.args[0]))


@app.command()
def run(
    spec: Annotated[Path | None, typer.Argument(help="sweep spec, YAML or JSON")] = None,
    out: Annotated[Path, typer.Option(help="runs CSV to write")] = Path("runs.csv"),
    preset: Annotated[str | None, typer.Option(help="run a built-in preset")] = None,
    cells: Annotated[Path | None, typer.Option(help="also write the cells CSV")] = None,
    html: Annotated[Path | None, typer.Option(help="also write a phase-map page")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    kernel: Annotated[str, typer.Option(help="auto | eager | compiled | fused (auto: fused "
                                             "where it applies and pays, see docs/engine.md)")
                      ] = "auto",
    chunk_runs: Annotated[int, typer.Option(help="runs per engine call")] = 50_000,
    max_runs: Annotated[int, typer.Option(help="refuse grids larger than this")] = 2_000_000,
    dry_run: Annotated[bool, typer.Option(help="print the run-steps and the estimated "
                                               "duration, and stop")] = False,
) -> None:
    """Run a sweep locally (no server) with a progress bar; write CSV and HTML.

    Before it starts it prints the sweep's run-steps (runs x steps) and how long they
    take here, from a timed warm-up (a second or two), and warns above a day."""
    from experiments.local import run_local

    the_spec = _load_spec(spec, preset, max_runs)
    _check_outputs(spec, {"--out": out, "--cells": cells, "--html": html})
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        _fail("--device: must be auto, cpu or cuda")
    if kernel not in ("auto", "eager", "compiled", "fused"):
        _fail("--kernel: must be auto, eager, compiled or fused")
    if chunk_runs < 1:
        _fail("--chunk-runs: must be at least 1")
    _announce(the_spec, where="here", device=device, chunk_runs=chunk_runs, kernel=kernel)
    if dry_run:
        return
    import threading

    from betascope.progress import TerminalBar
    from experiments.export import load_kernels

    # the CSV writer's numba functions load (0.1-0.3 s) while the sweep computes
    threading.Thread(target=load_kernels, name="betascope-csv", daemon=True).start()

    with TerminalBar(the_spec.name[:40], the_spec.total_runs() * the_spec.steps) as bar:
        try:
            result = run_local(the_spec, device=device, kernel=kernel, chunk_runs=chunk_runs,
                               progress=bar.update)
        except ValueError as exc:
            _fail(str(exc))
    with _writing("--out", out):
        with out.open("wb") as fh:
            for piece in result.run_csv():
                fh.write(piece)
    typer.echo(f"wrote {out} ({result.total} runs)")
    if cells is not None:
        with _writing("--cells", cells), cells.open("wb") as fh:
            for piece in result.cell_csv():
                fh.write(piece)
        typer.echo(f"wrote {cells} (one row per cell)")
    if html is not None:
        from web.standalone import sweep_page

        with _writing("--html", html):
            html.write_text(sweep_page(result), encoding="utf-8")
        typer.echo(f"wrote {html} ({html.stat().st_size / 1e6:.1f} MB, works offline: "
                   "open it in a browser)")
    counts = result.outcome_counts()
    typer.echo(f"{result.total} runs: "
               + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    typer.echo(star_table(result.boundary(), the_spec.axis_values()["beta2"]))
    _leave()


def _check_outputs(spec_path: Path | None, outputs: dict[str, Path | None],
                   csv_only: bool = True) -> None:
    """Before any work: every file the run will write can be written, and no two of
    them (nor the spec itself) are the same file; a sweep of hours must not be lost to
    a typo in a path found only when its results are written."""
    import os

    from betascope.exports import PARQUET_SUFFIXES

    seen: dict[Path, str] = {}
    if spec_path is not None:
        seen[spec_path.expanduser().resolve()] = "the SPEC file"
    for option, path in outputs.items():
        if path is None:
            continue
        if csv_only and path.suffix.lower() in PARQUET_SUFFIXES:
            _fail(f"{option}: betascope run writes CSV; name the file .csv (Parquet: "
                  "betascope.run(...).runs.to_parquet(...) from Python, or a server's "
                  "export.parquet)")
        where = path.expanduser().resolve()
        if where in seen:
            _fail(f"{option}: {path} is also {seen[where]}; give each output a file of its own")
        seen[where] = option
        if where.is_dir():
            _fail(f"{option}: {path} is a directory; name a file in it")
        parent = where.parent
        if not parent.is_dir():
            _fail(f"{option}: the directory {parent} does not exist")
        writable = where if where.exists() else parent
        if not os.access(writable, os.W_OK):
            _fail(f"{option}: {writable} is not writable")


@contextlib.contextmanager
def _writing(option: str, path: Path) -> Iterator[None]:
    """A failed write of an output (disk full, removed meanwhile) is one error line."""
    try:
        yield
    except OSError as exc:
        _fail(f"{option}: cannot write {path}: {exc.strerror or exc}")


_LEAVE_AT_ONCE = False  # set by main(): the `betascope` command, not an app called in-process


def _leave() -> None:
    """End the `betascope` process once its work is written: every file it wrote is
    closed and its output flushed, so what is left is tearing the interpreter down,
    0.4-0.5 s with torch loaded (a 10^5-run sweep computes in 0.3 s). A call of the
    app from Python (tests, notebooks) returns as usual."""
    if _LEAVE_AT_ONCE:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


# an estimate still measuring after this long says why (a fresh install compiles the
# fused kernel first: 27 s on the 2-core development machine, silent before this)
SLOW_ESTIMATE_S = 2.0


def _announce(spec: Any, *, where: str, device: str = "auto", chunk_runs: int = 50_000,
              kernel: str = "auto", skip: str = "") -> None:
    """Run-steps, the measured estimate, and a warning when it is above a day; `skip`
    names the option that skips the estimate, if there is one."""
    import threading

    from betascope.progress import DAY_S, fmt_duration
    from experiments.local import estimate

    run_steps = spec.total_runs() * spec.steps
    typer.echo(f"{spec.total_runs()} runs x {spec.steps} steps = {run_steps:.3g} run-steps")
    slow = threading.Timer(SLOW_ESTIMATE_S, lambda: typer.echo(
        "measuring this machine's speed on a sample of the sweep; the first time, this "
        "also compiles the engine's kernel for this machine (about half a minute, once)"
        + (f"; {skip} skips the estimate" if skip else ""), err=True))
    slow.daemon = True
    slow.start()
    try:
        est = estimate(spec, device=device, chunk_runs=chunk_runs, kernel=kernel)
    except ValueError as exc:
        _fail(str(exc))
    finally:
        slow.cancel()
    typer.echo(f"estimated duration {where}: {fmt_duration(est.seconds)} "
               f"(warm-up measured {est.rate:.3g} run-steps/s)")
    if est.seconds > DAY_S:
        typer.echo(f"warning: this sweep would take about {fmt_duration(est.seconds)} {where}; "
                   "shrink the grid or the steps (Ctrl-C stops it)", err=True)


def star_table(boundary: dict[str, Any], beta2_grid: list[float]) -> str:
    """beta2* per beta1 and batch size for each (clip, lr), with the scaling slope."""
    from web.labels import value_labels

    rows = boundary["by_batch"]
    if not rows:
        return ""
    l1 = value_labels([r["beta1"] for r in rows])
    l2 = value_labels(list(beta2_grid))
    lowest = min(beta2_grid)
    lines = ["β2*: the smallest β2 from which the β1 column converges "
             "(≤: every grid β2 converges, -: none)"]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:  # one table per (clip, lr) and point of the extra axes (keys by path)
        extra = tuple((k, v) for k, v in r.items() if "." in k)
        groups.setdefault((r["clip"], r["lr"], extra), []).append(r)
    for (clip, lr, extra), group in groups.items():
        head = ["β1"] + [f"batch {b}" for b in group[0]["batch_size"]] + ["slope"]
        body = []
        for r in group:
            cells = ["-" if v is None else ("≤" if v == lowest else "") + l2[v]
                     for v in r["beta2_star"]]
            fit = r["fit"]
            slope = "" if not fit else f"{round(fit['slope'], 2) + 0.0:.2f}" + (
                "" if fit["stderr"] is None else f" ± {fit['stderr']:.2f}")
            body.append([l1[r["beta1"]], *cells, slope])
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        lines.append(f"clip {clip} · lr {lr:g}" + "".join(f" · {k} {v}" for k, v in extra))
        for row in [head, *body]:
            lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


@app.command()
def presets(
    show: Annotated[str | None, typer.Argument(help="print this preset's spec")] = None,
) -> None:
    """List the built-in presets (paper reproductions), or print one as JSON."""
    from experiments.presets import PRESETS
    from experiments.spec import parse_spec

    if show is not None:
        if show not in PRESETS:
            _fail(f"unknown preset {show!r}; choose from {sorted(PRESETS)}")
        typer.echo(json.dumps(PRESETS[show], indent=2))
        return
    width = max(map(len, PRESETS))
    for name, doc in PRESETS.items():
        spec = parse_spec(doc)
        typer.echo(f"{name:{width}s} {spec.total_runs():>8d} runs  {doc['name']}")


@app.command()
def problems() -> None:
    """List the problem kinds a spec may name, where each comes from, and any plug-in
    (entry point of the betascope.problems group) that failed to load."""
    from experiments.problems import KINDS, PLUGIN_ERRORS, REGISTRY

    for kind in KINDS:
        entry = REGISTRY[kind]
        where = "built-in" if entry.origin.startswith("experiments.") else "plug-in"
        typer.echo(f"{kind:24s} {where:9s} {entry.origin}")
    for name, why in PLUGIN_ERRORS.items():
        typer.echo(f"{name:24s} {'failed':9s} {why}")


# --- the service: serve, worker, submit, export, db ------------------------------------------

DEFAULT_URL = "http://127.0.0.1:8000"
UrlOption = Annotated[str, typer.Option("--url", envvar="BETASCOPE_URL",
                                        help="betascope server (env BETASCOPE_URL)")]
TokenOption = Annotated[str | None, typer.Option("--token", envvar="BETASCOPE_API_TOKEN",
                                                 help="bearer token (env BETASCOPE_API_TOKEN)")]


def _service_settings(**overrides: Any) -> Any:
    from pydantic import ValidationError

    from api.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        _fail(f"invalid BETASCOPE_* configuration: {exc}")
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (BETASCOPE_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (BETASCOPE_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="API processes (default: one per core on Postgres; SQLite: one)")] = None,
) -> None:
    """Serve the API and pages; upgrades the database first. Runs chunks in-process
    unless BETASCOPE_BROKER_URL names a broker (then `betascope worker`s run them)."""
    from api import memory

    memory.configure()  # first: Arrow reads its allocator choice when it loads
    import uvicorn

    from api.app import create_app
    from api.db.migrate import upgrade

    settings = _service_settings(host=host, port=port)
    _logging()
    upgrade(settings.database_url)
    from api.settings import redact_url

    mode = ("in-process executor" if settings.broker_url is None
            else f"broker {redact_url(settings.broker_url)}")
    typer.echo(f"betascope on http://{settings.host}:{settings.port} ({mode}, "
               f"database {redact_url(settings.database_url)})")
    if settings.host in ("0.0.0.0", "::") and not settings.allowed_hosts:
        typer.echo("note: only Host localhost/127.0.0.1/::1 is served; set "
                   "BETASCOPE_ALLOWED_HOSTS to the names clients use (docs/security.md)")
    import os

    processes = _api_processes(settings, workers)
    target: Any
    extra: dict[str, Any] = {}
    # the header deadline is read from the environment by every API process
    os.environ["BETASCOPE_HEADER_TIMEOUT_SECONDS"] = str(settings.header_timeout_seconds)
    if processes > 1:  # each process builds the app from the environment
        typer.echo(f"{processes} API processes; one runs the reconciler at a time")
        os.environ.update(BETASCOPE_AUTO_UPGRADE="false", BETASCOPE_HOST=settings.host,
                          BETASCOPE_PORT=str(settings.port))
        target, extra = "api.app:factory", {"factory": True, "workers": processes}
    else:
        target = create_app(settings.model_copy(update={"auto_upgrade": False}))
    uvicorn.run(target, host=settings.host, port=settings.port, log_level="info",
                # slow clients must not hold connections: headers and bodies have
                # deadlines, idle keep-alives close, and past the limit new ones get 503
                http="api.guards:TimedHttpToolsProtocol", timeout_keep_alive=5,
                # several processes share the port's connections (api/loops.py)
                loop="api.loops:FairAcceptLoop",
                limit_concurrency=settings.max_connections, **extra)


def _api_processes(settings: Any, asked: int | None) -> int:
    """--workers, or one per core on Postgres; SQLite is written by one process."""
    import os

    if settings.is_sqlite:
        if asked is not None and asked > 1:
            _fail("--workers: the embedded SQLite database is served by one process; "
                  "use Postgres (BETASCOPE_DATABASE_URL) for several")
        return 1
    return asked or os.cpu_count() or 1


def _gpu_count() -> int:
    """GPUs present, asked of nvidia-smi: CUDA must not be initialised before a fork."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


@app.command()
def worker(
    pool: Annotated[str | None, typer.Option(help="prefork | solo | threads (default: solo "
                                                  "on a GPU, prefork on CPU)")] = None,
    concurrency: Annotated[int | None, typer.Option(help="processes (CPU default: cores)")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO",
) -> None:
    """Start a Celery worker for BETASCOPE_BROKER_URL. With several GPUs it starts one
    solo-pool process per GPU; on CPU a prefork pool with one torch thread per process."""
    import os
    import socket
    import subprocess

    settings = _service_settings()
    if settings.broker_url is None:
        _fail("BETASCOPE_BROKER_URL is not set: a worker needs a broker "
              "(without one, `betascope serve` runs chunks in-process)")
    wants_gpu = settings.device != "cpu"
    gpus = _gpu_count() if wants_gpu and "CUDA_VISIBLE_DEVICES" not in os.environ else 0
    if gpus > 1 and pool is None:
        procs = []
        for i in range(gpus):
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(i))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker", "--pool", "solo",
                 "--loglevel", loglevel], env=env))
        try:
            codes = [p.wait() for p in procs]
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            codes = [p.wait() for p in procs]
        raise typer.Exit(code=max(codes))
    on_gpu = gpus > 0 or (wants_gpu and os.environ.get("CUDA_VISIBLE_DEVICES", "") != "")
    if on_gpu:
        pool, concurrency = pool or "solo", 1
    else:
        pool = pool or "prefork"
        concurrency = concurrency or (1 if pool == "solo" else os.cpu_count() or 1)
        if pool == "prefork":  # processes, not threads, share the cores
            os.environ.setdefault("OMP_NUM_THREADS", "1")
    from workers.threads import passive_waits

    passive_waits()  # before the task module loads torch (workers/threads.py)
    if pool != "prefork":  # prefork children warm up in worker_process_init
        from workers.warmup import warm_engine

        warm_engine(settings)
    from workers.celery_app import app as celery_app

    name = f"betascope-{os.getpid()}@{socket.gethostname()}"
    celery_app.worker_main([
        "worker", f"--pool={pool}", f"--concurrency={concurrency}", "-Q", settings.queue,
        f"--loglevel={loglevel}", "-n", name, "--without-gossip", "--without-mingle",
    ])


def _client(url: str, token: str | None) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=120)


def _api_error(resp: Any) -> str:
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return f"HTTP {resp.status_code}: {resp.text[:500]}"
    if isinstance(detail, list):
        return "; ".join(f"{e.get('field') or '.'.join(map(str, e.get('loc', [])))}: "
                         f"{e.get('msg')}" for e in detail)
    return f"HTTP {resp.status_code}: {detail}"


@app.command()
def submit(
    spec: Annotated[Path | None, typer.Argument(help="sweep spec, YAML or JSON")] = None,
    preset: Annotated[str | None, typer.Option(help="submit a built-in preset")] = None,
    wait: Annotated[bool, typer.Option(help="follow progress until the sweep ends")] = False,
    estimate: Annotated[bool, typer.Option(help="print run-steps and a duration measured "
                                                "here before submitting")] = True,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Submit a sweep to a betascope server; with --wait, follow it with a progress bar.

    Before it submits it prints the sweep's run-steps and how long they would take on
    this machine (a timed warm-up; the server's workers may be faster), and warns above
    a day; with --wait the time left comes from the server's measured progress."""
    import httpx
    import yaml

    from experiments.spec_text import load_document, yaml_problem

    _one_source(spec, preset)
    if preset is not None:
        from experiments.presets import preset as get_preset

        try:
            doc = get_preset(preset)
        except KeyError as exc:
            _fail(str(exc.args[0]))
    else:
        assert spec is not None
        try:
            doc = load_document(spec.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {spec}: {exc}")
        except yaml.YAMLError as exc:
            _fail(f"invalid spec: {spec} is not valid YAML or JSON: {yaml_problem(exc)}")
    if estimate:
        _announce_remote(doc)
    try:
        with _client(url, token) as client:
            resp = client.post("/api/v1/sweeps", json=doc)
            if resp.status_code != 201:
                _fail(_api_error(resp))
            sweep = resp.json()
            typer.echo(f"sweep {sweep['id']}: {sweep['total_runs']} runs, "
                       f"{sweep['cached_runs']} cached, {sweep['status']}")
            if wait:
                sweep = _follow(client, sweep)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}")
    if wait and sweep["status"] != "done":
        for err in sweep.get("errors", []):
            typer.echo(f"chunk {err['seq']}: {err['last_error']}", err=True)
        raise typer.Exit(code=1)


def _announce_remote(doc: Any) -> None:
    """_announce for a spec the server will run. A spec this machine finds invalid is
    still sent (the server's plug-ins and limits decide), but what is wrong with it
    here is said first: a server out of reach would otherwise hide it."""
    from experiments.spec import SpecError, parse_spec

    try:
        parsed = parse_spec(doc, max_runs=10**15)
    except (SpecError, ValueError, TypeError) as exc:
        typer.echo(f"note: the spec is not valid here: {exc}; sending it to the server, "
                   "whose problems and limits decide", err=True)
        return
    _announce(parsed, where="at this machine's speed", skip="--no-estimate")


def _follow(client: Any, sweep: dict[str, Any]) -> dict[str, Any]:
    import time

    from betascope.progress import DAY_S, TerminalBar, fmt_duration

    steps = int((sweep.get("spec") or {}).get("steps") or 1)
    total = max(1, sweep["total_runs"]) * steps
    warned = False
    with TerminalBar(f"sweep {sweep['id']}", total) as bar:
        while True:
            bar.update(sweep["progress"] * total, total, sweep["status"])
            left = bar.meter.remaining_s()
            if not warned and left is not None and left > DAY_S:
                warned = True
                bar.console.print("warning: at the rate measured so far the sweep needs "
                                  f"{fmt_duration(left)} more")
            if sweep["status"] in ("done", "failed", "canceled"):
                break
            time.sleep(0.5)
            resp = client.get(f"/api/v1/sweeps/{sweep['id']}")
            if resp.status_code != 200:
                _fail(_api_error(resp))
            sweep = resp.json()
    typer.echo(f"sweep {sweep['id']}: {sweep['status']}, {sweep['done_runs']} of "
               f"{sweep['total_runs']} runs done")
    return sweep


@app.command("export")
def export_(
    sweep_id: Annotated[int, typer.Argument(help="sweep id")],
    out: Annotated[Path, typer.Option(help="file to write: CSV, or Parquet when it ends "
                                           "in .parquet")],
    level: Annotated[str, typer.Option(help="runs | cells (Parquet also: curves)")] = "runs",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Download a sweep's results (one row per run, or per cell) as CSV, or as Parquet
    (typed columns) when --out ends in .parquet."""
    import httpx

    from betascope.exports import export_route

    try:
        route = export_route(out, level)
    except ValueError as exc:
        _fail(f"--{exc}")
    _check_outputs(None, {"--out": out}, csv_only=False)
    try:
        with _client(url, token) as client, client.stream(
            "GET", f"/api/v1/sweeps/{sweep_id}/{route}", params={"level": level}
        ) as resp:
            if resp.status_code != 200:
                resp.read()
                _fail(_api_error(resp))
            with _writing("--out", out), out.open("wb") as fh:
                for block in resp.iter_bytes():
                    fh.write(block)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}")
    typer.echo(f"wrote {out}")


db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
) -> None:
    """Upgrade the database at BETASCOPE_DATABASE_URL to the latest schema."""
    from api.db.migrate import current, upgrade

    settings = _service_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at revision {current(settings.database_url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision."""
    from api.db.migrate import current, head

    settings = _service_settings()
    typer.echo(f"{current(settings.database_url)} (latest: {head()})")


def main() -> None:  # pragma: no cover
    """The `betascope` command (pyproject's script)."""
    global _LEAVE_AT_ONCE
    _LEAVE_AT_ONCE = True
    from api import memory

    memory.keep_freed_memory()  # a process of its own: its arrays reuse freed memory
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
