"""An environment in its own AWS account: the deployment and undeploy workflows of the central account assume
the environment's deployer role (the stack's ProdAccountRoleArn, aws_fakes.PROD_ACCOUNT_ROLE) and build the
endpoint stack there with that account's roles, while the registry stays central (moto keeps one backend
per account, and assumed-role credentials act in the role's account)."""

from __future__ import annotations

from aws_fakes import (
    ACCOUNT,
    PLANT,
    PROD_ACCOUNT,
    PROD_ACCOUNT_ROLE,
    REGION,
    deployed_envs,
    deployment_input,
    register_directly,
)

from deploy.endpoint_stack import StackRequest, account_role_arn, in_account, stack_name


def stacks_in(account: str) -> dict[str, dict]:
    from moto.cloudformation.models import cloudformation_backends

    return {
        stack.name: {p: v for p, v in stack.parameters.items()}
        for stack in cloudformation_backends[account][REGION].stacks.values()
        if stack.status != "DELETE_COMPLETE"
    }


def test_prod_in_its_own_account_deploys_there_and_tags_the_central_registry(harness):
    version = register_directly(harness)
    dev = harness.run("deployment", deployment_input(version))
    prod = harness.run("deployment", deployment_input(version, env="prod"))
    assert dev["status"] == "SUCCEEDED" and prod["status"] == "SUCCEEDED", prod
    assert set(stacks_in(ACCOUNT)) == {stack_name(PLANT, "dev")}
    served = stacks_in(PROD_ACCOUNT)[stack_name(PLANT, "prod")]
    assert served["ExecutionRoleArn"] == f"arn:aws:iam::{PROD_ACCOUNT}:role/{PLANT}-prod-sagemaker"
    assert served["ModelVersion"] == version
    assert deployed_envs()[version] == ["dev", "prod"]

    gone = harness.run("undeploy", {"plant_name": PLANT, "env": "prod"})
    assert gone["status"] == "SUCCEEDED", gone
    assert stacks_in(PROD_ACCOUNT) == {} and set(stacks_in(ACCOUNT)) == {stack_name(PLANT, "dev")}
    assert deployed_envs()[version] == ["dev"]


def test_same_account_environments_keep_the_stack_roles():
    request = StackRequest(
        PLANT,
        "dev",
        execution_role_arn="central-sm",
        stack_role_arn="central-cfn",
        account_roles={"dev": "", "prod": PROD_ACCOUNT_ROLE},
    )
    assert in_account(request) == request
    prod = in_account(StackRequest(**{**request.__dict__, "env": "prod"}))
    assert prod.execution_role_arn == account_role_arn(PROD_ACCOUNT_ROLE, PLANT, "prod", "execution")
    assert prod.stack_role_arn == f"arn:aws:iam::{PROD_ACCOUNT}:role/{PLANT}-prod-endpoint-stack"


def test_the_account_template_makes_the_roles_the_workflow_looks_for(aws_env):
    """deploy/templates/account.yaml under moto's CloudFormation in the environment's account: its role names
    are the ones deploy/endpoint_stack.py derives from the deployer role's ARN."""
    import boto3
    from moto import mock_aws

    from deploy.stack import ACCOUNT_TEMPLATE_PATH

    parameters = {
        "PlantName": PLANT,
        "Environment": "prod",
        "CentralAccountId": ACCOUNT,
        "ArtifactBucket": "central-artifacts",
        "ImageRepositoryArn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{PLANT}-prod",
        "MlflowTrackingServerArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-tracking-server/shared",
    }
    with mock_aws():
        cfn = boto3.client("cloudformation", region_name=REGION)
        cfn.create_stack(
            StackName=f"{PLANT}-prod-account",
            TemplateBody=ACCOUNT_TEMPLATE_PATH.read_text(),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        (stack,) = cfn.describe_stacks(StackName=f"{PLANT}-prod-account")["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        deployer = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["DeployerRoleArn"]
        roles = {r["Arn"] for r in boto3.client("iam").list_roles()["Roles"]}
        account = deployer.split(":")[4]
        for role in ("execution", "stack"):
            name = account_role_arn(deployer, PLANT, "prod", role).rsplit("/", 1)[1]
            assert f"arn:aws:iam::{account}:role/{name}" in roles, name
