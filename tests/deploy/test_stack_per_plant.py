"""One stack per plant: the main template deploys twice side by side under moto's CloudFormation, every
name carrying its plant; and a plant name AWS would refuse is refused when the spec is read."""

from __future__ import annotations

import warnings
from importlib import resources

import pytest
from aws_fakes import ACCOUNT, REGION
from console import run_dragon

from deploy.stack import TEMPLATE_PATH
from dragon.errors import SpecError
from dragon.spec import DEFAULT_PLANT, load_plant, parse_plant

MLFLOW = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-tracking-server/shared"


def test_two_plants_stacks_stand_side_by_side(aws_env):
    import boto3
    from moto import mock_aws

    with mock_aws(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Tried to parse AWS::(S3::Bucket|SNS::Topic)Policy")  # not in moto
        cfn = boto3.client("cloudformation", region_name=REGION)
        outputs = {}
        for plant in ("plant-a", "plant-b"):
            parameters = {"PlantName": plant, "MlflowTrackingServerArn": MLFLOW, "ImageTag": "abc123"}
            cfn.create_stack(
                StackName=f"{plant}-dev",
                TemplateBody=TEMPLATE_PATH.read_text(),
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                Capabilities=["CAPABILITY_IAM"],
            )
            (stack,) = cfn.describe_stacks(StackName=f"{plant}-dev")["Stacks"]
            assert stack["StackStatus"] == "CREATE_COMPLETE"
            outputs[plant] = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        machines = boto3.client("stepfunctions", region_name=REGION).list_state_machines()["stateMachines"]
        repositories = boto3.client("ecr", region_name=REGION).describe_repositories()["repositories"]

    assert sorted(m["name"] for m in machines) == [
        f"{plant}-{workflow}-dev"
        for plant in ("plant-a", "plant-b")
        for workflow in ("deployment", "training", "undeploy")
    ]
    assert sorted(r["repositoryName"] for r in repositories) == ["plant-a-dev", "plant-b-dev"]
    a, b = outputs["plant-a"], outputs["plant-b"]
    assert a["ArtifactBucketName"] != b["ArtifactBucketName"]
    assert "plant-a" in a["TrainingImageUri"] and "plant-b" in b["TrainingImageUri"]


def spec_named(name: str) -> str:
    """The shipped plant's spec under another name."""
    source = (resources.files("dragon.plants") / DEFAULT_PLANT).read_text()
    return source.replace(f'name = "{load_plant(None).name}"', f'name = "{name}"', 1)


@pytest.mark.parametrize("name", ["Yet-Dragon", "-dragon", "dragon-", "yet.dragon", "d" * 41])
def test_plant_names_aws_would_refuse(name):
    with pytest.raises(SpecError, match=r"\[plant.name\]: .*breaks AWS naming"):
        parse_plant(spec_named(name), "plant.toml")


def test_the_cli_refuses_an_underscore_in_the_plant_name(tmp_path):
    """moto accepts `yet_dragon-v1` as an endpoint name; SageMaker does not: refused before anything runs."""
    spec = tmp_path / "plant.toml"
    spec.write_text(spec_named("yet_dragon-v1"))
    result = run_dragon("check", "--plant", str(spec), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    output = " ".join((result.stdout + result.stderr).split())
    assert f"{spec}: 1 problem(s)" in output and "[plant.name]" in output, output
    assert "'yet_dragon-v1' breaks AWS naming" in output and "e.g. 'yet-dragon-v1'" in output
    assert "Traceback" not in output
