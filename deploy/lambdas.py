"""Lambda handlers: the AWS doors into the same workflow steps the local runner calls.

Each handler parses its event into the step's typed input, calls the plain-Python step in
`deploy.steps` and returns a JSON-serialisable dict. A `DragonError` is left to propagate: the
Lambda runtime reports its class name as `errorType`, which the state machines catch and record.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, TypeVar

from deploy import steps
from dragon.errors import DragonError

T = TypeVar("T")

#: The bucket where the approval task tokens wait for a decision (set by the CloudFormation stack).
ARTIFACT_BUCKET_ENV = "DRAGON_ARTIFACT_BUCKET"


def parse_input(cls: type[T], event: dict[str, Any]) -> T:
    """Build the step's input dataclass from the fields it declares; missing required ones are named."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    missing = [
        name
        for name, field in names.items()
        if name not in event
        and field.default is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise DragonError(f"{cls.__name__}: the event lacks {', '.join(missing)}; got keys {sorted(event)}")
    return cls(**{name: event[name] for name in names if name in event})


def to_payload(output: Any) -> dict[str, Any]:
    return dataclasses.asdict(output) if dataclasses.is_dataclass(output) else dict(output)


def transform_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return to_payload(steps.transform(parse_input(steps.TransformInput, event)))


def data_source_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """`action=locate`: run the Athena query (if the history is one) and measure the history, so that the
    workflow picks where to transform it; `action=receipt`: what the Fargate transform task read and wrote
    (its recorded error raised); `action=explain`: why that task failed, as {Error, Cause}
    (deploy/data_lake.py)."""
    from deploy import data_lake

    action = event.get("action")
    if action == "locate":
        return data_lake.locate(parse_input(data_lake.LocateInput, event)).to_dict()
    if action in ("receipt", "explain") and not event.get("receipt_uri"):
        raise DragonError(f"data source event: action {action!r} needs receipt_uri")
    if action == "receipt":
        return data_lake.read_receipt(event["receipt_uri"])
    if action == "explain":
        return data_lake.explain_failure(event["receipt_uri"], event.get("failure") or {})
    raise DragonError(f"data source event: action must be 'locate', 'receipt' or 'explain', got {action!r}")


def evaluate_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return to_payload(steps.evaluate_challenger(parse_input(steps.EvaluateInput, event)))


def register_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return to_payload(steps.register(parse_input(steps.RegisterInput, event)))


def approval_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """`action=request`: park the workflow's task token until a person decides.
    `action=decide`: record the decision (approved or rejected) on the version."""
    action = event.get("action")
    if action == "request":
        from deploy.aws import AwsBackend  # boto3 only where AWS is really used

        backend = AwsBackend.from_environment(bucket=os.environ[ARTIFACT_BUCKET_ENV])
        key = backend.store_approval_token(event["plant_name"], str(event["version"]), event["task_token"])
        return {"approval": "pending", "token_key": key}
    if action == "decide":
        return to_payload(steps.set_approval(parse_input(steps.ApprovalInput, event)))
    raise DragonError(f"approval event: action must be 'request' or 'decide', got {action!r}")


def resolve_version_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return to_payload(steps.resolve_version(parse_input(steps.ResolveInput, event)))


def tag_deployment_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return to_payload(steps.tag_deployment(parse_input(steps.TagInput, event)))


def untag_deployment_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return to_payload(steps.untag_deployment(parse_input(steps.UntagInput, event)))


def record_failure_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return to_payload(steps.record_failure(parse_input(steps.FailureInput, event)))


def endpoint_stack_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """`action=deploy|status|delete` on the plant's endpoint stack (deploy/endpoint_stack.py), in the
    environment's account."""
    from deploy import endpoint_stack

    actions = {
        "deploy": endpoint_stack.deploy_stack,
        "status": endpoint_stack.stack_state,
        "delete": endpoint_stack.delete_stack,
    }
    action = event.get("action")
    if action not in actions:
        raise DragonError(f"endpoint stack event: action must be one of {sorted(actions)}, got {action!r}")
    request = parse_input(endpoint_stack.StackRequest, event)
    return actions[action](request, endpoint_stack.cloudformation_client(request)).to_dict()


def deployment_lock_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """`action=acquire|release` of the plant and environment's deployment lock (deploy/deployment_lock.py)."""
    import boto3

    from deploy import deployment_lock

    request = parse_input(deployment_lock.LockRequest, event)
    action = event.get("action")
    if action == "acquire":
        return deployment_lock.acquire(
            request, boto3.client("dynamodb"), boto3.client("stepfunctions")
        ).to_dict()
    if action == "release":
        return deployment_lock.release(request, boto3.client("dynamodb")).to_dict()
    raise DragonError(f"deployment lock event: action must be 'acquire' or 'release', got {action!r}")


def batch_output_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """After a transform job: a CSV with one header beside each JSON Lines output (deploy/batch_output.py)."""
    import boto3

    from deploy import batch_output

    request = parse_input(batch_output.BatchOutputRequest, event)
    return batch_output.assemble_csv(request, boto3.client("s3")).to_dict()


def retrain_cooldown_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The training workflow's first step: record its start, or stop a drift-triggered one within the
    cool-down (deploy/retrain_cooldown.py)."""
    import boto3

    from deploy import retrain_cooldown

    request = parse_input(retrain_cooldown.CooldownRequest, event)
    return retrain_cooldown.claim(request, boto3.client("dynamodb")).to_dict()
