"""Monitoring: reading the data capture, model error against training, one trigger per cool-down."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from deploy.monitoring import (
    INFERENCE_TIME,
    MODEL_VERSION,
    model_quality,
    monitor_window,
    read_capture,
    trigger_retraining,
)
from dragon.errors import DataError


@pytest.fixture(scope="module")
def served_capture(trained_bundle, loaded_bundle, small_history, tmp_path_factory) -> dict:
    """A capture folder written by the real server (`serve` in a subprocess), after requests of every
    kind: one JSON state, JSON instances with an unreadable record, JSON Lines sent as
    application/x-ndjson, CSV with and without a header row, and a refused (415) request."""
    from serving import start_server, stop_server

    spec = loaded_bundle.spec
    tags = spec.required_state_tags
    frame = pd.read_parquet(small_history).dropna(subset=tags)
    states = [{tag: float(row[tag]) for tag in tags} for _, row in frame.iloc[::400].head(8).iterrows()]
    server = start_server(trained_bundle, tmp_path_factory.mktemp("served"))
    try:
        with server.client() as http:
            requests = [
                ({"Content-Type": "application/json"}, json.dumps({"state": states[0]})),
                (
                    {"Content-Type": "application/json"},
                    json.dumps({"instances": [states[1], {**states[2], tags[0]: "n/a"}, states[3]]}),
                ),
                (
                    {"Content-Type": "application/x-ndjson", "Accept": "application/jsonlines"},
                    json.dumps(states[4]) + "\n" + json.dumps({"state": states[5]}) + "\n",
                ),
                (
                    {"Content-Type": "text/csv", "Accept": "text/csv"},
                    ",".join(tags) + "\n" + ",".join(str(states[6][t]) for t in tags) + "\n",
                ),
                ({"Content-Type": "text/csv"}, ",".join(str(states[7][t]) for t in tags) + "\n"),
                ({"Content-Type": "application/xml"}, "<state/>"),
            ]
            for headers, body in requests:
                response = http.post("/invocations", content=body, headers=headers)
                assert response.status_code in (200, 415), response.text
    finally:
        stop_server(server)  # the capture writer flushes on shutdown
    served = [states[i] for i in (0, 1, 3, 4, 5, 6, 7)]  # the unreadable record and the 415 are not
    return {"dir": server.capture_dir, "states": served, "model_version": server.model_version}


def test_read_capture_of_a_folder_the_server_wrote(served_capture, loaded_bundle):
    spec = loaded_bundle.spec
    frame = read_capture(served_capture["dir"], spec)
    served = served_capture["states"]
    first_tag = spec.required_state_tags[0]
    assert sorted(frame[first_tag]) == sorted(state[first_tag] for state in served)
    assert set(frame[MODEL_VERSION]) == {served_capture["model_version"]}
    for model in spec.model_order:
        assert frame[f"predicted.{model}"].notna().all(), model
    assert str(frame[INFERENCE_TIME].dt.tz) == "UTC"


def test_dragon_monitor_capture_on_the_servers_folder(
    served_capture, registered, loaded_bundle, small_history, tmp_path
):
    """The README's path for monitoring the endpoint, through the console script, with and without
    --actuals (the measured targets joined to the captured states by time)."""
    from console import run_dragon

    settings, version = registered
    plant = tmp_path / "plant.toml"
    plant.write_text(loaded_bundle.spec.source_text)
    common = ["monitor", "--input", str(served_capture["dir"]), "--capture", "--version", version]
    common += ["--plant", str(plant), "--json"]
    for extra in ([], ["--actuals", str(small_history)]):
        result = run_dragon(*common, *extra, cwd=tmp_path, DRAGON_HOME=str(settings.home))
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["window_rows"] == len(served_capture["states"])
        if extra:
            assert report["quality"]["source"] == "capture"


def test_read_capture_of_an_empty_folder_is_a_data_error(tmp_path, small_plant):
    with pytest.raises(DataError, match="no data capture"):
        read_capture(tmp_path, small_plant)


@pytest.fixture(scope="module")
def window(small_history, small_plant) -> pd.DataFrame:
    """The small history's normal operation (its labelled faults break the models by design)."""
    from dragon.data import read_history

    history = read_history(small_history, small_plant)
    return history[history["episode"] == ""].reset_index(drop=True)


