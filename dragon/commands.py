"""Commands that need only the domain core: `check` and `simulate`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("simulate")(simulate)


def check(
    plant: Path = typer.Option(None, "--plant", help="Plant spec TOML (default: the shipped plant)."),
    data: Path = typer.Option(None, "--data", help="A history (CSV or Parquet) to check against the spec."),
) -> None:
    """Validate a plant spec and, given a history, print its data-quality report."""
    from dragon.data import check_history, read_history
    from dragon.spec import load_plant

    spec = load_plant(plant)
    console.print(
        f"[green]plant spec ok[/]: {spec.name} — {len(spec.tags)} tags, {len(spec.models)} models "
        f"({' -> '.join(spec.model_order)}), {len(spec.detectors)} detectors"
    )
    if data is None:
        return
    checked = check_history(read_history(data, spec), spec, source=str(data))
    console.print(checked.report.render())


def simulate(
    days: float = typer.Option(30.0, "--days", min=0.01, help="Length of the history in days."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random component."),
    out: Path = typer.Option(Path("history.parquet"), "--out", help="Output file, .parquet or .csv."),
    sample_minutes: float = typer.Option(1.0, "--sample-minutes", min=0.1, help="Sample period."),
) -> None:
    """Write a synthetic history of the default plant and its truth file beside it."""
    from dragon.simulator import write_history

    history_path, truth_path = write_history(days=days, seed=seed, out=out, sample_minutes=sample_minutes)
    console.print(f"history: {history_path}\ntruth:   {truth_path}")
