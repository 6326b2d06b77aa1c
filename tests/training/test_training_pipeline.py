"""dragon train: the summary contract, atomic registration and concurrent registrations."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dragon.errors import DataError
from dragon.registry import list_versions
from dragon.settings import load_settings

SUMMARY_MODEL_KEYS = {"rmse", "mae", "r2", "r2_truth", "fit_seconds", "n_rows", "holdout_rows"}


def test_trained_summary_has_the_documented_shape(shared_dir, trained_bundle):
    summary = json.loads((trained_bundle.parent / "summary.json").read_text())
    assert set(summary) >= {"models", "detectors", "gate", "quality", "data"}
    assert summary["quality"] == {"passed": True, "failures": []}  # the small plant sets no floor
    for metrics in summary["models"].values():
        assert SUMMARY_MODEL_KEYS <= set(metrics)
        assert metrics["r2_truth"] is not None  # the truth file sits beside the history
    assert {"recall", "false_alarm_rate", "recall_by_episode"} <= set(summary["gate"])
    assert summary["data"]["rows_used"] <= summary["data"]["rows_in"]


def test_the_summary_table_reads_at_80_columns_with_units_and_hold_out_rows(
    shared_dir, trained_bundle, small_plant
):
    """`dragon train`'s table (and the demo's): each error in its target's unit, `rows` the hold-out rows
    the figures were computed on (not the fitted rows), a legend, the gate in percent, the quality verdict."""
    from rich.console import Console

    from training.summary_table import training_table

    summary = json.loads((trained_bundle.parent / "summary.json").read_text())
    console = Console(record=True, width=80)
    console.print(training_table(summary, small_plant))
    text = console.export_text()
    assert "…" not in text
    for name in small_plant.model_order:
        (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
        metrics, unit = summary["models"][name], small_plant.tags[small_plant.models[name].target].unit
        assert f"{metrics['rmse']:.3g} {unit}" in line
        assert f" {metrics['holdout_rows']} " in line and metrics["holdout_rows"] != metrics["n_rows"]
    words = " ".join(text.split())
    assert "rows: hold-out rows" in words and "of normal rows blocked (false alarms)" in words
    assert "quality: every floor of the plant spec met" in words


def test_record_training_registers_a_version_with_provenance(dragon_home, trained_bundle):
    from training.catalog import record_training

    result = record_training(load_settings(), trained_bundle)
    versions = list_versions(load_settings(), "yet-dragon")
    assert [v.version for v in versions] == [result["version"]] == ["1"]
    assert versions[0].aliases == ["champion"]  # the first version becomes the champion
    assert "models.yield.rmse" in versions[0].metrics
    assert (
        versions[0].tags["data.sha256"]
        == json.loads((trained_bundle / "manifest.json").read_text())["provenance"]["data_sha256"]
    )


def test_failed_training_registers_nothing(dragon_home, small_history, small_plant, tmp_path):
    from training.catalog import train_and_register

    broken = pd.read_parquet(small_history).drop(columns=["yield"])
    path = tmp_path / "broken.parquet"
    broken.to_parquet(path)
    with pytest.raises(DataError, match="yield"):
        train_and_register([path], small_plant, load_settings())
    assert list_versions(load_settings(), "yet-dragon") == []


def _register(bundle: str) -> str:
    from training.catalog import record_training

    return record_training(load_settings(), __import__("pathlib").Path(bundle))["version"]


def test_two_registrations_at_once_get_distinct_versions(dragon_home, trained_bundle):
    from dragon.registry import ensure_store

    ensure_store(load_settings())
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        versions = pool.map(_register, [str(trained_bundle)] * 2)
    assert sorted(versions) == ["1", "2"]
    assert sorted(v.version for v in list_versions(load_settings(), "yet-dragon")) == ["1", "2"]


def test_cli_train_bad_data_exits_2_without_traceback(dragon_home, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,ox1_temperature\n2026-01-01T00:00:00Z,105\n")
    result = subprocess.run(
        [sys.executable, "-m", "dragon.cli", "train", "--data", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list_versions(load_settings(), "yet-dragon") == []


def test_the_default_plant_trains_on_21_days_of_minute_history(dragon_home, tmp_path):
    """A plant team with three weeks of data can start: the basis follows the rows (training/gam_fit.py)."""
    from dragon.simulator import write_history

    history = tmp_path / "three_weeks.parquet"
    write_history(days=21, seed=5, out=history, sample_minutes=1.0)
    result = subprocess.run(
        [sys.executable, "-m", "dragon.cli", "train", "--data", str(history), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert set(summary["models"]) == {"oxidation_1", "oxidation_2", "concentration", "yield"}
    assert Path(summary["report"]).name == "training_report.html" and Path(summary["report"]).is_file()
    oxidation_1 = summary["models"]["oxidation_1"]
    # 21 days leave fewer rows than 3 per coefficient of the spec's 10-spline basis: a smaller basis
    assert 5 <= oxidation_1["n_splines"] < 10
    assert 0 < oxidation_1["edof"] < oxidation_1["n_rows"] / 10
    assert oxidation_1["r2_truth"] > 0.3
