"""`dragon ... --backend aws`: the CLI starts the stack's state machines with the right input, resumes a
workflow waiting on an approval, and explains a missing stack, region or credentials without a traceback."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from aws_fakes import ACCOUNT, BUCKET, FUNCTIONS, PLANT, REGION

from deploy.aws import AwsBackend, StackOutputs
from dragon.cli import main

ECHO = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


def dragon(capsys, *args: str) -> tuple[int, str, str]:
    """Run the real CLI entry point: (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), " ".join(err.split())  # rich wraps long lines


def last_input(sfn, arn: str) -> dict:
    """The input of the state machine's one execution (a Pass machine echoes it)."""
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    return json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])


@pytest.fixture()
def echo_stack(aws_env, monkeypatch):
    """A stack whose three workflows echo their input; `AwsBackend.from_environment` returns it."""
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        role = f"arn:aws:iam::{ACCOUNT}:role/states"
        arns = {
            name: sfn.create_state_machine(name=name, definition=ECHO, roleArn=role)["stateMachineArn"]
            for name in ("training", "deployment", "undeploy")
        }
        stack = StackOutputs(
            training_state_machine_arn=arns["training"],
            deployment_state_machine_arn=arns["deployment"],
            undeploy_state_machine_arn=arns["undeploy"],
            bucket=BUCKET,
            environment="prod",
        )
        backend = AwsBackend(s3=s3, stepfunctions=sfn, stack=stack)
        monkeypatch.setattr(AwsBackend, "from_environment", classmethod(lambda cls, **_: backend))
        yield sfn, s3, arns


def test_pipeline_train_uploads_local_inputs_and_starts_the_training_workflow(
    echo_stack, capsys, small_history, small_plant_path
):
    sfn, s3, arns = echo_stack
    code, out, err = dragon(
        capsys,
        "pipeline",
        "train",
        "--backend",
        "aws",
        "--data",
        str(small_history),
        "--plant",
        str(small_plant_path),
        "--approval",
    )
    assert code == 0, err
    assert "started training workflow" in out
    sent = last_input(sfn, arns["training"])
    data_key = sent["data_uri"].removeprefix(f"s3://{BUCKET}/")
    assert data_key.startswith("data/") and data_key.endswith(small_history.name)
    assert s3.get_object(Bucket=BUCKET, Key=data_key)["Body"].read() == small_history.read_bytes()
    assert sent["plant_uri"].startswith(f"s3://{BUCKET}/plants/")
    assert sent == {
        "plant_name": PLANT,
        "data_uri": sent["data_uri"],
        "query": None,
        "env": "prod",  # `--env local` (the default) means the stack's environment
        "plant_uri": sent["plant_uri"],
        "holdout_uri": None,  # default: the hold-out period of the training data
        "approval_required": True,
    }


def test_pipeline_train_on_an_athena_query(echo_stack, capsys):
    sfn, _, arns = echo_stack
    query = "SELECT * FROM readings WHERE ts > current_date - interval '90' day"
    code, out, err = dragon(capsys, "pipeline", "train", "--backend", "aws", "--query", query)
    assert code == 0, err
    sent = last_input(sfn, arns["training"])
    assert sent["query"] == query and sent["data_uri"] is None


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give the history as --data PATH_OR_URI or (on AWS) --query SQL"),
        (["--data", "s3://lake/h.parquet", "--query", "SELECT 1"], "give the history as --data"),
        (["--query", "SELECT 1", "--backend", "local"], "--query runs on Athena (--backend aws)"),
    ],
)
def test_pipeline_train_takes_the_history_one_way(capsys, args, message):
    code, out, err = dragon(capsys, "pipeline", "train", *args)
    assert code == 2 and message in out + err and "Traceback" not in out + err


def test_pipeline_train_passes_s3_uris_and_the_holdout_as_given(echo_stack, capsys):
    sfn, _, arns = echo_stack
    code, _, err = dragon(
        capsys,
        "pipeline",
        "train",
        "--backend",
        "aws",
        "--data",
        "s3://lake/plant/history.parquet",
        "--holdout",
        "s3://lake/plant/last-week.parquet",
        "--env",
        "dev",
    )
    assert code == 0, err
    sent = last_input(sfn, arns["training"])
    assert sent["data_uri"] == "s3://lake/plant/history.parquet"
    assert sent["holdout_uri"] == "s3://lake/plant/last-week.parquet"
    assert (sent["env"], sent["plant_uri"], sent["approval_required"]) == ("dev", None, False)


