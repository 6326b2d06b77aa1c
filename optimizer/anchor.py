"""Where each model is anchored: how far its target's measurement sits from the model, de-noised and
aware of the moves that have not settled yet.

The bias update re-anchors model k on its measured target: b_k = y_k - f_k(x_k), and the target's settled
value at the current setpoints is f_k(x_k(u0)) + b_k (optimizer/chain.py). One reading is a poor y_k
for two reasons:

* noise: it carries the sensor's noise (an analyser's, a lab sample's), and near an active threshold
  that noise decides whether the bound holds;
* lags: the plant answers a move through first-order lags of hours (the spec's `lag_hours`). Right
  after a move the measurement still shows the old state; a bias taken against the current inputs
  credits the model with an error that is only the move's unshown effect, and the next move goes on
  top of the first (the closed-loop overshoot past a threshold).

So the bias is measured against what the reading answers to: f_k at the model's lag-compensated inputs
(dragon/dynamics.py, the inputs it was trained on), run over the recent window's history. The settled
value then includes the part of every earlier move that has not shown yet. The recommender predicts
the settled value rather than waiting for it: waiting 3 τ between moves (a day on a plant whose yield
answers in 8 h) would forfeit most of the gain, and the lag model is the one training already fits.

* a recent window with times (dragon/data.py: RecentWindow): residuals y_k(t) - f_k(L[x_k](t)) averaged
  over the window's last ANCHOR_HOURS and the state; the lags run over the whole window and take the
  plant for settled before its first row (a move older than the window is assumed settled: send a
  window that reaches back `max_window_hours`);
* a window without times: the same average without lag compensation (the plant taken as settled);
* one state only: that reading's residual; its sd is the tag's measurement noise estimated at training
  (dragon/calibration.py): never zero.

The sd of an average is the larger of the residuals' sample sd and the tag's measurement noise, over
√rows; the part of earlier moves that has not shown yet (the model's change from the lagged to the
current inputs, `unsettled_change`) adds the sd of that change from the model's calibrated coefficient
covariance, in quadrature: right after a move the anchor is as uncertain as the move's predicted effect.
The answer says which anchor it used (`AnchorEstimate.method`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dragon.calibration import Calibration
from dragon.data import RecentWindow
from dragon.dynamics import first_order_lag_at, input_lags
from optimizer.chain import CompiledChain
from optimizer.recommendation import AnchorEstimate

ANCHOR_HOURS = 1.0  # residuals averaged over the last hour: the hidden drifts (catalyst, fouling) take days


def estimate_anchors(
    chain: CompiledChain,
    calibration: Calibration,
    state: Mapping[str, float],
    window: RecentWindow | None = None,
) -> dict[str, AnchorEstimate]:
    """{model: anchor} for every model whose target and inputs the state carries (module docstring)."""
    spec = chain.spec
    rows = [_with_state_estimates(spec, row) for row in [*(window.rows if window else []), state]]
    state = rows[-1]
    timed = window is not None and window.hours_before is not None and len(window.rows) > 0
    hours = np.array([*window.hours_before, 0.0]) if timed else None
    averaged = hours <= ANCHOR_HOURS if hours is not None else np.ones(len(rows), dtype=bool)
    anchors = {}
    for name in chain.models:
        model = spec.models[name]
        if any(tag not in state for tag in (model.target, *model.features)):
            continue
        lags = input_lags(spec, name)
        X = np.column_stack(
            [
                _through_lag(np.array([row[feature] for row in rows]), hours, lags[feature])
                for feature in model.features
            ]
        )
        readings = np.array([row[model.target] for row in rows])[averaged]
        gam = chain.gam(name)
        predicted = gam.predict(X)[averaged]
        noise = calibration.noise(model.target)
        if len(rows) == 1:
            method, sd = "single reading", noise
        else:
            lagged = timed and any(hours_ > 0 for hours_ in lags.values())
            method = "window mean, lag-compensated" if lagged else "window mean"
            spread = float(np.std(readings - predicted, ddof=1)) if len(readings) > 1 else 0.0
            sd = max(spread, noise) / np.sqrt(len(readings))
        # the part of earlier moves that has not shown yet: the model's change from the inputs the last
        # reading answers to (lagged) to the current ones, and the sd of that change from its coefficients
        now = np.array([[state[feature] for feature in model.features]])
        rows_now = gam.design(now) - gam.design(X[-1:])
        covariance = gam.cov * calibration.models[name].covariance_scale
        unsettled_sd = float(np.sqrt(max((rows_now @ covariance @ rows_now.T).item(), 0.0)))
        anchors[name] = AnchorEstimate(
            tag=model.target,
            value=float(readings.mean()),
            predicted=float(predicted.mean()),
            sd=float(np.hypot(sd, unsettled_sd)),
            method=method,
            rows=len(readings),
            history_hours=float(hours[0]) if hours is not None else 0.0,
            unsettled_change=float((rows_now @ gam.coef)[0]),
        )
    return anchors


def _with_state_estimates(spec, row: Mapping[str, float]) -> dict[str, float]:
    """`row` with the derived features the models read (state estimates), where it carries their tags."""
    features = spec.derived_features
    estimates = {
        name: features[name].evaluate_state(row)
        for name in spec.model_derived_inputs
        if all(tag in row for tag in features[name].inputs)
    }
    return {**row, **estimates}


def _through_lag(values: np.ndarray, hours: np.ndarray | None, lag_hours: float) -> np.ndarray:
    """A feature's history as the lagged model reads it (unchanged without times or lag)."""
    return values if hours is None or lag_hours <= 0 else first_order_lag_at(values, hours, lag_hours)
