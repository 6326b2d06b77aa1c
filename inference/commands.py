"""`dragon serve` (the real-time endpoint on this machine) and `dragon batch` (a table, all cores)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from dragon.errors import DragonError
from dragon.options import json_flag

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
    app.command("trial")(trial)


def _bundle_and_version(
    bundle: Path | None, version: str | None, plant: Path | None
) -> tuple[Path, str | None]:
    """--bundle DIR (versioned by DRAGON_MODEL_VERSION or its hash) or --version V from the registry."""
    if bundle is not None and version is not None:
        raise DragonError("give --bundle or --version, not both")
    if bundle is not None:
        return bundle, None
    from dragon.registry import plant_bundle

    return plant_bundle(plant, version)


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
    as_json: bool = json_flag("one object with the output path, rows per status, seconds and workers"),
) -> None:
    """Recommend for every row of a table; a bad row becomes an error row, never stops the run.

    A table sorted by its time column is a history: each row is answered with the rows recorded
    before it as its recent window, as the endpoint answers a state sent with one."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from inference.batch import run_batch
    from inference.server import one_thread_per_worker

    one_thread_per_worker()
    path, model_version = _bundle_and_version(bundle, version, plant)
    bars = Progress(
        TextColumn("recommending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )
    tasks = []

    def progress(advance: int, total: int) -> None:
        if not tasks:  # the first call comes once the table is read and checked: no bar before an input error
            bars.start()
            tasks.append(bars.add_task("rows", total=total))
        bars.update(tasks[0], total=total, advance=advance)

    try:
        summary = run_batch(input_path, output_path, path, model_version, workers=workers, progress=progress)
    finally:
        if tasks:
            bars.stop()
    if summary.ignored_columns:
        console.print(
            f"[yellow]ignored columns that are not tags of the plant:[/] {', '.join(summary.ignored_columns)}"
        )
    if summary.alone_because:
        console.print(
            f"[yellow]each row answered alone, without a recent window:[/] {summary.alone_because} "
            "(a history sorted by its time column gives every row the rows before it)"
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
                    "recent_windows": summary.alone_because is None,
                    "alone_because": summary.alone_because,
                }
            )
        )
        return
    Console().print(
        f"[green]{summary.rows} rows[/] → {summary.output} ({counts or 'empty table'}) in "
        f"{summary.seconds:.1f} s, {summary.rows_per_second:.0f} rows/s on {summary.workers} worker(s)"
    )


def trial(
    days: float = typer.Option(14.0, "--days", help="Simulated days."),
    every: float = typer.Option(2.0, "--every", help="Hours between the advisor's decisions."),
    seed: int = typer.Option(101, "--seed", help="Seed of the simulated plant (use one training never saw)."),
    version: str = VERSION_OPTION,
    plant: Path = PLANT_OPTION,
    out: Path = typer.Option(
        None, "--out", help="Folder for the HTML page (default DRAGON_HOME/trials/...)."
    ),
    as_json: bool = json_flag("the trial's figures as one object on one line"),
) -> None:
    """Closed-loop trial on the plant's simulator: the version against the operators and the oracle."""

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from dragon.bundle import load_bundle
    from dragon.registry import plant_bundle
    from dragon.settings import load_settings
    from dragon.simulator.protocol import load_simulator
    from dragon.spec import load_plant
    from inference.server import one_thread_per_worker
    from inference.trial import check_settings, run_trial, score_trial
    from inference.trial_report import figure_rows, write_trial_page

    one_thread_per_worker()
    spec = load_plant(plant)
    settings = check_settings(days, every, seed, load_simulator(spec))
    path, model_version = plant_bundle(plant, version)
    bundle = load_bundle(path)
    with Progress(
        TextColumn("closed loop"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=as_json and not console.is_terminal,
    ) as bars:
        task = bars.add_task("intervals", total=None)
        run = run_trial(
            spec,
            bundle,
            model_version,
            settings,
            lambda done, total: bars.update(task, completed=done, total=total),
        )
    summary = score_trial(run)
    folder = out or load_settings().home / "trials" / f"{spec.name}-v{model_version}-seed{seed}"
    summary.report = str(write_trial_page(run, summary, folder / "trial.html"))
    (folder / "trial.json").write_text(summary.model_dump_json(indent=2))
    if as_json:
        print(summary.model_dump_json())
        return
    table = Table(
        "figure", "value", title=f"trial of {spec.name} version {model_version} ({days:g} days, seed {seed})"
    )
    for name, value in figure_rows(summary):
        table.add_row(name, value)
    Console().print(table)
    Console().print(f"{summary.money_note}\nreport: {summary.report}", highlight=False)
