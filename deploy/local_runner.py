"""The workflows on the embedded default: the same steps as the Step Functions state machines.

Training runs the container's `train` entry point in a subprocess over a temporary
/opt/ml-shaped folder, exactly as a SageMaker training job would; registering a
version emits an event that, with auto-deploy on, this runner turns into a
deployment run (EventBridge's job on AWS).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deploy import steps
from deploy.events import emit_event, mark_handled, pending_events
from deploy.local_endpoint import start_endpoint, stop_endpoint
from dragon.errors import DragonError
from dragon.registry import local_path
from dragon.settings import Settings
from dragon.spec import load_plant

REGISTERED_EVENT = "Model Version Registered"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class TrainingRun:
    version: str
    promote: bool
    reason: str
    approval: str
    summary: dict
    deployment: steps.TagOutput | None


def _training_job(data: Path, plant: Path | None, workdir: Path) -> tuple[Path, dict]:
    """Run `train` over an /opt/ml-shaped tree, as SageMaker does; return the model dir and summary."""
    from training.pipeline import truth_path_for

    train_channel = workdir / "input" / "data" / "train"
    train_channel.mkdir(parents=True)
    shutil.copy(data, train_channel / data.name)
    if truth_path_for(data).is_file():
        shutil.copy(truth_path_for(data), train_channel / truth_path_for(data).name)
    if plant is not None:
        (workdir / "input" / "data" / "config").mkdir(parents=True)
        shutil.copy(plant, workdir / "input" / "data" / "config" / "plant.toml")
    result = subprocess.run(
        [sys.executable, "-m", "training.entrypoint"],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(workdir)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        failure = workdir / "output" / "failure"
        reason = failure.read_text() if failure.is_file() else result.stderr[-1000:]
        raise DragonError(
            f"training job failed: {reason}", exit_code=result.returncode if result.returncode == 2 else 1
        )
    summary = json.loads((workdir / "output" / "data" / "summary.json").read_text())
    return workdir / "model", summary


def run_training_pipeline(
    settings: Settings,
    data: Path,
    *,
    plant: Path | None = None,
    env: str = "local",
    holdout: Path | None = None,
    approval_required: bool = False,
    auto_deploy: bool = False,
    port: int = DEFAULT_PORT,
) -> TrainingRun:
    """Train on `data`; the champion/challenger test compares on the hold-out period of `holdout`
    (default: of `data`) so the new and the deployed version are judged on the same rows."""
    spec = load_plant(plant)
    steps.transform(steps.TransformInput(str(data), str(plant) if plant else None))
    # The job's folder outlives it, as a SageMaker job's model.tar.gz does in S3: the version is registered
    # with this model dir as its model_data_url, which later comparisons and deployments read.
    jobs = settings.home / "training-jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=jobs, prefix="job-"))
    model_dir, summary = _training_job(data, plant, workdir)
    evaluation = steps.evaluate_challenger(
        steps.EvaluateInput(spec.name, str(model_dir), env, holdout_uri=str(holdout or data)), settings
    )
    registered = steps.register(
        steps.RegisterInput(
            str(model_dir), spec.name, approval_required=approval_required, promotion=evaluation.to_dict()
        ),
        settings,
    )
    emit_event(
        settings,
        REGISTERED_EVENT,
        {
            "ModelName": spec.name,
            "Version": registered.version,
            "Approval": registered.approval,
            "Promote": evaluation.promote,
            "Environment": env,
        },
    )
    deployment = process_events(settings, port=port) if auto_deploy else None
    return TrainingRun(
        registered.version, evaluation.promote, evaluation.reason, registered.approval, summary, deployment
    )


def process_events(settings: Settings, *, port: int = DEFAULT_PORT) -> steps.TagOutput | None:
    """Turn pending registration events into deployments, as the EventBridge rule does on AWS:
    only promoted, approved versions deploy."""
    deployed = None
    for event in pending_events(settings):
        detail = event.get("detail", {})
        if (
            event.get("detail-type") == REGISTERED_EVENT
            and detail.get("Promote")
            and detail.get("Approval") == "approved"
        ):
            deployed = run_deployment_pipeline(
                settings,
                detail["ModelName"],
                detail["Version"],
                env=detail.get("Environment", "local"),
                port=port,
            )
        mark_handled(settings, event)
    return deployed


def run_deployment_pipeline(
    settings: Settings,
    plant_name: str,
    version: str | None,
    *,
    env: str = "local",
    port: int = DEFAULT_PORT,
    force_reason: str = "",
) -> steps.TagOutput:
    resolved = steps.resolve_version(
        steps.ResolveInput(plant_name, env, version, force_reason=force_reason), settings
    )
    try:
        endpoint = start_endpoint(settings, env, resolved.version, local_path(resolved.bundle_uri), port)
    except DragonError as error:
        steps.record_failure(
            steps.FailureInput(plant_name, env, "EndpointFailed", error.message, resolved.version), settings
        )
        raise
    return steps.tag_deployment(steps.TagInput(plant_name, resolved.version, env, endpoint.url), settings)


def run_undeploy(settings: Settings, plant_name: str, *, env: str = "local") -> steps.TagOutput:
    stop_endpoint(settings, env)
    return steps.untag_deployment(steps.UntagInput(plant_name, env), settings)
