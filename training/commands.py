"""`dragon train`: transform → fit → evaluate → log → register, one progress bar per stage."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from dragon.options import json_flag

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    data: list[Path] = typer.Option(
        ..., "--data", metavar="<path>", help="History file, CSV or Parquet (repeat --data for several)."
    ),
    plant: Path = typer.Option(None, "--plant", help="Plant spec TOML (default: the shipped plant)."),
    as_json: bool = json_flag("one object with the version, per-model metrics, fit seconds and report path"),
) -> None:
    """Train the plant's GAMs and anomaly detectors and register them as one version."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from dragon.settings import load_settings
    from dragon.spec import load_plant
    from training.catalog import train_and_register
    from training.pipeline import STAGES

    spec = load_plant(plant)
    bars = Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # a failed run must not leave bars drawn as complete
        disable=not console.is_terminal,  # bars are for a person at a terminal, not for a log file
    )
    tasks: dict[str, int] = {}

    def progress(stage: str, advance: int, total: int) -> None:
        if not tasks:  # the first call comes once the history is read: no bar before an input error
            bars.start()
            tasks.update({name: bars.add_task(name, total=None) for name in STAGES})
        bars.update(tasks[stage], total=total, advance=advance)

    try:
        summary = train_and_register(data, spec, load_settings(), progress=progress)
    finally:
        if tasks:
            bars.stop()
    if as_json:
        print(json.dumps(summary, indent=None, default=float))
        return
    _print_summary(summary, spec)


def _print_summary(summary: dict, spec) -> None:
    from training.summary_table import training_table

    out = Console()
    out.print(f"[green]registered version {summary['version']}[/] (run {summary['run_id']})", highlight=False)
    out.print(f"bundle: {summary['bundle']}\nreport: {summary.get('report') or '-'}", soft_wrap=True)
    out.print(training_table(summary, spec))
