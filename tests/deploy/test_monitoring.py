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


def _event(input_type: str, data: str, output: str, when: str, output_type: str = "application/json") -> str:
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": input_type,
                    "mode": "INPUT",
                    "data": data,
                    "encoding": "CSV" if input_type == "text/csv" else "JSON",
                },
                "endpointOutput": {
                    "observedContentType": output_type,
                    "mode": "OUTPUT",
                    "data": output,
                    "encoding": "CSV" if output_type == "text/csv" else "JSON",
                },
            },
            "eventMetadata": {"eventId": "e", "inferenceTime": when, "inferenceId": "i"},
            "eventVersion": "0",
        }
    )


def _answer(yield_value: float, version: str = "3") -> dict:
    return {
        "status": "hold",
        "predicted": {"yield": {"current": yield_value, "recommended": None}},
        "model_version": version,
    }


def test_read_capture_gives_one_row_per_state_with_its_predictions(tmp_path):
    hour = tmp_path / "2026" / "11" / "02" / "10"
    hour.mkdir(parents=True)
    lines = [
        _event(
            "application/json",
            json.dumps({"state": {"feed": 200.0, "t1": 105.0}}),
            json.dumps(_answer(95.1)),
            "2026-11-02T10:00:00.000Z",
        ),
        _event(
            "application/json",
            json.dumps({"instances": [{"feed": 201.0, "t1": 106.0}, {"feed": 202.0, "t1": 107.0}]}),
            json.dumps({"predictions": [_answer(95.2), _answer(95.3)], "model_version": "3"}),
            "2026-11-02T10:01:00.000Z",
        ),
        _event(
            "application/jsonlines",
            '{"feed": 203.0, "t1": 108.0}\n{"state": {"feed": 204.0, "t1": 109.0}}\n',
            json.dumps(_answer(95.4)) + "\n" + json.dumps(_answer(95.5)) + "\n",
            "2026-11-02T10:02:00.000Z",
            output_type="application/jsonlines",
        ),
        _event(
            "text/csv",
            "feed,t1\n205,110\n",
            "status,predicted.yield.current,model_version\nhold,95.6,3\n",
            "2026-11-02T10:03:00.000Z",
            output_type="text/csv",
        ),
        "not json at all",
    ]
    (hour / "a-1-1.jsonl").write_text("\n".join(lines) + "\n")
    frame = read_capture(tmp_path)
    assert frame["feed"].tolist() == [200.0, 201.0, 202.0, 203.0, 204.0, 205.0]
    assert frame["predicted.yield"].tolist() == [95.1, 95.2, 95.3, 95.4, 95.5, 95.6]
    assert set(frame[MODEL_VERSION]) == {"3"}
    assert str(frame[INFERENCE_TIME].dt.tz) == "UTC"
    assert frame[INFERENCE_TIME].iloc[-1] == pd.Timestamp("2026-11-02T10:03:00Z")


def test_read_capture_of_an_empty_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no data capture"):
        read_capture(tmp_path)


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
