"""A drift report for people: the verdict, one line per feature, why each status, then the violations.

The statistics and the decision rule are dragon/drift.py's; this module only shows them. The table
holds the figures (fit for an 80-column terminal); the check that set each status that is not `ok`
(its `basis`, with the alert levels and noise floors) follows the table in words, and a legend says
what each column measures and how a status is decided.
"""

from __future__ import annotations

from dragon.drift import DriftReport
from dragon.tables import COMPACT, legend

_STATUS_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red", "insufficient": "dim"}

LEGEND = (
    "PSI (bias-corrected for the window's size) and KS: dimensionless distances from the training "
    "distribution; shift: the window's mean minus training's, in training standard deviations; complete: "
    "share of rows with a value; outside: share outside the training range (+10 %) or the tag's valid "
    "range, for a setpoint outside its equipment bounds. Status: alert = a figure beyond its alert level "
    "and beyond sampling noise at the window's independent draws (a violation); warn = beyond its alert "
    "level but within that noise, or PSI above its warn level; setpoints are judged by range only "
    "(moving them is the product working)."
)


def render_drift_report(report: DriftReport):
    """A rich renderable: the verdict, one row per feature, why each status, then the violations."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def number(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    table = Table(title=f"drift over {report.window_rows} rows", title_justify="left", **COMPACT)
    table.add_column("feature", overflow="fold")  # a long tag name folds; the figures never do
    for column in ("PSI", "KS", "shift sd", "complete", "outside", "status"):
        table.add_column(
            column, justify="left" if column == "status" else "right", no_wrap=True, min_width=len(column)
        )
    for tag, feature in report.features.items():
        table.add_row(
            tag,
            number(feature.psi),
            number(feature.ks),
            "–" if feature.shift is None else f"{feature.shift:+.2f}",
            f"{feature.completeness:.0%}",
            f"{feature.out_of_range:.1%}",
            Text(feature.status, style=_STATUS_STYLE.get(feature.status, "")),
        )
    verdict = Text(report.verdict, style="bold red" if report.drift else "bold green")
    parts = [verdict, table, legend(LEGEND)]
    reasons = [(tag, f) for tag, f in report.features.items() if f.status != "ok" and f.basis]
    if reasons:
        parts.append(Text("why:"))
        parts.extend(
            Text(f"  {tag} {feature.status}: {feature.basis}", style=_STATUS_STYLE.get(feature.status, ""))
            for tag, feature in reasons
        )
    if report.violations:
        parts.append(Text("violations:"))
    for violation in report.violations:
        parts.append(Text(f"  {violation.kind}  {violation.feature}: {violation.description}", style="red"))
    return Group(*parts)
