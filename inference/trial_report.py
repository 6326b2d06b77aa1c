"""The trial's HTML page: its figures and four plots (true yield, limits, setpoints, the gate over time).

One self-contained file (plots inlined as PNG), matplotlib's object API on the Agg canvas.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from inference.trial import ARMS, TrialRun, TrialSummary, episodes_of

COLOURS = {"advisor": "tab:blue", "operator": "tab:grey", "oracle": "tab:green"}
STATUS_COLOURS = {"recommended": "tab:green", "hold": "tab:olive", "blocked": "tab:red", "error": "black"}


def _days(frame: pd.DataFrame, time_column: str) -> np.ndarray:
    times = frame[time_column]
    return ((times - times.iloc[0]).dt.total_seconds() / 86400.0).to_numpy()


def _hourly(frame: pd.DataFrame, time_column: str) -> pd.DataFrame:
    """Hourly means: a month of minute samples is more than a plot can show."""
    return frame.set_index(time_column).resample("1h").mean().reset_index()


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _shade_episodes(axis, episodes: pd.DataFrame) -> None:
    for _, row in episodes.iterrows():
        axis.axvspan(row["start_hours"] / 24.0, row["end_hours"] / 24.0, color="tab:red", alpha=0.08, lw=0)


def _truth_plots(run: TrialRun, episodes: pd.DataFrame) -> list[tuple[str, str]]:
    scoring = run.arms["operator"].simulator.scoring
    column = run.spec.time_column
    truths = {name: _hourly(run.frame(name), column) for name in ARMS}
    quantities = [
        (scoring.objective, None),
        *((tag, limits) for tag, limits in scoring.limits.items()),
        (scoring.production, None),
    ]
    plots = []
    for tag, limits in quantities:
        unit = run.spec.tags[tag].unit if tag in run.spec.tags else ""
        figure = Figure(figsize=(10, 2.8))
        axis = figure.subplots()
        for name, truth in truths.items():
            axis.plot(_days(truth, column), truth[tag], color=COLOURS[name], lw=1.2, label=name)
        for limit in limits or ():
            if limit is not None:
                axis.axhline(limit, color="tab:red", ls="--", lw=1, label="limit")
        _shade_episodes(axis, episodes)
        axis.set_xlabel("day of the trial")
        axis.set_ylabel(f"true {tag} ({unit})" if unit else f"true {tag}")
        axis.legend(loc="best", fontsize=8)
        title = "limit" if limits else ("objective" if tag == scoring.objective else "production")
        plots.append((f"true {tag} ({title}), hourly means; abnormal episodes shaded", _png(figure)))
    return plots


def _setpoint_plot(run: TrialRun, episodes: pd.DataFrame) -> tuple[str, str]:
    setpoints = run.spec.setpoints
    figure = Figure(figsize=(10, 1.8 * len(setpoints)))
    axes = np.atleast_1d(figure.subplots(len(setpoints), 1, sharex=True))
    for axis, tag in zip(axes, setpoints, strict=True):
        for name in ARMS:
            log = pd.DataFrame(run.arms[name].setpoint_log)
            axis.step(log["hours"] / 24.0, log[tag], where="post", color=COLOURS[name], lw=1.2, label=name)
        lo, hi = run.spec.tags[tag].bounds
        axis.axhline(lo, color="black", lw=0.5, ls=":")
        axis.axhline(hi, color="black", lw=0.5, ls=":")
        _shade_episodes(axis, episodes)
        axis.set_ylabel(f"{tag}\n({run.spec.tags[tag].unit})", fontsize=8)
    axes[0].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("day of the trial")
    return "setpoints of the three arms (bounds dotted)", _png(figure)


def _gate_plot(run: TrialRun, episodes: pd.DataFrame) -> tuple[str, str]:
    figure = Figure(figsize=(10, 1.6))
    axis = figure.subplots()
    for status, colour in STATUS_COLOURS.items():
        days = [d.hours / 24.0 for d in run.decisions if d.status == status]
        axis.scatter(days, [status] * len(days), color=colour, s=12, marker="|")
    _shade_episodes(axis, episodes)
    axis.set_xlabel("day of the trial")
    return "the advisor's answers over time (abnormal episodes shaded)", _png(figure)


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def figure_rows(summary: TrialSummary) -> list[tuple[str, str]]:
    """The headline figures with their units, as the CLI table and the page show them."""
    share = "-" if summary.captured_share is None else f"{summary.captured_share:.0%}"
    money = "- (no prices)"
    if summary.money_per_year is not None:
        by_yield, by_production = summary.money_yield_per_year, summary.money_production_per_year
        parts = f"yield {by_yield:+,.0f}, production {by_production:+,.0f}"
        money = f"{summary.money_per_year:+,.0f} {summary.currency}/year ({parts})"
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(summary.statuses.items()))
    return [
        (f"true {summary.objective} gain over the operators", f"{summary.yield_gain_pct:+.3f} % points"),
        ("the oracle's gain over the operators", f"{summary.oracle_gain_pct:+.3f} % points"),
        ("share of the oracle's gain captured", share),
        ("yield gain worth", f"{summary.yield_gain_t_per_year:+,.0f} t/year of product"),
        (f"true {summary.production} change", f"{summary.production_change_pct:+.2f} %"),
        ("minutes beyond a true limit (advisor)", f"{summary.violation_minutes:,.0f} min"),
        ("  of which the operators were within", f"{summary.violation_minutes_caused:,.0f} min"),
        ("minutes beyond a true limit (operators)", f"{summary.operator_violation_minutes:,.0f} min"),
        ("money over the operators", money),
        ("decisions", f"{summary.decisions} every {summary.every_hours:g} h ({statuses})"),
        ("moves / move reversals", f"{summary.moves} / {summary.move_reversals}"),
        (
            "blocked share / longest blocked run",
            f"{summary.blocked_share:.0%} / {summary.blocked_streak_max} answers "
            f"({summary.blocked_streak_hours:g} h)",
        ),
    ]


def write_trial_page(run: TrialRun, summary: TrialSummary, path: Path) -> Path:
    episodes = episodes_of(run)
    plots = [*_truth_plots(run, episodes), _setpoint_plot(run, episodes), _gate_plot(run, episodes)]
    reasons = "".join(
        f"<tr><td>{count}</td><td>{html.escape(reason)}</td></tr>"
        for reason, count in summary.reasons.items()
    )
    episode_rows = "".join(
        f"<tr><td>{html.escape(row.episode)}</td><td>{row.start_hours / 24:.2f}</td>"
        f"<td>{row.end_hours / 24:.2f}</td></tr>"
        for row in episodes.itertuples()
    )
    images = "".join(
        f"<h3>{html.escape(title)}</h3><img src='data:image/png;base64,{data}'>" for title, data in plots
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>trial: {html.escape(summary.plant)} version {html.escape(summary.model_version)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:auto}} th{{text-align:left;padding-right:2em}}
td{{padding-right:1em}} img{{max-width:100%}}</style></head><body>
<h1>Closed-loop trial: {html.escape(summary.plant)}, version {html.escape(summary.model_version)}</h1>
<p>{summary.days:g} simulated days, a decision every {summary.every_hours:g} h, seed {summary.seed}.
Arms on the same disturbances: the advisor (this version, through the endpoint's code path), the plant's
operators (no advisor) and the oracle (the true move-limited optimum). Figures from the simulator's truth.
{html.escape(summary.money_note)}; {summary.hours_per_year:g} on-stream hours a year.</p>
{_table(figure_rows(summary))}
<h2>Why the advisor held or was blocked</h2>
<table><tr><th>answers</th><th>reason</th></tr>{reasons}</table>
<h2>Abnormal episodes</h2>
<table><tr><th>episode</th><th>from day</th><th>to day</th></tr>{episode_rows}</table>
<h2>Over time</h2>{images}</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
