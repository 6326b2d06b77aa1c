"""`dragon demo`: the whole story on the default plant, in minutes.

simulate a history → check it → train through the pipeline (container entry point,
champion/challenger, registry) → deploy the endpoint locally → send it plant states →
score its recommendations against the simulator's oracle → watch a later season drift
→ retrain on recent history → compare the new version with the old → a short closed-loop trial.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from dragon.settings import Settings
from optimizer.recommendation import Recommendation

console = Console()

TRAIN_DAYS = 75
TOTAL_DAYS = 210  # the last weeks are summer: warmer cooling water, a declining sparger
WATCH_DAYS = 21
SCORED_STATES = 20
TRIAL_DAYS = 3  # `dragon trial` runs longer ones


@dataclass(frozen=True)
class DemoData:
    train: Path
    recent: Path
    watch: Path
    held_out: pd.DataFrame  # steady normal states of the watched period, with their truth


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_slice(history: pd.DataFrame, truth: pd.DataFrame, mask: np.ndarray, path: Path) -> Path:
    history.loc[mask].reset_index(drop=True).to_parquet(path, index=False)
    truth.loc[mask].reset_index(drop=True).to_parquet(
        path.with_name(f"{path.stem}.truth.parquet"), index=False
    )
    return path


def simulate(workdir: Path, seed: int) -> DemoData:
    from dragon.simulator import generate_history

    simulated = generate_history(days=TOTAL_DAYS, seed=seed)
    history, truth = simulated.history, simulated.truth
    hours = (history["timestamp"] - history["timestamp"].iloc[0]).dt.total_seconds().to_numpy() / 3600
    train = hours < TRAIN_DAYS * 24
    watch = hours >= (TOTAL_DAYS - WATCH_DAYS) * 24
    recent = hours >= (TOTAL_DAYS - 2 * TRAIN_DAYS) * 24
    workdir.mkdir(parents=True, exist_ok=True)
    normal_steady = watch & truth["steady"].to_numpy() & (history["episode"] == "").to_numpy()
    rows = np.flatnonzero(normal_steady)
    picked = rows[np.linspace(0, len(rows) - 1, SCORED_STATES).astype(int)] if len(rows) else rows
    held_out = pd.concat(
        [
            history.iloc[picked].reset_index(drop=True),
            truth.iloc[picked].drop(columns=["timestamp"], errors="ignore").reset_index(drop=True),
        ],
        axis=1,
    )
    return DemoData(
        train=_write_slice(history, truth, train, workdir / "history.parquet"),
        recent=_write_slice(history, truth, recent, workdir / "recent.parquet"),
        watch=_write_slice(history, truth, watch, workdir / "summer.parquet"),
        held_out=held_out,
    )


def show_data_quality(path: Path) -> None:
    from dragon.data import check_history, read_history
    from dragon.spec import load_plant

    spec = load_plant()
    frame = read_history(path, spec)
    console.print(check_history(frame, spec, source=str(path)).report.render())
    episodes = frame["episode"][frame["episode"] != ""].value_counts()
    table = Table("history", "value", title="simulated history")
    table.add_row("rows (1 per minute)", f"{len(frame):,}")
    table.add_row("period", f"{frame['timestamp'].iloc[0]:%Y-%m-%d} → {frame['timestamp'].iloc[-1]:%Y-%m-%d}")
    table.add_row("step-test rows", f"{int(frame['step_test'].sum()):,}")
    for name, count in episodes.items():
        table.add_row(f"episode {name}", f"{count:,} rows")
    console.print(table)


def show_training(summary: dict, version: str) -> None:
    from dragon.spec import load_plant
    from training.summary_table import training_table

    console.print(training_table(summary, load_plant(), title=f"version {version}: hold-out figures"))


def _state_records(states: pd.DataFrame) -> list[dict]:
    from dragon.spec import load_plant

    tags = [tag for tag in load_plant().tags if tag in states]
    return [{tag: float(row[tag]) for tag in tags} for _, row in states.iterrows()]


def ask_endpoint(url: str, states: pd.DataFrame) -> list[Recommendation]:
    """The endpoint's answers to `states`, read back through the published contract."""
    from inference.schemas import Predictions

    response = httpx.post(f"{url}/invocations", json={"instances": _state_records(states)}, timeout=120)
    response.raise_for_status()
    answers = Predictions.model_validate(response.json()).predictions
    refused = [a for a in answers if not isinstance(a, Recommendation)]
    if refused:  # the demo sends complete simulated states: a refusal is a defect, said plainly
        raise RuntimeError(f"the endpoint refused a demo state: {refused[0].errors}")
    return answers


def _unit(spec, model: str) -> str:
    return spec.tags[spec.models[model].target].unit


def _fixed_limits(spec) -> list[tuple[str, str, float]]:
    """(target tag, "max" | "min", limit) of every constraint with a fixed limit (not "current")."""
    return [
        (spec.models[c.model].target, side, float(limit))
        for c in spec.constraints
        for side, limit in (("max", c.max), ("min", c.min))
        if isinstance(limit, int | float)
    ]


def _limit_words(side: str, limit: float, unit: str) -> str:
    return f"{'≤' if side == 'max' else '≥'} {limit:g} {unit}".rstrip()


def show_answers(answers: list[Recommendation], count: int = 3) -> None:
    from dragon.spec import load_plant
    from dragon.tables import figure

    spec = load_plant()
    objective_unit = _unit(spec, spec.objective.model)
    for answer in answers[:count]:
        objective = answer.objective
        checks = [
            f"{c.model} bound {c.bound:.2f} {_limit_words(c.side, c.limit, _unit(spec, c.model))}"
            for c in answer.constraints
            if c.model in spec.models
        ]
        change = (
            f"{figure(objective.current)} → {figure(objective.recommended, unit=objective_unit)}"
            if objective
            else "-"
        )
        console.print(
            f"  [bold]{answer.status}[/] version {answer.model_version}: {spec.objective.model} {change}"
            + (f", {checks[0]}" if checks else "")
            + (f" — {answer.reason}" if answer.reason else ""),
            highlight=False,
        )


