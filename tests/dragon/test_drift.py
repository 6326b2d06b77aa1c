"""Drift statistics: quiet on undrifted windows, loud on shifted ones, honest on tiny ones."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dragon.drift import (
    COMPLETENESS_CHECK,
    DRIFT_CHECK,
    MISSING_COLUMN_CHECK,
    RANGE_CHECK,
    FeatureBaseline,
    analyse_drift,
    compute_baselines,
)
from dragon.drift_plots import plot_drift
from dragon.drift_report import render_drift_report
from dragon.errors import DataError
from dragon.model_monitor import constraint_violations, model_monitor_constraints, model_monitor_statistics
from dragon.spec import DriftSettings, Tag

TAGS = ["temperature", "pressure", "setpoint"]
SETTINGS = DriftSettings()


def plant_rows(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "temperature": 100.0 + 2.0 * rng.standard_normal(rows) + 2.0 * shift,
            "pressure": 3.0 + 0.2 * rng.standard_normal(rows),
            "setpoint": rng.choice([6.8, 7.0, 7.3, 7.5], size=rows),  # a discrete-ish setpoint
        }
    )


@pytest.fixture(scope="module")
def baselines() -> dict[str, FeatureBaseline]:
    return compute_baselines(plant_rows(20_000, seed=1), TAGS)


def test_baseline_bins_are_deciles_and_deduplicated_for_discrete_data(baselines):
    temperature = baselines["temperature"]
    assert temperature.bin_edges[0] == -np.inf and temperature.bin_edges[-1] == np.inf
    assert len(temperature.bin_fractions) == 10
    assert np.allclose(temperature.bin_fractions, 0.1, atol=0.002)
    assert len(baselines["setpoint"].bin_fractions) <= 4  # four distinct values, not ten bins
    assert sum(baselines["setpoint"].bin_fractions) == pytest.approx(1.0)


def test_baseline_dict_round_trips_through_strict_json(baselines):
    for baseline in baselines.values():
        text = json.dumps(baseline.to_dict(), allow_nan=False)
        assert FeatureBaseline.from_dict(json.loads(text)) == baseline


def test_no_drift_window_is_quiet(baselines):
    for seed in range(10):
        report = analyse_drift(baselines, plant_rows(500, seed=100 + seed), SETTINGS)
        assert not report.drift, report.verdict
        assert report.violations == []
        assert {f.status for f in report.features.values()} <= {"ok", "warn"}


def test_half_sd_shift_alerts_on_that_feature_only(baselines):
    report = analyse_drift(baselines, plant_rows(500, seed=7, shift=0.5), SETTINGS)
    assert report.drift
    assert report.alerting == ["temperature"]
    assert report.features["temperature"].psi >= SETTINGS.psi_alert or report.features["temperature"].ks > 0.1
    assert [v.kind for v in report.violations] == [DRIFT_CHECK]
    payload = report.to_dict()
    assert set(payload) == {"drift", "window_rows", "features", "violations"}
    assert payload["features"]["temperature"]["status"] == "alert"
    assert set(payload["features"]["pressure"]) >= {"psi", "ks", "status"}


def test_small_sample_bias_is_removed_from_psi(baselines):
    report = analyse_drift(baselines, plant_rows(200, seed=3), SETTINGS)
    feature = report.features["temperature"]
    assert feature.psi < feature.psi_raw  # raw PSI of 200 undrifted rows is ~0.045 by sampling alone


def test_tiny_window_says_insufficient_instead_of_guessing(baselines):
    report = analyse_drift(baselines, plant_rows(50, seed=3, shift=3.0), SETTINGS)
    assert report.drift is False
    assert report.verdict == "window too small to judge (50 rows < 200)"
    assert all(f.status == "insufficient" and f.psi is None for f in report.features.values())


def test_completeness_and_missing_column_violations(baselines):
    window = plant_rows(1000, seed=4)
    window.loc[window.index[:300], "pressure"] = np.nan
    window = window.drop(columns=["setpoint"])
    report = analyse_drift(baselines, window, SETTINGS)
    kinds = {(v.feature, v.kind) for v in report.violations}
    assert ("pressure", COMPLETENESS_CHECK) in kinds
    assert ("setpoint", MISSING_COLUMN_CHECK) in kinds
    assert report.features["pressure"].completeness == pytest.approx(0.7)
    assert report.drift


def test_range_violation_uses_baseline_and_valid_range(baselines):
    window = plant_rows(1000, seed=5)
    window.loc[window.index[:50], "pressure"] = 25.0  # far outside training, inside valid [0, 30]
    report = analyse_drift(baselines, window, SETTINGS)
    assert ("pressure", RANGE_CHECK) in {(v.feature, v.kind) for v in report.violations}
    # a valid range narrower than the training range flags values the baseline alone would accept
    tags = {"temperature": Tag(role="measurement", unit="degC", valid=(0.0, 101.0))}
    report = analyse_drift(baselines, plant_rows(1000, seed=6), SETTINGS, tags=tags)
    assert report.features["temperature"].out_of_range > 0.25
    (described,) = [v.description for v in report.violations if v.kind == RANGE_CHECK]
    assert "] degC (+10% margin)" in described  # the training range in the tag's unit


def test_model_monitor_shapes_have_documented_keys(baselines):
    statistics = model_monitor_statistics(baselines)
    assert statistics["version"] == 0 and statistics["dataset"]["item_count"] == 20_000
    feature = statistics["features"][0]
    assert feature["inferred_type"] == "Fractional"
    numbers = feature["numerical_statistics"]
    assert set(numbers) >= {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    assert set(numbers["common"]) == {"num_present", "num_missing"}
    buckets = numbers["distribution"]["kll"]["buckets"]
    assert set(buckets[0]) == {"lower_bound", "upper_bound", "count"}
    assert buckets[0]["lower_bound"] == numbers["min"] and buckets[-1]["upper_bound"] == numbers["max"]

    constraints = model_monitor_constraints(baselines, SETTINGS)
    assert constraints["version"] == 0
    assert set(constraints["features"][0]) >= {"name", "inferred_type", "completeness", "num_constraints"}
    comparison = constraints["monitoring_config"]["distribution_constraints"]
    assert comparison["comparison_threshold"] == SETTINGS.ks_alert
    json.dumps([statistics, constraints], allow_nan=False)

    report = analyse_drift(baselines, plant_rows(500, seed=8, shift=1.0), SETTINGS)
    violations = constraint_violations(report.violations)["violations"]
    assert violations == [
        {
            "feature_name": "temperature",
            "constraint_check_type": DRIFT_CHECK,
            "description": report.violations[0].description,
        }
    ]


def test_missing_training_column_is_a_data_error():
    with pytest.raises(DataError, match="pressure"):
        compute_baselines(plant_rows(100, seed=0).drop(columns=["pressure"]), TAGS)


def test_report_renders_and_plots_one_png_per_drifting_feature(baselines, tmp_path, monkeypatch):
    from rich.console import Console

    window = plant_rows(500, seed=9, shift=1.0)
    report = analyse_drift(baselines, window, SETTINGS)
    console = Console(record=True, width=80)
    console.print(render_drift_report(report))
    text = console.export_text()
    assert "temperature" in text and "alert" in text and report.verdict in text
    assert "…" not in text  # every figure whole at 80 columns
    assert "Status: alert = " in " ".join(text.split())  # the legend says how a status is decided
    basis = " ".join(report.features["temperature"].basis.split())
    assert f"temperature alert: {basis}" in " ".join(text.split())  # and each status says why
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep each figure to read its axes
    paths = plot_drift(baselines, window, report, tmp_path, {"temperature": "degC"})
    assert [p.name for p in paths] == ["drift_temperature.png"]
    assert paths[0].stat().st_size > 1000
    bins, cdf = figures[0].axes
    assert cdf.get_xlabel() == "temperature (degC)" and "temperature (degC)" in bins.get_xlabel()


def test_effective_sample_size_sees_regimes_not_rows():
    from dragon.drift import effective_sample_size

    rng = np.random.default_rng(0)
    independent = rng.standard_normal(10_000)
    regimes = np.repeat(rng.standard_normal(20), 500) + 0.1 * rng.standard_normal(10_000)  # 20 held setpoints
    assert effective_sample_size(independent) > 5_000
    assert effective_sample_size(regimes) < 100
    assert effective_sample_size(np.full(1000, 7.3)) == 1.0


def test_setpoints_are_judged_by_range_only(baselines):
    """The optimizer moves setpoints on purpose: a new distribution inside the training range is no
    drift, beyond it (the models extrapolate) is a warning, beyond the equipment bounds a violation."""
    tags = {"setpoint": Tag(role="setpoint", valid=(0.0, 14.0), bounds=(6.0, 9.0), max_move=0.2)}
    moved = plant_rows(1000, seed=10)
    moved["setpoint"] = 7.5  # always at the top of the training values: PSI would scream
    report = analyse_drift(baselines, moved, SETTINGS, tags=tags)
    feature = report.features["setpoint"]
    assert feature.check == "range" and feature.status == "ok" and feature.psi > SETTINGS.psi_alert
    assert not report.drift
    assert analyse_drift(baselines, moved, SETTINGS).features["setpoint"].status != "ok"  # without roles

    moved["setpoint"] = 8.5  # beyond the training maximum 7.5 + 10 % of the span, inside the bounds
    report = analyse_drift(baselines, moved, SETTINGS, tags=tags)
    assert report.features["setpoint"].status == "warn" and not report.violations

    moved["setpoint"] = 9.5  # beyond the equipment bounds (6, 9)
    report = analyse_drift(baselines, moved, SETTINGS, tags=tags)
    assert report.features["setpoint"].status == "alert"
    assert [(v.feature, v.kind) for v in report.violations] == [("setpoint", RANGE_CHECK)]


def test_short_window_cannot_outweigh_slow_regimes():
    """A feature held in regimes for weeks is worth a few draws per year: eight hours of one
    regime differ from the yearly marginal by construction and must not alert; a shift over
    the whole year's span still does."""
    rng = np.random.default_rng(3)
    minutes = 60 * 24 * 120
    times = pd.date_range("2026-01-01", periods=minutes, freq="min", tz="UTC")
    regimes = np.repeat(rng.standard_normal(12), minutes // 12) + 0.05 * rng.standard_normal(minutes)
    year = pd.DataFrame({"timestamp": times, "cooling": regimes})
    baselines = compute_baselines(year, ["cooling"])
    assert baselines["cooling"].span_hours == pytest.approx(120 * 24, rel=1e-3)
    eight_hours = year.iloc[5000:5500]
    quiet = analyse_drift(baselines, eight_hours, SETTINGS)
    assert not quiet.drift and quiet.features["cooling"].status in ("ok", "warn")  # warn = effect size only
    assert analyse_drift(baselines, eight_hours.drop(columns="timestamp"), SETTINGS).drift  # span unknown

    later = year.copy()
    later["cooling"] += 1.5 * baselines["cooling"].std
    assert analyse_drift(baselines, later.iloc[::50], SETTINGS).features["cooling"].status == "alert"
