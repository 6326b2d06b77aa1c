"""AWS fakes for the deploy tests: the moto harness that runs our state machines with the project's real
Lambda handlers in-process, and SageMaker and CloudFormation fakes for what moto does not model (failures,
rollbacks, the resource names a template gives)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "dragon-artifacts-test"
PLANT = "yet-dragon"
STATEMACHINES = Path(__file__).resolve().parents[2] / "deploy" / "statemachines"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/yet-dragon-dev:abc123"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/dragon-sagemaker"

# DefinitionSubstitutions key -> (Lambda function name, handler name in deploy.lambdas)
FUNCTIONS = {
    "TransformFunctionArn": ("dragon-transform", "transform_handler"),
    "EvaluateFunctionArn": ("dragon-evaluate", "evaluate_handler"),
    "RegisterFunctionArn": ("dragon-register", "register_handler"),
    "ApprovalFunctionArn": ("dragon-approval", "approval_handler"),
    "ResolveVersionFunctionArn": ("dragon-resolve", "resolve_version_handler"),
    "TagDeploymentFunctionArn": ("dragon-tag", "tag_deployment_handler"),
    "UntagDeploymentFunctionArn": ("dragon-untag", "untag_deployment_handler"),
    "RecordFailureFunctionArn": ("dragon-record-failure", "record_failure_handler"),
    "EndpointStackFunctionArn": ("dragon-endpoint-stack", "endpoint_stack_handler"),
    "DeploymentLockFunctionArn": ("dragon-lock", "deployment_lock_handler"),
    "BatchOutputFunctionArn": ("dragon-batch-output", "batch_output_handler"),
    "RetrainCooldownFunctionArn": ("dragon-retrain-cooldown", "retrain_cooldown_handler"),
    "DataSourceFunctionArn": ("dragon-data-source", "data_source_handler"),
}
LOCK_TABLE = "dragon-deployment-locks"
STACK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/dragon-endpoint-stack"
MONITORING_SCHEDULE = "cron(0 0 ? * * *)"
PROD_ACCOUNT = "222222222222"  # prod lives in its own account (deploy/templates/account.yaml)
PROD_ACCOUNT_ROLE = f"arn:aws:iam::{PROD_ACCOUNT}:role/yet-dragon-prod-deployer"
#: The stack's transform cluster and task definition (the training workflow's Fargate branch).
TRANSFORM_FAMILY = "dragon-transform"
TRANSFORM_CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{TRANSFORM_FAMILY}"
ATHENA_WORKGROUP = "dragon-lake"
ATHENA_RESULTS = f"s3://{BUCKET}/athena/"


def substitutions() -> dict[str, str]:
    """What the CloudFormation stack substitutes into the definitions."""
    subs = {key: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}" for key, (name, _) in FUNCTIONS.items()}
    subs.update(TrainingImage=IMAGE, InferenceImage=IMAGE, SageMakerRoleArn=ROLE, ArtifactBucket=BUCKET)
    subs.update(DeploymentLockTable=LOCK_TABLE, EndpointStackRoleArn=STACK_ROLE)
    subs.update(DeploymentStateMachineArn=state_machine_arn("deployment"))
    subs.update(
        EndpointMaxInstances="1", InvocationsPerInstance="200", MonitoringSchedule=MONITORING_SCHEDULE
    )
    subs.update(
        TrackingUri="sqlite:///tracking-server/mlflow.db",
        TrainingDataUri=f"s3://{BUCKET}/data/history.parquet",
    )
    subs.update(DevAccountRoleArn="", ProdAccountRoleArn=PROD_ACCOUNT_ROLE)
    subs.update(
        TransformClusterArn=TRANSFORM_CLUSTER,
        TransformTaskDefinitionArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{TRANSFORM_FAMILY}:1",
        FargateSubnets="subnet-00000001,subnet-00000002",
        FargateSecurityGroups="sg-00000001",
        FargateAssignPublicIp="DISABLED",
    )
    return subs


def create_lock_table(dynamodb: Any, name: str = LOCK_TABLE) -> None:
    """The stack's DeploymentLockTable (deployment locks and retraining clocks), as the template makes it."""
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "lock_key", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "lock_key", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def state_machine_arn(workflow: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:dragon-{workflow}"


def definition(name: str, **overrides: str) -> str:
    text = (STATEMACHINES / f"{name}.asl.json").read_text()
    for key, value in (substitutions() | overrides).items():
        text = text.replace("${" + key + "}", value)
    assert "${" not in text, f"{name}: a substitution the test harness does not provide"
    return text


@dataclass
class SageMakerFake:
    """How the fake SageMaker behaves for the next resources created (moto completes everything)."""

    training_outcome: str = "Completed"  # or Failed
    endpoint_outcome: str = "InService"  # or Failed: the endpoint stack's creation rolls back
    update_outcome: str = "InService"  # or RolledBack: the endpoint stack's update rolls back
    model_tar: bytes = b""
    created_training_jobs: list[str] = field(default_factory=list)


@dataclass
class Harness:
    sfn: Any
    s3: Any
    sagemaker: Any
    arns: dict[str, str]
    fake: SageMakerFake
    fargate: FargateFake | None = None

    def run(self, workflow: str, payload: dict[str, Any], timeout: float = 180.0) -> dict[str, Any]:
        arn = self.start(workflow, payload)
        return self.wait(arn, timeout)

    def start(self, workflow: str, payload: dict[str, Any]) -> str:
        return self.sfn.start_execution(
            stateMachineArn=self.arns[workflow], name=str(uuid.uuid4()), input=json.dumps(payload)
        )["executionArn"]

    def wait(self, execution_arn: str, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.sfn.describe_execution(executionArn=execution_arn)
            if answer["status"] != "RUNNING":
                return answer
            time.sleep(0.05)
        raise AssertionError(f"{execution_arn} still running after {timeout} s")

    def upload(self, path: Path, key: str) -> str:
        self.s3.upload_file(str(path), BUCKET, key)
        return f"s3://{BUCKET}/{key}"


def deployment_input(version: str | None, env: str = "dev", **extra) -> dict:
    return {"plant_name": PLANT, "env": env, "version": version, "poll_seconds": 0, **extra}


def deployed_envs() -> dict[str, list[str]]:
    """version -> the environments whose deployed.<env> tag it carries."""
    from dragon.registry import list_versions
    from dragon.settings import load_settings

    return {v.version: v.deployed_envs for v in list_versions(load_settings(), PLANT)}


def register_directly(
    harness: Harness, key: str = "bundles/extra/model.tar.gz", promotion: dict | None = None
) -> str:
    """Another version without another training run: register the trained bundle from S3 (a training
    job's output is at training/<job>/output/model.tar.gz)."""
    from deploy import steps

    harness.s3.put_object(Bucket=BUCKET, Key=key, Body=harness.fake.model_tar)
    return steps.register(steps.RegisterInput(f"s3://{BUCKET}/{key}", PLANT, promotion=promotion)).version


#: Every handler invocation gets one of these as DRAGON_HOME, removed afterwards: a Lambda's /tmp.
LAMBDA_HOME_PREFIX = "lambda-home-"


@contextmanager
def fresh_lambda_home() -> Iterator[Path]:
    """An empty DRAGON_HOME for one invocation, deleted after it: whatever one Lambda wrote locally,
    no other invocation can read. What persists is what AWS holds (S3, the tracking server)."""
    home = Path(tempfile.mkdtemp(prefix=LAMBDA_HOME_PREFIX))
    previous = os.environ.get("DRAGON_HOME")
    os.environ["DRAGON_HOME"] = str(home)
    try:
        yield home
    finally:
        if previous is None:
            os.environ.pop("DRAGON_HOME", None)
        else:
            os.environ["DRAGON_HOME"] = previous
        shutil.rmtree(home, ignore_errors=True)


def lambda_invoke(self, function_name, qualifier, body, headers, response_headers):
    """Run the project's real handler in-process, in a fresh home, reporting errors as the Lambda
    runtime does."""
    from deploy import lambdas

    name = function_name.rsplit(":", 1)[-1]
    handler = getattr(lambdas, {fn: h for fn, h in FUNCTIONS.values()}[name])
    try:
        with fresh_lambda_home():
            result = handler(json.loads(body or b"{}"), None)
    except Exception as error:  # the runtime turns any exception into a function error
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()
    return json.dumps(result).encode()


def install_sagemaker_fakes(monkeypatch, fake: SageMakerFake) -> None:
    from moto.sagemaker import models

    original_job_init = models.FakeTrainingJob.__init__

    def training_job_init(job, *args, **kwargs):
        original_job_init(job, *args, **kwargs)
        fake.created_training_jobs.append(job.training_job_name)
        if fake.training_outcome == "Completed":
            # SageMaker tars /opt/ml/model to the output path: put a real bundle there.
            import boto3

            uri = job.model_artifacts["S3ModelArtifacts"].removeprefix("s3://")
            bucket, key = uri.split("/", 1)
            boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=fake.model_tar)
        else:
            job.training_job_status = job.secondary_status = fake.training_outcome
            job.failure_reason = "AlgorithmError: out of memory in the fake"

    original_describe = models.SageMakerModelBackend.describe_training_job

    def describe_training_job(backend, name):
        answer = original_describe(backend, name)
        job = backend.training_jobs[name]
        if getattr(job, "failure_reason", None):
            answer["FailureReason"] = job.failure_reason
        return answer

    monkeypatch.setattr(models.FakeTrainingJob, "__init__", training_job_init)

    original_transform_init = models.FakeTransformJob.__init__

    def transform_job_init(job, *args, **kwargs):
        original_transform_init(job, *args, **kwargs)
        run_transform(job.transform_input, job.transform_output, fake.model_tar)

    monkeypatch.setattr(models.FakeTransformJob, "__init__", transform_job_init)
    monkeypatch.setattr(models.SageMakerModelBackend, "describe_training_job", describe_training_job)


def install_sfn_integration_fix(monkeypatch) -> None:
    """moto's `states:startExecution` integration sends the ASL's PascalCase parameters to botocore,
    whose Step Functions shapes are camelCase (KeyError 'StateMachineArn'), and hands back camelCase
    answers with datetimes. Translate both ways, as AWS does, so the nested deployment runs."""
    import datetime

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn as sfn,
    )

    original_parameters = sfn.StateTaskServiceSfn._normalise_parameters

    def parameters(self, parameters, boto_service_name=None, service_action_name=None):
        original_parameters(
            self, parameters, boto_service_name=boto_service_name, service_action_name=service_action_name
        )
        for key in list(parameters):
            parameters[key[0].lower() + key[1:]] = parameters.pop(key)

    def response(self, response, boto_service_name=None, service_action_name=None):
        for key in list(response):
            value = response.pop(key)
            response[key[0].upper() + key[1:]] = (
                value.isoformat() if isinstance(value, datetime.datetime) else value
            )

    monkeypatch.setattr(sfn.StateTaskServiceSfn, "_normalise_parameters", parameters)
    monkeypatch.setattr(sfn.StateTaskServiceSfn, "_normalise_response", response)


