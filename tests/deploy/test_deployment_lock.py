"""The deployment lock under moto's DynamoDB and Step Functions: one holder per plant and environment, a
retried acquire by the holder succeeds, a release by another execution leaves the lock alone, and a lock
whose holder has ended (stopped, timed out: no release ran) is taken over."""

from __future__ import annotations

import json
import time

import pytest
from aws_fakes import ACCOUNT, REGION, create_lock_table

from deploy.deployment_lock import DeploymentLocked, LockRequest, acquire, release

TABLE = "locks"
PARKED = {"StartAt": "Park", "States": {"Park": {"Type": "Wait", "Seconds": 600, "End": True}}}


@pytest.fixture()
def clients(aws_env):
    import boto3
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_lock_table(dynamodb, TABLE)
        yield dynamodb, boto3.client("stepfunctions", region_name=REGION)


def running_execution(sfn) -> str:
    machine = sfn.create_state_machine(
        name="parked", definition=json.dumps(PARKED), roleArn=f"arn:aws:iam::{ACCOUNT}:role/states"
    )["stateMachineArn"]
    return sfn.start_execution(stateMachineArn=machine)["executionArn"]


def test_one_holder_at_a_time_and_only_the_holder_releases(clients):
    dynamodb, sfn = clients
    first = running_execution(sfn)
    mine = LockRequest(TABLE, "plant-a", "prod", first)
    assert acquire(mine, dynamodb, sfn).held
    assert acquire(mine, dynamodb, sfn).held, "a retried acquire by the holder succeeds"

    other = LockRequest(TABLE, "plant-a", "prod", "arn:aws:states:us-east-1:1:execution:deployment:other")
    with pytest.raises(DeploymentLocked, match=f"plant-a in prod is being deployed or undeployed by {first}"):
        acquire(other, dynamodb, sfn)
    assert "not held" in release(other, dynamodb).message
    with pytest.raises(DeploymentLocked):
        acquire(other, dynamodb, sfn)

    beside = LockRequest(TABLE, "plant-a", "dev", other.execution_arn)
    assert acquire(beside, dynamodb, sfn).held, "another environment has its own lock"

    assert release(mine, dynamodb).message.endswith("released")
    assert acquire(other, dynamodb, sfn).held
    sfn.stop_execution(executionArn=first)


def test_a_lock_whose_holder_ended_is_taken_over(clients):
    dynamodb, sfn = clients
    holder = running_execution(sfn)
    assert acquire(LockRequest(TABLE, "plant-a", "dev", holder), dynamodb, sfn).held
    sfn.stop_execution(executionArn=holder)  # stopped: its Catch and release never ran
    # moto runs the execution in a thread that may still be writing its status: wait for the stop to show
    for _ in range(100):
        if sfn.describe_execution(executionArn=holder)["status"] != "RUNNING":
            break
        sfn.stop_execution(executionArn=holder)
        time.sleep(0.05)
    state = acquire(LockRequest(TABLE, "plant-a", "dev", "arn:next"), dynamodb, sfn)
    assert state.held and state.holder == "arn:next" and holder in state.message
