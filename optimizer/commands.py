"""`dragon recommend` and `dragon whatif`: one recommendation or one local simulation, as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from dragon.options import json_flag

console = Console()

STATE_OPTION = typer.Option(
    ...,
    "--state",
    help='Plant state: a JSON file or object {tag: value} (or {"state": {...}, "recent": [{...}, ...]}), '
    "or a CSV file whose last row is the state and whose rows before it are the recent window.",
)
VERSION_OPTION = typer.Option(None, "--version", help="Registered version or alias (default: champion).")
BUNDLE_OPTION = typer.Option(None, "--bundle", help="Bundle directory or model.tar.gz (not with --version).")
PLANT_OPTION = typer.Option(None, "--plant", help="Plant spec TOML for --version (default: shipped plant).")
JSON_OPTION = json_flag("the whole answer, every field of the HTTP contract")


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend)
    app.command("whatif")(whatif)


def state_source(argument: str) -> Path | str:
    """--state as given: the path of a state file, or the text of an inline JSON object. Checked before
    a model is loaded, so a mistyped file name is named at once."""
    from dragon.errors import DataError

    if argument.lstrip().startswith("{"):
        return argument
    path = Path(argument)
    if not path.is_file():
        raise DataError(f"--state {argument}: file not found (give a JSON or CSV file, or a JSON object)")
    return path


def read_state(source: Path | str, spec) -> tuple[dict, list | None]:
    """(state, recent window or None) from a `state_source`: inline JSON or a JSON file (`{tag: value}` or
    `{"state": {...}, "recent": [...]}`), or a CSV file (last row the state, the rows before it the
    window; columns that are not tags of `spec` ignored and named once, as every table is read)."""
    from dragon.errors import DataError

    if isinstance(source, Path) and source.suffix.lower() == ".csv":
        return _read_state_csv(source, spec)
    try:
        text = source.read_text() if isinstance(source, Path) else source
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{source}: cannot read the state file ({error})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"--state {str(source)[:60]!r}: not a JSON object ({error.msg}); "
            "pass a JSON or CSV file, or e.g. '{\"ox1_temperature\": 105.0, ...}'"
        ) from None
    if isinstance(raw, dict) and isinstance(raw.get("state"), dict):
        return raw["state"], raw.get("recent")
    return raw, None


def _read_state_csv(path: Path, spec) -> tuple[dict, list | None]:
    import pandas as pd

    from dragon.data import table_columns
    from dragon.errors import DataError

    try:
        table = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{path}: cannot read the state CSV ({error})") from None
    ignored = table_columns(
        table.columns, spec, spec.required_state_tags, source=str(path), needed_by="a recommendation reads"
    )
    if ignored:
        Console(stderr=True).print(  # stderr: stdout may be the --json answer
            f"[yellow]ignored columns that are not tags of the plant:[/] {', '.join(ignored)}"
        )
    rows = table.drop(columns=ignored).to_dict("records")
    if not rows:
        raise DataError(f"{path}: no data rows (the last row is the state, the rows before it its window)")
    return rows[-1], (rows[:-1] or None)


def load_model(version: str | None, bundle: Path | None, plant: Path | None):
    """(Bundle, model_version) from --bundle or from the registry (--version, default champion)."""
    from dragon.bundle import load_bundle
    from dragon.errors import DragonError

    if bundle is not None:
        if version is not None:
            raise DragonError("give --version or --bundle, not both")
        loaded = load_bundle(bundle)
        return loaded, loaded.fingerprint  # as `dragon serve --bundle` names an unregistered bundle
    from dragon.registry import plant_bundle

    path, model_version = plant_bundle(plant, version)
    return load_bundle(path), model_version


def recommend(
    state: str = STATE_OPTION,
    version: str = VERSION_OPTION,
    bundle: Path = BUNDLE_OPTION,
    plant: Path = PLANT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One setpoint recommendation for a plant state (gate, constraints, explanation)."""
    from dragon.data import parse_state, parse_window
    from optimizer.recommender import Recommender

    source = state_source(state)
    loaded, model_version = load_model(version, bundle, plant)
    raw, raw_recent = read_state(source, loaded.spec)
    parsed = parse_state(raw, loaded.spec, source="--state")
    window = parse_window(raw_recent, raw, loaded.spec, source="--state recent") if raw_recent else None
    result = Recommender(loaded, model_version=model_version).recommend(parsed, window)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    _print_recommendation(result)