def install_cloudformation_fakes(monkeypatch, fake: SageMakerFake) -> None:
    """moto's CloudFormation creates SageMaker resources under generated names and never fails or rolls
    back. As AWS does: the names the template gives (ModelName, EndpointConfigName, EndpointName); a
    failed endpoint rolls the creation back (ROLLBACK_COMPLETE, nothing left) or the update back
    (UPDATE_ROLLBACK_COMPLETE, the old resources serve on); a resource that will not delete leaves the
    stack DELETE_FAILED, with the reason among the stack's events."""
    from moto.cloudformation import models as cfn
    from moto.sagemaker import models as sm

    for cls, name in (
        (sm.Model, "ModelName"),
        (sm.FakeEndpointConfig, "EndpointConfigName"),
        (sm.FakeEndpoint, "EndpointName"),
    ):
        monkeypatch.setattr(cls, "cloudformation_name_type", staticmethod(lambda name=name: name))

    def has_endpoint(stack) -> bool:
        resources = stack.template_dict.get("Resources", {}).values()
        return any(r.get("Type") == "AWS::SageMaker::Endpoint" for r in resources)

    original_create, original_update = cfn.Stack.create_resources, cfn.Stack.update
    original_delete = cfn.CloudFormationBackend.delete_stack

    def create_resources(stack):
        if fake.endpoint_outcome != "Failed" or not has_endpoint(stack):
            return original_create(stack)
        stack._add_stack_event("CREATE_FAILED", resource_status_reason="Endpoint: capacity error in the fake")
        stack._add_stack_event("ROLLBACK_COMPLETE")
        stack.status = "ROLLBACK_COMPLETE"

    def update(stack, template, role_arn=None, parameters=None, tags=None):
        if fake.update_outcome == "InService" or not has_endpoint(stack):
            original_update(stack, template, role_arn, parameters, tags)
            # moto modifies only what names a changed parameter; CloudFormation also updates the Endpoint
            # whose EndpointConfigName (a GetAtt of the replaced config) changed.
            resources = stack.resource_map._parsed_resources.values()
            configs = [r for r in resources if isinstance(r, sm.FakeEndpointConfig)]
            for endpoint in (r for r in resources if isinstance(r, sm.FakeEndpoint)):
                endpoint.endpoint_config_name = configs[0].endpoint_config_name
            return
        stack._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
        stack._add_stack_event(
            "UPDATE_FAILED", resource_status_reason="Endpoint: update rolled back in the fake"
        )
        stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
        stack.status = "UPDATE_ROLLBACK_COMPLETE"

    def delete_stack(backend, name_or_stack_id):
        stacks = [s for s in backend.stacks.values() if name_or_stack_id in (s.name, s.stack_id)]
        try:
            original_delete(backend, name_or_stack_id)
        except Exception as error:
            for stack in stacks:
                backend.stacks[stack.stack_id] = stack
                stack._add_stack_event("DELETE_FAILED", resource_status_reason=f"Endpoint: {error}")
                stack.status = "DELETE_FAILED"

    monkeypatch.setattr(cfn.Stack, "create_resources", create_resources)
    monkeypatch.setattr(cfn.Stack, "update", update)
    monkeypatch.setattr(cfn.CloudFormationBackend, "delete_stack", delete_stack)


