"""The deployment and undeploy state machines under moto, from a version registered directly (no training
run): the failure paths (endpoint Failed, update rolled back, endpoint that will not delete) and batch mode,
with the registry's deployed.<env> tags checked after each."""

from __future__ import annotations

from aws_fakes import BUCKET, PLANT, deployed_envs, deployment_input, register_directly

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
