"""The endpoint of one plant and environment as a CloudFormation stack (deploy/templates/endpoint.yaml).

The deployment workflow creates or updates the stack with the version to serve and polls it; the undeploy
workflow deletes it. Each deployment names a new Model and EndpointConfig (the name carries a deployment
id), so CloudFormation replaces them, updates the Endpoint in place and deletes the old Model and
EndpointConfig in its cleanup phase: nothing old is left behind. A failed update rolls back and the endpoint
keeps serving the version it served; a failed creation leaves nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from deploy.aws import endpoint_name
from dragon.errors import DragonError

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "endpoint.yaml"

#: CloudFormation stack statuses, as the workflows read them.
DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
GONE = {"DELETE_COMPLETE"}
ROLLED_BACK = {"UPDATE_ROLLBACK_COMPLETE"}  # the update failed; the old version still serves
FAILED = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_FAILED",
    "DELETE_FAILED",
    *ROLLED_BACK,
}


class EndpointStackError(DragonError):
    """CloudFormation refused or failed an operation on an endpoint stack."""


def stack_name(plant_name: str, env: str) -> str:
    return f"{plant_name}-{env}-endpoint"


def capture_uri(bucket: str, plant_name: str, env: str) -> str:
    """Where the endpoint captures its traffic (the monitoring reads it from there)."""
    return f"s3://{bucket}/capture/{plant_name}/{env}"


@dataclass(frozen=True)
class StackRequest:
    """One action on a plant's endpoint stack, as the workflows send it (deploy, status or delete)."""

    plant_name: str
    env: str
    version: str | None = None
    model_data_url: str = ""
    image: str = ""
    execution_role_arn: str = ""
    stack_role_arn: str = ""  # the role CloudFormation acts with (the caller needs only iam:PassRole to it)
    bucket: str = ""
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    deployment_id: str = ""  # set by deploy, then carried to each status check
    # Autoscaling: up to max_instance_count (at most instance_count: none), tracking invocations per
    # instance and minute. Strings too: Step Functions substitutes the stack's parameters as text.
    max_instance_count: int | str = 0
    invocations_per_instance: int | str = 200
    # Drift monitoring: a Model Monitor schedule expression (empty: none), where it reads the version
    # (the registry), and the history a drift-triggered training reads.
    monitoring_schedule: str = ""
    monitoring_instance_type: str = "ml.m5.large"
    tracking_uri: str = ""
    artifact_uri: str = ""
    retrain_data_uri: str = ""
    # Environments in other accounts: env -> the deployer role deploy/templates/account.yaml made there
    # (the stack's DevAccountRoleArn / ProdAccountRoleArn; empty: this account).
    account_roles: dict[str, str] = field(default_factory=dict)

    @property
    def account_role(self) -> str:
        return (self.account_roles or {}).get(self.env, "")


@dataclass(frozen=True)
class StackState:
    stack_name: str
    status: str  # deployed | in_progress | failed | gone
    stack_status: str  # CloudFormation's own, e.g. UPDATE_ROLLBACK_COMPLETE
    deployment_id: str = ""
    endpoint_name: str = ""
    error: str = ""  # the error name the workflow records on failure
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The roles deploy/templates/account.yaml creates in an environment's own account, named by this convention
#: so that the workflow finds them from the deployer role's ARN alone.
ACCOUNT_ROLES = {"deployer": "deployer", "execution": "sagemaker", "stack": "endpoint-stack"}


def account_role_arn(deployer_arn: str, plant_name: str, env: str, role: str) -> str:
    """Another role of the environment's account, beside its deployer role."""
    prefix = deployer_arn.split(":role/", 1)[0]
    return f"{prefix}:role/{plant_name}-{env}-{ACCOUNT_ROLES[role]}"


def in_account(request: StackRequest) -> StackRequest:
    """The request as the environment's account sees it: its own SageMaker and CloudFormation roles."""
    role = request.account_role
    if not role:
        return request
    return replace(
        request,
        execution_role_arn=account_role_arn(role, request.plant_name, request.env, "execution"),
        stack_role_arn=account_role_arn(role, request.plant_name, request.env, "stack"),
    )


