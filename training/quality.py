"""Quality floors: does a trained version meet the plant's `[quality]` floors (dragon/spec.py: QualityFloors)?

Judged once, when the version is trained, from its hold-out figures; the verdict travels in the bundle's
metrics (`quality`) and the registry acts on it (dragon/registry.py): a version that fails is registered
for the record but rejected, never approved automatically and never champion, and the deploy workflow
refuses it unless forced with a reason (deploy/steps.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from dragon.calibration import Calibration
from dragon.spec import PlantSpec
from training.detectors import GateMetrics
from training.evaluation import GamMetrics


class QualityVerdict(BaseModel):
    """Whether a version meets its plant's floors, and each failing figure against its floor."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    failures: list[str] = []


def judge_quality(
    spec: PlantSpec, gam_metrics: Mapping[str, GamMetrics], gate: GateMetrics, calibration: Calibration
) -> QualityVerdict:
    """Every figure below (or above) its floor, e.g. "concentration: hold-out R² -1.32 < floor 0.2".

    The coverage floor judges the calibrated 95 % interval the optimizer's bounds use (training/
    calibration.py: each hold-out block scored with the scale the other blocks give), not pygam's raw
    interval, which assumes independent rows and covers far less on plant data.
    """
    failures = []
    for name, metrics in gam_metrics.items():
        floors = spec.quality.for_model(name)
        if floors.r2 is not None and not metrics.r2 >= floors.r2:  # a NaN R² fails too
            failures.append(f"{name}: hold-out R² {metrics.r2:.3g} < floor {floors.r2:g}")
        ratio = metrics.rmse_ratio
        if floors.rmse_ratio is not None and ratio is not None and ratio > floors.rmse_ratio:
            failures.append(
                f"{name}: hold-out RMSE {metrics.rmse:.4g} is {ratio:.3g} x naive persistence's "
                f"{metrics.rmse_persistence:.4g} > floor {floors.rmse_ratio:g} x"
            )
        coverage = calibration.models[name].coverage_calibrated
        if floors.coverage is not None and not coverage >= floors.coverage:
            failures.append(
                f"{name}: calibrated 95 % interval coverage {coverage:.1%} on the hold-out "
                f"< floor {floors.coverage:.0%}"
            )
    floors = spec.quality
    if floors.gate_recall is not None and gate.recall is not None and gate.recall < floors.gate_recall:
        failures.append(
            f"gate: recall {gate.recall:.1%} of process-episode rows < floor {floors.gate_recall:.0%}"
        )
    alarms = gate.false_alarm_rate
    if floors.false_alarm is not None and alarms is not None and alarms > floors.false_alarm:
        failures.append(f"gate: false alarms {alarms:.2%} of normal rows > floor {floors.false_alarm:.1%}")
    return QualityVerdict(passed=not failures, failures=failures)
