"""Log a training to the experiment catalog and register its bundle (MLflow).

Every run records the git commit and a dirty flag, the whole-file data sha256, the
lock sha256, the plant spec, parameters, metrics, the data and training reports
and plots. The bundle is built in a scratch folder first; only a complete,
verified bundle becomes a registry version, so a failed or killed training leaves
no half version behind (its run is marked FAILED, or stays unfinished if killed).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
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
    run_id = client.create_run(experiment_id(settings, spec.name), run_name=f"train-{spec.name}").info.run_id
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
    scratch_root = settings.home / "scratch"
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_root) as scratch:
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
