"""The deployment and undeploy state machines under moto, from a version registered directly (no training
run): the endpoint as a CloudFormation stack, the failure paths (creation failed, update rolled back, endpoint
that will not delete), the deployment lock and batch mode, with the registry's deployed.<env> tags checked
after each."""

from __future__ import annotations

import csv
import io
import json
import time

import boto3
from aws_fakes import BUCKET, LOCK_TABLE, PLANT, REGION, deployed_envs, deployment_input, register_directly

from deploy import steps
from dragon.registry import deployed_version, get_version
from dragon.settings import load_settings


def test_failed_endpoint_leaves_no_deployed_tag(harness):
    version = register_directly(harness)
    harness.fake.endpoint_outcome = "Failed"
    run = harness.run("deployment", deployment_input(version, env="prod"))
    assert run["status"] == "FAILED" and run["error"] == "EndpointFailed"
    assert "capacity error" in run["cause"]
    tags = get_version(load_settings(), PLANT, version).tags
    assert "deployed.prod" not in tags and "EndpointFailed" in tags["last_failure.prod"]
    assert deployed_version(load_settings(), PLANT, "prod") is None


def test_rolled_back_update_keeps_the_serving_version_tagged(harness):
    first = register_directly(harness)
    assert harness.run("deployment", deployment_input(first))["status"] == "SUCCEEDED"
    second = register_directly(harness)
    harness.fake.update_outcome = "RolledBack"
    run = harness.run("deployment", deployment_input(second))
    assert run["status"] == "FAILED" and run["error"] == "EndpointUpdateRolledBack"
    assert deployed_envs() == {first: ["dev"], second: []}
    assert "EndpointUpdateRolledBack" in get_version(load_settings(), PLANT, second).tags["last_failure.dev"]


def test_batch_mode_writes_one_csv_with_one_header_and_tags_nothing(harness, small_history, small_plant):
    """The fake transform job splits the input into mini-batches of 2 lines and answers each with the real
    answering code, as SageMaker does: the CSV beside its output has one header and a row per state."""
    import pandas as pd

    version = register_directly(harness)
    states = pd.read_parquet(small_history)[small_plant.required_state_tags].iloc[::500].head(5)
    harness.s3.put_object(Bucket=BUCKET, Key="batch/in/states.csv", Body=states.to_csv(index=False).encode())
    run = harness.run(
        "deployment",
        deployment_input(
            version,
            mode="batch",
            batch_input_uri=f"s3://{BUCKET}/batch/in",
            batch_output_uri=f"s3://{BUCKET}/out",
        ),
    )
    assert run["status"] == "SUCCEEDED", run
    assert json.loads(run["output"])["batch_output"] == {
        "csv": [f"s3://{BUCKET}/out/states.csv"],
        "rows": 5,
    }
    text = harness.s3.get_object(Bucket=BUCKET, Key="out/states.csv")["Body"].read().decode()
    table = list(csv.reader(io.StringIO(text)))
    header, rows = table[0], table[1:]
    assert len(rows) == 5 and "status" in header and header not in rows, "one header, five answers"
    assert all(len(row) == len(header) for row in rows)
    jobs = harness.sagemaker.list_transform_jobs()["TransformJobSummaries"]
    assert [j["TransformJobStatus"] for j in jobs] == ["Completed"]
    assert harness.sagemaker.list_models()["Models"] == [], "the batch run's model is deleted after it"
    assert harness.sagemaker.list_endpoints()["Endpoints"] == []
    assert deployed_envs() == {version: []}


def test_undeploy_without_endpoint_still_clears_a_stale_tag(harness):
    version = register_directly(harness)
    steps.tag_deployment(steps.TagInput(PLANT, version, "dev"))  # a tag whose endpoint was deleted by hand
    run = harness.run("undeploy", {"plant_name": PLANT, "env": "dev"})
    assert run["status"] == "SUCCEEDED", run
    assert deployed_envs() == {version: []}


def test_undeploy_keeps_the_tag_while_the_endpoint_still_serves(harness, monkeypatch):
    from moto.sagemaker import models

    version = register_directly(harness)
    assert harness.run("deployment", deployment_input(version))["status"] == "SUCCEEDED"

    def refuse(backend, name):
        raise models.ValidationError(message="endpoint is busy updating")

    monkeypatch.setattr(models.SageMakerModelBackend, "delete_endpoint", refuse)
    run = harness.run("undeploy", {"plant_name": PLANT, "env": "dev"})
    assert run["status"] == "FAILED" and "busy" in run["cause"]
    assert deployed_envs() == {version: ["dev"]}, "the endpoint still serves: its tag stays"


