"""The endpoint stack's monitoring schedule and autoscaling, as the API calls CloudFormation makes from them,
validated against botocore's service models (moto models neither resource): the template resolved with the
parameters deploy/endpoint_stack.py passes, then sent through a Stubber, which validates every request."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from aws_fakes import ACCOUNT, BUCKET, IMAGE, REGION, ROLE

from deploy import monitor_entrypoint
from deploy.endpoint_stack import TEMPLATE_PATH, StackRequest, _parameters, deploy_stack, stack_state

ENDPOINT = "yet-dragon-dev"
TRACKING = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-tracking-server/shared"


def request(**extra) -> StackRequest:
    values = dict(
        plant_name="yet-dragon",
        env="dev",
        version="3",
        model_data_url=f"s3://{BUCKET}/training/job/output/model.tar.gz",
        image=IMAGE,
        execution_role_arn=ROLE,
        bucket=BUCKET,
        monitoring_schedule="cron(0 0 ? * * *)",
        tracking_uri=TRACKING,
        artifact_uri=f"s3://{BUCKET}/mlflow",
        retrain_data_uri=f"s3://{BUCKET}/data/history.parquet",
    )
    return StackRequest(**{**values, **extra})


class Resolved:
    """The template as CloudFormation would resolve it for one set of parameter values."""

    def __init__(self, stack_request: StackRequest):
        from cfnlint.decode.cfn_yaml import loads

        self.template = loads(TEMPLATE_PATH.read_text())
        given = {p["ParameterKey"]: p["ParameterValue"] for p in _parameters(stack_request, "0a1b2c3d")}
        self.values: dict[str, Any] = {}
        for name, spec in self.template["Parameters"].items():
            value = given.get(name, spec.get("Default"))
            self.values[name] = int(value) if spec["Type"] == "Number" else value

    def condition(self, name: str) -> bool:
        return self.evaluate(self.template["Conditions"][name])

    def evaluate(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.evaluate(item) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            return {"AWS::NoValue": None}.get(node["Ref"], self.values.get(node["Ref"], node["Ref"]))
        if set(node) == {"Fn::Sub"}:
            text = node["Fn::Sub"]
            for name, value in {**self.values, "Endpoint.EndpointName": ENDPOINT}.items():
                text = text.replace("${" + name + "}", str(value))
            return text
        if set(node) == {"Fn::GetAtt"}:
            assert node["Fn::GetAtt"] == ["Endpoint", "EndpointName"], node
            return ENDPOINT
        if set(node) == {"Fn::If"}:
            name, then, otherwise = node["Fn::If"]
            return self.evaluate(then if self.condition(name) else otherwise)
        if set(node) == {"Fn::Not"}:
            return not self.evaluate(node["Fn::Not"][0])
        if set(node) == {"Fn::Equals"}:
            left, right = self.evaluate(node["Fn::Equals"])
            return str(left) == str(right)
        if set(node) == {"Condition"}:
            return self.condition(node["Condition"])
        resolved = {key: self.evaluate(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not None}

    def properties(self, logical_id: str) -> dict[str, Any] | None:
        resource = self.template["Resources"][logical_id]
        if "Condition" in resource and not self.condition(resource["Condition"]):
            return None
        return self.evaluate(resource["Properties"])


def stubbed(service: str):
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return client, Stubber(client)


def create_monitoring_schedule_request(resolved: Resolved) -> dict[str, Any]:
    """AWS::SageMaker::MonitoringSchedule's properties as CreateMonitoringSchedule's request (the resource's
    EndpointName is CloudFormation's own, the API reads it from the job definition's input)."""
    properties = resolved.properties("DriftMonitoringSchedule")
    assert properties is not None
    return {key: value for key, value in properties.items() if key != "EndpointName"}


def test_monitoring_schedule_is_a_valid_create_monitoring_schedule_request_running_monitor():
    schedule = create_monitoring_schedule_request(Resolved(request()))
    client, stub = stubbed("sagemaker")
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/yet-dragon-dev-drift"
    stub.add_response("create_monitoring_schedule", {"MonitoringScheduleArn": arn}, schedule)
    with stub:
        assert client.create_monitoring_schedule(**schedule)["MonitoringScheduleArn"] == arn

    job = schedule["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
    assert job["MonitoringAppSpecification"] == {"ImageUri": IMAGE, "ContainerEntrypoint": ["monitor"]}
    [source] = job["MonitoringInputs"]
    assert source["EndpointInput"]["EndpointName"] == ENDPOINT
    assert source["EndpointInput"]["LocalPath"] == monitor_entrypoint.INPUT_DIR
    [output] = job["MonitoringOutputConfig"]["MonitoringOutputs"]
    assert output["S3Output"]["LocalPath"] == monitor_entrypoint.OUTPUT_DIR
    assert output["S3Output"]["S3Uri"] == f"s3://{BUCKET}/monitoring/yet-dragon/dev"
    environment = job["Environment"]
    assert environment["DRAGON_PLANT_NAME"] == "yet-dragon" and environment["DRAGON_MODEL_VERSION"] == "3"
    assert environment["DRAGON_TRACKING_URI"] == TRACKING
    assert environment["DRAGON_RETRAIN_DATA_URI"] == f"s3://{BUCKET}/data/history.parquet"
    assert job["RoleArn"] == ROLE


def test_a_request_botocore_refuses_is_caught():
    """The check can fail: a volume size given as text, as a template might write it."""
    from botocore.exceptions import ParamValidationError

    schedule = create_monitoring_schedule_request(Resolved(request()))
    cluster = schedule["MonitoringScheduleConfig"]["MonitoringJobDefinition"]["MonitoringResources"]
    cluster["ClusterConfig"]["VolumeSizeInGB"] = "20"
    client, stub = stubbed("sagemaker")
    stub.add_response("create_monitoring_schedule", {"MonitoringScheduleArn": "arn:schedule"}, schedule)
    with stub, pytest.raises(ParamValidationError, match="VolumeSizeInGB"):
        client.create_monitoring_schedule(**schedule)


def test_without_a_schedule_or_history_the_template_leaves_them_out():
    resolved = Resolved(request(monitoring_schedule="", retrain_data_uri=""))
    assert resolved.properties("DriftMonitoringSchedule") is None
    environment = Resolved(request(retrain_data_uri="")).properties("DriftMonitoringSchedule")
    assert (
        "DRAGON_RETRAIN_DATA_URI"
        not in environment["MonitoringScheduleConfig"]["MonitoringJobDefinition"]["Environment"]
    )


def test_a_schedule_without_the_registry_is_refused():
    from deploy.endpoint_stack import EndpointStackError

    with pytest.raises(EndpointStackError, match="tracking_uri"):
        _parameters(request(tracking_uri=""), "0a1b2c3d")


def test_autoscaling_is_valid_register_scalable_target_and_put_scaling_policy_requests():
    resolved = Resolved(request(instance_count=2, max_instance_count=6, invocations_per_instance=150))
    target = resolved.properties("ScalableTarget")
    assert target == {
        "ServiceNamespace": "sagemaker",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "ResourceId": f"endpoint/{ENDPOINT}/variant/AllTraffic",
        "MinCapacity": 2,
        "MaxCapacity": 6,
    }
    policy = resolved.properties("InvocationsScalingPolicy")
    policy.pop("ScalingTargetId")  # the API names the target by these three instead
    policy.update({key: target[key] for key in ("ServiceNamespace", "ScalableDimension", "ResourceId")})
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 150
    metric = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    client, stub = stubbed("application-autoscaling")
    stub.add_response("register_scalable_target", {}, target)
    stub.add_response("put_scaling_policy", {"PolicyARN": "arn:policy", "Alarms": []}, policy)
    with stub:
        client.register_scalable_target(**target)
        client.put_scaling_policy(**policy)


def test_one_instance_by_default_means_no_autoscaling():
    resolved = Resolved(request())
    assert resolved.properties("ScalableTarget") is None
    assert resolved.properties("InvocationsScalingPolicy") is None
    assert Resolved(request(instance_count=3, max_instance_count=2)).values["MaxInstanceCount"] == 3


def test_endpoint_stack_with_autoscaling_and_monitoring_deploys_under_moto(aws_env):
    """moto's CloudFormation skips the resource types it does not model (warning) and builds the rest."""
    import boto3
    from moto import mock_aws

    with mock_aws(), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Tried to parse AWS::(SageMaker::MonitoringSchedule|ApplicationAutoScaling)"
        )
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        state = deploy_stack(request(instance_count=1, max_instance_count=4), cloudformation)
        final = stack_state(request(deployment_id=state.deployment_id), cloudformation)
        assert final.status == "deployed", final
