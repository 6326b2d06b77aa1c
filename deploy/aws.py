"""Thin boto3 adapters behind one seam: every AWS call the product makes goes through `AwsBackend`.

Clients are injected so that tests pass moto or botocore-Stubber clients; `from_environment` and
`from_stack` build real ones. The verbs stay small: they translate our names (plant, version, env)
into AWS requests and AWS answers into small dataclasses, nothing more.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dragon.errors import DragonError

STACK_ENV = "DRAGON_STACK"

#: Stack outputs the CLI needs (names fixed in deploy/templates/stack.yaml).
OUTPUT_KEYS = {
    "training_state_machine_arn": "TrainingStateMachineArn",
    "deployment_state_machine_arn": "DeploymentStateMachineArn",
    "undeploy_state_machine_arn": "UndeployStateMachineArn",
    "bucket": "ArtifactBucketName",
    "training_image": "TrainingImageUri",
    "sagemaker_role_arn": "SageMakerRoleArn",
    "environment": "Environment",
}

#: What to set when AWS cannot be reached; every AWS failure the CLI meets ends in one of these hints.
SETUP_HINT = (
    f"set {STACK_ENV} to the name of your deployed YET Dragon stack (default <plant>-<env>: the --plant "
    "spec's name and the --env environment, dev unless given), "
    "AWS credentials (AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and the stack's region "
    "(AWS_DEFAULT_REGION); see README, Deploy on AWS"
)


#: What SendTaskSuccess answers when the execution that issued the token is no longer waiting on it.
ENDED_TOKEN_ERRORS = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")


@dataclass(frozen=True)
class StackOutputs:
    training_state_machine_arn: str = ""
    deployment_state_machine_arn: str = ""
    undeploy_state_machine_arn: str = ""
    bucket: str = ""
    training_image: str = ""
    sagemaker_role_arn: str = ""
    environment: str = "dev"


@dataclass(frozen=True)
class ExecutionStatus:
    arn: str
    status: str  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED | PENDING_REDRIVE
    output: dict[str, Any] | None
    error: str | None
    cause: str | None

    @property
    def done(self) -> bool:
        return self.status != "RUNNING"


def endpoint_name(plant_name: str, env: str) -> str:
    """The one endpoint per plant and environment (the state machines use the same format)."""
    return f"{plant_name}-{env}"


def default_plant_name() -> str:
    """The shipped plant, when a workflow is started without naming one."""
    from dragon.spec import load_plant

    return load_plant(None).name


def default_stack_name(plant_name: str, env: str) -> str:
    """The README's stack name for a plant and environment (one stack per plant and environment)."""
    return f"{plant_name}-{env}"


