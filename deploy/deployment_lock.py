"""One deployment or undeploy per plant and environment at a time: a DynamoDB conditional put.

Why a lock table and not the workflow's own check (ListExecutions of RUNNING ones): check-then-act leaves a
window in which two executions both see none running and both go on; a conditional put is atomic. The
item names the execution holding it, so a lock left behind by an execution that was stopped or timed out
(no Catch runs then, hence no release) is taken over once Step Functions says that execution is no longer
RUNNING: no clock and no lease length to tune, and a long endpoint update is never cut off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from dragon.errors import DragonError


class DeploymentLocked(DragonError):
    """Another execution is deploying or undeploying the same plant and environment."""

    exit_code = 1


@dataclass(frozen=True)
class LockRequest:
    lock_table: str
    plant_name: str
    env: str
    execution_arn: str


@dataclass(frozen=True)
class LockState:
    lock_key: str
    held: bool
    holder: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lock_key(plant_name: str, env: str) -> str:
    return f"{plant_name}/{env}"


def _conditional_put(request: LockRequest, dynamodb: Any, condition: str, values: dict) -> bool:
    item = {
        "lock_key": {"S": lock_key(request.plant_name, request.env)},
        "execution_arn": {"S": request.execution_arn},
        "acquired_at": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
    }
    try:
        dynamodb.put_item(
            TableName=request.lock_table,
            Item=item,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return False
    return True


def _still_running(execution_arn: str, stepfunctions: Any) -> bool:
    try:
        return stepfunctions.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
    except stepfunctions.exceptions.ExecutionDoesNotExist:
        return False


def acquire(request: LockRequest, dynamodb: Any, stepfunctions: Any) -> LockState:
    """Take the lock for this execution (again, if it holds it already: a retried task), or take it over
    from an execution that ended without releasing it; else DeploymentLocked naming the holder."""
    key = lock_key(request.plant_name, request.env)
    me = {":me": {"S": request.execution_arn}}
    if _conditional_put(request, dynamodb, "attribute_not_exists(lock_key) OR execution_arn = :me", me):
        return LockState(key, True, request.execution_arn, f"lock {key} taken")
    held = dynamodb.get_item(
        TableName=request.lock_table, Key={"lock_key": {"S": key}}, ConsistentRead=True
    ).get("Item", {})
    holder = held.get("execution_arn", {}).get("S", "")
    if holder and not _still_running(holder, stepfunctions):
        if _conditional_put(request, dynamodb, "execution_arn = :holder", {":holder": {"S": holder}}):
            return LockState(key, True, request.execution_arn, f"lock {key} taken over from ended {holder}")
    raise DeploymentLocked(
        f"{request.plant_name} in {request.env} is being deployed or undeployed by {holder or 'another run'} "
        f"(since {held.get('acquired_at', {}).get('S', '?')}): wait for it to end, or stop it, and retry"
    )


def release(request: LockRequest, dynamodb: Any) -> LockState:
    """Give the lock back if this execution holds it; otherwise leave it to its holder."""
    key = lock_key(request.plant_name, request.env)
    try:
        dynamodb.delete_item(
            TableName=request.lock_table,
            Key={"lock_key": {"S": key}},
            ConditionExpression="execution_arn = :me",
            ExpressionAttributeValues={":me": {"S": request.execution_arn}},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return LockState(key, False, "", f"lock {key} not held by this execution: left as it is")
    return LockState(key, False, "", f"lock {key} released")
