"""Events that start workflows: the EventBridge patterns and the local event folder.

The patterns here are the single source of truth: `deploy/stack.py` writes them into the
CloudFormation template, and the local runner matches the events it finds under
`settings.events_dir` with `matches`, the same way EventBridge would on AWS.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dragon.settings import Settings

SOURCE_SAGEMAKER = "aws.sagemaker"
SOURCE_REGISTRY = "yet-dragon.registry"
SOURCE_MONITORING = "yet-dragon.monitoring"

MODEL_VERSION_REGISTERED = "Model Version Registered"
DRIFT_DETECTED = "Drift Detected"

DRIFT_DETECTED_PATTERN: dict[str, Any] = {
    "source": [SOURCE_MONITORING],
    "detail-type": [DRIFT_DETECTED],
}
#: The embedded default's stand-in for the Model Registry event: a registered version to deploy.
MODEL_VERSION_REGISTERED_PATTERN: dict[str, Any] = {
    "source": [SOURCE_REGISTRY],
    "detail-type": [MODEL_VERSION_REGISTERED],
}

#: Stand for the stack's own plant and endpoint in a rule's pattern: deploy/stack.py writes them as
#: CloudFormation expressions (STACK_VALUES), so that two projects' stacks on one event bus each react only
#: to their own plant and endpoint.
STACK_PLANT = "${PlantName}"
STACK_ENV = "${Environment}"
STACK_ENDPOINT = "${PlantName}-${Environment}"
STACK_VALUES = {
    STACK_PLANT: "!Ref PlantName",
    STACK_ENV: "!Ref Environment",
    STACK_ENDPOINT: '!Sub "${PlantName}-${Environment}"',
}

#: The endpoint was deleted, by the undeploy workflow or outside it (console, CLI, a failed creation's
#: rollback): the undeploy workflow then makes the registry agree (deployed.<env> removed).
ENDPOINT_DELETED_PATTERN: dict[str, Any] = {
    "source": [SOURCE_SAGEMAKER],
    "detail-type": ["SageMaker Endpoint State Change"],
    "detail": {"EndpointName": [STACK_ENDPOINT], "EndpointStatus": ["DELETING", "Deleting"]},
}

#: Rule name in the template -> pattern (stack.py renders these into deploy/templates/stack.yaml).
RULE_PATTERNS: dict[str, dict[str, Any]] = {
    "DriftDetectedRule": {
        **DRIFT_DETECTED_PATTERN,
        "detail": {"plant_name": [STACK_PLANT], "env": [STACK_ENV]},
    },
    "EndpointDeletedRule": ENDPOINT_DELETED_PATTERN,
}


def for_plant(pattern: dict[str, Any], plant_name: str, env: str = "dev") -> dict[str, Any]:
    """A rule's pattern as the stack of `plant_name` in `env` holds it."""
    text = json.dumps(pattern)
    for placeholder, value in (
        (STACK_ENDPOINT, f"{plant_name}-{env}"),
        (STACK_PLANT, plant_name),
        (STACK_ENV, env),
    ):
        text = text.replace(json.dumps(placeholder), json.dumps(value))
    return json.loads(text)


def emit_event(
    settings: Settings, detail_type: str, detail: dict[str, Any], *, source: str = SOURCE_REGISTRY
) -> Path:
    """Write an event file under settings.events_dir, whole then renamed: readers never see half of one."""
    now = datetime.now(UTC)
    event_id = str(uuid.uuid4())
    envelope = {
        "version": "0",
        "id": event_id,
        "source": source,
        "detail-type": detail_type,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "detail": detail,
    }
    settings.events_dir.mkdir(parents=True, exist_ok=True)
    # The timestamp prefix keeps a directory listing in emission order.
    path = settings.events_dir / f"{now.strftime('%Y%m%dT%H%M%S%f')}-{event_id}.json"
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(envelope, indent=2, default=str))
    os.replace(partial, path)
    return path


def drift_detail(
    plant_name: str, version: str, reason: str, data_uri: str = "", env: str = ""
) -> dict[str, Any]:
    """The "Drift Detected" event's detail, locally and on EventBridge (the stack's rule matches plant and
    environment, and hands data_uri to the training it starts)."""
    detail = {"plant_name": plant_name, "version": version, "reason": reason, "data_uri": data_uri}
    return {**detail, "env": env} if env else detail


def publish_drift(
    plant_name: str, env: str, version: str, reason: str, *, data_uri: str = "", events_client: Any = None
) -> bool:
    """Put "Drift Detected" on the account's default event bus (the monitor container on AWS). The
    cool-down is the training workflow's (deploy/retrain_cooldown.py): it holds however many monitors,
    schedules or people ask for a training."""
    import boto3

    client = events_client or boto3.client("events")
    answer = client.put_events(
        Entries=[
            {
                "Source": SOURCE_MONITORING,
                "DetailType": DRIFT_DETECTED,
                "Detail": json.dumps(drift_detail(plant_name, version, reason[:2000], data_uri, env)),
            }
        ]
    )
    if answer.get("FailedEntryCount"):
        entry = answer["Entries"][0]
        raise RuntimeError(
            f"EventBridge refused the drift event: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
        )
    return True


def pending_events(settings: Settings, pattern: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Events not handled yet (EventBridge envelopes), oldest first; with a pattern, only those it matches."""
    if not settings.events_dir.is_dir():
        return []
    events = [json.loads(p.read_text()) for p in sorted(settings.events_dir.glob("*.json"))]
    return [e for e in events if pattern is None or matches(pattern, e)]


def mark_handled(settings: Settings, event: dict[str, Any]) -> Path:
    """Move the event's file to events_dir/handled so that it is acted on once."""
    found = list(settings.events_dir.glob(f"*-{event['id']}.json"))
    if not found:
        raise FileNotFoundError(f"event {event['id']} is not pending in {settings.events_dir}")
    handled = settings.events_dir / "handled"
    handled.mkdir(parents=True, exist_ok=True)
    target = handled / found[0].name
    os.replace(found[0], target)
    return target


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge matching for the subset our patterns use: value lists, `prefix` and nested objects."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(expected, dict):
            if not isinstance(actual, dict) or not matches(expected, actual):
                return False
        elif not any(_matches_value(rule, actual) for rule in expected):
            return False
    return True


def _matches_value(rule: Any, actual: Any) -> bool:
    if isinstance(rule, dict):
        if set(rule) != {"prefix"}:
            raise ValueError(f"unsupported event pattern operator {sorted(rule)}")
        return isinstance(actual, str) and actual.startswith(rule["prefix"])
    return rule == actual
