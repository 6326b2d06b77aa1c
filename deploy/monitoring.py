"""Monitoring a deployed version: data drift, model quality, and the retraining trigger.

A monitoring run judges a window — the endpoint's data capture or any table of plant states —
against the version's training baselines (dragon/drift.py), and, when measured targets are
there, each model's error against its training hold-out error. Its findings go to
`DRAGON_HOME/monitoring/<stamp>/` (Model Monitor's `constraint_violations.json`, a report,
plots) and to an MLflow run in the plant's experiment tagged with the monitored version. A
violation emits "Drift Detected" (EventBridge starts the training state machine on AWS; the
local runner can retrain at once), at most once per cool-down so one drift does not start ten
trainings.

Model error is the main retraining signal: drift in a slow disturbance or a fouling indicator
is hard to tell from a regime the training year also held, but a model that no longer fits
the plant shows it directly (fouling appears as concentration-model error).
"""

from __future__ import annotations

import fcntl
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dragon.bundle import Bundle
from dragon.drift import DriftReport, Violation
from dragon.errors import DataError, DragonError
from dragon.settings import Settings
from dragon.spec import DriftSettings, PlantSpec
from inference.capture import CaptureEvent

INFERENCE_TIME = "inference_time"
MODEL_VERSION = "model_version"
PREDICTED = "predicted."  # read_capture's column prefix: predicted.<model> = the served "current" value
MATCH_TOLERANCE = pd.Timedelta(minutes=30)  # a captured state and its measured target must be this close
QUALITY_MIN_ROWS = 30  # scored buckets a model needs before its error is judged
QUALITY_CHECK = "model_quality_check"
COOLDOWN_ENV = "DRAGON_RETRAIN_COOLDOWN_HOURS"
DEFAULT_COOLDOWN_HOURS = 24.0
LAST_TRIGGER = "last_trigger.json"


# --- reading the data capture ---------------------------------------------------------------------


def read_capture(capture_dir: Path, spec: PlantSpec) -> pd.DataFrame:
    """The captured requests under `capture_dir` (SageMaker data-capture JSON Lines, any depth;
    or one .jsonl file) as one row per plant state: its tags, `inference_time` (UTC),
    `model_version` and `predicted.<model>` per model of the answer.

    Bodies are decoded by inference/payloads.py exactly as the server decoded them (JSON state or
    instances, JSON Lines, CSV with or without a header row): answers pair with the states in
    order. A record the server could not read, and a request it refused as a whole, are left
    out; a capture with no readable state is a DataError."""
    from inference.capture import read_events

    events, skipped = read_events(Path(capture_dir))
    rows: list[dict[str, Any]] = []
    for event in events:
        try:
            rows.extend(_capture_rows(event, spec))
        except (ValueError, KeyError, TypeError, AttributeError, DataError):
            skipped += 1
    if not rows:
        raise DataError(
            f"{capture_dir}: {len(events)} capture event(s) but no readable plant state "
            f"({skipped} unreadable event(s) or line(s))"
        )
    from dragon.data import parse_timestamps

    frame = pd.DataFrame(rows)
    # the resolution every history's time column has, so that captured states join measured targets
    frame[INFERENCE_TIME] = parse_timestamps(pd.to_datetime(frame[INFERENCE_TIME], utc=True))
    return frame.sort_values(INFERENCE_TIME, kind="stable").reset_index(drop=True)


def _capture_rows(event: CaptureEvent, spec: PlantSpec) -> list[dict[str, Any]]:
    from inference import payloads

    request = payloads.decode(event.input_data.encode(), payloads.request_type(event.input_type), spec)
    answers = payloads.decode_answers(event.output_data.encode(), payloads.answer_type(event.output_type))
    if len(answers) != len(request.records):
        answers = [{}] * len(request.records)  # a refused request: nothing was served for its states
    rows = []
    for record, answer in zip(request.records, answers, strict=True):
        if record.raw is None or answer.get("status") == "error":
            continue
        row: dict[str, Any] = {tag: _number(value) for tag, value in record.raw.items()}
        row[INFERENCE_TIME] = event.time
        row[MODEL_VERSION] = str(answer.get(MODEL_VERSION) or "") or None
        for key, value in answer.items():
            model, _, field_name = key.removeprefix(PREDICTED).rpartition(".")
            if key.startswith(PREDICTED) and field_name == "current" and value not in ("", None):
                row[f"{PREDICTED}{model}"] = float(value)
        rows.append(row)
    return rows


