"""The `betascope` command line."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="betascope: phase diagrams of Adam.", no_args_is_help=True,
                  pretty_exceptions_enable=False)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _load_spec(spec_path: Path | None, preset_name: str | None, max_runs: int) -> Any:
    from experiments.presets import preset
    from experiments.spec import SpecError, load_spec_text, parse_spec

    try:
        if preset_name is not None:
            return parse_spec(preset(preset_name), max_runs=max_runs)
        if spec_path is None:
            _fail("give a SPEC file or --preset NAME")
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
    kernel: Annotated[str, typer.Option(help="eager | compiled")] = "eager",
    chunk_runs: Annotated[int, typer.Option(help="runs per engine call")] = 50_000,
    max_runs: Annotated[int, typer.Option(help="refuse grids larger than this")] = 2_000_000,
) -> None:
    """Run a sweep locally (no server) with a progress bar; write CSV and HTML."""
    from experiments.local import run_local

    the_spec = _load_spec(spec, preset, max_runs)
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        _fail("--device: must be auto, cpu or cuda")
    if kernel not in ("eager", "compiled"):
        _fail("--kernel: must be eager or compiled")
    if chunk_runs < 1:
        _fail("--chunk-runs: must be at least 1")
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
        TimeRemainingColumn(), transient=False,
    ) as bar:
        task = bar.add_task(the_spec.name[:40], total=the_spec.total_runs() * the_spec.steps)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            result = run_local(the_spec, device=device, kernel=kernel, chunk_runs=chunk_runs,
                               progress=progress)
        except ValueError as exc:
            _fail(str(exc))
    _write_csv(out, result.run_columns, result.run_rows())
    if cells is not None:
        _write_csv(cells, result.cell_columns, result.cell_rows())
    if html is not None:
        html.write_text(result.html_page(), encoding="utf-8")
    counts = result.outcome_counts()
    typer.echo(
        f"{result.total} runs: " + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; wrote {out}"
    )


def _write_csv(path: Path, header: Any, rows: Any) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


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
    for name, doc in PRESETS.items():
        spec = parse_spec(doc)
        typer.echo(f"{name:24s} {spec.total_runs():>8d} runs  {doc['name']}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
