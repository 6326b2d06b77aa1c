"""Monitoring on AWS: the `monitor` container entry point on a /opt/ml/processing tree made from a capture
folder the real server wrote, its "Drift Detected" event through the stack's rule into the training
workflow, and the retraining cool-down that workflow enforces (deploy/retrain_cooldown.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from aws_fakes import LOCK_TABLE, PLANT, REGION, create_lock_table, fresh_lambda_home, register_directly

from deploy import events
from deploy.retrain_cooldown import CooldownRequest, claim


@pytest.fixture(scope="module")
def drifted_capture(trained_bundle, loaded_bundle, small_history, tmp_path_factory) -> dict:
    """The real server's capture folder after 240 plant states whose first disturbance sits above anything
    training saw (inside its valid range, so the server answers them)."""
    from serving import start_server, stop_server

    spec = loaded_bundle.spec
    tags = spec.required_state_tags
    disturbance = next(t for t in tags if spec.tags[t].role == "disturbance" and t in loaded_bundle.baselines)
    top = loaded_bundle.baselines[disturbance].max
    high = min(spec.tags[disturbance].valid[1], top + abs(top) * 0.5 + 1.0)
    frame = pd.read_parquet(small_history).dropna(subset=tags)
    states = [{tag: float(row[tag]) for tag in tags} for _, row in frame.iloc[::4].head(240).iterrows()]
    for state in states:
        state[disturbance] = (top + high) / 2
    server = start_server(trained_bundle, tmp_path_factory.mktemp("served-drift"))
    try:
        with server.client() as http:
            response = http.post("/invocations", json={"instances": states})
            assert response.status_code == 200, response.text
    finally:
        stop_server(server)
    return {"dir": server.capture_dir, "tag": disturbance, "rows": len(states)}


def processing_tree(base: Path, capture_dir: Path, endpoint: str) -> dict[str, str]:
    """/opt/ml/processing as Model Monitor mounts it: <input>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl."""
    shutil.copytree(capture_dir, base / "input" / endpoint / "AllTraffic")
    now = datetime.now(UTC)
    return {
        "dataset_source": str(base / "input"),
        "output_path": str(base / "output"),
        "start_time": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_time": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sagemaker_endpoint_name": endpoint,
        "DRAGON_MESSAGE_FILE": str(base / "message"),
    }


@pytest.fixture()
def drift_queue(harness):
    """The stack's DriftDetectedRule for this plant in dev, delivering to a queue (moto's EventBridge
    cannot target Step Functions)."""
    import boto3

    bridge, sqs = boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="drift")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = events.for_plant(events.RULE_PATTERNS["DriftDetectedRule"], PLANT, "dev")
    bridge.put_rule(Name="DriftDetectedRule", EventPattern=json.dumps(pattern), State="ENABLED")
    bridge.put_targets(Rule="DriftDetectedRule", Targets=[{"Id": "queue", "Arn": arn}])
    return sqs, url


def drift_events(sqs, url: str) -> list[dict]:
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in found]


def rule_input(event: dict) -> dict:
    """What the stack's DriftDetectedRule hands the training workflow (its InputTransformer, for dev)."""
    return {
        "plant_name": event["detail"]["plant_name"],
        "data_uri": event["detail"]["data_uri"],
        "env": "dev",
        "approval_required": False,
        "trigger": "drift",
        "poll_seconds": 0,
    }