def test_pipeline_deploy_and_undeploy_start_their_workflows(echo_stack, capsys):
    sfn, _, arns = echo_stack
    code, out, err = dragon(
        capsys, "pipeline", "deploy", "--backend", "aws", "--version", "4", "--env", "dev"
    )
    assert code == 0 and "started deployment workflow" in out, err
    sent = last_input(sfn, arns["deployment"])
    assert (sent["plant_name"], sent["version"], sent["env"], sent["mode"]) == (PLANT, "4", "dev", "realtime")
    code, out, err = dragon(capsys, "models", "undeploy", "--backend", "aws")
    assert code == 0 and "started undeploy workflow" in out, err
    assert last_input(sfn, arns["undeploy"]) == {"plant_name": PLANT, "env": "prod", "version": None}


def test_local_only_options_are_refused_on_aws(echo_stack, capsys):
    code, _, err = dragon(
        capsys, "pipeline", "train", "--backend", "aws", "--data", "s3://b/h.csv", "--auto-deploy"
    )
    assert code == 2 and "ApprovalRequired" in err
    # Locally --holdout is accepted (the champion/challenger data); a missing file is named.
    code, _, err = dragon(capsys, "pipeline", "train", "--data", "h.csv", "--holdout", "recent.csv")
    assert code == 2 and "h.csv: not found" in err


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_models_approve_resumes_the_workflow_waiting_on_the_version(harness, capsys, monkeypatch, decision):
    """A workflow parks its task token through the real approval Lambda; the CLI sends the decision."""
    approval_function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTIONS['ApprovalFunctionArn'][0]}"
    waiting = {
        "StartAt": "RequestApproval",
        "States": {
            "RequestApproval": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": approval_function,
                    "Payload": {
                        "action": "request",
                        "task_token.$": "$$.Task.Token",
                        "plant_name": PLANT,
                        "version": "3",
                    },
                },
                "End": True,
            }
        },
    }
    arn = harness.sfn.create_state_machine(
        name="waits-for-approval", definition=json.dumps(waiting), roleArn=f"arn:aws:iam::{ACCOUNT}:role/x"
    )["stateMachineArn"]
    execution = harness.sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    backend = AwsBackend(s3=harness.s3, stepfunctions=harness.sfn, stack=StackOutputs(bucket=BUCKET))
    monkeypatch.setattr(AwsBackend, "from_environment", classmethod(lambda cls, **_: backend))

    deadline = time.monotonic() + 180  # generous: a loaded 2-core CI machine
    while not harness.s3.list_objects_v2(Bucket=BUCKET, Prefix="approvals/").get("KeyCount"):
        assert time.monotonic() < deadline, "the approval request never parked its token"
        time.sleep(0.05)
    code, out, err = dragon(capsys, "models", decision, "3", "--backend", "aws", "--reason", "checked")
    assert code == 0, err
    run = harness.wait(execution)
    assert run["status"] == "SUCCEEDED", run
    expected = "approved" if decision == "approve" else "rejected"
    assert json.loads(run["output"]) == {"decision": expected, "reason": "checked"}
    code, _, err = dragon(capsys, "models", decision, "3", "--backend", "aws")
    assert code == 2 and "no training workflow waits" in err, "the token is used once"


def test_missing_stack_names_what_to_set(aws_env, capsys, monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("DRAGON_STACK", "yet-dragon-nowhere")
    with mock_aws():
        code, _, err = dragon(capsys, "pipeline", "deploy", "--backend", "aws")
    assert code == 2
    assert "yet-dragon-nowhere" in err and "not found" in err and "DRAGON_STACK" in err
    assert "Traceback" not in err


def test_without_dragon_stack_the_plant_and_environment_name_the_stack(
    aws_env, capsys, monkeypatch, small_plant_path, tmp_path
):
    """One stack per plant and environment: the default stack is <plant>-<env> (README, Deploy on AWS)."""
    from moto import mock_aws

    monkeypatch.delenv("DRAGON_STACK", raising=False)
    other = tmp_path / "other.toml"
    other.write_text(small_plant_path.read_text().replace('name = "yet-dragon"', 'name = "other-plant"', 1))
    with mock_aws():
        code, _, err = dragon(capsys, "pipeline", "undeploy", "--backend", "aws", "--plant", str(other))
        assert code == 2 and "'other-plant-dev' not found" in err, err
        code, _, err = dragon(capsys, "pipeline", "deploy", "--backend", "aws", "--env", "prod")
        assert code == 2 and f"'{PLANT}-prod' not found" in err, err


@pytest.fixture()
def no_aws_setup(monkeypatch, tmp_path):
    """No credentials or region anywhere botocore looks (environment, files, instance metadata)."""
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_missing_region_names_what_to_set(no_aws_setup, capsys):
    code, _, err = dragon(capsys, "models", "approve", "3", "--backend", "aws")
    assert code == 2 and "no AWS region" in err and "AWS_DEFAULT_REGION" in err and "Traceback" not in err


def test_missing_credentials_name_what_to_set(no_aws_setup, capsys, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    code, _, err = dragon(capsys, "pipeline", "undeploy", "--backend", "aws")
    assert code == 2 and "no AWS credentials" in err and "AWS_PROFILE" in err and "Traceback" not in err
