"""The `monitor` container entry point: a SageMaker Model Monitor job running the project's own image.

The endpoint stack's monitoring schedule (deploy/templates/endpoint.yaml, bring-your-own container) runs
`monitor` on a schedule. Model Monitor's container contract (its "Container Contract Inputs" page):

- `dataset_source`: the captured JSON Lines of the window, mounted from S3 as
  `<dataset_source>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl` (the schedule's EndpointInput LocalPath,
  /opt/ml/processing/input here); `start_time` and `end_time` bound the window (more hours may be there);
- `output_path`: where the job writes its reports, uploaded to S3 (/opt/ml/processing/output here):
  Model Monitor's `constraint_violations.json`, with our report and plots beside it;
- the processing job's failure message goes to /opt/ml/output/message.

The schedule adds the version it watches: DRAGON_PLANT_NAME, DRAGON_MODEL_VERSION, DRAGON_ENV, the
registry (DRAGON_TRACKING_URI, DRAGON_ARTIFACT_URI: the version's bundle and its baselines are read by its
model_data_url) and DRAGON_RETRAIN_DATA_URI, the history a drift-triggered training reads. The judging is
deploy/monitoring.py's, exactly as `dragon monitor --capture` does it; a violation publishes "Drift
Detected" to EventBridge, whose rule starts the training workflow (which enforces the cool-down).
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dragon.errors import DragonError

FAILURE_CHARS = 1024  # a processing job's FailureReason keeps the start of /opt/ml/output/message
INPUT_DIR = "/opt/ml/processing/input"
OUTPUT_DIR = "/opt/ml/processing/output"
MESSAGE_FILE = "/opt/ml/output/message"
VIOLATIONS_FILE = "constraint_violations.json"


@dataclass(frozen=True)
class MonitoringJob:
    """What one Model Monitor execution is given, from its environment."""

    plant_name: str
    version: str
    env: str
    dataset_source: Path
    output_path: Path
    period: tuple[datetime, datetime] | None
    retrain_data_uri: str
    message_file: Path

    @classmethod
    def from_environment(cls) -> MonitoringJob:
        env = os.environ
        missing = [key for key in ("DRAGON_PLANT_NAME", "DRAGON_MODEL_VERSION") if not env.get(key)]
        if missing:
            raise DragonError(f"monitor: the schedule's environment lacks {', '.join(missing)}")
        return cls(
            plant_name=env["DRAGON_PLANT_NAME"],
            version=env["DRAGON_MODEL_VERSION"],
            env=env.get("DRAGON_ENV", "dev"),
            dataset_source=Path(env.get("dataset_source", INPUT_DIR)),
            output_path=Path(env.get("output_path", OUTPUT_DIR)),
            period=_period(env.get("start_time"), env.get("end_time")),
            retrain_data_uri=env.get("DRAGON_RETRAIN_DATA_URI", ""),
            message_file=Path(env.get("DRAGON_MESSAGE_FILE", MESSAGE_FILE)),
        )


def _period(start: str | None, end: str | None) -> tuple[datetime, datetime] | None:
    """Model Monitor's window, e.g. 2019-12-01T15:20:00Z (its own example writes '16: 20: 00Z')."""
    if not start or not end:
        return None
    try:
        bounds = tuple(
            datetime.fromisoformat(value.replace(" ", "").replace("Z", "+00:00")) for value in (start, end)
        )
    except ValueError as error:
        raise DragonError(
            f"monitor: start_time={start!r} / end_time={end!r}: not ISO-8601 times ({error})"
        ) from None
    return bounds  # type: ignore[return-value]


def run(job: MonitoringJob) -> dict:
    """Judge the window, write the reports to output_path; returns the summary the job logs."""
    from deploy.events import publish_drift
    from deploy.monitoring import NothingServed, monitor_window
    from dragon.settings import load_settings

    if not any(job.dataset_source.rglob("*.jsonl")):
        return _no_traffic(job, f"no data capture under {job.dataset_source}")

    def trigger(settings, plant_name, version, reason, *, data_uri=""):
        return publish_drift(plant_name, job.env, version, reason, data_uri=data_uri)

    job.output_path.mkdir(parents=True, exist_ok=True)
    try:
        result = monitor_window(
            load_settings(),
            job.plant_name,
            job.version,
            job.dataset_source,
            capture=True,
            period=job.period,
            trigger=trigger,
            data_uri=job.retrain_data_uri,
        )
    except NothingServed as error:
        return _no_traffic(job, str(error))
    shutil.copytree(result.artifacts, job.output_path, dirs_exist_ok=True)
    return {
        "plant_name": job.plant_name,
        "version": result.version,
        "window_rows": result.report.window_rows,
        "violations": len(result.violations),
        "drift_event": result.triggered,
        "reason": result.reason,
    }


def _no_traffic(job: MonitoringJob, note: str) -> dict:
    """A window the endpoint served nothing in is not a failure: nothing to judge, nothing violated."""
    import json

    from dragon.model_monitor import constraint_violations

    job.output_path.mkdir(parents=True, exist_ok=True)
    (job.output_path / VIOLATIONS_FILE).write_text(json.dumps(constraint_violations([]), indent=2))
    return {"plant_name": job.plant_name, "version": job.version, "window_rows": 0, "note": note}


def main() -> int:
    import json

    message_file = Path(os.environ.get("DRAGON_MESSAGE_FILE", MESSAGE_FILE))
    try:
        job = MonitoringJob.from_environment()
        message_file = job.message_file
        summary = run(job)
        print(json.dumps(summary))
        return 0
    except DragonError as error:
        _fail(message_file, str(error))
        print(f"monitor: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the job must end with its reason, never hang or fail silently
        _fail(message_file, f"{type(error).__name__}: {error}")
        traceback.print_exc()
        return 1


def _fail(message_file: Path, text: str) -> None:
    try:
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_text(text[:FAILURE_CHARS])
    except OSError:
        pass  # outside a container /opt/ml may not be writable: stderr still says it


if __name__ == "__main__":
    sys.exit(main())