LEGEND = (
    "contribution: each setpoint's share of the predicted gain of the objective, in its unit (they add up "
    "to the gain). predicted: each model at the current and at the recommended setpoints, with its 95 % "
    "prediction interval at the recommended ones. anchors: where each model is pinned to its measured "
    "tag: value = the de-noised measurement; bias offset = measured minus model at this state, added to "
    "every prediction of that model; sd = the anchor's standard error (both in the value's unit); "
    "vs model = the sensor consistency check, in sd (beyond [optimizer] consistency_sigma the answer is "
    "blocked); n readings averaged, how. anomaly gate: detector scores, dimensionless; above its "
    "threshold the detector flags the state. constraints: bound = the prediction bound at the "
    "constraint's confidence; margin = bound to limit (+ = inside); active = the bound sits on its "
    "limit, which is what stops a larger move. Status: recommended = the move above; hold = no move "
    "improves the objective by at least the minimum benefit; blocked = a detector flags the state or it "
    "could not be used, nothing is moved."
)


def _print_recommendation(result) -> None:
    from rich.table import Table

    from dragon.tables import COMPACT, figure, legend
    from optimizer.gate import describe_far_tag

    units = result.units
    colour = {"recommended": "green", "hold": "yellow", "blocked": "red"}[result.status]
    console.print(
        f"[bold {colour}]{result.status}[/] (model version {result.model_version}): {result.reason}",
        highlight=False,
    )
    objective_unit = units.get(result.objective.model, "") if result.objective else ""
    table = Table(title="setpoints", title_justify="left", **COMPACT)
    _columns(table, ["setpoint", "unit"], ["current", "recommended", "move", "contribution"])
    for tag, current in result.current_setpoints.items():
        new = None if result.setpoints is None else result.setpoints[tag]
        move = None if result.moves is None else result.moves[tag]
        share = result.explanation.contributions.get(tag)
        table.add_row(
            tag,
            units.get(tag, ""),
            figure(current),
            figure(new),
            figure(move, signed=True),
            figure(share, signed=True, unit=objective_unit),
        )
    console.print(table)
    if result.objective is not None:
        o = result.objective
        console.print(
            f"objective {o.model}: {figure(o.current)} -> {figure(o.recommended, unit=objective_unit)} "
            f"(gain {figure(o.gain, signed=True)} ± {figure(o.gain_sd)} sd, "
            f"lower bound {figure(o.gain_lower, signed=True, unit=objective_unit)})",
            highlight=False,
        )
    if result.predicted:
        predicted = Table(title="predicted", title_justify="left", **COMPACT)
        _columns(predicted, ["model", "tag", "unit"], ["current", "recommended", "95 % interval"])
        for model, p in result.predicted.items():
            anchor = result.anchors.get(model)
            interval = "-" if p.lower is None else f"[{figure(p.lower)}, {figure(p.upper)}]"
            predicted.add_row(
                model,
                anchor.tag if anchor else "",
                units.get(model, ""),
                figure(p.current),
                figure(p.recommended),
                interval,
            )
        console.print(predicted)
    if result.anchors:
        anchors = Table(title="anchors", title_justify="left", **COMPACT)
        _columns(anchors, ["model"], ["value", "bias offset", "sd", "vs model", "n"])
        anchors.add_column("how")
        checks = {c.model: c for c in result.consistency}
        for model, a in result.anchors.items():
            check = checks.get(model)
            agreement = (
                "-" if check is None else f"{check.z:+.1f} sd" + ("" if check.consistent else " [red]off[/]")
            )
            unit = units.get(model, "")
            anchors.add_row(
                model,
                figure(a.value, unit=unit),
                figure(result.explanation.bias_offsets.get(model), signed=True),
                f"{a.sd:.2g}",
                agreement,
                str(a.rows),
                a.method,
            )
        console.print(anchors)
    gate = Table(title="anomaly gate", title_justify="left", **COMPACT)
    _columns(gate, ["detector"], ["score", "threshold", "status"])
    for name, verdict in result.anomaly.items():
        gate.add_row(
            name,
            f"{verdict.score:.3f}" if verdict.score is not None else "-",
            f"{verdict.threshold:.3f}",
            "[red]flagged[/]" if verdict.anomalous else "[green]ok[/]",
        )
    console.print(gate)
    for detector, far in result.explanation.far_tags.items():
        described = ", ".join(describe_far_tag(t, units.get(t.tag, "")) for t in far)
        console.print(f"  {detector} flags: furthest from training: {described}", highlight=False)
    if result.constraints:
        limits = Table(title="constraints", title_justify="left", **COMPACT)
        _columns(limits, ["model", "unit"], ["limit", "bound", "margin", "status"])
        for c in result.constraints:
            status = ("active" if c.active else "ok") if c.satisfied else "[red]violated[/]"
            limits.add_row(
                c.model,
                units.get(c.model, ""),
                f"{c.side} {figure(c.limit)}",
                figure(c.bound),
                figure(c.margin, signed=True),
                status,
            )
        console.print(limits)
    console.print(legend(LEGEND))