def score_against_oracle(answers: list[Recommendation], states: pd.DataFrame) -> dict:
    """True objective gain of each recommendation versus the move-limited oracle's; a recommendation whose
    true outcome breaks a limit of the plant spec gains nothing and counts as a violation."""
    from dragon.simulator import Oracle
    from dragon.spec import load_plant

    spec, oracle = load_plant(), Oracle()
    objective = spec.models[spec.objective.model].target
    unit = spec.tags[objective].unit
    limits = _fixed_limits(spec)
    inputs = [*spec.setpoints, *spec.disturbances]
    gains, best, violations = [], [], 0
    for answer, (_, row) in zip(answers, states.iterrows(), strict=True):
        state = {tag: float(row.get(f"{tag}_true", row[tag])) for tag in inputs if tag in row}
        hidden = {name: float(row[name]) for name in ("chi", "xi_sp", "xi_ev") if name in row}
        optimum = oracle.best_setpoints(state, hidden, move_limited=True)
        best.append(optimum.gain)
        if answer.status != "recommended":
            gains.append(0.0)
            continue
        current = oracle.evaluate({s: state[s] for s in spec.setpoints}, state, hidden)
        proposed = oracle.evaluate(answer.setpoints, state, hidden)
        violated = any(
            proposed[tag] > limit if side == "max" else proposed[tag] < limit
            for tag, side, limit in limits
            if tag in proposed
        )
        violations += int(violated)
        gains.append(0.0 if violated else proposed[objective] - current[objective])
    captured = float(np.sum(gains) / np.sum(best)) if np.sum(best) > 0 else float("nan")
    table = Table(
        "states",
        "recommended",
        f"true gain (mean, {unit})",
        f"oracle gain (mean, {unit})",
        "captured",
        "limit violations",
        title="recommendations scored by the simulator's truth",
        caption="limits: "
        + ", ".join(f"{tag} {_limit_words(side, limit, spec.tags[tag].unit)}" for tag, side, limit in limits),
    )
    table.add_row(
        str(len(answers)),
        str(sum(a.status == "recommended" for a in answers)),
        f"{np.mean(gains):+.3f}",
        f"{np.mean(best):+.3f}",
        f"{captured:.0%}",
        str(violations),
    )
    console.print(table)
    return {"captured": captured, "violations": violations}


def run_short_trial(settings: Settings, plant, *, seed: int) -> None:
    """A short `dragon trial` of the champion on the plant's simulator (a seed training never saw)."""
    from dragon.bundle import load_bundle
    from dragon.registry import resolve_bundle
    from inference.trial import TrialSettings, run_trial, score_trial
    from inference.trial_report import figure_rows, write_trial_page

    path, version = resolve_bundle(settings, plant.name, None)
    bundle = load_bundle(path)
    run = run_trial(plant, bundle, version, TrialSettings(days=TRIAL_DAYS, every_hours=2.0, seed=seed))
    summary = score_trial(run)
    page = write_trial_page(run, summary, settings.home / "trials" / f"demo-v{version}" / "trial.html")
    table = Table("figure", "value", title=f"version {version} in closed loop (seed {seed})")
    for name, value in figure_rows(summary):
        table.add_row(name, value)
    console.print(table)
    console.print(f"{summary.money_note}\nreport: {page}", highlight=False)


def run_demo(settings: Settings, workdir: Path, *, seed: int = 1) -> None:
    from deploy.local_runner import run_training_pipeline, run_undeploy
    from deploy.monitoring import monitor_window, render_monitoring
    from dragon.spec import load_plant

    plant = load_plant()
    port = free_port()
    console.rule("1. simulate the plant's history")
    data = simulate(workdir, seed)
    show_data_quality(data.train)

    console.rule(
        "2. training workflow: transform → train (container entry point) → evaluate → register → deploy"
    )
    first = run_training_pipeline(settings, data.train, auto_deploy=True, port=port)
    show_training(first.summary, first.version)
    console.print(f"champion/challenger: {first.reason}")
    if first.deployment is None:
        console.print("[red]the first version was not deployed[/]")
        return
    console.print(f"[green]{first.deployment.message}[/] at http://127.0.0.1:{port}")

    try:
        console.rule("3. the endpoint answers plant states (summer, never seen in training)")
        answers = ask_endpoint(f"http://127.0.0.1:{port}", data.held_out)
        show_answers(answers)
        console.rule("4. recommendations against the oracle")
        score_against_oracle(answers, data.held_out)

        console.rule("5. monitoring: the summer window against version " + first.version + "'s baseline")
        verdict = monitor_window(settings, plant.name, first.version, data.watch)
        console.print(render_monitoring(verdict.report, verdict.quality, verdict.reason))
        if verdict.drift:
            console.rule(
                "6. drift → retraining on recent history, champion/challenger against the deployed version"
            )
            second = run_training_pipeline(settings, data.recent, auto_deploy=True, port=port)
            show_training(second.summary, second.version)
            console.print(f"version {second.version} vs {first.version}: {second.reason}")
            if second.deployment:
                console.print(f"[green]{second.deployment.message}[/]")
        else:
            console.print("no drift: nothing to retrain")
        console.rule(f"7. closed-loop trial: the champion against the operators, {TRIAL_DAYS} simulated days")
        run_short_trial(settings, plant, seed=seed + 100)
    finally:
        console.rule("8. undeploy")
        console.print(run_undeploy(settings, plant.name).message)
