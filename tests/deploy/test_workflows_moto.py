"""The three state machines executed under moto, with the real Lambda handlers and the real registry.

moto runs the ASL (Step Functions execution on); Lambda tasks call deploy.lambdas in-process; SageMaker and
CloudFormation are moto's, plus the fakes in aws_fakes.py for failures and what moto's CloudFormation lacks.
After every run, success or failure, the registry must tell the truth: deployed.<env> only on the version that
serves <env>.
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
    """No holdout_uri: the comparison takes the newest period of the training data, as scheduled and
    drift-triggered trainings do."""
    return {"plant_name": PLANT, "env": "dev", "poll_seconds": 0, **data, **extra}


def test_three_trainings_in_a_row_each_against_the_deployed_champion(harness, data, registry_home):
    """Every Lambda invocation runs in its own empty home (aws_fakes.fresh_lambda_home): the champion
    each training is compared with comes from S3 by its model_data_url, the registry from the
    tracking server; nothing any step needs lives on a local disk."""
    versions = []
    for round in range(3):
        trained = harness.run("training", training_input(data))
        assert trained["status"] == "SUCCEEDED", trained
        output = json.loads(trained["output"])
        version = output["registration"]["version"]
        versions.append(version)
        assert output["training"]["job_name"].startswith(f"{PLANT}-train-")
        evaluation = output["evaluation"]
        assert evaluation["promote"] is True, evaluation
        if round == 0:
            assert evaluation["champion"] is None
        else:
            assert evaluation["champion"] is not None, "compared with the deployed champion"
            assert set(evaluation["champion"]) == set(evaluation["candidate"])
        assert output["deployment"]["status"] == "SUCCEEDED", "a won comparison deploys in this execution"
        info = get_version(load_settings(), PLANT, version)
        assert info.source.startswith(f"s3://{BUCKET}/mlflow/{PLANT}/"), "the registry's copy is in S3"
        assert info.tags["model_data_url"].startswith(f"s3://{BUCKET}/training/")
        assert deployed_envs()[version] == ["dev"]
        assert "champion" in info.aliases
    assert sorted(deployed_envs()) == sorted(versions) and len(set(versions)) == 3
    assert not (registry_home / "artifacts").exists(), "nothing was stored in a local home"

    undeployed = harness.run("undeploy", {"plant_name": PLANT, "env": "dev"})
    assert undeployed["status"] == "SUCCEEDED", undeployed
    assert harness.sagemaker.list_endpoints()["Endpoints"] == []
    assert all(envs == [] for envs in deployed_envs().values())


def test_update_of_a_deployed_endpoint_moves_the_tag(harness):
    first = register_directly(harness)
    assert harness.run("deployment", deployment_input(first))["status"] == "SUCCEEDED"
    second = register_directly(harness, "bundles/second/model.tar.gz")
    updated = harness.run("deployment", deployment_input(second))
    assert updated["status"] == "SUCCEEDED", updated
    assert deployed_envs() == {first: [], second: ["dev"]}


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

    deadline = time.monotonic() + 180  # generous: a loaded 2-core CI machine
    while time.monotonic() < deadline:
        if harness.s3.list_objects_v2(Bucket=BUCKET, Prefix=approval_token_key(PLANT, version)).get(
            "KeyCount"
        ):
            return
        time.sleep(0.05)
    raise AssertionError("the approval task token never arrived")


@pytest.mark.parametrize("decision", ["rejected", "approved"])
def test_manual_approval_continues_the_same_execution(harness, data, decision):
    execution = harness.start("training", training_input(data, approval_required=True))
    _wait_for_token(harness, "1")
    assert get_version(load_settings(), PLANT, "1").tags["approval"] == "pending"
    backend = AwsBackend(s3=harness.s3, stepfunctions=harness.sfn, stack=StackOutputs(bucket=BUCKET))
    backend.complete_approval(PLANT, "1", decision, f"{decision} by the shift engineer")
    run = harness.wait(execution)
    assert run["status"] == "SUCCEEDED", run
    tags = get_version(load_settings(), PLANT, "1").tags
    assert tags["approval"] == decision
    assert tags["approval.reason"] == f"{decision} by the shift engineer"
    output = json.loads(run["output"])
    if decision == "approved":
        assert output["deployment"]["status"] == "SUCCEEDED", "the approval led into the deployment"
        assert deployed_envs() == {"1": ["dev"]}
        return
    assert "deployment" not in output
    assert deployed_envs() == {"1": []}
    assert harness.sagemaker.list_models()["Models"] == [], "nothing was created for a rejected version"
    deployment = harness.run("deployment", deployment_input("1"))
    assert deployment["status"] == "FAILED" and deployment["error"] == "RegistryError"
    assert "rejected" in deployment["cause"]
    assert deployed_envs() == {"1": []}


def test_approval_for_an_ended_execution_is_a_clear_error(harness, data):
    from dragon.errors import DragonError

    run = harness.run("training", training_input(data, approval_required=True, approval_timeout_seconds=1))
    assert run["status"] == "SUCCEEDED", run
    tags = get_version(load_settings(), PLANT, "1").tags
    assert tags["approval"] == "rejected"
    assert tags["approval.reason"] == "no approval decision before the timeout"
    backend = AwsBackend(s3=harness.s3, stepfunctions=harness.sfn, stack=StackOutputs(bucket=BUCKET))
    with pytest.raises(DragonError, match="has ended"):
        backend.complete_approval(PLANT, "1", "approved", "too late")
    assert get_version(load_settings(), PLANT, "1").tags["approval"] == "rejected"
    assert deployed_envs() == {"1": []}
    token = harness.s3.list_objects_v2(Bucket=BUCKET, Prefix=approval_token_key(PLANT, "1"))
    assert not token.get("KeyCount"), "the stale token is removed"


def test_training_on_a_data_lake_prefix_reads_every_partition(harness, small_history, small_plant_path):
    """An S3 prefix as the history (a data-lake partition per period): the transform and the hold-out read
    every .csv / .parquet object under it, in key order, as the training job's channel does."""
    import pandas as pd

    frame = pd.read_parquet(small_history)
    half = len(frame) // 2
    for part, rows in enumerate((frame.iloc[:half], frame.iloc[half:])):
        harness.s3.put_object(
            Bucket=BUCKET, Key=f"lake/{PLANT}/part={part}/history.parquet", Body=rows.to_parquet()
        )
    prefix = f"s3://{BUCKET}/lake/{PLANT}/"
    data = {"data_uri": prefix, "plant_uri": harness.upload(small_plant_path, "plants/small.toml")}
    trained = harness.run("training", training_input(data))
    assert trained["status"] == "SUCCEEDED", trained
    output = json.loads(trained["output"])
    assert output["transform"]["rows_in"] == len(frame)
    assert output["evaluation"]["promote"] is True