def _number(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


# --- model quality ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelQuality:
    model: str
    target: str
    rows: int  # scored buckets
    rmse: float | None
    training_rmse: float
    ratio: float | None  # rmse / training_rmse
    status: str  # ok | degraded | insufficient
    unit: str = ""  # the target tag's unit (both RMSEs are in it)

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None or not math.isfinite(value) else round(value, 6)

        return {
            "target": self.target,
            "rows": self.rows,
            "rmse": rounded(self.rmse),
            "training_rmse": rounded(self.training_rmse),
            "ratio": rounded(self.ratio),
            "status": self.status,
        }


@dataclass(frozen=True)
class QualityReport:
    models: dict[str, ModelQuality]
    tolerance: float  # a model is degraded when rmse > (1 + tolerance) x training rmse
    source: str  # "capture" (served states joined to measured targets) or "history"
    bucket_minutes: float = 0.0  # errors are averaged over buckets this long (the spec's resample_minutes)

    @property
    def degraded(self) -> list[str]:
        return [name for name, quality in self.models.items() if quality.status == "degraded"]

    @property
    def violations(self) -> list[Violation]:
        return [
            Violation(
                q.target,
                QUALITY_CHECK,
                (
                    f"model '{name}': RMSE {q.rmse:.4g} {q.unit} is {q.ratio:.2f}x its training hold-out "
                    f"RMSE {q.training_rmse:.4g} {q.unit} (allowed {1 + self.tolerance:.2f}x over {q.rows} "
                    "scored buckets)"
                ),
            )
            for name, q in self.models.items()
            if q.status == "degraded"
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "tolerance": self.tolerance,
            "models": {name: quality.to_dict() for name, quality in self.models.items()},
            "violations": [v.to_dict() for v in self.violations],
        }


def model_quality(
    bundle: Bundle,
    captured: pd.DataFrame | None,
    actuals: pd.DataFrame,
    settings: DriftSettings | None = None,
) -> QualityReport:
    """Each model's error on the window against its training hold-out RMSE.

    With `captured` (read_capture), captured states are joined to the measured targets of
    `actuals` by time (nearest within MATCH_TOLERANCE). Without it, `actuals` is a plain
    history, scored as training scored its hold-out (_scored_history: lagged inputs for
    lag-compensated models); captured states are predicted from their measured inputs. Either way
    the raw GAM predicts (the served `current` is bias-corrected towards the very measurement it
    would be judged by; the served value is the fallback when inputs are missing), and predictions
    and targets are averaged over the spec's resample buckets, as training scored its hold-out."""
    spec = bundle.spec
    tolerance = (settings or spec.drift).error_growth_tolerance
    if captured is None:
        scored, source = _scored_history(actuals, spec), "history"
    else:
        scored, source = _matched_capture(captured, actuals, spec), "capture"
    time_column = spec.time_column
    bucket = scored[time_column].dt.floor(f"{spec.training.resample_minutes}min") if len(scored) else None
    models = {}
    for name in spec.model_order:
        target = spec.models[name].target
        unit = spec.tags[target].unit
        training_rmse = _training_rmse(bundle, name, source)
        predicted, measured = _predictions(bundle, name, scored), _column(scored, target)
        kept = np.isfinite(predicted) & np.isfinite(measured)
        if kept.sum():
            errors = pd.DataFrame(
                {"bucket": bucket[kept].to_numpy(), "p": predicted[kept], "y": measured[kept]}
            )
            means = errors.groupby("bucket").mean()
            residual = (means["y"] - means["p"]).to_numpy()
        else:
            residual = np.empty(0)
        if residual.size < QUALITY_MIN_ROWS or not math.isfinite(training_rmse) or training_rmse <= 0:
            rmse = float(np.sqrt(np.mean(residual**2))) if residual.size else None
            models[name] = ModelQuality(
                name, target, int(residual.size), rmse, training_rmse, None, "insufficient", unit
            )
            continue
        rmse = float(np.sqrt(np.mean(residual**2)))
        ratio = rmse / training_rmse
        status = "degraded" if ratio > 1.0 + tolerance else "ok"
        models[name] = ModelQuality(
            name, target, int(residual.size), rmse, training_rmse, ratio, status, unit
        )
    return QualityReport(models, tolerance, source, spec.training.resample_minutes)


def _column(frame: pd.DataFrame, tag: str) -> np.ndarray:
    if tag not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[tag], errors="coerce").to_numpy(dtype=float, na_value=np.nan, copy=True)


