"""`dragon serve` (the real-time endpoint on this machine) and `dragon batch` (a table, all cores)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from dragon.errors import DragonError

console = Console(stderr=True)

BUNDLE_OPTION = typer.Option(
    None, "--bundle", help="A bundle directory or model.tar.gz (instead of --version)."
)
VERSION_OPTION = typer.Option(None, "--version", help="Registered version or alias (default: champion).")
PLANT_OPTION = typer.Option(
    None, "--plant", help="Plant spec TOML naming the registered model (default: shipped)."
)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("batch")(batch)


def _bundle_and_version(
    bundle: Path | None, version: str | None, plant: Path | None
) -> tuple[Path, str | None]:
    """--bundle DIR (versioned by DRAGON_MODEL_VERSION or its hash) or --version V from the registry."""
    if bundle is not None and version is not None:
        raise DragonError("give --bundle or --version, not both")
    if bundle is not None:
        return bundle, None
    from inference.server import registry_bundle

    return registry_bundle(version, plant)


def serve(
    port: int = typer.Option(None, "--port", help="Default: SAGEMAKER_BIND_TO_PORT or 8080."),
    host: str = typer.Option("127.0.0.1", "--host", help="0.0.0.0 to listen on every interface."),
    workers: int = typer.Option(None, "--workers", help="Default: SAGEMAKER_MODEL_SERVER_WORKERS or cores."),
    version: str = VERSION_OPTION,
    bundle: Path = BUNDLE_OPTION,
    plant: Path = PLANT_OPTION,
) -> None:
    """Serve recommendations over HTTP (the SageMaker hosting contract) until stopped."""
    from inference.server import one_thread_per_worker

    one_thread_per_worker()
    from inference.config import default_port, default_workers
    from inference.server import build_config, capture_dir, run_server

    path, model_version = _bundle_and_version(bundle, version, plant)
    config = build_config(
        path,
        model_version=model_version,
        workers=workers or default_workers(),
        capture=capture_dir(local=True),
    )
    run_server(config, host=host, port=port or default_port())


def batch(
    input_path: Path = typer.Option(..., "--input", help="A table of plant states, CSV or Parquet."),
    output_path: Path = typer.Option(..., "--output", help="Where to write the answers, CSV or Parquet."),
    version: str = VERSION_OPTION,
    bundle: Path = BUNDLE_OPTION,
    plant: Path = PLANT_OPTION,
    workers: int = typer.Option(None, "--workers", min=1, help="Worker processes (default: cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
) -> None:
    """Recommend for every row of a table; a bad row becomes an error row, never stops the run."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from inference.batch import run_batch
    from inference.server import one_thread_per_worker

    one_thread_per_worker()
    path, model_version = _bundle_and_version(bundle, version, plant)
    with Progress(
        TextColumn("recommending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as bars:
        task = bars.add_task("rows", total=None)

        def progress(advance: int, total: int) -> None:
            bars.update(task, total=total, advance=advance)

        summary = run_batch(input_path, output_path, path, model_version, workers=workers, progress=progress)
    if summary.ignored_columns:
        console.print(
            f"[yellow]ignored columns that are not tags of the plant:[/] {', '.join(summary.ignored_columns)}"
        )
    counts = ", ".join(f"{count} {status}" for status, count in sorted(summary.statuses.items()))
    if as_json:
        print(
            json.dumps(
                {
                    "output": str(summary.output),
                    "rows": summary.rows,
                    "statuses": summary.statuses,
                    "seconds": summary.seconds,
                    "rows_per_s": summary.rows_per_second,
                    "workers": summary.workers,
                    "ignored_columns": summary.ignored_columns,
                }
            )
        )
        return
    Console().print(
        f"[green]{summary.rows} rows[/] → {summary.output} ({counts or 'empty table'}) in "
        f"{summary.seconds:.1f} s, {summary.rows_per_second:.0f} rows/s on {summary.workers} worker(s)"
    )
