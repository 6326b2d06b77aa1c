"""The deployment and undeploy state machines under moto, from a version registered directly (no training
run): the failure paths (endpoint Failed, update rolled back, endpoint that will not delete) and batch mode,
with the registry's deployed.<env> tags checked after each."""

from __future__ import annotations

import json
import time

from aws_fakes import BUCKET, PLANT, ROLE, definition, deployed_envs, deployment_input, register_directly

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


def test_batch_mode_runs_a_transform_job_and_tags_nothing(harness):
    version = register_directly(harness)
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
    jobs = harness.sagemaker.list_transform_jobs()["TransformJobSummaries"]
    assert [j["TransformJobStatus"] for j in jobs] == ["Completed"]
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


def job_output(job: str) -> str:
    return f"training/{job}/output/model.tar.gz"


def test_training_job_trigger_deploys_the_jobs_version_only_if_it_won(harness):
    champion = register_directly(harness)
    assert harness.run("deployment", deployment_input(champion))["status"] == "SUCCEEDED"
    # What the "training job completed" rule sends: no version, the job's name.
    lost = register_directly(harness, job_output("dragon-train-c8"), {"promote": False, "reason": "worse"})
    run = harness.run("deployment", deployment_input(None, training_job_name="dragon-train-c8"))
    assert run["status"] == "SUCCEEDED", run
    assert json.loads(run["output"])["error"]["Error"] == "ChallengerNotPromoted"
    assert deployed_envs() == {champion: ["dev"], lost: []}, "the champion keeps serving"

    mine = register_directly(harness, job_output("dragon-train-b7"), {"promote": True, "reason": "won"})
    run = harness.run("deployment", deployment_input(None, training_job_name="dragon-train-b7"))
    assert run["status"] == "SUCCEEDED", run
    assert deployed_envs() == {champion: [], lost: [], mine: ["dev"]}


def test_deployment_waits_for_the_training_jobs_version_to_be_registered(harness):
    """VersionNotRegisteredYet is retried: the version registered after the first look is deployed.
    The retrier's interval is cut to 1 s here (30 s in the definition); its ErrorEquals is the real one."""
    asl = json.loads(definition("deployment"))
    retrier = asl["States"]["ResolveVersion"]["Retry"][0]
    assert retrier["ErrorEquals"] == ["VersionNotRegisteredYet"] and retrier["MaxAttempts"] >= 5
    retrier.update(IntervalSeconds=1, BackoffRate=1.5, MaxDelaySeconds=2)
    arn = harness.sfn.create_state_machine(
        name="dragon-deployment-fast-retry", definition=json.dumps(asl), roleArn=ROLE
    )["stateMachineArn"]
    execution = harness.sfn.start_execution(
        stateMachineArn=arn, input=json.dumps(deployment_input(None, training_job_name="dragon-train-d9"))
    )["executionArn"]
    deadline = time.monotonic() + 20
    while not any(
        "VersionNotRegisteredYet" in json.dumps(event, default=str)
        for event in harness.sfn.get_execution_history(executionArn=execution)["events"]
    ):
        assert time.monotonic() < deadline, "the first look never failed"
        time.sleep(0.05)
    version = register_directly(harness, job_output("dragon-train-d9"))
    run = harness.wait(execution)
    assert run["status"] == "SUCCEEDED", run
    assert deployed_envs() == {version: ["dev"]}


def test_training_job_that_never_registers_fails_and_tags_nothing(harness):
    """When the retries run out, the failure is recorded and nothing is tagged (retries cut to one)."""
    asl = json.loads(definition("deployment"))
    asl["States"]["ResolveVersion"]["Retry"][0].update(IntervalSeconds=1, MaxAttempts=1)
    arn = harness.sfn.create_state_machine(
        name="dragon-deployment-one-retry", definition=json.dumps(asl), roleArn=ROLE
    )["stateMachineArn"]
    execution = harness.sfn.start_execution(
        stateMachineArn=arn, input=json.dumps(deployment_input(None, training_job_name="dragon-train-e0"))
    )["executionArn"]
    run = harness.wait(execution)
    assert run["status"] == "FAILED" and run["error"] == "VersionNotRegisteredYet", run
    assert deployed_envs() == {} and harness.sagemaker.list_models()["Models"] == []