def _columns(table, names: list[str], figures: list[str]) -> None:
    """Name columns that may fold, then figure columns that never do (dragon/tables.py)."""
    for column in names:
        table.add_column(column, overflow="fold")
    for column in figures:
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))


def _parse_overrides(items: list[str]) -> dict[str, float]:
    from dragon.errors import DataError

    overrides = {}
    for item in items:
        tag, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            overrides[tag.strip()] = float(value)
        except ValueError:
            raise DataError(
                f"--set {item!r}: expected TAG=NUMBER, e.g. --set ox1_temperature=106.5"
            ) from None
    return overrides


WHATIF_LEGEND = (
    "current: each model at the state as given, bias-corrected to its measured target; predicted: at the "
    "state with the --set values, each model fed the predictions of the models before it in the chain, "
    "with its 95 % prediction interval, in the unit shown. anomaly gate: detector scores at the "
    "hypothetical state, dimensionless; above its threshold a recommendation there would be blocked."
)


def whatif(
    state: str = STATE_OPTION,
    set_: list[str] = typer.Option(
        ..., "--set", metavar="<tag=value>", help="A hypothetical setpoint; repeat --set for several."
    ),
    version: str = VERSION_OPTION,
    bundle: Path = BUNDLE_OPTION,
    plant: Path = PLANT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Predict every model of the chain (with intervals) and the detectors for hypothetical setpoints."""
    from rich.table import Table

    from dragon.data import parse_state
    from dragon.tables import COMPACT, figure, legend
    from optimizer.whatif import what_if

    source = state_source(state)
    loaded, _ = load_model(version, bundle, plant)
    parsed = parse_state(read_state(source, loaded.spec)[0], loaded.spec, source="--state")
    result = what_if(loaded, parsed, _parse_overrides(set_))
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    units = result.units
    changed = ", ".join(
        f"{tag} = {figure(value, unit=units.get(tag, ''))}" for tag, value in result.inputs.items()
    )
    console.print(f"what if {changed}", highlight=False)
    table = Table(title="what-if", title_justify="left", **COMPACT)
    _columns(table, ["model", "predicts", "unit"], ["current", "predicted", "95 % interval"])
    for model, p in result.predictions.items():
        table.add_row(
            model,
            p.target,
            units.get(model, ""),
            figure(p.current),
            figure(p.predicted),
            f"[{figure(p.lower)}, {figure(p.upper)}]",
        )
    console.print(table)
    gate = Table(title="anomaly gate at the hypothetical state", title_justify="left", **COMPACT)
    _columns(gate, ["detector"], ["score", "threshold", "status"])
    for name, verdict in result.anomaly.items():
        gate.add_row(
            name,
            f"{verdict.score:.3f}" if verdict.score is not None else "-",
            f"{verdict.threshold:.3f}",
            "flagged" if verdict.anomalous else "ok",
        )
    console.print(gate)
    console.print(legend(WHATIF_LEGEND))
