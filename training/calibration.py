"""Calibrate a version's uncertainty on data the fit never saw (dragon/calibration.py says what).

* Interval scale, split-conformal on the hold-out period: the (1+1/n)·95 % quantile of the
  standardised hold-out residuals |y - ŷ| / sd, over the normal quantile of a two-sided 95 %
  interval. The coverage this gives on rows it did not calibrate on is measured cross-conformally:
  the hold-out is cut into contiguous time blocks and each block is scored with the scale the
  other blocks give (autocorrelated residuals make a random split flatter than the truth).
* Covariance scale: interval_scale² × (1+ρ)/(1-ρ), ρ the lag-one autocorrelation of the training
  residuals (clipped to [0, MAX_AUTOCORRELATION]): V assumed every row independent.
* Measurement noise per tag: the robust sd (1.4826·MAD) of first differences of the raw history
  over √2; held values (lab samples between analyses) are skipped, since a zero difference there
  is the hold, not the noise.
* Repeat share per tag: how often a raw reading repeats the one before; a tag that rarely repeats is a
  live sensor, whose exact repeats over a window mean it is stuck (optimizer/sensors.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from dragon.calibration import Calibration, ModelCalibration
from dragon.dynamics import model_input_matrix, model_inputs
from dragon.spec import PlantSpec

CONFIDENCE = 0.95
CALIBRATION_BLOCKS = 4  # contiguous hold-out blocks for the cross-conformal coverage
MAX_AUTOCORRELATION = 0.95  # caps the effective-rows inflation at 39x
MAD_TO_SD = 1.4826
NOISE_FLOOR_SHARE = 1e-4  # of the tag's valid span, when a tag shows no noise at all


def calibrate(
    spec: PlantSpec, gams: dict, train: pd.DataFrame, holdout: pd.DataFrame, raw: pd.DataFrame
) -> Calibration:
    """The calibration of fitted `gams` (train and hold-out as training/transforms.py selects them,
    `raw` the history as read, for the measurement noise)."""
    models = {name: _calibrate_model(spec, name, gams[name], train, holdout) for name in spec.model_order}
    tags = [tag for tag in spec.tags if tag in raw]
    return Calibration(
        confidence=CONFIDENCE,
        models=models,
        measurement_noise={tag: measurement_noise(raw, spec, tag) for tag in tags},
        repeat_share={tag: repeat_share(raw, tag) for tag in tags},
    )


def _calibrate_model(
    spec: PlantSpec, name: str, gam, train: pd.DataFrame, holdout: pd.DataFrame
) -> ModelCalibration:
    model = spec.models[name]
    X, y = _complete(model_input_matrix(holdout, spec, name), holdout[model.target].to_numpy(float))
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    sd = _prediction_sd(gam, X)
    standardised = np.abs(y - gam.predict(X)) / sd
    scale = conformal_scale(standardised)
    rho = _lag_one_autocorrelation(spec, name, gam, train)
    X_state, y_state = _complete(
        holdout[model.features].to_numpy(float), holdout[model.target].to_numpy(float)
    )
    state_residual = y_state - gam.predict(X_state)
    return ModelCalibration(
        interval_scale=scale,
        covariance_scale=scale**2 * (1.0 + rho) / (1.0 - rho),
        residual_autocorrelation=rho,
        state_residual_sd=_rms(state_residual),
        lagged_residual_sd=_rms(y - gam.predict(X)),
        coverage_raw=float(np.mean(standardised <= z)),
        coverage_calibrated=cross_conformal_coverage(standardised),
        holdout_rows=len(y),
    )


def consistency_flags(
    spec: PlantSpec, gams: dict, calibration: Calibration, rows: pd.DataFrame
) -> np.ndarray:
    """Rows on which the recommender's sensor consistency check would block (optimizer/recommender.py):
    some model's measured target lies further than `[optimizer] consistency_sigma` consistency sd from
    its model. Rows that carry the model's lag-compensated inputs (training/transforms.py adds them to a
    history) are read as the recommender reads a state with its timed recent window: the model at its
    lagged inputs, against the lagged residual sd (the row, a bucket mean, carries little noise of its
    own). Other rows are read as single states: the model at the row's inputs, the anchor sd the target's
    measurement noise. A row missing a model's input or target is not judged by that model, nor is any
    row by a model whose `consistency_check` is off. The gate's
    figures count these rows with the detectors' (training/detectors.py: evaluate_gate)."""
    flags = np.zeros(len(rows), dtype=bool)
    sigma = spec.optimizer.consistency_sigma
    if sigma == 0 or rows.empty:
        return flags
    for name in spec.model_order:
        model = spec.models[name]
        if not model.consistency_check:
            continue
        lagged = all(column in rows for column in model_inputs(spec, name))
        if model.target not in rows or not (lagged or all(f in rows for f in model.features)):
            continue
        X = model_input_matrix(rows, spec, name) if lagged else rows[model.features].to_numpy(float)
        y = rows[model.target].to_numpy(float)
        judged = np.isfinite(X).all(axis=1) & np.isfinite(y)
        if not judged.any():
            continue
        anchor_sd = 0.0 if lagged else calibration.noise(model.target)
        sd = calibration.consistency_sd(name, anchor_sd, lag_compensated=lagged)
        flags[judged] |= np.abs(y[judged] - gams[name].predict(X[judged])) > sigma * sd
    return flags


