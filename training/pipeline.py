"""Training: transform → fit → evaluate → bundle (→ log and register, see training/catalog.py).

`train_bundle` is everything a SageMaker training job does: it reads a history,
fits the plant's GAMs and detectors, evaluates them on the hold-out period
and writes a verified bundle. It knows nothing of MLflow, so the container's
`train` entry point and the local pipeline run the very same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dragon.bundle import write_bundle
from dragon.data import read_history
from dragon.dynamics import model_input_matrix, model_inputs
from dragon.errors import DataError
from dragon.provenance import Provenance, collect_provenance
from dragon.spec import PlantSpec

STAGES = ("transform", "fit GAMs", "fit detectors", "evaluate", "write bundle")

# Called as progress(stage, advance, total) so the CLI can draw one bar per stage.
ProgressCallback = Callable[[str, int, int], None]


def _no_progress(stage: str, advance: int, total: int) -> None:
    return None


@dataclass
class TrainingOutcome:
    bundle_dir: Path
    summary: dict  # the `dragon train --json` shape, less version/run_id/bundle
    report_dir: Path
    provenance: Provenance
    params: dict = field(default_factory=dict)


def truth_path_for(data_path: Path) -> Path:
    """The simulator writes `<stem>.truth.<suffix>` beside a history."""
    return data_path.with_name(f"{data_path.stem}.truth{data_path.suffix}")


def _read_truth(data_path: Path, spec: PlantSpec) -> pd.DataFrame | None:
    path = truth_path_for(data_path)
    if not path.is_file():
        return None
    truth = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    time_column = spec.time_column
    if time_column in truth:
        truth[time_column] = pd.to_datetime(truth[time_column], utc=True)
    return truth


def train_bundle(
    data_files: list[Path],
    spec: PlantSpec,
    bundle_dir: Path,
    report_dir: Path,
    *,
    progress: ProgressCallback = _no_progress,
    seed: int = 0,
) -> TrainingOutcome:
    """Fit, evaluate and write one bundle from history files (concatenated in time order)."""
    from dragon.drift import compute_baselines
    from training.calibration import calibrate, consistency_flags
    from training.detectors import evaluate_gate, fit_detector, setpoints_beyond_reach
    from training.evaluation import evaluate_gam, plot_partial_dependence, plot_residuals
    from training.gam_fit import fit_gam
    from training.quality import judge_quality
    from training.report import write_training_report
    from training.transforms import prepare_training_data

    if not data_files:
        raise DataError("no history files to train on")
    frames = [read_history(path, spec) for path in data_files]
    truths = [_read_truth(path, spec) for path in data_files]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    truth = pd.concat(truths, ignore_index=True) if all(t is not None for t in truths) else None
    source = ", ".join(str(p) for p in data_files)

    progress("transform", 0, 1)
    data = prepare_training_data(frame, spec, truth=truth, source=source)
    progress("transform", 1, 1)

    gam_fits = {}
    for name in spec.model_order:
        model = spec.models[name]
        X = model_input_matrix(data.train, spec, name)
        y = data.train[model.target].to_numpy(float)
        gam_fits[name] = fit_gam(model, X, y)
        progress("fit GAMs", 1, len(spec.models))

    detectors = {}
    for name, detector_spec in spec.detectors.items():
        detectors[name] = fit_detector(
            detector_spec, data.detector_train, derived=spec.derived_features, seed=seed
        )
        progress("fit detectors", 1, max(len(spec.detectors), 1))

    report_dir.mkdir(parents=True, exist_ok=True)
    gam_metrics, plots = {}, {}
    units = {tag: spec.tags[tag].unit for tag in spec.tags} | {
        name: d.unit for name, d in spec.derived.items()
    }
    for name in spec.model_order:
        model, gam = spec.models[name], gam_fits[name].gam
        inputs = model_inputs(spec, name)
        gam_metrics[name] = evaluate_gam(name, model, gam, data.holdout, data.holdout_truth, inputs)
        plots[name] = [
            *plot_partial_dependence(name, model, gam, report_dir, units=units),
            plot_residuals(name, model, gam, data.holdout, report_dir, inputs=inputs, units=units),
        ]
        progress("evaluate", 1, len(spec.models) + 1)
    gams = {name: fit.gam for name, fit in gam_fits.items()}
    calibration = calibrate(spec, gams, data.train, data.holdout, frame)
    gate = evaluate_gate(
        detectors,
        data.detector_holdout,
        {
            "consistency": consistency_flags(spec, gams, calibration, data.detector_holdout),
            "beyond reach": setpoints_beyond_reach(spec, data.detector_holdout),
        },
    )
    quality = judge_quality(spec, gam_metrics, gate, calibration)
    progress("evaluate", 1, len(spec.models) + 1)

    summary = {
        "models": {
            name: {
                **gam_metrics[name].to_dict(),
                "fit_seconds": round(gam_fits[name].fit_seconds, 3),
                "n_rows": gam_fits[name].n_rows,  # rows fitted
                "holdout_rows": gam_metrics[name].n_rows,  # rows the metrics above were computed on
                "n_splines": gam_fits[name].n_splines,
                "edof": round(gam_fits[name].edof, 2),
                "interval_coverage_calibrated": calibration.models[name].coverage_calibrated,
                "interval_scale": calibration.models[name].interval_scale,
            }
            for name in spec.model_order
        },
        "detectors": {name: gate.detectors[name].to_dict() for name in detectors},
        "gate": gate.to_dict(),
        "quality": quality.model_dump(),
        "data": {"rows_in": data.report.rows_in, "rows_used": data.report.rows_used},
    }
    params = {f"{name}.lam": [float(v) for v in _flat(gam_fits[name].lam)] for name in spec.model_order} | {
        f"{name}.n_splines": gam_fits[name].n_splines for name in spec.model_order
    }

    write_training_report(
        report_dir,
        plant_name=spec.name,
        version=None,
        gam_metrics=gam_metrics,
        gam_fits=gam_fits,
        gate=gate,
        data_report=data.report.to_dict(),
        plots=plots,
    )
    provenance = collect_provenance(list(data_files))
    baseline_tags = [t for t in spec.used_tags if t in data.baseline_rows]
    write_bundle(
        bundle_dir,
        spec=spec,
        gams=gams,
        detectors=detectors,
        baselines=compute_baselines(data.baseline_rows, baseline_tags, time_column=spec.time_column),
        metrics={**summary, "data_report": data.report.to_dict(), "trained_at": time.time()},
        calibration=calibration,
        provenance=provenance,
    )
    progress("write bundle", 1, 1)
    return TrainingOutcome(bundle_dir, summary, report_dir, provenance, params)


def _flat(values) -> list:
    out = []
    for value in values if isinstance(values, list | tuple) else [values]:
        out.extend(_flat(value) if isinstance(value, list | tuple) else [value])
    return out
