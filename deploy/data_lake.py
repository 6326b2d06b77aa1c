"""Training data from the data lake: an S3 object or prefix (its partitions), or an Athena query.

The training workflow's first data step (`locate`) runs the query, if any, through Athena's API (boto3),
and measures what the transform will read (the objects, or the query's result CSV), so that the workflow
can choose where to transform it: in a Lambda, or in an ECS Fargate task when the history is larger than
the plant's `[training] fargate_above_mb`. Either place runs deploy.steps.transform, which writes the
checked history as one Parquet table for the training job and a receipt (what was read, its sha256, the
query and its execution id) that the register step records on the experiment.

Athena's settings come from the stack (the Lambda's environment): the workgroup, the Glue database the
query's tables live in and the results location.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from deploy.lambdas import ARTIFACT_BUCKET_ENV  # the stack's bucket: tables go under transformed/<plant>/
from dragon.errors import DataError, DragonError

ATHENA_WORKGROUP_ENV = "DRAGON_ATHENA_WORKGROUP"
ATHENA_DATABASE_ENV = "DRAGON_ATHENA_DATABASE"
ATHENA_RESULTS_ENV = "DRAGON_ATHENA_RESULTS_URI"
#: "true" when the stack can run the transform on Fargate (it was given subnets for the task).
FARGATE_ENV = "DRAGON_FARGATE_TRANSFORM"

QUERY_RUNNING = ("QUEUED", "RUNNING")
TABLE_NAME = "history.parquet"
RECEIPT_NAME = "receipt.json"
MB = 1_000_000


@dataclass(frozen=True)
class AthenaSettings:
    workgroup: str = "primary"
    database: str = ""
    results_uri: str = ""  # empty: the workgroup's own results location

    @classmethod
    def from_environment(cls) -> AthenaSettings:
        env = os.environ
        workgroup = env.get(ATHENA_WORKGROUP_ENV) or "primary"
        return cls(workgroup, env.get(ATHENA_DATABASE_ENV, ""), env.get(ATHENA_RESULTS_ENV, ""))


@dataclass(frozen=True)
class QueryResult:
    execution_id: str
    result_uri: str  # the result CSV Athena wrote (a header row, then one row per record)


def run_query(
    query: str,
    settings: AthenaSettings,
    athena,
    *,
    timeout_seconds: float = 840.0,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> QueryResult:
    """Run `query` on Athena and wait for it; a failed, cancelled, timed-out or empty query is a DataError
    naming its execution id."""
    from botocore.exceptions import ClientError

    request = {"QueryString": query, "WorkGroup": settings.workgroup}
    if settings.database:
        request["QueryExecutionContext"] = {"Database": settings.database}
    if settings.results_uri:
        request["ResultConfiguration"] = {"OutputLocation": settings.results_uri}
    try:
        execution_id = athena.start_query_execution(**request)["QueryExecutionId"]
    except ClientError as error:  # a query Athena will not start: bad SQL, an unknown workgroup
        raise DataError(
            f"Athena refused the query (workgroup {settings.workgroup!r}, database "
            f"{settings.database or '(none)'!r}): {error.response['Error'].get('Message', error)}"
        ) from None
    deadline = time.monotonic() + timeout_seconds
    while True:
        execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
        status = execution["Status"]
        if status["State"] not in QUERY_RUNNING:
            break
        if time.monotonic() > deadline:
            athena.stop_query_execution(QueryExecutionId=execution_id)
            raise DataError(
                f"Athena query {execution_id}: still {status['State']} after {timeout_seconds:.0f} s, "
                "stopped; narrow the query (a time range, the tags the plant uses)"
            )
        sleep(poll_seconds)
    if status["State"] != "SUCCEEDED":
        reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage", "")
        raise DataError(f"Athena query {execution_id} {status['State']}: {reason or 'no reason given'}")
    rows = athena.get_query_results(QueryExecutionId=execution_id, MaxResults=2)["ResultSet"]["Rows"]
    if len(rows) < 2:  # the first row of a SELECT's result is its header
        raise DataError(f"Athena query {execution_id} returned no rows: no history to train on")
    return QueryResult(execution_id, execution["ResultConfiguration"]["OutputLocation"])


@dataclass(frozen=True)
class LocateInput:
    plant_name: str
    run_name: str  # the workflow execution's name: the transformed table's folder
    data_uri: str | None = None
    query: str | None = None
    plant_uri: str | None = None


@dataclass(frozen=True)
class LocatedData:
    """What the transform will read and where the workflow runs it."""

    size_bytes: int
    fargate_above_bytes: int
    transform: dict  # the deploy.steps.TransformInput for the Lambda or the Fargate task

    def to_dict(self) -> dict:
        return asdict(self)


def locate(inp: LocateInput, *, s3_client=None, athena_client=None) -> LocatedData:
    """Run the query (if the history is one), measure the history, and name where its table will go."""
    import boto3

    from deploy.storage import fetch, history_objects
    from dragon.spec import load_plant

    if (inp.data_uri is None) == (inp.query is None):
        raise DragonError(
            "training data: give either data_uri (an S3 object or prefix) or query (Athena SQL)"
        )
    s3 = s3_client or boto3.client("s3")
    with tempfile.TemporaryDirectory() as scratch:
        spec = load_plant(fetch(inp.plant_uri, Path(scratch), s3_client=s3) if inp.plant_uri else None)
    source, execution_id = inp.data_uri, None
    if inp.query is not None:
        result = run_query(
            inp.query, AthenaSettings.from_environment(), athena_client or boto3.client("athena")
        )
        source, execution_id = result.result_uri, result.execution_id
    if urlparse(source).scheme != "s3":
        raise DragonError(
            f"{source}: the training workflow reads S3 (an s3:// object or prefix ending in '/')"
        )
    size = sum(item.size_bytes for item in history_objects(source, s3_client=s3))
    limit = int(spec.training.fargate_above_mb * MB)
    if size > limit and os.environ.get(FARGATE_ENV, "false") != "true":
        raise DataError(
            f"{source}: {size / MB:.0f} MB, above [training] fargate_above_mb = {limit / MB:g} MB: it "
            "transforms on Fargate, which this stack cannot run (give it FargateSubnets and "
            "FargateSecurityGroups)"
        )
    bucket = os.environ.get(ARTIFACT_BUCKET_ENV)
    if not bucket:
        raise DragonError(
            f"locate: the function's environment lacks {ARTIFACT_BUCKET_ENV} (the stack's bucket)"
        )
    folder = f"s3://{bucket}/transformed/{inp.plant_name}/{inp.run_name}"
    transform = {
        "data_uri": source,
        "plant_uri": inp.plant_uri,
        "table_uri": f"{folder}/{TABLE_NAME}",
        "receipt_uri": f"{folder}/{RECEIPT_NAME}",
        "query": inp.query,
        "query_execution_id": execution_id,
    }
    return LocatedData(size, limit, transform)


def _stored_receipt(receipt_uri: str, s3_client=None) -> dict | None:
    import boto3
    from botocore.exceptions import ClientError

    parsed = urlparse(receipt_uri)
    client = s3_client or boto3.client("s3")
    try:
        body = client.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    except ClientError:
        return None
    return json.loads(body)


def read_receipt(receipt_uri: str, *, s3_client=None) -> dict:
    """The transform's receipt (deploy.steps.TransformOutput as a dict); a transform that failed left its
    reason there, raised here as the error it was."""
    receipt = _stored_receipt(receipt_uri, s3_client)
    if receipt is None:
        raise DragonError(
            f"the transform wrote no receipt ({receipt_uri}): it stopped before the end; the Fargate task's "
            "log is in the stack's transform log group"
        )
    if receipt.get("error"):
        raise (DataError if receipt.get("error_type") == "DataError" else DragonError)(receipt["error"])
    return receipt


def explain_failure(receipt_uri: str, failure: dict, *, s3_client=None) -> dict:
    """Why the Fargate transform failed, as the workflow records a step's error ({Error, Cause}): the
    reason the task wrote in its receipt, else what Step Functions reported of the task."""
    receipt = _stored_receipt(receipt_uri, s3_client) or {}
    if receipt.get("error"):
        return {"Error": receipt.get("error_type", "DragonError"), "Cause": receipt["error"]}
    # Step Functions names its own errors States.*, which a Fail state may not raise again.
    reported = f"{failure.get('Error', 'an error')}: {str(failure.get('Cause', ''))[:2000]}"
    return {
        "Error": "TransformTaskFailed",
        "Cause": f"the transform task on Fargate failed without a receipt ({receipt_uri}): {reported}",
    }
