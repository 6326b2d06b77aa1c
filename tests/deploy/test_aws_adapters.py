"""The boto3 adapters: against moto where it models the API, botocore's Stubber where it falls short
(tags on versioned model-package ARNs, a stack's outputs)."""

from __future__ import annotations

import json
import tarfile

import boto3
import pytest
from aws_fakes import ACCOUNT, BUCKET, REGION, STATEMACHINES
from botocore.stub import Stubber

from deploy.aws import AwsBackend, StackOutputs
from dragon.errors import DragonError

PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/yet-dragon/3"
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@pytest.fixture()
def moto_backend(aws_env):
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(
            name="echo", definition=PASS_MACHINE, roleArn=f"arn:aws:iam::{ACCOUNT}:role/x"
        )["stateMachineArn"]
        stack = StackOutputs(
            training_state_machine_arn=arn,
            deployment_state_machine_arn=arn,
            undeploy_state_machine_arn=arn,
            bucket=BUCKET,
            training_image="img:1",
            sagemaker_role_arn=f"arn:aws:iam::{ACCOUNT}:role/sm",
        )
        yield AwsBackend(
            sagemaker=boto3.client("sagemaker", region_name=REGION),
            s3=s3,
            stepfunctions=sfn,
            events=boto3.client("events", region_name=REGION),
            stack=stack,
        )


def wait(backend: AwsBackend, arn: str):
    import time

    for _ in range(200):
        status = backend.describe_execution(arn)
        if status.done:
            return status
        time.sleep(0.02)
    raise AssertionError("execution did not finish")


def test_workflow_starts_send_the_state_machine_input(moto_backend):
    arn = moto_backend.start_training_workflow(
        plant_name="p", data_uri="s3://b/d.parquet", approval_required=True
    )
    status = wait(moto_backend, arn)
    assert status.status == "SUCCEEDED" and status.error is None
    assert status.output == {
        "plant_name": "p",
        "data_uri": "s3://b/d.parquet",
        "query": None,
        "env": "dev",
        "plant_uri": None,
        "holdout_uri": None,
        "approval_required": True,
    }
    arn = moto_backend.start_deployment_workflow(plant_name="p", env="prod", version="4")
    assert wait(moto_backend, arn).output["version"] == "4"
    arn = moto_backend.start_undeploy_workflow(plant_name="p", env="prod")
    assert wait(moto_backend, arn).output == {"plant_name": "p", "env": "prod", "version": None}


def test_workflow_starts_refuse_bad_requests():
    backend = AwsBackend(stack=StackOutputs())
    with pytest.raises(DragonError, match="DRAGON_STACK"):
        backend.start_undeploy_workflow(plant_name="p", env="dev")
    with pytest.raises(DragonError, match="batch"):
        backend.start_deployment_workflow(plant_name="p", env="dev", mode="batch")
    with pytest.raises(DragonError, match="mode"):
        backend.start_deployment_workflow(plant_name="p", env="dev", mode="streaming")


