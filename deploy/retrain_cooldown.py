"""The retraining cool-down on AWS: the training workflow's first step, a DynamoDB conditional put.

Locally `deploy.monitoring.trigger_retraining` keeps one drift event per cool-down under a file lock. On AWS
several things may ask for a training (each endpoint's monitoring schedule, the weekly schedule, a person),
so the training workflow itself holds the clock: every execution records when this plant and environment
last started a training; one started by a drift event goes on only if none started within the cool-down
(DRAGON_RETRAIN_COOLDOWN_HOURS, the stack's RetrainCooldownHours). The check and the record are one
conditional put, so two drift events at the same moment start one training. Scheduled and manual trainings
always run (someone asked for them) and reset the clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from deploy.monitoring import cooldown_hours

DRIFT = "drift"


@dataclass(frozen=True)
class CooldownRequest:
    lock_table: str  # the stack's table (deploy/deployment_lock.py keeps its locks there too)
    plant_name: str
    env: str
    execution_arn: str
    trigger: str = "manual"  # drift | schedule | manual


@dataclass(frozen=True)
class CooldownState:
    start: bool  # go on with the training
    last_started: str  # ISO time of the training that started the clock (this one when start)
    last_execution: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clock_key(plant_name: str, env: str) -> str:
    return f"retraining/{plant_name}/{env}"


def claim(request: CooldownRequest, dynamodb: Any, now: datetime | None = None) -> CooldownState:
    """Record this training's start; a drift-triggered one only when the last start is older than the
    cool-down (else start=False, naming the training that holds the clock and when it frees)."""
    now = now or datetime.now(UTC)
    hours = cooldown_hours()
    key = clock_key(request.plant_name, request.env)
    item = {
        "lock_key": {"S": key},
        "started_at": {"N": str(int(now.timestamp()))},
        "execution_arn": {"S": request.execution_arn},
        "trigger": {"S": request.trigger},
    }
    conditions: dict[str, Any] = {}
    if request.trigger == DRIFT:
        cutoff = int((now - timedelta(hours=hours)).timestamp())
        conditions = {
            "ConditionExpression": (
                "attribute_not_exists(lock_key) OR started_at <= :cutoff OR execution_arn = :me"
            ),
            "ExpressionAttributeValues": {":cutoff": {"N": str(cutoff)}, ":me": {"S": request.execution_arn}},
        }
    try:
        dynamodb.put_item(TableName=request.lock_table, Item=item, **conditions)
    except dynamodb.exceptions.ConditionalCheckFailedException:
        held = dynamodb.get_item(
            TableName=request.lock_table, Key={"lock_key": {"S": key}}, ConsistentRead=True
        )
        last = held.get("Item", {})
        started = datetime.fromtimestamp(int(last.get("started_at", {}).get("N", "0")), UTC)
        execution = last.get("execution_arn", {}).get("S", "")
        trigger = last.get("trigger", {}).get("S", "?")
        return CooldownState(
            False,
            started.isoformat(timespec="seconds"),
            execution,
            f"{request.plant_name} in {request.env}: a {trigger} training started "
            f"{started.isoformat(timespec='minutes')} ({execution}); drift retrains once per {hours:g} h "
            f"cool-down, next from {(started + timedelta(hours=hours)).isoformat(timespec='minutes')}",
        )
    stamp = now.isoformat(timespec="seconds")
    return CooldownState(True, stamp, request.execution_arn, f"{request.trigger} training started {stamp}")
