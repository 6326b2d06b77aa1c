"""A training run's summary for people: one line per model with its hold-out figures, then the gate.

`dragon train` and `dragon demo` print the same table from the `dragon train --json` summary. Every
error is in its target's unit, every share a percentage; a legend under the table says what each
column measures.
"""

from __future__ import annotations

from dragon.spec import PlantSpec
from dragon.tables import COMPACT, legend


def training_table(summary: dict, spec: PlantSpec, *, title: str = "hold-out figures"):
    """A rich renderable of a training summary: the models' table, its legend, the gate and the data."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", **COMPACT)
    table.add_column("model", overflow="fold")
    for column in ("RMSE", "MAE", "R²", "R² truth", "rows", "basis", "fit s"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    ordered = [*[n for n in spec.model_order if n in summary["models"]], *summary["models"].keys()]
    for name in dict.fromkeys(ordered):  # the chain's order
        m, unit = (
            summary["models"][name],
            spec.tags[spec.models[name].target].unit if name in spec.models else "",
        )
        table.add_row(
            name,
            f"{m['rmse']:.3g} {unit}".rstrip(),
            f"{m['mae']:.3g} {unit}".rstrip(),
            f"{m['r2']:.3f}",
            "-" if m.get("r2_truth") is None else f"{m['r2_truth']:.3f}",
            str(m.get("holdout_rows", "-")),
            f"{m['n_splines']} / {m['edof']:.1f}",
            f"{m['fit_seconds']:.1f}",
        )
    gate, data = summary["gate"], summary["data"]
    return Group(
        table,
        legend(
            f"Each model is judged on the hold-out, the newest {spec.training.holdout_fraction:.0%} of the "
            "history, which it was not fitted on. RMSE and MAE in the target's unit; R² truth: against "
            "the noise-free value (when the simulator's truth file sits beside the data); rows: hold-out "
            f"rows ({spec.training.resample_minutes} min averages); basis: spline basis size / effective "
            "degrees of freedom; fit s: seconds to fit."
        ),
        Text(
            f"gate on the hold-out: {_percent(gate.get('recall'))} of labelled abnormal rows blocked, "
            f"{_percent(gate.get('false_alarm_rate'), 2)} of normal rows blocked (false alarms)",
            style="bold",
        ),
        Text(f"data: {data['rows_used']:,} of {data['rows_in']:,} rows used"),
        _quality_line(summary.get("quality")),
    )


def _quality_line(quality: dict | None):
    """The verdict of the spec's [quality] floors: a version below one is registered but never leads."""
    from rich.text import Text

    if not quality:
        return Text("")
    if quality.get("passed", True):
        return Text("quality: every floor of the plant spec met", style="green")
    failures = "; ".join(quality.get("failures") or [])
    return Text(
        f"quality: rejected, never champion nor deployed without --force-reason ({failures})", style="red"
    )


def _percent(share: float | None, digits: int = 1) -> str:
    return "-" if share is None else f"{100 * share:.{digits}f} %"