def _fouled(window: pd.DataFrame, loaded_bundle, by_rmse: float = 4.0) -> pd.DataFrame:
    """The concentration target shifted as a fouled evaporator would shift it."""
    shifted = window.copy()
    shifted["concentrated_chp"] += by_rmse * loaded_bundle.metrics["models"]["concentration"]["rmse"]
    return shifted


def test_model_quality_of_normal_operation_is_ok_for_every_lag_compensated_model(loaded_bundle, window):
    # Scored as training scored its hold-out: through lagged inputs. Fed the raw inputs, a lag-
    # compensated GAM would be judged on every transient against a hold-out RMSE that had none.
    assert all(model.lag_hours > 0 for model in loaded_bundle.spec.models.values())
    report = model_quality(loaded_bundle, None, window)
    assert {name: quality.status for name, quality in report.models.items()} == dict.fromkeys(
        loaded_bundle.spec.model_order, "ok"
    )


def test_captured_states_compare_with_the_hold_out_fed_measured_inputs(loaded_bundle, window, small_plant):
    # A captured state has no lagged inputs: its error compares with the hold-out fed measured inputs,
    # a plain history's with the hold-out as training scored it.
    states = window.drop(columns=list(small_plant.model_targets.values()))
    states = states.rename(columns={small_plant.time_column: INFERENCE_TIME})
    captured = model_quality(loaded_bundle, states, window)
    history = model_quality(loaded_bundle, None, window)
    for name in loaded_bundle.spec.model_order:
        reference = loaded_bundle.metrics["models"][name]
        assert reference["rmse_measured_inputs"] != reference["rmse"]
        assert captured.models[name].training_rmse == reference["rmse_measured_inputs"]
        assert history.models[name].training_rmse == reference["rmse"]


def test_model_quality_flags_the_model_whose_error_grew(loaded_bundle, window):
    before = model_quality(loaded_bundle, None, window)
    after = model_quality(loaded_bundle, None, _fouled(window, loaded_bundle))
    assert before.models["concentration"].status == "ok"
    assert after.models["concentration"].status == "degraded"
    assert after.models["concentration"].ratio > 1 + loaded_bundle.spec.drift.error_growth_tolerance
    assert after.models["oxidation_1"].ratio == pytest.approx(before.models["oxidation_1"].ratio)
    assert [v.feature for v in after.violations if "concentration" in v.description] == ["concentrated_chp"]


def test_model_quality_joins_captured_states_to_later_measurements(loaded_bundle, window, small_plant):
    targets = list(small_plant.model_targets.values())
    states = window.drop(columns=targets).rename(columns={small_plant.time_column: INFERENCE_TIME})
    states[INFERENCE_TIME] += pd.Timedelta(minutes=2)  # requests and historian do not share a clock
    matched = model_quality(loaded_bundle, states, _fouled(window, loaded_bundle))
    assert matched.source == "capture"
    assert matched.models["concentration"].status == "degraded"
    late = states.copy()
    late[INFERENCE_TIME] += pd.Timedelta(hours=48 * 365)  # no measurement within the tolerance
    assert {q.status for q in model_quality(loaded_bundle, late, window).models.values()} == {"insufficient"}


@pytest.fixture()
def registered(dragon_home, migrated_store, trained_bundle):
    from dragon.settings import load_settings
    from training.catalog import record_training

    dragon_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_store, dragon_home / "mlflow.db")
    (dragon_home / ".store-ready").touch()
    settings = load_settings()
    version = record_training(settings, trained_bundle)["version"]
    return settings, version


def _drift_events(settings) -> list[dict]:
    from deploy.events import DRIFT_DETECTED_PATTERN, pending_events

    return pending_events(settings, DRIFT_DETECTED_PATTERN)