def test_the_endpoint_is_a_stack_and_a_new_version_replaces_its_model_and_config(harness):
    cfn = boto3.client("cloudformation", region_name=REGION)
    first = register_directly(harness)
    assert harness.run("deployment", deployment_input(first))["status"] == "SUCCEEDED"
    second = register_directly(harness, "bundles/second/model.tar.gz")
    assert harness.run("deployment", deployment_input(second))["status"] == "SUCCEEDED"

    (stack,) = cfn.describe_stacks(StackName=f"{PLANT}-dev-endpoint")["Stacks"]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert parameters["ModelVersion"] == second
    assert parameters["ModelDataUrl"] == f"s3://{BUCKET}/bundles/second/model.tar.gz"
    models = [m["ModelName"] for m in harness.sagemaker.list_models()["Models"]]
    configs = [c["EndpointConfigName"] for c in harness.sagemaker.list_endpoint_configs()["EndpointConfigs"]]
    assert len(models) == 1 and models[0].startswith(f"{PLANT}-dev-v{second}-"), "the old model went"
    assert configs == models, "the old endpoint config went"
    endpoint = harness.sagemaker.describe_endpoint(EndpointName=f"{PLANT}-dev")
    assert endpoint["EndpointConfigName"] == configs[0]
    capture = harness.sagemaker.describe_endpoint_config(EndpointConfigName=configs[0])["DataCaptureConfig"]
    assert capture["EnableCapture"] and capture["DestinationS3Uri"] == f"s3://{BUCKET}/capture/{PLANT}/dev"
    assert deployed_envs() == {first: [], second: ["dev"]}

    assert harness.run("undeploy", {"plant_name": PLANT, "env": "dev"})["status"] == "SUCCEEDED"
    assert [
        s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"
    ] == []
    assert harness.sagemaker.list_models()["Models"] == []
    assert harness.sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert deployed_envs() == {first: [], second: []}


def test_a_failed_first_deployment_leaves_nothing_and_the_next_one_starts_afresh(harness):
    version = register_directly(harness)
    harness.fake.endpoint_outcome = "Failed"
    assert harness.run("deployment", deployment_input(version))["status"] == "FAILED"
    harness.fake.endpoint_outcome = "InService"
    run = harness.run("deployment", deployment_input(version))
    assert run["status"] == "SUCCEEDED", run
    assert deployed_envs() == {version: ["dev"]}


def test_a_deployment_of_an_environment_being_deployed_is_refused(harness):
    """Another execution holds the plant and environment's lock: this one fails at once, naming it, and
    leaves the tags alone; once the holder has ended (stopped: it never released), the next one goes."""
    first, second, parked = deployed_and_second_parked(harness)

    refused = harness.run("deployment", deployment_input(second))
    assert refused["status"] == "FAILED" and refused["error"] == "DeploymentLocked", refused
    assert parked in refused["cause"]
    assert deployed_envs() == {first: ["dev"], second: []}
    assert "DeploymentLocked" in get_version(load_settings(), PLANT, second).tags["last_failure.dev"]

    harness.sfn.stop_execution(executionArn=parked)
    taken_over = harness.run("deployment", deployment_input(second))
    assert taken_over["status"] == "SUCCEEDED", taken_over
    assert deployed_envs() == {first: [], second: ["dev"]}


def deployed_and_second_parked(harness) -> tuple[str, str, str]:
    """(first version, deployed; second version; the execution deploying it, parked holding the lock)."""
    first = register_directly(harness)
    assert harness.run("deployment", deployment_input(first))["status"] == "SUCCEEDED"
    second = register_directly(harness, "bundles/second/model.tar.gz")
    parked = harness.start("deployment", deployment_input(second, poll_seconds=600))
    wait_until_held(boto3.client("dynamodb", region_name=REGION), parked)
    return first, second, parked


def wait_until_held(dynamodb, execution_arn: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = dynamodb.get_item(TableName=LOCK_TABLE, Key={"lock_key": {"S": f"{PLANT}/dev"}}).get("Item")
        if item and item["execution_arn"]["S"] == execution_arn:
            return
        time.sleep(0.05)
    raise AssertionError(f"{execution_arn} never took the lock")


def test_an_endpoint_deletion_event_during_a_deployment_leaves_it_to_the_lock_holder(harness):
    """The deletion rule starts undeploy with trigger=endpoint-deleted; while a deployment holds the lock
    (its own rolled back creation deletes the endpoint), that run owns the tag: nothing fails or moves."""
    first, second, parked = deployed_and_second_parked(harness)
    event_started = {"plant_name": PLANT, "env": "dev", "trigger": "endpoint-deleted"}
    assert harness.run("undeploy", event_started)["status"] == "SUCCEEDED"
    manual = harness.run("undeploy", {"plant_name": PLANT, "env": "dev"})
    assert manual["status"] == "FAILED" and manual["error"] == "DeploymentLocked"
    assert deployed_envs() == {first: ["dev"], second: []}
    harness.sfn.stop_execution(executionArn=parked)
