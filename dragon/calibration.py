"""What a version knows about its own uncertainty: `calibration.json` of a bundle.

Training measures it (training/calibration.py); the optimizer's bounds rest on it
(optimizer/chain.py). Three figures per model and one per tag:

* `interval_scale`: the factor that makes the GAM's 95 % prediction interval cover 95 % of
  hold-out rows. pygam's interval assumes independent residuals; plant residuals are
  autocorrelated and carry slow hidden drifts, so the raw interval is too narrow. The factor is
  a split-conformal quantile of the hold-out's standardised residuals (the hold-out is a later
  time block the fit never saw).
* `covariance_scale`: the factor on the coefficient covariance V. V ∝ scale², so it carries
  `interval_scale²`; autocorrelated residuals also carry less information than their row count
  says (effective rows n·(1-ρ)/(1+ρ) for a lag-one autocorrelation ρ), which inflates V by
  (1+ρ)/(1-ρ). The variance of a move's effect, (x(u) - x(u0))ᵀ V (x(u) - x(u0)), uses it.
* `state_residual_sd`: how far a measurement lies from the model fed the measured inputs of one
  state (root mean square over the hold-out, bias included): the yardstick of the sensor
  consistency check when the anchor is one reading (the plant taken as settled).
* `lagged_residual_sd`: the same at the model's lag-compensated inputs (dragon/dynamics.py): the
  yardstick when the anchor is measured against the lagged model over a timed recent window
  (optimizer/anchor.py). Transients no longer widen it, so a biased analyser shows sooner (README,
  "Robustness across histories").
* `measurement_noise[tag]`: the sd of a tag's high-frequency noise (first differences of the raw
  history, robust), the uncertainty of an anchor read from a single state. Never zero.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class ModelCalibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_scale: float = Field(gt=0, description="factor on the GAM's residual scale (prediction sd)")
    covariance_scale: float = Field(gt=0, description="factor on the GAM's coefficient covariance")
    residual_autocorrelation: float = Field(
        description="lag-one autocorrelation of the training residuals at the resample step"
    )
    state_residual_sd: float = Field(
        gt=0, description="RMS of measured - predicted from one state's measured inputs (target unit)"
    )
    lagged_residual_sd: float | None = Field(
        None,
        gt=0,
        description="RMS of measured - predicted at the model's lag-compensated inputs (target unit); "
        "None in bundles written before it: state_residual_sd stands in",
    )
    coverage_raw: float = Field(description="hold-out share inside pygam's 95 % prediction interval")
    coverage_calibrated: float = Field(
        description="hold-out share inside the calibrated 95 % interval, each time block scored with a "
        "scale calibrated on the other blocks (cross-conformal: no block calibrates itself)"
    )
    holdout_rows: int = Field(ge=0)


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    confidence: float = Field(0.95, description="the two-sided interval the scales are calibrated for")
    models: dict[str, ModelCalibration]
    measurement_noise: dict[str, float] = Field(
        description="tag -> sd of its high-frequency measurement noise, in the tag's unit"
    )

    repeat_share: dict[str, float] = Field(
        default_factory=dict,
        description="tag -> share of consecutive raw readings that repeat the one before (a live sensor "
        "near 0, a lab sample held between analyses near 1): which tags a stuck-sensor check may judge",
    )

    def noise(self, tag: str) -> float:
        return self.measurement_noise[tag]

    def consistency_sd(
        self, model: str, anchor_sd: float | np.ndarray, *, lag_compensated: bool = False
    ) -> float | np.ndarray:
        """The yardstick of the sensor consistency check: the sd of measured - predicted at one state, the
        model's residual and the anchor's own uncertainty together. A measurement further than
        `[optimizer] consistency_sigma` of these from its model disagrees with it. `lag_compensated`: the
        anchor was measured against the model at its lagged inputs (the lagged residual sd applies)."""
        calibration = self.models[model]
        residual_sd = calibration.state_residual_sd
        if lag_compensated and calibration.lagged_residual_sd is not None:
            residual_sd = calibration.lagged_residual_sd
        return np.hypot(residual_sd, anchor_sd)