def test_violation_logs_a_run_and_triggers_once_per_cool_down(registered, window, loaded_bundle, monkeypatch):
    from mlflow import MlflowClient

    settings, version = registered
    monkeypatch.delenv("DRAGON_RETRAIN_COOLDOWN_HOURS", raising=False)
    fouled = _fouled(window, loaded_bundle)
    first = monitor_window(settings, loaded_bundle.spec.name, version, fouled)
    assert first.drift and first.triggered and "concentration" in first.reason
    assert (first.artifacts / "constraint_violations.json").is_file()
    written = json.loads((first.artifacts / "constraint_violations.json").read_text())["violations"]
    assert {"feature_name", "constraint_check_type", "description"} == set(written[0])
    [event] = _drift_events(settings)
    assert event["source"] == "yet-dragon.monitoring" and event["detail-type"] == "Drift Detected"
    assert event["detail"]["plant_name"] == loaded_bundle.spec.name and event["detail"]["version"] == version

    run = MlflowClient(tracking_uri=settings.tracking_uri).get_run(first.run_id)
    assert run.data.tags["monitored.version"] == version
    assert run.data.metrics["quality.concentration.rmse_ratio"] > 1.5

    second = monitor_window(settings, loaded_bundle.spec.name, version, fouled)
    assert second.drift and not second.triggered  # within the cool-down
    assert len(_drift_events(settings)) == 1

    last = settings.home / "monitoring" / "last_trigger.json"
    record = json.loads(last.read_text())
    record[loaded_bundle.spec.name]["time"] = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    last.write_text(json.dumps(record))
    assert trigger_retraining(settings, loaded_bundle.spec.name, version, "again")  # cool-down over
    assert len(_drift_events(settings)) == 2


def test_small_window_says_insufficient_and_does_not_trigger(registered, window, loaded_bundle):
    settings, version = registered
    result = monitor_window(settings, loaded_bundle.spec.name, None, window.iloc[:50])
    assert result.report.verdict.startswith("window too small to judge")
    assert {f.status for f in result.report.features.values()} == {"insufficient"}
    assert {q.status for q in result.quality.models.values()} == {"insufficient"}
    assert not result.drift and not result.triggered and _drift_events(settings) == []


def test_cli_monitor_json_is_the_drift_report(registered, window, loaded_bundle, tmp_path: Path):
    from typer.testing import CliRunner

    from dragon.cli import build_app

    settings, version = registered
    path = tmp_path / "window.parquet"
    _fouled(window, loaded_bundle).to_parquet(path)
    plant = tmp_path / "plant.toml"
    plant.write_text(loaded_bundle.spec.source_text)
    result = CliRunner().invoke(
        build_app(), ["monitor", "--input", str(path), "--version", version, "--plant", str(plant), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert set(payload) == {"drift", "window_rows", "features", "violations", "quality"}
    assert set(payload["features"]["cumene_feed"]) >= {"psi", "ks", "status"}
    assert payload["quality"]["models"]["concentration"]["status"] == "degraded"

    missing = CliRunner().invoke(build_app(), ["monitor", "--input", str(tmp_path / "nope.parquet")])
    assert isinstance(missing.exception, DataError) and "not found" in str(missing.exception)


# --- drift on the kind of data the endpoint sees ----------------------------------------------------


@pytest.fixture(scope="module")
def training_period_sample(small_history, small_plant) -> pd.DataFrame:
    """2000 normal readings (not averaged) drawn from the first 60 % of the history the bundle
    was trained on, in time order: what monitoring sees when nothing has changed."""
    from dragon.data import read_history

    history = read_history(small_history, small_plant)
    time = history[small_plant.time_column]
    early = time < time.iloc[0] + (time.iloc[-1] - time.iloc[0]) * 0.6
    normal = history[early & (history["episode"] == "")]
    return normal.sample(2000, random_state=3).sort_values(small_plant.time_column).reset_index(drop=True)


def test_a_window_from_the_training_period_is_quiet(loaded_bundle, training_period_sample):
    from dragon.drift import analyse_drift

    spec = loaded_bundle.spec
    report = analyse_drift(
        loaded_bundle.baselines, training_period_sample, spec.drift, spec.tags, spec.time_column
    )
    assert report.violations == [], report.verdict
    assert not report.drift


def test_a_one_sd_shift_of_a_disturbance_raises_drift(loaded_bundle, training_period_sample):
    from dragon.drift import analyse_drift

    spec = loaded_bundle.spec
    for tag in [t for t in spec.disturbances if t in loaded_bundle.baselines]:
        shifted = training_period_sample.copy()
        shifted[tag] += loaded_bundle.baselines[tag].std
        report = analyse_drift(loaded_bundle.baselines, shifted, spec.drift, spec.tags, spec.time_column)
        assert report.drift, (tag, report.features[tag])
        assert tag in {violation.feature for violation in report.violations}, (tag, report.verdict)
