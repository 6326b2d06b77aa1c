"""A drift report for people: the verdict and one row per feature, as a rich renderable.

The statistics and the decision rule are dragon/drift.py's; this module only shows them, with
the check that set each status (`because`).
"""

from __future__ import annotations

from dragon.drift import DriftReport

_STATUS_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red", "insufficient": "dim"}


def render_drift_report(report: DriftReport):
    """A rich renderable: the verdict, one row per feature, then the violations."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def number(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    table = Table(title=f"Drift over {report.window_rows} rows", title_justify="left")
    columns = ("feature", "PSI", "KS", "shift (sd)", "complete", "out of range", "status", "because")
    for column in columns:
        table.add_column(column, justify="left" if column in ("feature", "status", "because") else "right")
    for tag, feature in report.features.items():
        style = _STATUS_STYLE.get(feature.status, "")
        table.add_row(
            tag,
            number(feature.psi),
            number(feature.ks),
            "–" if feature.shift is None else f"{feature.shift:+.2f}",
            f"{feature.completeness:.1%}",
            f"{feature.out_of_range:.1%}",
            Text(feature.status, style=style),
            feature.basis,
        )
    verdict = Text(report.verdict, style="bold red" if report.drift else "bold green")
    parts = [verdict, table]
    for violation in report.violations:
        parts.append(Text(f"  {violation.kind}  {violation.feature}: {violation.description}", style="red"))
    return Group(*parts)