def conformal_scale(standardised: np.ndarray) -> float:
    """The split-conformal factor on the sd: the ⌈(n+1)·95 %⌉-th smallest |residual|/sd over z."""
    n = len(standardised)
    rank = min(int(np.ceil((n + 1) * CONFIDENCE)), n)
    quantile = np.sort(standardised)[rank - 1]
    return max(float(quantile / stats.norm.ppf(0.5 + CONFIDENCE / 2)), 1e-6)


def cross_conformal_coverage(standardised: np.ndarray, blocks: int = CALIBRATION_BLOCKS) -> float:
    """Share of rows inside the calibrated interval when each contiguous block is scored with the scale
    calibrated on the other blocks."""
    parts = np.array_split(np.arange(len(standardised)), blocks)
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    inside = 0
    for part in parts:
        others = np.setdiff1d(np.arange(len(standardised)), part)
        inside += int(np.sum(standardised[part] <= z * conformal_scale(standardised[others])))
    return inside / max(len(standardised), 1)


def repeat_share(raw: pd.DataFrame, tag: str) -> float:
    """The share of `tag`'s consecutive readings that repeat the one before (optimizer/sensors.py)."""
    steps = np.diff(pd.to_numeric(raw[tag], errors="coerce").to_numpy(float))
    steps = steps[np.isfinite(steps)]
    return float(np.mean(steps == 0.0)) if len(steps) else 1.0


def measurement_noise(raw: pd.DataFrame, spec: PlantSpec, tag: str) -> float:
    """The sd of `tag`'s high-frequency noise in its unit (module docstring); never zero."""
    values = pd.to_numeric(raw[tag], errors="coerce").to_numpy(float)
    steps = np.diff(values)
    steps = steps[np.isfinite(steps) & (steps != 0.0)]
    low, high = spec.tags[tag].valid
    floor = NOISE_FLOOR_SHARE * (high - low)
    if len(steps) < 10:
        return floor
    mad = np.median(np.abs(steps - np.median(steps)))
    return max(float(MAD_TO_SD * mad / np.sqrt(2.0)), floor)


def _prediction_sd(gam, X: np.ndarray) -> np.ndarray:
    lower, upper = gam.prediction_intervals(X, width=CONFIDENCE).T
    return np.maximum((upper - lower) / (2.0 * stats.norm.ppf(0.5 + CONFIDENCE / 2)), 1e-12)


def _lag_one_autocorrelation(spec: PlantSpec, name: str, gam, train: pd.DataFrame) -> float:
    X, y = _complete(model_input_matrix(train, spec, name), train[spec.models[name].target].to_numpy(float))
    residual = y - gam.predict(X)
    if len(residual) < 3 or np.std(residual) == 0:
        return 0.0
    rho = float(np.corrcoef(residual[:-1], residual[1:])[0, 1])
    return float(np.clip(rho, 0.0, MAX_AUTOCORRELATION))


def _rms(residual: np.ndarray) -> float:
    return max(float(np.sqrt(np.mean(residual**2))), 1e-12)


def _complete(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kept = np.isfinite(X).all(axis=1) & np.isfinite(y)
    return X[kept], y[kept]
