"""The `transform` container entry point: the training workflow's transform as an ECS Fargate task.

A history larger than the plant's `[training] fargate_above_mb` is transformed here rather than in the
transform Lambda (deploy/data_lake.py decides, the training state machine's TransformWhere chooses). The
task runs the project's image with the command `transform`; the workflow passes the step's input (a
deploy.steps.TransformInput, JSON) in the container's DRAGON_TRANSFORM environment variable. The task
writes the table and its receipt to S3 like the Lambda does; when it fails, the receipt holds the reason,
which the workflow's next step raises as the step's error, so the run records one clear message.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from deploy import steps
from dragon.errors import DragonError

REQUEST_ENV = "DRAGON_TRANSFORM"


def request_from_environment() -> steps.TransformInput:
    from deploy.lambdas import parse_input

    text = os.environ.get(REQUEST_ENV)
    if not text:
        raise DragonError(f"transform: the task's environment lacks {REQUEST_ENV} (the step's input, JSON)")
    try:
        request = json.loads(text)
    except json.JSONDecodeError as error:
        raise DragonError(f"transform: {REQUEST_ENV} is not JSON ({error})") from None
    if not isinstance(request, dict):
        raise DragonError(f"transform: {REQUEST_ENV} must be a JSON object, not {type(request).__name__}")
    return parse_input(steps.TransformInput, request)


def _record_failure(request: steps.TransformInput | None, error: BaseException) -> None:
    """Leave the reason where the workflow reads the receipt (and where a person looks first)."""
    if request is None or not request.receipt_uri:
        return
    from deploy.storage import put_bytes

    message = str(error) if isinstance(error, DragonError) else f"{type(error).__name__}: {error}"
    receipt = {"error": message, "error_type": type(error).__name__, "source": request.data_uri}
    try:
        put_bytes(json.dumps(receipt).encode(), request.receipt_uri)
    except Exception as failed:  # the log keeps the reason even when S3 does not
        print(f"transform: could not write the receipt {request.receipt_uri}: {failed}", file=sys.stderr)


def main() -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    request = None
    try:
        request = request_from_environment()
        output = steps.transform(request)
    except DragonError as error:
        _record_failure(request, error)
        print(f"transform: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug: the traceback in the task's log, the reason in the receipt
        traceback.print_exc()
        _record_failure(request, error)
        return 1
    print(json.dumps({key: value for key, value in output.to_dict().items() if key != "report"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