def test_monitor_job_writes_violations_and_its_drift_event_starts_one_training_per_cool_down(
    harness, drift_queue, drifted_capture, small_history, small_plant_path, tmp_path, monkeypatch
):
    version = register_directly(harness)
    data_uri = harness.upload(small_history, "data/history.parquet")
    tree = processing_tree(tmp_path / "processing", drifted_capture["dir"], f"{PLANT}-dev")
    job_env = {"DRAGON_PLANT_NAME": PLANT, "DRAGON_MODEL_VERSION": version, "DRAGON_ENV": "dev"}
    for key, value in {**tree, **job_env, "DRAGON_RETRAIN_DATA_URI": data_uri}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DRAGON_RETRAIN_COOLDOWN_HOURS", raising=False)

    from deploy.monitor_entrypoint import main

    with fresh_lambda_home():  # the processing job's own empty disk: the bundle comes from S3
        assert main() == 0
    output = Path(tree["output_path"])
    violations = json.loads((output / "constraint_violations.json").read_text())["violations"]
    assert drifted_capture["tag"] in {v["feature_name"] for v in violations}
    assert {"feature_name", "constraint_check_type", "description"} == set(violations[0])
    assert (output / "report.json").is_file()
    assert not Path(tree["DRAGON_MESSAGE_FILE"]).exists()

    [event] = drift_events(*drift_queue)
    assert event["detail-type"] == events.DRIFT_DETECTED
    assert event["detail"]["version"] == version and event["detail"]["data_uri"] == data_uri

    sqs, url = drift_queue
    first = harness.run("training", rule_input(event))
    assert first["status"] == "SUCCEEDED", first
    output = json.loads(first["output"])
    assert output["cooldown"]["start"] is True
    assert output["registration"]["version"] != version, "the drift event trained a new version"
    jobs = list(harness.fake.created_training_jobs)

    second = harness.run("training", rule_input(event))  # the next monitoring run's alarm, an hour on
    assert second["status"] == "SUCCEEDED", second
    held = json.loads(second["output"])
    assert held["cooldown"]["start"] is False and "cool-down" in held["cooldown"]["message"]
    assert "registration" not in held
    assert harness.fake.created_training_jobs == jobs, "no training job within the cool-down"


def test_monitor_job_on_a_quiet_window_succeeds_without_violations(
    harness, drifted_capture, tmp_path, monkeypatch
):
    version = register_directly(harness)
    tree = processing_tree(tmp_path / "processing", drifted_capture["dir"], f"{PLANT}-dev")
    tree["end_time"] = tree["start_time"]
    tree["start_time"] = (datetime.now(UTC) - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for key, value in {**tree, "DRAGON_PLANT_NAME": PLANT, "DRAGON_MODEL_VERSION": version}.items():
        monkeypatch.setenv(key, value)

    from deploy.monitor_entrypoint import main

    with fresh_lambda_home():
        assert main() == 0  # the endpoint served nothing in the window: nothing to judge, not a failure
    written = json.loads((Path(tree["output_path"]) / "constraint_violations.json").read_text())
    assert written == {"violations": []}


def test_monitor_container_without_its_schedule_environment_fails_with_the_reason(tmp_path):
    """As SageMaker runs it: the console script, its failure message where the processing job reads it."""
    message = tmp_path / "message"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGON_")}
    env.update(DRAGON_MESSAGE_FILE=str(message), DRAGON_HOME=str(tmp_path / "home"))
    result = subprocess.run(
        [sys.executable, "-m", "deploy.monitor_entrypoint"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "DRAGON_PLANT_NAME" in message.read_text()
    assert shutil.which("monitor", path=str(Path(sys.executable).parent)), "the `monitor` console script"


@pytest.fixture()
def clock_table(aws_env):
    import boto3
    from moto import mock_aws

    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_lock_table(dynamodb)
        yield dynamodb


def test_cool_down_holds_drift_trainings_but_never_scheduled_or_manual_ones(clock_table, monkeypatch):
    monkeypatch.setenv("DRAGON_RETRAIN_COOLDOWN_HOURS", "24")
    noon = datetime(2026, 11, 2, 12, tzinfo=UTC)

    def ask(trigger: str, when: datetime, execution: str, env: str = "dev"):
        return claim(CooldownRequest(LOCK_TABLE, PLANT, env, execution, trigger), clock_table, now=when)

    assert ask("schedule", noon, "weekly").start
    held = ask("drift", noon + timedelta(hours=3), "drift-1")
    assert not held.start and held.last_execution == "weekly" and "2026-11-03T12:00" in held.message
    assert ask("drift", noon + timedelta(hours=3), "drift-1", env="prod").start, (
        "each environment its own clock"
    )
    assert ask("manual", noon + timedelta(hours=4), "person").start, "a person's training always runs"
    assert not ask("drift", noon + timedelta(hours=27), "drift-2").start, "the manual run restarted the clock"
    assert ask("drift", noon + timedelta(hours=29), "drift-3").start
    assert ask("drift", noon + timedelta(hours=29), "drift-3").start, "a retried step of the same run goes on"
    monkeypatch.setenv("DRAGON_RETRAIN_COOLDOWN_HOURS", "0")
    assert ask("drift", noon + timedelta(hours=29, minutes=1), "drift-4").start
