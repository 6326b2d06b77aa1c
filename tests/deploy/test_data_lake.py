"""Training data from the data lake (deploy/data_lake.py): an Athena query or an S3 prefix, located and
measured before the transform, which runs in the Lambda or, above the plant's [training] fargate_above_mb,
as an ECS Fargate task running the container's `transform` entry point.

Under moto: Athena answers with the rows queued on its backend (written as its result CSV, header first,
every value quoted, as Athena writes it); ECS records the task and walks it to STOPPED while the fake runs
the entry point in an empty home of its own (aws_fakes.install_fargate_fakes); the training workflow runs
either branch, executed, not only parsed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from aws_fakes import ACCOUNT, ATHENA_RESULTS, ATHENA_WORKGROUP, BUCKET, PLANT, REGION

from deploy.data_lake import AthenaSettings, explain_failure, run_query
from dragon.errors import DataError
from dragon.registry import list_versions
from dragon.settings import load_settings

QUERY = "SELECT * FROM plant_history.readings WHERE plant = 'unit-1' ORDER BY timestamp"


def queue_athena_result(frame: pd.DataFrame | None) -> None:
    """The rows moto's Athena answers the next query with: a header row, then the records as strings
    (timestamps as Athena prints them); None queues a header only, the result of a query that matched
    nothing."""
    from moto.athena.models import QueryResults, athena_backends

    columns = list(frame.columns) if frame is not None else ["timestamp", "feed_rate"]
    rows = [{"Data": [{"VarCharValue": name} for name in columns]}]
    if frame is not None:
        text = frame.copy()
        text["timestamp"] = text["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S.000")
        for record in text.itertuples(index=False):
            rows.append({"Data": [{} if pd.isna(v) else {"VarCharValue": str(v)} for v in record]})
    info = [{"Name": name, "Type": "varchar"} for name in columns]
    athena_backends[ACCOUNT][REGION].query_results_queue.append(QueryResults(rows, info))


def run_tags(version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    from dragon.registry import get_version

    settings = load_settings()
    info = get_version(settings, PLANT, version)
    return MlflowClient(tracking_uri=settings.tracking_uri).get_run(info.run_id).data.tags


def plant_with_fargate_above(small_plant_path: Path, target: Path, megabytes: float) -> Path:
    text = small_plant_path.read_text()
    assert "[training]\n" in text
    target.write_text(text.replace("[training]\n", f"[training]\nfargate_above_mb = {megabytes}\n", 1))
    return target


@pytest.fixture()
def history_frame(small_history) -> pd.DataFrame:
    return pd.read_parquet(small_history)


def training_input(**data) -> dict:
    return {"plant_name": PLANT, "env": "dev", "poll_seconds": 0, **data}


def train_above_1kb_on_fargate(harness, data_uri: str, small_plant_path: Path, tmp_path: Path) -> dict:
    """A training on `data_uri` whose plant sends any history above 1 kB to the Fargate transform."""
    plant = plant_with_fargate_above(small_plant_path, tmp_path / "plant.toml", 0.001)
    plant_uri = harness.upload(plant, "plants/fargate.toml")
    return harness.run("training", training_input(data_uri=data_uri, plant_uri=plant_uri))


def test_training_on_an_athena_query_records_the_query_its_execution_and_the_data_hash(
    harness, history_frame, small_plant_path
):
    """The query runs in the workgroup the stack names; its result CSV is what the transform reads (in the
    Lambda: far below the limit); the run records the query, its execution id and the result's sha256."""
    queue_athena_result(history_frame)
    plant_uri = harness.upload(small_plant_path, "plants/small.toml")
    run = harness.run("training", training_input(query=QUERY, plant_uri=plant_uri))
    assert run["status"] == "SUCCEEDED", (run.get("error"), run.get("cause"))
    output = json.loads(run["output"])
    transform = output["source"]["transform"]
    execution_id = transform["query_execution_id"]
    result_uri = f"{ATHENA_RESULTS}{execution_id}.csv"
    assert transform["data_uri"] == result_uri
    assert output["source"]["size_bytes"] < output["source"]["fargate_above_bytes"]
    assert "fargate" not in output and harness.fargate.runs == [], "transformed in the Lambda"
    assert output["transform"]["rows_in"] == len(history_frame)
    assert output["transform"]["data_uri"] == transform["table_uri"]

    athena = harness_client("athena")
    execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert execution["Query"] == QUERY and execution["WorkGroup"] == ATHENA_WORKGROUP
    assert execution["QueryExecutionContext"] == {"Database": "plant_history"}

    result = harness.s3.get_object(Bucket=BUCKET, Key=result_uri.removeprefix(f"s3://{BUCKET}/"))[
        "Body"
    ].read()
    table = harness.s3.get_object(Bucket=BUCKET, Key=transform["table_uri"].removeprefix(f"s3://{BUCKET}/"))
    trained_on = pd.read_parquet(io.BytesIO(table["Body"].read()))
    assert len(trained_on) == len(history_frame), "the training job's table holds every row of the result"
    tags = run_tags(output["registration"]["version"])
    assert tags["data.query"] == QUERY
    assert tags["data.query_execution_id"] == execution_id
    assert tags["data.source"] == result_uri
    assert tags["data.source.sha256"] == hashlib.sha256(result).hexdigest()
    assert tags["data.table"] == transform["table_uri"]