def approval_token_key(plant_name: str, version: str) -> str:
    return f"approvals/{plant_name}/{version}.json"


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """botocore's errors as a DragonError that names the action and what to set: no traceback for a
    missing region, missing or expired credentials, a refused call or an unreachable endpoint."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    try:
        yield
    except NoRegionError as error:
        raise DragonError(f"{action}: no AWS region; {SETUP_HINT}") from error
    except NoCredentialsError as error:
        raise DragonError(f"{action}: no AWS credentials found; {SETUP_HINT}") from error
    except ClientError as error:
        detail = error.response.get("Error", {})
        refusal = f"{detail.get('Code', 'error')}: {detail.get('Message', error)}"
        raise DragonError(f"{action}: AWS refused ({refusal}); {SETUP_HINT}", exit_code=1) from error
    except BotoCoreError as error:
        raise DragonError(f"{action}: {error}; {SETUP_HINT}", exit_code=1) from error


class AwsBackend:
    def __init__(
        self,
        *,
        sagemaker: Any = None,
        s3: Any = None,
        stepfunctions: Any = None,
        events: Any = None,
        stack: StackOutputs | None = None,
    ) -> None:
        self.sagemaker = sagemaker
        self.s3 = s3
        self.stepfunctions = stepfunctions
        self.events = events
        self.stack = stack or StackOutputs()

    @classmethod
    def from_environment(
        cls,
        *,
        region: str | None = None,
        bucket: str | None = None,
        plant_name: str | None = None,
        env: str = "dev",
    ) -> AwsBackend:
        """A Lambda passes its bucket; the CLI reads the stack named by $DRAGON_STACK, else the plant's stack
        in `env` (stack.yaml's naming: <plant>-<env>, the shipped plant when none is named)."""
        if bucket is None:
            name = os.environ.get(STACK_ENV) or default_stack_name(plant_name or default_plant_name(), env)
            return cls.from_stack(name, region=region)
        import boto3

        session = boto3.session.Session(region_name=region)
        return cls(
            sagemaker=session.client("sagemaker"),
            s3=session.client("s3"),
            stepfunctions=session.client("stepfunctions"),
            events=session.client("events"),
            stack=StackOutputs(bucket=bucket),
        )

    @classmethod
    def from_stack(
        cls, stack_name: str, *, region: str | None = None, cloudformation: Any = None
    ) -> AwsBackend:
        """Clients for the region plus the ARNs and bucket of a deployed YET Dragon stack."""
        import boto3
        from botocore.exceptions import ClientError

        action = f"reading the CloudFormation stack {stack_name!r}"
        with aws_errors(action):
            session = boto3.session.Session(region_name=region)
            cfn = cloudformation or session.client("cloudformation")
            try:
                stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
            except ClientError as error:
                if "does not exist" not in str(error):
                    raise
                raise DragonError(
                    f"CloudFormation stack {stack_name!r} not found in region {cfn.meta.region_name}: "
                    f"deploy deploy/templates/stack.yaml first, or {SETUP_HINT}",
                ) from error
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
            found = {field: outputs[key] for field, key in OUTPUT_KEYS.items() if key in outputs}
            return cls(
                sagemaker=session.client("sagemaker"),
                s3=session.client("s3"),
                stepfunctions=session.client("stepfunctions"),
                events=session.client("events"),
                stack=StackOutputs(**found),
            )

    # ---------------------------------------------------------------- Step Functions
    def _start(self, state_machine_arn: str, payload: dict[str, Any], name: str | None) -> str:
        if not state_machine_arn:
            raise DragonError(
                "the stack has no state machine ARN among its outputs (is it fully deployed, with an "
                f"ImageTag?); {SETUP_HINT}"
            )
        with aws_errors("starting the workflow"):
            answer = self.stepfunctions.start_execution(
                stateMachineArn=state_machine_arn, name=name or str(uuid.uuid4()), input=json.dumps(payload)
            )
        return answer["executionArn"]

    def start_training_workflow(
        self,
        *,
        data_uri: str | None = None,
        query: str | None = None,
        plant_name: str | None = None,
        env: str = "dev",
        plant_uri: str | None = None,
        holdout_uri: str | None = None,
        approval_required: bool = False,
        name: str | None = None,
    ) -> str:
        """The history is `data_uri` (an S3 object or prefix) or `query` (Athena SQL, deploy/data_lake.py)."""
        payload = {
            "plant_name": plant_name or default_plant_name(),
            "data_uri": data_uri,
            "query": query,
            "env": env,
            "plant_uri": plant_uri,
            "holdout_uri": holdout_uri,
            "approval_required": approval_required,
        }
        return self._start(self.stack.training_state_machine_arn, payload, name)

    def start_deployment_workflow(
        self,
        *,
        env: str,
        plant_name: str | None = None,
        version: str | None = None,
        mode: str = "realtime",
        batch_input_uri: str | None = None,
        batch_output_uri: str | None = None,
        name: str | None = None,
    ) -> str:
        if mode not in ("realtime", "batch"):
            raise DragonError(f"deployment mode must be 'realtime' or 'batch', got {mode!r}")
        if mode == "batch" and not (batch_input_uri and batch_output_uri):
            raise DragonError("a batch deployment needs both an input and an output S3 URI")
        payload = {
            "plant_name": plant_name or default_plant_name(),
            "env": env,
            "version": version,
            "mode": mode,
            "batch_input_uri": batch_input_uri,
            "batch_output_uri": batch_output_uri,
        }
        return self._start(self.stack.deployment_state_machine_arn, payload, name)

    def start_undeploy_workflow(
        self, *, plant_name: str, env: str, version: str | None = None, name: str | None = None
    ) -> str:
        payload = {"plant_name": plant_name, "env": env, "version": version}
        return self._start(self.stack.undeploy_state_machine_arn, payload, name)

    def describe_execution(self, execution_arn: str) -> ExecutionStatus:
        answer = self.stepfunctions.describe_execution(executionArn=execution_arn)
        output = answer.get("output")
        return ExecutionStatus(
            arn=execution_arn,
            status=answer["status"],
            output=json.loads(output) if output else None,
            error=answer.get("error"),
            cause=answer.get("cause"),
        )

    # ---------------------------------------------------------------- approvals
    def store_approval_token(self, plant_name: str, version: str, task_token: str) -> str:
        key = approval_token_key(plant_name, version)
        body = json.dumps({"plant_name": plant_name, "version": version, "task_token": task_token})
        self.s3.put_object(
            Bucket=self.stack.bucket, Key=key, Body=body.encode(), ServerSideEncryption="AES256"
        )
        return key

    def complete_approval(self, plant_name: str, version: str, decision: str, reason: str) -> None:
        """Resume the training workflow waiting on this version; it records the decision itself."""
        key = approval_token_key(plant_name, version)
        with aws_errors(f"reading the approval request of {plant_name} version {version}"):
            try:
                parked = json.loads(self.s3.get_object(Bucket=self.stack.bucket, Key=key)["Body"].read())
            except self.s3.exceptions.NoSuchKey as error:
                raise DragonError(
                    f"no training workflow waits for approval of {plant_name} version {version} "
                    f"(s3://{self.stack.bucket}/{key} is missing)"
                ) from error
        if decision not in ("approved", "rejected"):
            raise DragonError(f"approval decision must be 'approved' or 'rejected', got {decision!r}")
        # Both decisions resume the workflow normally; it branches on the decision and records it.
        output = json.dumps({"decision": decision, "reason": reason})
        with aws_errors(f"resuming the training workflow waiting on {plant_name} version {version}"):
            try:
                self.stepfunctions.send_task_success(taskToken=parked["task_token"], output=output)
            except self.stepfunctions.exceptions.ClientError as error:
                if error.response["Error"]["Code"] not in ENDED_TOKEN_ERRORS:
                    raise
                self.s3.delete_object(Bucket=self.stack.bucket, Key=key)  # nobody waits on it any more
                raise DragonError(
                    f"the training workflow that waited for approval of {plant_name} version {version} has "
                    f"ended ({error.response['Error']['Code']}: timed out, stopped or failed); the decision "
                    "was not recorded and nothing was deployed (the version keeps approval=pending): start "
                    "a new training with `dragon pipeline train --backend aws`"
                ) from error
            self.s3.delete_object(Bucket=self.stack.bucket, Key=key)

    # ---------------------------------------------------------------- S3
    def upload_file(self, path: Path, key: str) -> str:
        if not path.is_file():
            raise DragonError(f"{path}: no such file to upload")
        with aws_errors(f"uploading {path} to s3://{self.stack.bucket}/{key}"):
            self.s3.upload_file(
                str(path), self.stack.bucket, key, ExtraArgs={"ServerSideEncryption": "AES256"}
            )
        return f"s3://{self.stack.bucket}/{key}"

    def stage_input(self, path_or_uri: str, prefix: str) -> str:
        """An s3:// URI as it is; a local file uploaded under `<prefix>/<content hash>/` (workflows read S3
        only), so that the same file is uploaded to the same key and different files never collide."""
        if path_or_uri.startswith("s3://"):
            return path_or_uri
        path = Path(path_or_uri)
        if not path.is_file():
            raise DragonError(f"{path_or_uri}: neither an s3:// URI nor a local file")
        with path.open("rb") as stream:
            digest = hashlib.file_digest(stream, "sha256").hexdigest()[:16]
        return self.upload_file(path, f"{prefix}/{digest}/{path.name}")

    def upload_bundle(self, bundle: Path, plant_name: str, label: str) -> str:
        """Upload a bundle directory (tarred the way SageMaker tars /opt/ml/model) or a model.tar.gz."""
        key = f"bundles/{plant_name}/{label}/model.tar.gz"
        if bundle.is_file():
            return self.upload_file(bundle, key)
        if not bundle.is_dir():
            raise DragonError(f"{bundle}: not a bundle directory or model.tar.gz")
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "model.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                for item in sorted(bundle.iterdir()):
                    tar.add(item, arcname=item.name)
            return self.upload_file(archive, key)

    # ---------------------------------------------------------------- SageMaker
    def training_job_request(
        self,
        *,
        job_name: str,
        plant_name: str,
        data_uri: str,
        env: str = "dev",
        plant_uri: str | None = None,
        instance_type: str = "ml.m5.xlarge",
        max_runtime_seconds: int = 14400,
    ) -> dict[str, Any]:
        """The CreateTrainingJob request the training state machine sends, for a direct start."""

        def channel(name: str, uri: str) -> dict[str, Any]:
            source = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
            return {"ChannelName": name, "InputMode": "File", "DataSource": {"S3DataSource": source}}

        # The container reads the plant spec from the `config` channel (training/entrypoint.py).
        channels = [channel("train", data_uri)] + ([channel("config", plant_uri)] if plant_uri else [])
        return {
            "TrainingJobName": job_name,
            "AlgorithmSpecification": {
                "TrainingImage": self.stack.training_image,
                "TrainingInputMode": "File",
            },
            "RoleArn": self.stack.sagemaker_role_arn,
            "InputDataConfig": channels,
            "OutputDataConfig": {"S3OutputPath": f"s3://{self.stack.bucket}/training"},
            "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
            "HyperParameters": {"plant_name": plant_name},
            "Environment": {"DRAGON_ENV": env},
            "Tags": [{"Key": "dragon:plant", "Value": plant_name}, {"Key": "dragon:env", "Value": env}],
        }

    def start_training_job(self, request: dict[str, Any]) -> str:
        return self.sagemaker.create_training_job(**request)["TrainingJobArn"]

    def training_job_status(self, job_name: str) -> tuple[str, str | None]:
        """(status, failure reason)."""
        answer = self.sagemaker.describe_training_job(TrainingJobName=job_name)
        return answer["TrainingJobStatus"], answer.get("FailureReason")

    def model_package_tags(self, model_package_arn: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        kwargs: dict[str, Any] = {"ResourceArn": model_package_arn}
        while True:
            answer = self.sagemaker.list_tags(**kwargs)
            tags.update({t["Key"]: t["Value"] for t in answer.get("Tags", [])})
            if not answer.get("NextToken"):
                return tags
            kwargs["NextToken"] = answer["NextToken"]

    def add_model_package_tags(self, model_package_arn: str, tags: dict[str, str]) -> None:
        self.sagemaker.add_tags(
            ResourceArn=model_package_arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )

    def remove_model_package_tags(self, model_package_arn: str, keys: list[str]) -> None:
        self.sagemaker.delete_tags(ResourceArn=model_package_arn, TagKeys=keys)

    # ---------------------------------------------------------------- EventBridge
    def put_event(self, source: str, detail_type: str, detail: dict[str, Any], bus: str = "default") -> str:
        answer = self.events.put_events(
            Entries=[
                {
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": bus,
                }
            ]
        )
        entry = answer["Entries"][0]
        if answer.get("FailedEntryCount"):
            raise DragonError(
                f"EventBridge refused the {detail_type!r} event: {entry.get('ErrorMessage')}", exit_code=1
            )
        return entry["EventId"]
