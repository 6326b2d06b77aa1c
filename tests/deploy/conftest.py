"""Fixtures for the deploy tests: moto with Step Functions execution on (see aws_fakes.py)."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest
from aws_fakes import (
    ACCOUNT,
    ATHENA_RESULTS,
    ATHENA_WORKGROUP,
    BUCKET,
    REGION,
    FargateFake,
    Harness,
    SageMakerFake,
    create_lock_table,
    create_transform_task,
    definition,
    install_cloudformation_fakes,
    install_ecs_integration_fix,
    install_fargate_fakes,
    install_sagemaker_fakes,
    install_sfn_integration_fix,
    lambda_invoke,
)


@pytest.fixture()
def aws_env(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def model_tar(shared_dir, trained_bundle) -> bytes:
    """The trained bundle as SageMaker's model.tar.gz (the contents of /opt/ml/model at the root)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for item in sorted(Path(trained_bundle).iterdir()):
            tar.add(item, arcname=item.name)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory) -> Path:
    """An empty, migrated MLflow SQLite store: migrating a new one per test costs seconds."""
    from dragon.registry import ensure_store
    from dragon.settings import load_settings

    home = tmp_path_factory.mktemp("migrated-store")
    ensure_store(load_settings(home=home))
    return home / "mlflow.db"


@pytest.fixture()
def registry_home(dragon_home, migrated_store) -> Path:
    """An empty DRAGON_HOME whose registry store is already migrated (a copy costs milliseconds)."""
    dragon_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_store, dragon_home / "mlflow.db")
    (dragon_home / ".store-ready").touch()
    return dragon_home


@pytest.fixture()
def tracking_server(tmp_path, migrated_store, monkeypatch) -> str:
    """The experiment catalog every process shares, as the SageMaker managed MLflow server is on AWS
    (a store outside every home), with artifacts in the project's bucket."""
    server = tmp_path / "tracking-server"
    server.mkdir()
    shutil.copy(migrated_store, server / "mlflow.db")
    uri = f"sqlite:///{server / 'mlflow.db'}"
    monkeypatch.setenv("DRAGON_TRACKING_URI", uri)
    monkeypatch.setenv("DRAGON_ARTIFACT_URI", f"s3://{BUCKET}/mlflow")
    return uri


@pytest.fixture()
def harness(aws_env, registry_home, tracking_server, monkeypatch, model_tar):
    import boto3
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend

    # What the stack gives the data-source Lambda (deploy/data_lake.py): Athena, and a Fargate transform.
    monkeypatch.setenv("DRAGON_ARTIFACT_BUCKET", BUCKET)
    monkeypatch.setenv("DRAGON_ATHENA_WORKGROUP", ATHENA_WORKGROUP)
    monkeypatch.setenv("DRAGON_ATHENA_DATABASE", "plant_history")
    monkeypatch.setenv("DRAGON_ATHENA_RESULTS_URI", ATHENA_RESULTS)
    monkeypatch.setenv("DRAGON_FARGATE_TRANSFORM", "true")
    fake = SageMakerFake(model_tar=model_tar)
    fargate = FargateFake()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        monkeypatch.setattr(LambdaSimpleBackend, "invoke", lambda_invoke)
        install_sagemaker_fakes(monkeypatch, fake)
        install_sfn_integration_fix(monkeypatch)
        install_ecs_integration_fix(monkeypatch)
        install_fargate_fakes(monkeypatch, fargate)
        install_cloudformation_fakes(monkeypatch, fake)
        create_lock_table(boto3.client("dynamodb", region_name=REGION))
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        # The workgroup the stack's AthenaWorkGroup names (the team's; Athena refuses an unknown one).
        boto3.client("athena", region_name=REGION).create_work_group(
            Name=ATHENA_WORKGROUP, Configuration={"ResultConfiguration": {"OutputLocation": ATHENA_RESULTS}}
        )
        transform_task = create_transform_task(
            boto3.client("ecs", region_name=REGION), boto3.client("ec2", region_name=REGION)
        )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        states_role = f"arn:aws:iam::{ACCOUNT}:role/dragon-states"
        arns = {
            name: sfn.create_state_machine(
                name=f"dragon-{name}", definition=definition(name, **transform_task), roleArn=states_role
            )["stateMachineArn"]
            for name in ("deployment", "undeploy", "training")
        }
        yield Harness(sfn, s3, boto3.client("sagemaker", region_name=REGION), arns, fake, fargate)