def cloudformation_client(request: StackRequest, sts: Any = None) -> Any:
    """CloudFormation in the environment's account: this one, or through its deployer role."""
    import boto3

    role = request.account_role
    if not role:
        return boto3.client("cloudformation")
    from botocore.exceptions import ClientError

    try:
        credentials = (sts or boto3.client("sts")).assume_role(
            RoleArn=role, RoleSessionName=f"{request.plant_name}-{request.env}-deployment"[:64]
        )["Credentials"]
    except ClientError as error:
        raise _refused(
            f"assuming {role} to reach", stack_name(request.plant_name, request.env), error
        ) from error
    return boto3.client(
        "cloudformation",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def monitoring_uri(bucket: str, plant_name: str, env: str) -> str:
    """Where each monitoring run of the endpoint writes its reports."""
    return f"s3://{bucket}/monitoring/{plant_name}/{env}"


#: What the template's registry parameters hold when no schedule reads them (they may not be empty).
NOT_MONITORED = "-"


def _parameters(request: StackRequest, deployment_id: str) -> list[dict[str, str]]:
    if request.monitoring_schedule and not (request.tracking_uri and request.artifact_uri):
        raise EndpointStackError(
            f"deploying {request.plant_name} to {request.env}: a monitoring schedule needs the registry "
            "(tracking_uri and artifact_uri) to read the version from"
        )
    values = {
        "PlantName": request.plant_name,
        "Environment": request.env,
        "ModelVersion": str(request.version),
        "DeploymentId": deployment_id,
        "ModelDataUrl": request.model_data_url,
        "Image": request.image,
        "ExecutionRoleArn": request.execution_role_arn,
        "InstanceType": request.instance_type,
        "InstanceCount": str(request.instance_count),
        "CaptureUri": capture_uri(request.bucket, request.plant_name, request.env),
        "MaxInstanceCount": str(max(int(request.instance_count), int(request.max_instance_count or 0))),
        "InvocationsPerInstance": str(request.invocations_per_instance),
        "MonitoringSchedule": request.monitoring_schedule,
        "MonitoringInstanceType": request.monitoring_instance_type,
        "MonitoringUri": monitoring_uri(request.bucket, request.plant_name, request.env),
        "TrackingUri": request.tracking_uri or NOT_MONITORED,
        "ArtifactUri": request.artifact_uri or NOT_MONITORED,
        "RetrainDataUri": request.retrain_data_uri,
    }
    return [{"ParameterKey": key, "ParameterValue": value} for key, value in values.items()]


def _describe(cloudformation: Any, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def _refused(action: str, name: str, error: Exception) -> EndpointStackError:
    detail = getattr(error, "response", {}).get("Error", {})
    return EndpointStackError(
        f"{action} the endpoint stack {name}: CloudFormation refused "
        f"({detail.get('Code', type(error).__name__)}: {detail.get('Message', error)})",
        exit_code=1,
    )


def deploy_stack(request: StackRequest, cloudformation: Any) -> StackState:
    """Create the stack, or update it to serve `request.version`; returns at once (poll `stack_state`)."""
    from botocore.exceptions import ClientError

    if not (request.version and request.model_data_url.startswith("s3://")):
        raise EndpointStackError(
            f"deploying {request.plant_name} to {request.env}: the version's model_data_url must be an "
            f"s3:// model.tar.gz, got {request.model_data_url!r}"
        )
    request = in_account(request)
    name = stack_name(request.plant_name, request.env)
    deployment_id = uuid.uuid4().hex[:8]
    arguments = {
        "StackName": name,
        "TemplateBody": TEMPLATE_PATH.read_text(),
        "Parameters": _parameters(request, deployment_id),
        "Tags": [
            {"Key": "dragon:plant", "Value": request.plant_name},
            {"Key": "dragon:env", "Value": request.env},
        ],
        **({"RoleARN": request.stack_role_arn} if request.stack_role_arn else {}),
    }
    existing = _describe(cloudformation, name)
    try:
        if existing is not None and existing["StackStatus"] == "ROLLBACK_COMPLETE":
            # A first deployment that failed leaves an empty stack that can only be deleted.
            cloudformation.delete_stack(StackName=name)
            cloudformation.get_waiter("stack_delete_complete").wait(
                StackName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 60}
            )
            existing = None
        if existing is None:
            cloudformation.create_stack(**arguments)
        else:
            cloudformation.update_stack(**arguments)
    except ClientError as error:
        raise _refused("deploying", name, error) from error
    return StackState(name, "in_progress", "", deployment_id, endpoint_name(request.plant_name, request.env))


def _failure_reasons(cloudformation: Any, name: str) -> str:
    """The failed resources' reasons since the stack's last user-initiated operation, oldest first."""
    reasons = []
    for event in cloudformation.describe_stack_events(StackName=name)["StackEvents"]:  # newest first
        if event.get("ResourceStatus", "").endswith("FAILED") and event.get("ResourceStatusReason"):
            reasons.append(f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}")
        if event.get("ResourceStatusReason") == "User Initiated":
            break
    return "; ".join(reversed(reasons)) or "no resource reported a reason"


def stack_state(request: StackRequest, cloudformation: Any) -> StackState:
    """Where the stack stands. `deployed` only when the last update completed with this deployment's id:
    a stack that completed someone else's update, or rolled back to ours' predecessor, is not ours."""
    name = stack_name(request.plant_name, request.env)
    endpoint = endpoint_name(request.plant_name, request.env)
    found = _describe(cloudformation, name)
    status = "DELETE_COMPLETE" if found is None else found["StackStatus"]
    if status in GONE and request.deployment_id:
        reason = f"stack {name} was deleted while deployment {request.deployment_id} ran"
        return StackState(
            name, "failed", status, request.deployment_id, endpoint, "EndpointStackGone", reason
        )
    if status in GONE:
        return StackState(name, "gone", status, request.deployment_id, endpoint)
    serving = {p["ParameterKey"]: p["ParameterValue"] for p in found.get("Parameters", [])}
    if status in DONE and request.deployment_id and serving.get("DeploymentId") != request.deployment_id:
        return StackState(
            name,
            "failed",
            status,
            request.deployment_id,
            endpoint,
            "EndpointUpdateRolledBack",
            f"stack {name} serves version {serving.get('ModelVersion')} "
            f"(deployment {serving.get('DeploymentId')}), not deployment {request.deployment_id}",
        )
    if status in DONE:
        return StackState(name, "deployed", status, request.deployment_id, endpoint)
    if status in FAILED:
        error = "EndpointUpdateRolledBack" if status in ROLLED_BACK else "EndpointFailed"
        reason = f"stack {name} is {status}: {_failure_reasons(cloudformation, name)}"
        return StackState(name, "failed", status, request.deployment_id, endpoint, error, reason)
    return StackState(name, "in_progress", status, request.deployment_id, endpoint)


def delete_stack(request: StackRequest, cloudformation: Any) -> StackState:
    """Start deleting the stack (its endpoint, config and model go with it); poll `stack_state` until gone."""
    from botocore.exceptions import ClientError

    name = stack_name(request.plant_name, request.env)
    if _describe(cloudformation, name) is not None:
        try:
            cloudformation.delete_stack(StackName=name)
        except ClientError as error:
            raise _refused("deleting", name, error) from error
    return stack_state(request, cloudformation)
