"""Log a training to the experiment catalog and register its bundle (MLflow).

Every run records the git commit and a dirty flag, the whole-file data sha256, the
lock sha256, the plant spec, parameters, metrics, the data and training reports
and plots. The bundle is built in a scratch folder first; only a complete,
verified bundle becomes a registry version, so a failed or killed training leaves
no half version behind. A failed run is marked FAILED on the way out (SIGTERM, as
SageMaker and `kill` send it, too); a run whose process was killed outright
(SIGKILL, a lost Lambda) is marked FAILED by the next training of the plant, and
the scratch folders of dead trainings are removed then.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dragon.bundle import load_bundle
from dragon.registry import experiment_id, is_local, local_path, register_bundle
from dragon.settings import Settings
from dragon.spec import PlantSpec
from training.pipeline import ProgressCallback, train_bundle


def _metric_items(summary: dict) -> dict[str, float]:
    """Flatten the summary's numbers into MLflow metric names (model.metric)."""
    flat: dict[str, float] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            flat[prefix] = float(value)

    walk("", summary)
    return flat


#: Run tags naming the process that records the run: how the next training tells an abandoned run.
PID_TAG, HOST_TAG = "dragon.pid", "dragon.host"
#: A run still RUNNING after this long from another host is abandoned: recording takes minutes at most.
ABANDONED_AFTER_S = 3600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_abandoned_runs(client, experiment: str) -> list[str]:
    """Mark FAILED the plant's runs left RUNNING by a process that is gone: on this host, one whose pid
    no longer lives; elsewhere (a Lambda, another machine), one started over ABANDONED_AFTER_S ago."""
    from mlflow.entities import ViewType

    now_ms, host, failed = time.time() * 1000, socket.gethostname(), []
    runs = client.search_runs(
        [experiment], filter_string="attributes.status = 'RUNNING'", run_view_type=ViewType.ACTIVE_ONLY
    )
    for run in runs:
        tags = run.data.tags
        if tags.get(HOST_TAG) == host and tags.get(PID_TAG, "").isdigit():
            abandoned = not _alive(int(tags[PID_TAG])) and int(tags[PID_TAG]) != os.getpid()
        else:
            abandoned = now_ms - run.info.start_time > ABANDONED_AFTER_S * 1000
        if abandoned:
            client.set_tag(run.info.run_id, "failure", "abandoned: its process ended before the run did")
            client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(run.info.run_id)
    return failed


@contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM (SageMaker's StopTrainingJob, `kill`) ends the process through SystemExit, so that `finally`
    and `except BaseException` run: the run is marked FAILED and scratch folders are removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def scratch_folder(settings: Settings) -> tempfile.TemporaryDirectory:
    """A scratch folder named after this process, after removing those of trainings that died (SIGKILL)."""
    root = settings.home / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    for folder in root.glob("train-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    return tempfile.TemporaryDirectory(dir=root, prefix=f"train-{os.getpid()}-")


def record_training(
    settings: Settings,
    bundle_dir: Path,
    *,
    report_dir: Path | None = None,
    params: dict | None = None,
    data_files: list[str] | None = None,
    extra_tags: dict[str, str] | None = None,
) -> dict:
    """Log a finished bundle as an MLflow run and register it; return the `train --json` object.

    Used in-process by `dragon train` and by the register step after a (container) training job.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    bundle = load_bundle(bundle_dir)  # verifies every hash before anything is recorded
    spec, manifest = bundle.spec, bundle.manifest
    summary = {
        key: bundle.metrics[key]
        for key in ("models", "detectors", "gate", "quality", "data")
        if key in bundle.metrics
    }
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = experiment_id(settings, spec.name)
    fail_abandoned_runs(client, experiment)
    owner = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    run_id = client.create_run(experiment, run_name=f"train-{spec.name}", tags=owner).info.run_id
    provenance = manifest.provenance
    try:
        tags = {
            "mlflow.source.git.commit": provenance["git_commit"],
            "git.dirty": str(provenance["git_dirty"]).lower(),
            "git.repository": provenance["git_repository"],
            "data.sha256": provenance["data_sha256"],
            "lock.sha256": provenance["lock_sha256"],
            "data.files": ", ".join(data_files or []),
            "plant": spec.name,
            **(extra_tags or {}),
        }
        # One batch: each separate log call is a database commit (~30 ms each on SQLite).
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(key, value, now, 0) for key, value in _metric_items(summary).items()],
            params=[
                Param(key, value if isinstance(value, str) else json.dumps(value))
                for key, value in (params or {}).items()
            ],
            tags=[RunTag(key, str(value)) for key, value in tags.items()],
        )
        client.log_text(run_id, spec.source_text, "plant.toml")
        client.log_dict(run_id, bundle.metrics.get("data_report", {}), "data_report.json")
        if report_dir is not None and report_dir.is_dir():
            client.log_artifacts(run_id, str(report_dir), "report")
        info = register_bundle(
            settings,
            spec.name,
            run_id,
            bundle_dir,
            tags={"data.sha256": provenance["data_sha256"], "git.commit": provenance["git_commit"]},
            quality_failures=summary.get("quality", {}).get("failures"),
        )
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    location = str(local_path(info.source)) if is_local(info.source) else info.source
    from training.report import REPORT_FILE

    report = None
    if report_dir is not None and (report_dir / REPORT_FILE).is_file():
        report = client.get_run(run_id).info.artifact_uri.rstrip("/") + f"/report/{REPORT_FILE}"
        report = str(local_path(report)) if is_local(report) else report
    return {"version": info.version, "run_id": run_id, "bundle": location, "report": report, **summary}


def train_and_register(
    data_files: list[Path], spec: PlantSpec, settings: Settings, *, progress: ProgressCallback | None = None
) -> dict:
    """Run the whole training in-process and register the bundle."""
    with terminate_as_exit(), scratch_folder(settings) as scratch:
        bundle_dir, report_dir = Path(scratch) / "bundle", Path(scratch) / "report"
        kwargs = {"progress": progress} if progress else {}
        outcome = train_bundle(data_files, spec, bundle_dir, report_dir, **kwargs)
        return record_training(
            settings,
            bundle_dir,
            report_dir=report_dir,
            params=outcome.params,
            data_files=[str(p) for p in data_files],
        )