def _training_rmse(bundle: Bundle, name: str, source: str) -> float:
    """The hold-out RMSE to compare with: captured states are single states predicted from their
    measured inputs, so they compare with the hold-out fed the same (bundles before lag compensation
    have only `rmse`)."""
    metrics = bundle.metrics.get("models", {}).get(name, {})
    if source == "capture" and "rmse_measured_inputs" in metrics:
        return float(metrics["rmse_measured_inputs"])
    return float(metrics.get("rmse", math.nan))


def _predictions(bundle: Bundle, name: str, scored: pd.DataFrame) -> np.ndarray:
    """The GAM's predictions from the columns training scored it on (lagged inputs, see
    _scored_history) when the rows carry them, else from the measured inputs (captured states)."""
    from dragon.dynamics import model_inputs

    features = model_inputs(bundle.spec, name)
    if not all(column in scored for column in features):
        features = bundle.spec.models[name].features
    derived = bundle.spec.derived_features  # a state estimate the model reads, from its tags
    columns = [
        derived[tag].evaluate_columns({t: _column(scored, t) for t in derived[tag].inputs})
        if tag in derived and tag not in scored
        else _column(scored, tag)
        for tag in features
    ]
    X = np.column_stack(columns).reshape(len(scored), len(features))
    complete = np.isfinite(X).all(axis=1)
    predicted = _column(scored, f"{PREDICTED}{name}")  # the served value, where inputs are missing
    if complete.any():
        predicted[complete] = bundle.gams[name].predict(X[complete])
    return predicted


def _scored_history(history: pd.DataFrame, spec: PlantSpec) -> pd.DataFrame:
    """The rows training would have scored, with the lagged inputs of lag-compensated models: complete
    targets, steady state (spec.steady_state), lagged inputs settled (dragon/dynamics.py)."""
    from training.transforms import lags_settling, steady_state_mask, with_lagged_inputs

    frame = _with_times(history, spec.time_column, "history")
    targets = [t for t in spec.model_targets.values() if t in frame]
    frame = frame.dropna(subset=targets).reset_index(drop=True)
    if len(frame) < 2:
        return frame
    try:
        scored = steady_state_mask(frame, spec) & ~lags_settling(frame, spec)
    except DataError:
        return frame.iloc[0:0]  # no steady-state tags in the window: nothing to score like training did
    return with_lagged_inputs(frame, spec).loc[scored].reset_index(drop=True)


def _matched_capture(captured: pd.DataFrame, actuals: pd.DataFrame, spec: PlantSpec) -> pd.DataFrame:
    """Captured states with the measured targets nearest in time (within MATCH_TOLERANCE)."""
    time_column = spec.time_column
    targets = list(dict.fromkeys(spec.model_targets.values()))
    if INFERENCE_TIME not in captured:
        raise DataError(f"captured states have no '{INFERENCE_TIME}' column (read them with read_capture)")
    states = captured.drop(columns=[t for t in targets if t in captured]).sort_values(INFERENCE_TIME)
    measured = _with_times(actuals, time_column, "actuals")
    measured = measured[[time_column, *[t for t in targets if t in measured]]].dropna(subset=[time_column])
    measured = measured.sort_values(time_column).rename(columns={time_column: "_measured_at"})
    joined = pd.merge_asof(
        states,
        measured,
        left_on=INFERENCE_TIME,
        right_on="_measured_at",
        direction="nearest",
        tolerance=MATCH_TOLERANCE,
    )
    joined[time_column] = joined[INFERENCE_TIME]
    return joined


def _with_times(frame: pd.DataFrame, time_column: str, what: str) -> pd.DataFrame:
    from dragon.data import parse_timestamps

    if time_column not in frame:
        raise DataError(
            f"{what}: no time column '{time_column}' (the plant spec's [plant] time_column names it)"
        )
    out = frame.copy()
    out[time_column] = parse_timestamps(out[time_column])
    return out.dropna(subset=[time_column]).sort_values(time_column, kind="stable").reset_index(drop=True)