#: Lines per mini-batch in the fake transform job (SageMaker's split by Line, MultiRecord).
MINI_BATCH_LINES = 2


def run_transform(transform_input: dict, transform_output: dict, model_tar: bytes) -> None:
    """What a transform job does with the container: split every input object by lines into mini-batches
    (only the first one carries the CSV header), answer each with the project's real answering code in
    the job's Accept type, and concatenate the answers into <S3OutputPath>/<input name>.out."""
    import io
    import tarfile

    import boto3

    from dragon.bundle import load_bundle
    from inference.answering import Answerer
    from inference.payloads import decode, encode

    s3 = boto3.client("s3", region_name=REGION)
    source = transform_input["DataSource"]["S3DataSource"]["S3Uri"].removeprefix("s3://")
    bucket, prefix = source.split("/", 1)
    target = transform_output["S3OutputPath"].removeprefix("s3://").rstrip("/")
    out_bucket, _, out_prefix = target.partition("/")
    with tempfile.TemporaryDirectory() as scratch:
        with tarfile.open(fileobj=io.BytesIO(model_tar), mode="r:gz") as tar:
            tar.extractall(scratch, filter="data")
        answerer = Answerer.load(load_bundle(Path(scratch)), "1")
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        lines = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode().splitlines()
        output = b""
        for start in range(0, len(lines), MINI_BATCH_LINES):
            body = "\n".join(lines[start : start + MINI_BATCH_LINES]).encode()
            records = decode(body, "text/csv", answerer.bundle.spec).records
            answers = answerer.answer(records, first_index=start)
            output += encode(answers, single=False, answer=transform_output["Accept"], model_version="1")
        name = item["Key"].rsplit("/", 1)[-1]
        s3.put_object(Bucket=out_bucket, Key=f"{out_prefix}/{name}.out".lstrip("/"), Body=output)


