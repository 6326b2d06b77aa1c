"""One CSV per batch input, with one header row.

A transform job splits each input file into mini-batches, sends each to the container and concatenates
the answers into `<input>.out`. Answers in CSV would repeat their header in every mini-batch (and their
columns differ: a blocked state has no setpoints). So the job asks for JSON Lines, and this step writes a
CSV beside each `<input>.out` (`states.csv.out` -> `states.csv`, `states.jsonl.out` -> `states.jsonl.csv`):
every answer flattened as `Accept: text/csv` flattens it (inference.payloads.flatten), under the union of
the columns, once.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from pydantic import TypeAdapter

from dragon.errors import DataError
from inference.payloads import flatten
from inference.schemas import Answer

_ANSWER = TypeAdapter(Answer)


@dataclass(frozen=True)
class BatchOutputRequest:
    batch_output_uri: str


@dataclass(frozen=True)
class BatchOutput:
    csv: list[str]
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def answers_csv(json_lines: str, source: str) -> tuple[str, int]:
    """The CSV of a transform job's JSON Lines output: one header, then one row per answer."""
    rows = []
    for number, line in enumerate(json_lines.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(flatten(_ANSWER.validate_json(line)))
            except ValueError as error:
                raise DataError(f"{source}: line {number} is not an answer ({error})") from error
    columns = list(dict.fromkeys(name for row in rows for name in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue(), len(rows)


def assemble_csv(request: BatchOutputRequest, s3: Any) -> BatchOutput:
    """Write a CSV beside each `<input>.out` under the job's output prefix."""
    parsed = urlparse(request.batch_output_uri)
    if parsed.scheme != "s3":
        raise DataError(f"batch output {request.batch_output_uri!r}: an s3:// prefix is needed")
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    written, total = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith(".out"):
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8")
            text, rows = answers_csv(body, f"s3://{bucket}/{item['Key']}")
            key = item["Key"].removesuffix(".out")  # SageMaker's <input name>.out
            key = key if key.endswith(".csv") else key + ".csv"
            s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ServerSideEncryption="AES256")
            written.append(f"s3://{bucket}/{key}")
            total += rows
    return BatchOutput(written, total)
