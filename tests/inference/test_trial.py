"""`dragon trial`: closed loop on the default plant and on the mini reactor (its simulator a plug-in)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dragon.bundle import load_bundle
from dragon.settings import load_settings
from dragon.spec import load_plant
from inference.trial import Decision, TrialSettings, _longest_blocked, _reversals, run_trial, score_trial
from inference.trial_report import figure_rows

BENCH_KEYS = {
    "captured_share",
    "violation_minutes",
    "production_change_pct",
    "yield_gain_pct",
    "money_per_year",
}


def dragon(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    # wide COLUMNS: rich would wrap a long one-line error at 80 columns
    return subprocess.run(
        [sys.executable, "-m", "dragon.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "250"},
    )


def assert_one_error_line(result: subprocess.CompletedProcess, message: str) -> None:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr, result.stderr


def register(bundle: Path) -> str:
    from training.catalog import record_training

    return record_training(load_settings(), bundle)["version"]


def test_the_mini_reactor_trial_runs_through_its_plug_in(
    dragon_home, mini_reactor, mini_reactor_bundle, tmp_path
):
    version = register(mini_reactor_bundle)
    out = tmp_path / "trial"
    result = dragon(
        "trial", "--plant", mini_reactor.source_path, "--version", version, "--days", "3", "--every", "2",
        "--seed", "11", "--out", str(out), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert BENCH_KEYS <= set(summary)
    assert summary["decisions"] == 3 * 24 // 2 - 1  # a decision between every two intervals
    assert sum(summary["statuses"].values()) == summary["decisions"]
    assert summary["oracle_gain_pct"] > 0.1  # the operators leave selectivity on the table
    assert summary["currency"] == "EUR" and summary["money_per_year"] is not None
    assert summary["arms"]["advisor"]["violation_minutes"] == {"impurity_ppm": summary["violation_minutes"]}
    page = (out / "trial.html").read_text()
    assert page.count("<img") == 5  # objective, the limit, production, setpoints, the gate
    assert json.loads((out / "trial.json").read_text())["seed"] == 11


def test_without_prices_the_trial_reports_tonnes_only(mini_reactor, mini_reactor_bundle, tmp_path):
    folder = tmp_path / "plant"
    shutil.copytree(Path(mini_reactor.source_path).parent, folder)  # the simulator sits beside the spec
    text = (folder / "plant.toml").read_text()
    start = text.index("[economics]")
    (folder / "plant.toml").write_text(text[:start] + text[text.index("[tags.", start) :])
    spec = load_plant(folder / "plant.toml")
    run = run_trial(spec, load_bundle(mini_reactor_bundle), "1", TrialSettings(days=1, every_hours=4, seed=2))
    summary = score_trial(run)
    assert summary.money_per_year is None and summary.currency is None
    assert "tonnes only" in summary.money_note
    assert ("money over the operators", "- (no prices)") in figure_rows(summary)
    assert {arm.money_per_hour for arm in summary.arms.values()} == {None}


def test_the_default_plant_trial_runs_a_few_days(dragon_home, trained_bundle, small_plant_path, tmp_path):
    version = register(trained_bundle)
    result = dragon(
        "trial", "--plant", str(small_plant_path), "--version", version, "--days", "2", "--every", "3",
        "--seed", "101", "--out", str(tmp_path / "trial"), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["plant"] == "yet-dragon" and summary["currency"] == "USD"
    assert summary["decisions"] == 15
    assert summary["arms"]["oracle"]["objective_mean"] > summary["arms"]["operator"]["objective_mean"]
    assert set(summary["arms"]["operator"]["violation_minutes"]) == {"concentrated_chp", "ox2_chp"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days 0: give a trial length above 0"),
        (["--days", "2", "--every", "0"], "--every 0: give an interval between one sample"),
        (["--days", "1", "--every", "48"], "--every 48: give an interval"),
        (["--version", "41"], "has no model version or alias '41'"),
    ],
)
def test_bad_flags_exit_2_with_one_line(dragon_home, args, message):
    assert_one_error_line(dragon("trial", *args), message)


def test_a_plant_without_a_simulator_is_one_line(dragon_home, mini_reactor, tmp_path):
    path = tmp_path / "plant.toml"
    path.write_text(
        mini_reactor.source_text.replace('[simulator]\nentry_point = "mini_reactor_sim:MiniReactor"', "")
    )
    assert_one_error_line(dragon("trial", "--plant", str(path)), "has no simulator")


def _decision(hours: float, status: str, setpoints: dict | None = None) -> Decision:
    return Decision(hours, status, "", setpoints)


def test_moves_and_reversals_are_counted_per_setpoint(mini_reactor):
    start = {"reactor_temp": 170.0, "h2_ratio": 3.0, "stripper_duty": 5.0}
    decisions = [
        _decision(2, "recommended", {**start, "reactor_temp": 171.0}),
        _decision(4, "hold"),
        _decision(
            6, "recommended", {**start, "reactor_temp": 170.5, "stripper_duty": 4.99}
        ),  # back: a reversal
        _decision(30, "recommended", {**start, "reactor_temp": 171.5}),  # up again, a day later: not one
    ]
    assert _reversals(decisions, mini_reactor, start) == (3, 1)


def test_the_longest_blocked_run_counts_refused_states_too():
    statuses = ["blocked", "blocked", "hold", "error", "blocked", "blocked", "recommended"]
    assert _longest_blocked([_decision(i, s) for i, s in enumerate(statuses)]) == 3