# --- the trigger --------------------------------------------------------------------------------


def cooldown_hours() -> float:
    raw = os.environ.get(COOLDOWN_ENV)
    if raw is None:
        return DEFAULT_COOLDOWN_HOURS
    try:
        hours = float(raw)
    except ValueError:
        hours = -1.0
    if not math.isfinite(hours) or hours < 0:
        raise DragonError(f"{COOLDOWN_ENV}={raw!r}: give the retraining cool-down in hours (a number >= 0)")
    return hours


def trigger_retraining(
    settings: Settings, plant_name: str, version: str, reason: str, *, data_uri: str = ""
) -> bool:
    """Emit "Drift Detected" unless this plant triggered within the cool-down; True if it did.

    The last trigger per plant lives in DRAGON_HOME/monitoring/last_trigger.json, checked and
    written under a file lock so that concurrent monitoring runs trigger once."""
    from deploy.events import DRIFT_DETECTED, SOURCE_MONITORING, drift_detail, emit_event

    folder = settings.home / "monitoring"
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / LAST_TRIGGER
    now = datetime.now(UTC)
    with open(folder / f"{LAST_TRIGGER}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            triggers = json.loads(state_path.read_text()) if state_path.is_file() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            triggers = {}  # a damaged record must not block retraining forever
        last = triggers.get(plant_name)
        if last is not None:
            elapsed = now - datetime.fromisoformat(last["time"])
            if elapsed < timedelta(hours=cooldown_hours()):
                return False
        emit_event(
            settings,
            DRIFT_DETECTED,
            drift_detail(plant_name, version, reason, data_uri),
            source=SOURCE_MONITORING,
        )
        triggers[plant_name] = {"time": now.isoformat(), "version": version, "reason": reason}
        partial = state_path.with_suffix(".part")
        partial.write_text(json.dumps(triggers, indent=2))
        os.replace(partial, state_path)
    return True


# --- one monitoring run -------------------------------------------------------------------------


@dataclass
class MonitoringResult:
    drift: bool  # any violation: data drift, data quality or model error growth
    report: DriftReport
    quality: QualityReport | None
    violations: list[Violation]
    triggered: bool  # a "Drift Detected" event was emitted (not within the cool-down)
    reason: str
    artifacts: Path
    version: str
    run_id: str | None = None
    retraining: Any = None  # deploy.local_runner.TrainingRun when retrain_data was given and it triggered
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The `monitor --json` object: the drift report's keys, plus `quality`."""
        payload = self.report.to_dict()
        if self.quality is not None:
            payload["quality"] = self.quality.to_dict()
        return payload


class Trigger(Protocol):
    """What a violation calls: emit "Drift Detected" (once per cool-down locally); True if it did."""

    def __call__(
        self, settings: Settings, plant_name: str, version: str, reason: str, *, data_uri: str = ""
    ) -> bool: ...


def version_bundle(
    settings: Settings, plant_name: str, version: str | None, scratch: Path
) -> tuple[Bundle, str]:
    """A registered version's bundle (default: champion), read where every process can read it: the
    model.tar.gz it was registered from (S3 on AWS, by its model_data_url), else the registry's copy."""
    from deploy.steps import bundle_uri
    from deploy.storage import fetch_bundle
    from dragon.bundle import load_bundle
    from dragon.registry import get_version

    info = get_version(settings, plant_name, version)
    return load_bundle(fetch_bundle(bundle_uri(info), scratch)), info.version


def monitor_window(
    settings: Settings,
    plant_name: str,
    version: str | None,
    window: Path | pd.DataFrame,
    *,
    capture: bool = False,
    actuals: Path | pd.DataFrame | None = None,
    retrain_data: Path | None = None,
    period: tuple[datetime, datetime] | None = None,
    trigger: Trigger | None = None,
    data_uri: str = "",
) -> MonitoringResult:
    """Judge a window against a registered version (default: champion), record it, and trigger.

    `window`: a history table (path or frame) or, with `capture=True`, a data-capture folder.
    `actuals`: measured targets arriving later (a history) to score captured predictions;
    without it, the targets in the window itself are used. `retrain_data`: when the run
    triggers, retrain on this history at once through the local training workflow.
    `period` (start, end): only captured states served in it (a Model Monitor job's window;
    SageMaker may hand over more hours than the window). `trigger`: what a violation calls
    (default: the local event folder with its cool-down; the monitor container publishes to
    EventBridge), naming `data_uri` as the history to retrain on."""
    from dragon.drift import analyse_drift

    with tempfile.TemporaryDirectory(prefix="dragon-monitor-") as scratch:
        bundle, version = version_bundle(settings, plant_name, version, Path(scratch))
    spec = bundle.spec
    if capture:
        if isinstance(window, pd.DataFrame):
            states = window
        else:
            states = read_capture(Path(window), spec)
        if period is not None:
            states = _served_in(states, *period)
        # Without --actuals, the targets the captured states carry are scored at their own time.
        served = states.drop(columns=[spec.time_column], errors="ignore")
        measured = served.rename(columns={INFERENCE_TIME: spec.time_column}) if actuals is None else None
        measured = _table(actuals, spec) if measured is None else measured
        frame, time_column = states, INFERENCE_TIME
        # A served state need not carry optional tags (a target no model reads): judge what it holds.
        baselines = {
            t: b for t, b in bundle.baselines.items() if t in states or t in spec.required_state_tags
        }
    else:
        frame = _table(window, spec)
        measured, time_column, baselines = frame, spec.time_column, bundle.baselines
    report = analyse_drift(baselines, frame, spec.drift, spec.tags, time_column=time_column)
    has_targets = any(t in measured for t in spec.model_targets.values())
    quality = None
    if has_targets:
        quality = model_quality(bundle, states if capture else None, measured, spec.drift)
    violations = [*report.violations, *(quality.violations if quality else [])]
    reason = _reason(report, quality)
    source = "capture" if capture else ("frame" if isinstance(window, pd.DataFrame) else str(window))
    artifacts = _write_artifacts(
        settings, bundle, frame, report, quality, violations, reason, version, source
    )
    run_id = _log_run(settings, plant_name, version, report, quality, violations, artifacts, source)
    triggered, retraining = False, None
    if violations:
        data_uri = data_uri or str(
            retrain_data or ("" if capture or isinstance(window, pd.DataFrame) else window)
        )
        triggered = (trigger or trigger_retraining)(settings, plant_name, version, reason, data_uri=data_uri)
        if triggered and retrain_data is not None:
            retraining = _retrain_now(settings, Path(retrain_data))
    return MonitoringResult(
        bool(violations),
        report,
        quality,
        violations,
        triggered,
        reason,
        artifacts,
        version,
        run_id,
        retraining,
    )


class NothingServed(DataError):
    """The endpoint served no state in the monitored period: nothing to judge."""


def _served_in(states: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    served = states[(states[INFERENCE_TIME] >= start) & (states[INFERENCE_TIME] < end)]
    if served.empty:
        raise NothingServed(
            f"no captured state served between {start.isoformat()} and {end.isoformat()} "
            f"({len(states)} captured outside it)"
        )
    return served.reset_index(drop=True)


def _table(window: Path | pd.DataFrame, spec: PlantSpec) -> pd.DataFrame:
    from dragon.data import read_history

    return window.copy() if isinstance(window, pd.DataFrame) else read_history(Path(window), spec)


def _reason(report: DriftReport, quality: QualityReport | None) -> str:
    parts = []
    if report.violations:
        parts.append(report.verdict)
    if quality and quality.degraded:
        parts.append(
            "model error grew: "
            + ", ".join(f"{name} {quality.models[name].ratio:.2f}x" for name in quality.degraded)
        )
    if parts:
        return "; ".join(parts)
    return report.verdict if report.verdict else "no drift"


def _retrain_now(settings: Settings, data: Path):
    """The local stand-in for the EventBridge rule: consume the drift event, run the training workflow."""
    from deploy.events import DRIFT_DETECTED_PATTERN, mark_handled, pending_events
    from deploy.local_runner import run_training_pipeline

    for event in pending_events(settings, DRIFT_DETECTED_PATTERN):
        mark_handled(settings, event)
    return run_training_pipeline(settings, data, auto_deploy=True)


def _write_artifacts(
    settings: Settings,
    bundle: Bundle,
    frame: pd.DataFrame,
    report: DriftReport,
    quality: QualityReport | None,
    violations: list[Violation],
    reason: str,
    version: str,
    source: str,
) -> Path:
    from rich.console import Console

    from dragon.drift_plots import plot_drift
    from dragon.model_monitor import constraint_violations

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = settings.home / "monitoring" / stamp
    folder.mkdir(parents=True, exist_ok=True)
    violations_json = json.dumps(constraint_violations(violations), indent=2)
    (folder / "constraint_violations.json").write_text(violations_json)
    summary = {
        "plant_name": bundle.spec.name,
        "version": version,
        "window": source,
        "reason": reason,
        "verdict": report.verdict,
        **report.to_dict(),
        "quality": quality.to_dict() if quality else None,
    }
    (folder / "report.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render_monitoring(report, quality, reason))
    (folder / "report.txt").write_text(console.export_text())
    plot_drift(bundle.baselines, frame, report, folder, {tag: t.unit for tag, t in bundle.spec.tags.items()})
    return folder


def _log_run(
    settings: Settings,
    plant_name: str,
    version: str,
    report: DriftReport,
    quality: QualityReport | None,
    violations: list[Violation],
    artifacts: Path,
    source: str,
) -> str:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from dragon.registry import experiment_id

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    tags = {"monitored.version": version, "dragon.run_kind": "monitoring", "monitored.window": source[:250]}
    run = client.create_run(
        experiment_id(settings, plant_name), run_name=f"monitor-{plant_name}-v{version}", tags=tags
    )
    run_id = run.info.run_id
    stamp = int(datetime.now(UTC).timestamp() * 1000)
    values = {
        "drift": float(report.drift),
        "violations": float(len(violations)),
        "window_rows": float(report.window_rows),
    }
    for tag, feature in report.features.items():
        for name in ("psi", "ks"):
            value = getattr(feature, name)
            if value is not None:
                values[f"drift.{tag}.{name}"] = value
    if quality:
        for name, item in quality.models.items():
            if item.ratio is not None:
                values[f"quality.{name}.rmse_ratio"] = item.ratio
                values[f"quality.{name}.rmse"] = item.rmse
    metrics = [Metric(key, float(value), stamp, 0) for key, value in values.items() if math.isfinite(value)]
    client.log_batch(run_id, metrics=metrics)
    client.log_artifacts(run_id, str(artifacts), "monitoring")
    client.set_terminated(run_id)
    return run_id


# --- human output ------------------------------------------------------------------------------


def render_monitoring(report: DriftReport, quality: QualityReport | None, reason: str):
    """A rich renderable: the drift report, then each model's error against training, then the
    verdict when model error adds to it."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from dragon.drift_report import render_drift_report
    from dragon.tables import COMPACT, legend

    parts = [render_drift_report(report)]
    if quality is not None:
        table = Table(
            title=f"model error against training ({quality.source})", title_justify="left", **COMPACT
        )
        for column in ("model", "target"):
            table.add_column(column, overflow="fold")
        for column in ("n", "RMSE", "train RMSE", "ratio", "status"):
            table.add_column(
                column, justify="left" if column == "status" else "right", no_wrap=True, min_width=len(column)
            )
        for name, item in quality.models.items():
            style = {"ok": "green", "degraded": "bold red"}.get(item.status, "dim")
            table.add_row(
                name,
                item.target,
                str(item.rows),
                _show(item.rmse, 3, unit=item.unit),
                _show(item.training_rmse, 3, unit=item.unit),
                _show(item.ratio, 2, unit="x"),
                Text(item.status, style=style),
            )
        parts.append(table)
        parts.append(
            legend(
                f"RMSE of the window and train RMSE of the training hold-out, in the target's unit, over n "
                f"buckets of {quality.bucket_minutes:g} min; ratio: RMSE over train RMSE; degraded above "
                f"{1 + quality.tolerance:.2f}x, insufficient below {QUALITY_MIN_ROWS} buckets"
            )
        )
        parts.extend(
            Text(f"  {v.kind}  {v.feature}: {v.description}", style="red") for v in quality.violations
        )
    if reason != report.verdict:  # model error adds to the drift verdict printed above
        parts.append(Text(reason, style="bold"))
    return Group(*parts)


def _show(value: float | None, digits: int = 4, *, unit: str = "") -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}g} {unit}".rstrip()