def install_ecs_integration_fix(monkeypatch) -> None:
    """moto's `ecs:runTask.sync` integration sends the ASL's PascalCase parameters to botocore, whose ECS
    shapes are camelCase (KeyError 'Cluster'), and reads PascalCase keys from botocore's camelCase answers.
    Translate both ways, as AWS does (its ECS integration's output is PascalCase: TaskArn, LastStatus)."""
    import datetime

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_ecs as ecs,
    )

    def recase(value: Any, first: Any) -> Any:
        if isinstance(value, dict):
            return {first(key[0]) + key[1:]: recase(item, first) for key, item in value.items()}
        if isinstance(value, list):
            return [recase(item, first) for item in value]
        return value.isoformat() if isinstance(value, datetime.datetime) else value

    def parameters(self, parameters, boto_service_name=None, service_action_name=None):
        translated = recase(parameters, str.lower)
        parameters.clear()
        parameters.update(translated)

    def response(self, response, boto_service_name=None, service_action_name=None):
        translated = recase(response, str.upper)
        response.clear()
        response.update(translated)

    monkeypatch.setattr(ecs.StateTaskServiceEcs, "_normalise_parameters", parameters)
    monkeypatch.setattr(ecs.StateTaskServiceEcs, "_normalise_response", response)


@dataclass
class FargateFake:
    """What the fake ECS did: each task it ran (its containers' environment overrides), and exit codes."""

    runs: list[dict[str, str]] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)


