"""EventBridge patterns against sample events: moto's EventBridge (a rule per pattern, an SQS queue as the
target, since moto's test_event_pattern is a no-op), our local matcher agreeing with it, the template's
input transformers reading fields the events carry, and the local event folder."""

from __future__ import annotations

import json

import pytest
from aws_fakes import REGION

from deploy import events
from deploy.stack import TEMPLATE_PATH
from dragon.settings import load_settings


def sagemaker_event(detail_type: str, detail: dict) -> dict:
    return {
        "version": "0",
        "id": "3b6e1a52-0000-0000-0000-000000000000",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-11-24T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail-type": detail_type,
        "detail": detail,
    }


def training_job(name: str, status: str) -> dict:
    return sagemaker_event(
        "SageMaker Training Job State Change",
        {
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}",
            "TrainingJobStatus": status,
            "SecondaryStatus": status,
            "HyperParameters": {"plant_name": "yet-dragon"},
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://bucket/training/{name}/output/model.tar.gz"},
            "Tags": {"dragon:plant": "yet-dragon"},
        },
    )


def model_package(status: str) -> dict:
    return sagemaker_event(
        "SageMaker Model Package State Change",
        {
            "ModelPackageGroupName": "yet-dragon",
            "ModelPackageVersion": 7,
            "ModelPackageArn": f"arn:aws:sagemaker:{REGION}:123456789012:model-package/yet-dragon/7",
            "ModelApprovalStatus": status,
        },
    )


def endpoint(name: str, status: str) -> dict:
    return sagemaker_event(
        "SageMaker Endpoint State Change",
        {"EndpointName": name, "EndpointStatus": status, "EndpointConfigName": f"{name}-v3-0a1b2c3d"},
    )


def drift(plant_name: str = "yet-dragon", env: str = "dev") -> dict:
    """As the monitor container publishes it (deploy.events.publish_drift)."""
    detail = events.drift_detail(plant_name, "3", "PSI 0.4 on feed_rate", "s3://b/recent/", env)
    return {**sagemaker_event(events.DRIFT_DETECTED, detail), "source": events.SOURCE_MONITORING}


# sample name -> (event, the rule that must match it, or None)
SAMPLES = {
    # The training workflow deploys its own winner (after the approval it waits for): a job's completion
    # or a Model Registry approval starts nothing by itself.
    "our job completed": (training_job("dragon-train-0f3c", "Completed"), None),
    "package approved": (model_package("Approved"), None),
    "drift alarm": (drift(), "DriftDetectedRule"),
    "another plant's drift alarm": (drift("other-plant"), None),
    "our prod endpoint's drift alarm": (drift(env="prod"), None),
    "our endpoint deleted": (endpoint("yet-dragon-dev", "DELETING"), "EndpointDeletedRule"),
    "our endpoint in service": (endpoint("yet-dragon-dev", "IN_SERVICE"), None),
    "our prod endpoint deleted": (endpoint("yet-dragon-prod", "DELETING"), None),
    "another plant's endpoint deleted": (endpoint("other-plant-dev", "DELETING"), None),
}


@pytest.fixture()
def eventbridge(aws_env):
    """A rule per pattern, as the stack of the plant yet-dragon holds it, each delivering to its own queue."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        bridge = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        queues = {}
        for rule, pattern in events.RULE_PATTERNS.items():
            url = sqs.create_queue(QueueName=rule)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            bridge.put_rule(
                Name=rule, EventPattern=json.dumps(events.for_plant(pattern, "yet-dragon")), State="ENABLED"
            )
            bridge.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
            queues[rule] = url
        yield bridge, sqs, queues


def deliveries(sqs, url: str) -> list[dict]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    return [json.loads(m["Body"]) for m in messages]


@pytest.mark.parametrize("sample", SAMPLES)
def test_eventbridge_routes_each_sample_to_its_rule_only(eventbridge, sample):
    bridge, sqs, queues = eventbridge
    event, expected_rule = SAMPLES[sample]
    entry = {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
    }
    assert bridge.put_events(Entries=[entry])["FailedEntryCount"] == 0
    routed = {rule: deliveries(sqs, url) for rule, url in queues.items()}
    assert {rule for rule, got in routed.items() if got} == ({expected_rule} if expected_rule else set())
    if expected_rule:
        assert routed[expected_rule][0]["detail"] == event["detail"]


@pytest.mark.parametrize("sample", SAMPLES)
def test_local_matcher_agrees_with_eventbridge(sample):
    event, expected_rule = SAMPLES[sample]
    matched = {
        rule
        for rule, pattern in events.RULE_PATTERNS.items()
        if events.matches(events.for_plant(pattern, "yet-dragon"), event)
    }
    assert matched == ({expected_rule} if expected_rule else set())


def test_input_transformers_read_fields_the_events_carry():
    from cfnlint.decode.cfn_yaml import loads

    resources = loads(TEMPLATE_PATH.read_text())["Resources"]
    samples = {rule: event for event, rule in SAMPLES.values() if rule}
    for rule, event in samples.items():
        # The template's pattern is the one in deploy/events.py (rendered by deploy/stack.py), for its plant.
        pattern = json.dumps(events.RULE_PATTERNS[rule])
        for placeholder, expression in {
            events.STACK_ENDPOINT: {"Fn::Sub": "${PlantName}-${Environment}"},
            events.STACK_PLANT: {"Ref": "PlantName"},
            events.STACK_ENV: {"Ref": "Environment"},
        }.items():
            pattern = pattern.replace(json.dumps(placeholder), json.dumps(expression))
        assert resources[rule]["Properties"]["EventPattern"] == json.loads(pattern)
        transformer = resources[rule]["Properties"]["Targets"][0].get(
            "InputTransformer", {"InputPathsMap": {}}
        )
        for name, path in transformer["InputPathsMap"].items():
            value = event
            for part in path.removeprefix("$.").split("."):
                value = value[part]
            assert value not in (None, ""), f"{rule}: <{name}> = {path} is empty in the sample"


def test_emit_pending_and_mark_handled(dragon_home):
    settings = load_settings()
    assert events.pending_events(settings) == []
    first = events.emit_event(
        settings, events.MODEL_VERSION_REGISTERED, {"ModelName": "yet-dragon", "Version": "1"}
    )
    events.emit_event(
        settings, events.DRIFT_DETECTED, {"plant_name": "yet-dragon"}, source=events.SOURCE_MONITORING
    )
    assert first.parent == settings.events_dir
    pending = events.pending_events(settings)
    assert [e["detail-type"] for e in pending] == [events.MODEL_VERSION_REGISTERED, events.DRIFT_DETECTED]
    assert {"id", "time", "source", "detail-type", "detail"} <= set(pending[0])
    drifts = events.pending_events(settings, events.DRIFT_DETECTED_PATTERN)
    assert [e["detail"] for e in drifts] == [{"plant_name": "yet-dragon"}]

    moved = events.mark_handled(settings, pending[0])
    assert moved.parent.name == "handled" and not first.exists()
    assert [e["id"] for e in events.pending_events(settings)] == [pending[1]["id"]]
    with pytest.raises(FileNotFoundError):
        events.mark_handled(settings, pending[0])


def test_matcher_refuses_operators_it_does_not_implement():
    with pytest.raises(ValueError, match="numeric"):
        events.matches({"detail": {"x": [{"numeric": [">", 1]}]}}, {"detail": {"x": 2}})