def harness_client(service: str):
    import boto3

    return boto3.client(service, region_name=REGION)


def test_a_history_above_the_plant_limit_transforms_on_fargate(
    harness, history_frame, small_plant_path, tmp_path
):
    """An S3 prefix larger than [training] fargate_above_mb: the workflow's Choice sends it to the ECS
    Fargate task (ecs:runTask.sync, executed by moto), which runs the container's transform entry point and
    writes the table and receipt the training job and the register step read."""
    half = len(history_frame) // 2
    for part, rows in enumerate((history_frame.iloc[:half], history_frame.iloc[half:])):
        harness.s3.put_object(
            Bucket=BUCKET, Key=f"lake/{PLANT}/part={part}/h.parquet", Body=rows.to_parquet()
        )
    prefix = f"s3://{BUCKET}/lake/{PLANT}/"
    run = train_above_1kb_on_fargate(harness, prefix, small_plant_path, tmp_path)
    assert run["status"] == "SUCCEEDED", (run.get("error"), run.get("cause"))
    output = json.loads(run["output"])
    assert output["source"]["size_bytes"] > output["source"]["fargate_above_bytes"] == 1000
    assert harness.fargate.exit_codes == [0]
    (environment,) = harness.fargate.runs
    assert json.loads(environment["DRAGON_TRANSFORM"]) == output["source"]["transform"]
    assert output["fargate"]["task_arn"].startswith(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/")
    assert output["transform"]["rows_in"] == len(history_frame)
    assert output["transform"]["data_uri"] == output["source"]["transform"]["table_uri"]
    assert (
        output["training"]["channels"][0]["DataSource"]["S3DataSource"]["S3Uri"]
        == (output["transform"]["data_uri"])
    ), "the training job reads the table the task wrote"
    tags = run_tags(output["registration"]["version"])
    assert tags["data.source"] == prefix and "data.query" not in tags


def test_bad_data_on_fargate_fails_with_the_reason_the_task_recorded(harness, small_plant_path, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,feed_rate\n" + "2026-01-01T00:00:00,1.0\n" * 100)
    run = train_above_1kb_on_fargate(harness, harness.upload(bad, "data/bad.csv"), small_plant_path, tmp_path)
    assert run["status"] == "FAILED", run
    assert harness.fargate.exit_codes == [2]
    assert run["error"] == "DataError" and "Traceback" not in run["cause"], run
    assert harness.fake.created_training_jobs == [] and list_versions(load_settings(), PLANT) == []


@pytest.mark.parametrize("case", ["failed", "empty", "empty prefix"])
def test_bad_sources_fail_naming_the_query_or_prefix_and_register_nothing(
    harness, history_frame, monkeypatch, case
):
    from moto.athena.models import Execution

    if case == "failed":
        monkeypatch.setattr(Execution, "advance", lambda self: setattr(self, "status", "FAILED"))
        data = {"query": QUERY}
    elif case == "empty":
        queue_athena_result(None)
        data = {"query": QUERY}
    else:
        harness.s3.put_object(Bucket=BUCKET, Key="lake/empty/_SUCCESS", Body=b"")
        data = {"data_uri": f"s3://{BUCKET}/lake/empty/"}
    run = harness.run("training", training_input(**data))
    assert run["status"] == "FAILED", run
    assert run["error"] == "DataError", run
    if "query" in data:
        (execution_id,) = harness_client("athena").list_query_executions()["QueryExecutionIds"]
        assert f"Athena query {execution_id}" in run["cause"]
        assert ("FAILED" if case == "failed" else "returned no rows") in run["cause"]
    else:
        assert f"s3://{BUCKET}/lake/empty/: no .csv or .parquet object" in run["cause"]
    assert harness.fake.created_training_jobs == [] and harness.fargate.runs == []
    assert list_versions(load_settings(), PLANT) == []


def test_a_large_history_without_fargate_in_the_stack_is_refused_by_name(
    harness, small_history, small_plant_path, tmp_path, monkeypatch
):
    monkeypatch.setenv("DRAGON_FARGATE_TRANSFORM", "false")
    data_uri = harness.upload(small_history, "data/h.parquet")
    run = train_above_1kb_on_fargate(harness, data_uri, small_plant_path, tmp_path)
    assert run["status"] == "FAILED" and run["error"] == "DataError", run
    assert "fargate_above_mb = 0.001 MB" in run["cause"] and "FargateSubnets" in run["cause"]
    assert harness.fargate.runs == []


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED"])
def test_a_query_athena_ends_otherwise_names_its_id_and_reason(state):
    """Athena's own answer shapes (botocore's Stubber validates them against the API model)."""
    import boto3
    from botocore.stub import Stubber

    athena = boto3.client("athena", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    reason = "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.plant_history.readings' does not exist"
    with Stubber(athena) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
        stub.add_response(
            "get_query_execution",
            {"QueryExecution": {"QueryExecutionId": "q-1", "Status": {"State": "RUNNING"}}},
        )
        ended = {"State": state, "StateChangeReason": reason if state == "FAILED" else "stopped by a person"}
        stub.add_response(
            "get_query_execution", {"QueryExecution": {"QueryExecutionId": "q-1", "Status": ended}}
        )
        with pytest.raises(DataError) as raised:
            run_query(QUERY, AthenaSettings("wg", "plant_history", ""), athena, sleep=lambda s: None)
    assert str(raised.value).startswith(f"Athena query q-1 {state}: ")
    assert (reason if state == "FAILED" else "stopped by a person") in str(raised.value)


def test_explaining_a_failed_fargate_task(aws_env):
    import boto3
    from moto import mock_aws

    failure = {"Error": "States.TaskFailed", "Cause": '{"StopCode": "TaskFailedToStart"}'}
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        receipt = f"s3://{BUCKET}/transformed/{PLANT}/run/receipt.json"
        explained = explain_failure(receipt, failure)
        assert explained["Error"] == "TransformTaskFailed", "a Fail state may not raise States.* again"
        assert "States.TaskFailed" in explained["Cause"] and "TaskFailedToStart" in explained["Cause"]
        body = {"error": "bad.csv: no column 'ox1_temperature'", "error_type": "DataError"}
        s3.put_object(Bucket=BUCKET, Key=receipt.removeprefix(f"s3://{BUCKET}/"), Body=json.dumps(body))
        assert explain_failure(receipt, failure) == {"Error": "DataError", "Cause": body["error"]}


def transform_process(request: dict | None, home: Path) -> subprocess.CompletedProcess:
    """The `transform` console script as the Fargate task runs it, in an empty home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRAGON_", "AWS_"))}
    env["DRAGON_HOME"] = str(home)
    if request is not None:
        env["DRAGON_TRANSFORM"] = json.dumps(request)
    script = Path(sys.executable).parent / "transform"
    assert script.is_file(), "the `transform` console script"
    return subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=300)


def test_transform_entry_point_writes_the_table_and_its_receipt(small_history, small_plant_path, tmp_path):
    out = tmp_path / "out"
    request = {
        "data_uri": str(small_history),
        "plant_uri": str(small_plant_path),
        "table_uri": str(out / "history.parquet"),
        "receipt_uri": str(out / "receipt.json"),
    }
    result = transform_process(request, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    receipt = json.loads((out / "receipt.json").read_text())
    rows = len(pd.read_parquet(small_history))
    assert receipt["rows_in"] == rows and receipt["data_uri"] == request["table_uri"]
    assert receipt["source_sha256"] == hashlib.sha256(small_history.read_bytes()).hexdigest()
    assert len(pd.read_parquet(out / "history.parquet")) == rows


def test_transform_entry_point_on_bad_data_or_without_its_request_fails_with_the_reason(
    small_plant_path, tmp_path
):
    bad = tmp_path / "bad.csv"
    bad.write_text("when,feed_rate\n2026-01-01T00:00:00,1.0\n")
    receipt = tmp_path / "out" / "receipt.json"
    request = {"data_uri": str(bad), "plant_uri": str(small_plant_path), "receipt_uri": str(receipt)}
    result = transform_process(request, tmp_path / "home-1")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    recorded = json.loads(receipt.read_text())
    assert recorded["error_type"] == "DataError" and "no time column 'timestamp'" in recorded["error"]

    result = transform_process(None, tmp_path / "home-2")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "DRAGON_TRANSFORM" in result.stderr


@pytest.mark.parametrize("value", ["0", "-5", '"big"'])
def test_the_fargate_limit_is_a_positive_size_in_the_spec(small_plant_path, value):
    from dragon.errors import SpecError
    from dragon.spec import parse_plant

    text = small_plant_path.read_text().replace(
        "[training]\n", f"[training]\nfargate_above_mb = {value}\n", 1
    )
    with pytest.raises(SpecError, match=r"\[training.fargate_above_mb\]"):
        parse_plant(text, "plant.toml")


@pytest.mark.parametrize("rule", ["TrainingScheduleRule", "DriftDetectedRule"])
def test_scheduled_and_drift_trainings_read_the_stacks_query(rule):
    """With TrainingDataQuery the stack's rules start the training workflow on the query (a typical one,
    single quotes and all, keeps their JSON input valid; the parameter refuses double quotes)."""
    import re

    from cfnlint.decode.cfn_yaml import loads

    from deploy.stack import TEMPLATE_PATH

    template = loads(TEMPLATE_PATH.read_text())
    pattern = re.compile(template["Parameters"]["TrainingDataQuery"]["AllowedPattern"])
    assert pattern.match(QUERY) and not pattern.match('SELECT "ts" FROM readings')
    (target,) = template["Resources"][rule]["Properties"]["Targets"]
    chosen = target.get("Input") or target["InputTransformer"]["InputTemplate"]
    condition, with_query, with_uri = chosen["Fn::If"]
    assert condition == "HasTrainingQuery"
    values = {
        "PlantName": PLANT,
        "Environment": "dev",
        "ApprovalRequired": "true",
        "TrainingDataQuery": QUERY,
    }
    text = re.sub(r"\$\{(\w+)\}", lambda m: values[m[1]], with_query["Fn::Sub"]).replace(
        "<plant>", f'"{PLANT}"'
    )
    started = json.loads(text)
    assert started["query"] == QUERY and "data_uri" not in started and started["plant_name"] == PLANT
    assert "data_uri" in with_uri["Fn::Sub"]


def test_a_fargate_task_that_cannot_start_fails_the_run_with_what_ecs_said(
    harness, small_history, small_plant_path, tmp_path
):
    """The task definition is gone (a stack half-deleted): RunTask fails, the run records ECS's reason under
    one error name of its own (a Fail state may not raise Step Functions' States.* again)."""
    ecs = harness_client("ecs")
    (definition,) = ecs.list_task_definitions()["taskDefinitionArns"]
    ecs.deregister_task_definition(taskDefinition=definition)
    ecs.delete_task_definitions(taskDefinitions=[definition])
    data_uri = harness.upload(small_history, "data/h.parquet")
    run = train_above_1kb_on_fargate(harness, data_uri, small_plant_path, tmp_path)
    assert run["status"] == "FAILED", run
    assert run["error"] == "TransformTaskFailed", (run["error"], run["cause"])
    assert "the transform task on Fargate failed without a receipt" in run["cause"]
    assert "Unable to describe task definition" in run["cause"], "ECS's own reason"
    assert harness.fargate.runs == [] and harness.fake.created_training_jobs == []