def test_upload_bundle_tars_a_directory_as_sagemaker_does(moto_backend, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    (bundle / "gams").mkdir()
    (bundle / "gams" / "yield.json").write_text("[]")
    uri = moto_backend.upload_bundle(bundle, "yet-dragon", "v1")
    assert uri == f"s3://{BUCKET}/bundles/yet-dragon/v1/model.tar.gz"
    target = tmp_path / "model.tar.gz"
    moto_backend.s3.download_file(BUCKET, "bundles/yet-dragon/v1/model.tar.gz", str(target))
    with tarfile.open(target) as tar:
        assert sorted(tar.getnames()) == ["gams", "gams/yield.json", "manifest.json"]
    with pytest.raises(DragonError, match="not a bundle"):
        moto_backend.upload_bundle(tmp_path / "missing", "yet-dragon", "v2")


def test_training_job_request_matches_the_state_machine(moto_backend):
    request = moto_backend.training_job_request(
        job_name="dragon-train-1", plant_name="yet-dragon", data_uri="s3://b/d/", plant_uri="s3://b/p.toml"
    )
    asl = json.loads((STATEMACHINES / "training.asl.json").read_text())["States"]["StartTrainingJob"]
    assert sorted(k.removesuffix(".$") for k in asl["Parameters"]) == sorted(request)
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train", "config"]

    moto_backend.start_training_job(request)
    assert moto_backend.training_job_status("dragon-train-1") == ("Completed", None)


def test_put_event(moto_backend):
    event_id = moto_backend.put_event("yet-dragon.monitoring", "Drift Detected", {"plant_name": "p"})
    assert event_id


def test_approval_token_round_trip(moto_backend):
    moto_backend.store_approval_token("p", "2", "token-abc")
    with pytest.raises(DragonError, match="decision"):
        moto_backend.complete_approval("p", "2", "maybe", "")
    stubber = Stubber(moto_backend.stepfunctions)
    output = json.dumps({"decision": "rejected", "reason": "no"})
    stubber.add_response("send_task_success", {}, {"taskToken": "token-abc", "output": output})
    with stubber:
        moto_backend.complete_approval("p", "2", "rejected", "no")
    stubber.assert_no_pending_responses()
    with pytest.raises(DragonError, match="no training workflow waits"):
        moto_backend.complete_approval("p", "2", "approved", "again")


def test_model_package_tags_with_stubber():
    """moto's add_tags/list_tags fail on versioned model-package ARNs."""
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    backend = AwsBackend(sagemaker=client)
    stubber = Stubber(client)
    stubber.add_response(
        "add_tags",
        {"Tags": [{"Key": "deployed.dev", "Value": "true"}]},
        {"ResourceArn": PACKAGE_ARN, "Tags": [{"Key": "deployed.dev", "Value": "true"}]},
    )
    stubber.add_response(
        "list_tags",
        {"Tags": [{"Key": "deployed.dev", "Value": "true"}], "NextToken": "page2"},
        {"ResourceArn": PACKAGE_ARN},
    )
    stubber.add_response(
        "list_tags",
        {"Tags": [{"Key": "approval", "Value": "approved"}]},
        {"ResourceArn": PACKAGE_ARN, "NextToken": "page2"},
    )
    stubber.add_response("delete_tags", {}, {"ResourceArn": PACKAGE_ARN, "TagKeys": ["deployed.dev"]})
    with stubber:
        backend.add_model_package_tags(PACKAGE_ARN, {"deployed.dev": "true"})
        assert backend.model_package_tags(PACKAGE_ARN) == {"deployed.dev": "true", "approval": "approved"}
        backend.remove_model_package_tags(PACKAGE_ARN, ["deployed.dev"])
    stubber.assert_no_pending_responses()


def test_from_stack_reads_the_outputs(aws_env):
    cfn = boto3.client("cloudformation", region_name=REGION)
    outputs = [
        {"OutputKey": "TrainingStateMachineArn", "OutputValue": "arn:t"},
        {"OutputKey": "DeploymentStateMachineArn", "OutputValue": "arn:d"},
        {"OutputKey": "ArtifactBucketName", "OutputValue": "bucket-1"},
        {"OutputKey": "Environment", "OutputValue": "prod"},
    ]
    stack = {"StackName": "yet-dragon-dev", "CreationTime": "2026-01-01", "StackStatus": "CREATE_COMPLETE"}
    stubber = Stubber(cfn)
    stubber.add_response(
        "describe_stacks", {"Stacks": [{**stack, "Outputs": outputs}]}, {"StackName": "yet-dragon-dev"}
    )
    stubber.add_client_error("describe_stacks", "ValidationError", "Stack with id nope does not exist")
    with stubber:
        backend = AwsBackend.from_stack("yet-dragon-dev", region=REGION, cloudformation=cfn)
        with pytest.raises(DragonError, match="deploy deploy/templates/stack.yaml"):
            AwsBackend.from_stack("nope", region=REGION, cloudformation=cfn)
    assert backend.stack.training_state_machine_arn == "arn:t"
    assert backend.stack.bucket == "bucket-1" and backend.stack.undeploy_state_machine_arn == ""
    assert backend.stack.environment == "prod"
