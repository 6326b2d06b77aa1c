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
    """List the registered versions of the plant: one line each, fit for an 80-column terminal."""
    from rich import box
    from rich.table import Table

    from dragon.registry import APPROVAL_TAG, QUALITY_TAG, list_versions
    from dragon.settings import load_settings
    from dragon.spec import load_plant

    spec = load_plant(plant)
    versions = list_versions(load_settings(), spec.name)
    if not versions:
        console.print(f"no versions of '{spec.name}' yet: run `dragon train --data PATH`")
        return
    table = Table(
        title=f"{spec.name}: registered versions",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        caption=(
            f"R² min: the lowest hold-out R² of the {len(spec.models)} models; recall: share of labelled "
            "abnormal rows the gate flags; false alarms: share of normal rows it flags; "
            "approval '-': no approval gate; `dragon models show V` for every figure"
        ),
    )
    for column, justify in VERSION_COLUMNS:
        table.add_column(column, justify=justify, no_wrap=True, overflow="ellipsis")
    for info in versions:
        r2 = [info.metrics.get(f"models.{m}.r2") for m in spec.model_order]
        known_r2 = [value for value in r2 if value is not None]
        table.add_row(
            info.version,
            ", ".join(info.aliases) or "-",
            info.tags.get(APPROVAL_TAG, "-"),
            info.tags.get(QUALITY_TAG, "-"),
            ", ".join(info.deployed_envs) or "-",
            f"{min(known_r2):.3f}" if known_r2 else "-",
            _percent(info.metrics.get("gate.recall")),
            _percent(info.metrics.get("gate.false_alarm_rate")),
        )
    console.print(table)


# (header, alignment) of `models list`: short enough that one version is one line at 80 columns.
VERSION_COLUMNS = (
    ("version", "right"),
    ("aliases", "left"),
    ("approval", "left"),
    ("quality", "left"),
    ("deployed", "left"),
    ("R² min", "right"),
    ("recall", "right"),
    ("false\nalarms", "right"),
)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f} %"


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
    metrics = Table("metric", "value", title="metrics", caption=METRICS_LEGEND)
    for key, value in sorted(info.metrics.items()):
        metrics.add_row(key, _metric(key, value, spec))
    console.print(metrics)


METRICS_LEGEND = (
    "errors (rmse, mae, sd) in the model target's unit; rates, recalls, shares and coverages as fractions "
    "(0-1); seconds as s; counts of rows as integers"
)
ERROR_METRICS = (
    "rmse",
    "mae",
    "rmse_measured_inputs",
    "rmse_persistence",
    "residual_sd",
    "lagged_residual_sd",
)


def _metric(key: str, value: float, spec) -> str:
    """A registry metric with its unit: an error in its model target's unit, seconds in s, a count whole."""
    from dragon.tables import figure

    parts = key.split(".")
    if parts[0] == "models" and len(parts) == 3 and parts[1] in spec.models and parts[2] in ERROR_METRICS:
        return figure(value, unit=spec.tags[spec.models[parts[1]].target].unit)
    if parts[-1].endswith("seconds"):
        return figure(value, unit="s")
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return figure(value)


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