def install_fargate_fakes(monkeypatch, fake: FargateFake) -> None:
    """moto's ECS records a task and walks it to STOPPED without running anything: run the task's command as
    the project's container would, the `transform` entry point in-process with the container overrides'
    environment and an empty home of its own, and keep its exit code on the task's container."""
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.ecs import models

    # moto's awsvpc task attachment reads an ENI's private_dns_name, which its ENI model lacks.
    dns_name = property(lambda eni: f"ip-{eni.private_ip_address.replace('.', '-')}.ec2.internal")
    monkeypatch.setattr(NetworkInterface, "private_dns_name", dns_name, raising=False)
    original_init = models.Task.__init__

    def task_init(task, *args, **kwargs):
        original_init(task, *args, **kwargs)
        from deploy import transform_entrypoint

        environment = {
            item["name"]: item["value"]
            for override in task.overrides.get("containerOverrides", [])
            for item in override.get("environment", [])
        }
        fake.runs.append(environment)
        saved = {key: os.environ.get(key) for key in environment}
        os.environ.update(environment)
        try:
            with fresh_lambda_home():
                code = transform_entrypoint.main()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        fake.exit_codes.append(code)
        task.containers[0].exitCode = code
        task.stopped_reason = "Essential container in task exited"

    monkeypatch.setattr(models.Task, "__init__", task_init)


def create_transform_task(ecs: Any, ec2: Any) -> dict[str, str]:
    """The stack's Fargate transform (deploy/templates/stack.yaml's TransformCluster and TransformTask), with
    a subnet and security group moto's awsvpc networking can attach to; returns the ASL substitutions."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="transform", Description="transform", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName=TRANSFORM_FAMILY)
    task = ecs.register_task_definition(
        family=TRANSFORM_FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="4096",
        memory="16384",
        # The container's memory repeats the task's: moto's placement sums the containers' (ECS does not).
        containerDefinitions=[
            {
                "name": "transform",
                "image": IMAGE,
                "essential": True,
                "command": ["transform"],
                "memory": 16384,
            }
        ],
    )["taskDefinition"]
    return {
        "TransformTaskDefinitionArn": task["taskDefinitionArn"],
        "FargateSubnets": subnet,
        "FargateSecurityGroups": group,
    }
