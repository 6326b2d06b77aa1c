"""Commands that need only the domain core: `check` and `simulate`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


# The registry verbs; deploy/commands.py adds approve, reject, deploy and undeploy to it.
models_app = typer.Typer(
    help="The model registry: versions, aliases, approval and environment tags.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("simulate")(simulate)
    models_app.command("list")(models_list)
    models_app.command("show")(models_show)
    app.add_typer(models_app, name="models")


PLANT_OPTION = typer.Option(None, "--plant", help="Plant spec TOML (default: the shipped plant).")


def models_list(plant: Path = PLANT_OPTION) -> None:
    """List the registered versions of the plant with key metrics, aliases and tags."""
    from rich.table import Table

    from dragon.registry import list_versions
    from dragon.settings import load_settings
    from dragon.spec import load_plant

    spec = load_plant(plant)
    versions = list_versions(load_settings(), spec.name)
    if not versions:
        console.print(f"no versions of '{spec.name}' yet: run `dragon train --data PATH`")
        return
    table = Table(title=f"{spec.name}: registered versions")
    for column in ("version", "aliases", *(f"R² {m}" for m in spec.model_order), "gate recall", "tags"):
        table.add_column(column)
    for info in versions:
        r2 = [info.metrics.get(f"models.{m}.r2") for m in spec.model_order]
        recall = info.metrics.get("gate.recall")
        table.add_row(
            info.version,
            ", ".join(info.aliases),
            *("-" if v is None else f"{v:.3f}" for v in r2),
            "-" if recall is None else f"{recall:.2f}",
            ", ".join(
                f"{k}={v}" for k, v in sorted(info.tags.items()) if not k.startswith(("data.", "git."))
            ),
        )
    console.print(table)


def models_show(
    version: str = typer.Argument("champion", help="Version number or alias."), plant: Path = PLANT_OPTION
) -> None:
    """Show one version: its metrics, tags, aliases and bundle location."""
    from rich.table import Table

    from dragon.registry import get_version
    from dragon.settings import load_settings
    from dragon.spec import load_plant

    spec = load_plant(plant)
    info = get_version(load_settings(), spec.name, version)
    console.print(f"[bold]{spec.name}[/] version {info.version}  aliases: {', '.join(info.aliases) or '-'}")
    console.print(f"run: {info.run_id}\nbundle: {info.source}")
    tags = Table("tag", "value", title="tags")
    for key, value in sorted(info.tags.items()):
        tags.add_row(key, value)
    console.print(tags)
    metrics = Table("metric", "value", title="metrics")
    for key, value in sorted(info.metrics.items()):
        metrics.add_row(key, f"{value:.4g}")
    console.print(metrics)


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
