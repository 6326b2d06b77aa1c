"""The three state machines executed under moto, with the real Lambda handlers and the real registry.

moto runs the ASL (Step Functions execution on); Lambda tasks call deploy.lambdas in-process; SageMaker
is moto's, plus the fakes in conftest.py for failures and UpdateEndpoint. After every run, success or
failure, the registry must tell the truth: deployed.<env> only on the version that serves <env>.
"""

from __future__ import annotations

import json

import pytest
from aws_fakes import BUCKET, PLANT, deployed_envs, deployment_input, register_directly

from deploy.aws import AwsBackend, StackOutputs, approval_token_key
from dragon.registry import get_version, list_versions
from dragon.settings import load_settings


@pytest.fixture()
def data(harness, small_history, small_plant_path):
    """The history and the (small) plant spec, in S3 as the workflows read them."""
    return {
        "data_uri": harness.upload(small_history, "data/history.parquet"),
        "plant_uri": harness.upload(small_plant_path, "plants/small.toml"),
    }


def training_input(data: dict, **extra) -> dict:
    return {
        "plant_name": PLANT,
        "env": "dev",
        "holdout_uri": data["data_uri"],
        "poll_seconds": 0,
        **data,
        **extra,
    }


def test_train_deploy_update_undeploy(harness, data):
    trained = harness.run("training", training_input(data))
    assert trained["status"] == "SUCCEEDED", trained
    output = json.loads(trained["output"])
    assert output["training"]["job_name"].startswith("dragon-train-")
    assert output["evaluation"]["promote"] is True
    version = output["registration"]["version"]
    info = get_version(load_settings(), PLANT, version)
    assert info.tags["approval"] == "approved" and info.tags["model_data_url"].startswith(
        f"s3://{BUCKET}/training/"
    )
    assert deployed_envs() == {version: []}, "training alone deploys nothing"

    deployed = harness.run("deployment", deployment_input(version))
    assert deployed["status"] == "SUCCEEDED", deployed
    endpoint = harness.sagemaker.describe_endpoint(EndpointName=f"{PLANT}-dev")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"].startswith(f"{PLANT}-v{version}-")
    assert deployed_envs() == {version: ["dev"]}
    assert "champion" in get_version(load_settings(), PLANT, version).aliases

    second = register_directly(harness)
    updated = harness.run("deployment", deployment_input(second))
    assert updated["status"] == "SUCCEEDED", updated
    assert json.loads(updated["output"])["found"]["exists"] is True, "the existing endpoint is updated"
    endpoint = harness.sagemaker.describe_endpoint(EndpointName=f"{PLANT}-dev")
    assert endpoint["EndpointConfigName"].startswith(f"{PLANT}-v{second}-")
    assert deployed_envs() == {version: [], second: ["dev"]}

    undeployed = harness.run("undeploy", {"plant_name": PLANT, "env": "dev"})
    assert undeployed["status"] == "SUCCEEDED", undeployed
    assert harness.sagemaker.list_endpoints()["Endpoints"] == []
    assert deployed_envs() == {version: [], second: []}


def test_failed_training_job_registers_nothing(harness, data):
    harness.fake.training_outcome = "Failed"
    run = harness.run("training", training_input(data))
    assert run["status"] == "FAILED"
    assert run["error"] == "TrainingJobFailed"
    assert "out of memory" in run["cause"] and harness.fake.created_training_jobs[0] in run["cause"]
    assert list_versions(load_settings(), PLANT) == []


def test_bad_data_fails_in_transform_before_any_training_job(harness, data, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,feed_rate\n2026-01-01T00:00:00,1.0\n")
    run = harness.run("training", training_input(data, data_uri=harness.upload(bad, "data/bad.csv")))
    assert run["status"] == "FAILED"
    assert run["error"] in ("DataError", "SpecError", "DragonError"), run
    assert harness.fake.created_training_jobs == []


def _wait_for_token(harness, version: str) -> None:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if harness.s3.list_objects_v2(Bucket=BUCKET, Prefix=approval_token_key(PLANT, version)).get(
            "KeyCount"
        ):
            return
        time.sleep(0.05)
    raise AssertionError("the approval task token never arrived")


@pytest.mark.parametrize("decision", ["rejected", "approved"])
def test_manual_approval(harness, data, decision):
    execution = harness.start("training", training_input(data, approval_required=True))
    _wait_for_token(harness, "1")
    assert get_version(load_settings(), PLANT, "1").tags["approval"] == "pending"
    backend = AwsBackend(s3=harness.s3, stepfunctions=harness.sfn, stack=StackOutputs(bucket=BUCKET))
    backend.complete_approval(PLANT, "1", decision, f"{decision} by the shift engineer")
    run = harness.wait(execution)
    tags = get_version(load_settings(), PLANT, "1").tags
    assert tags["approval"] == decision
    assert tags["approval.reason"] == f"{decision} by the shift engineer"

    deployment = harness.run("deployment", deployment_input("1"))
    if decision == "rejected":
        assert run["status"] == "FAILED" and run["error"] == "ApprovalRejected"
        assert run["cause"] == "rejected by the shift engineer"
        assert deployment["status"] == "FAILED" and deployment["error"] == "RegistryError"
        assert "rejected" in deployment["cause"]
        assert "RegistryError" in get_version(load_settings(), PLANT, "1").tags["last_failure.dev"]
        assert deployed_envs() == {"1": []}
        assert harness.sagemaker.list_models()["Models"] == [], "nothing was created for a rejected version"
    else:
        assert run["status"] == "SUCCEEDED", run
        assert deployment["status"] == "SUCCEEDED", deployment
        assert deployed_envs() == {"1": ["dev"]}
