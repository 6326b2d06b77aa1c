"""Lag compensation: fit steady-state GAMs on every normal row, settled or not; anchor them on a
plant that is still moving (training and the recommender share what a lagged model reads).

The plant's outputs follow their inputs through slow first-order lags (hours), so a measured
target is the steady-state map of the inputs a few hours ago, smoothed: y(t) ≈ L_τ[f(u)](t). For a
map that is close to linear over one move, L_τ[f(u)] ≈ f(L_τ[u]): the same GAM f fits the measured
target when its inputs are passed through the same lag (a Wiener-model identity). Training on
lagged inputs therefore uses transients too, where steady-state selection on noisy outputs keeps
a small and still partly unsettled share of the rows (on 90 simulated days: too few rows for the
oxidation_1 spline basis on some histories, and a precision of 0.3–0.46 against the true steady
flag). The fitted GAM is the steady-state map itself: the optimizer evaluates it at the setpoints.

A model with `lag_hours = τ` reads each feature through a lag of τ, except a feature that is the
target of an upstream model with its own lag τ_j: that measurement already lags by τ_j, so it gets
the remaining τ - τ_j (cascaded lags add their mean delays).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dragon.errors import DataError
from dragon.features import add_derived
from dragon.spec import PlantSpec

SETTLING_TIME_CONSTANTS = 3.0  # a first-order filter forgets its start after 3 τ (5 % left)


def lag_column(tag: str, hours: float) -> str:
    """The name of `tag` seen through a first-order lag of `hours` (the tag itself for no lag)."""
    return f"{tag}@lag{hours:g}h" if hours > 0 else tag


def input_lags(spec: PlantSpec, name: str) -> dict[str, float]:
    """{feature: lag in hours} of model `name` (module docstring)."""
    model = spec.models[name]
    upstream_lag = {other.target: other.lag_hours for other in spec.models.values()}
    return {feature: max(model.lag_hours - upstream_lag.get(feature, 0.0), 0.0) for feature in model.features}


def model_inputs(spec: PlantSpec, name: str) -> list[str]:
    """The columns model `name` is trained and evaluated on, in the order of its features."""
    return [lag_column(feature, hours) for feature, hours in input_lags(spec, name).items()]


def model_input_matrix(frame: pd.DataFrame, spec: PlantSpec, name: str) -> np.ndarray:
    """The (n, features) matrix model `name` reads from `frame` (model_inputs), or a DataError naming
    the missing columns."""
    columns = model_inputs(spec, name)
    missing = [column for column in columns if column not in frame]
    if missing:
        raise DataError(f"model '{name}': the data has no column for {', '.join(missing)}")
    return frame[columns].to_numpy(float)


def first_order_lag(values: np.ndarray, hours: float, step_minutes: float) -> np.ndarray:
    """y[n] = y[n-1] + a·(x[n] - y[n-1]), a = 1 - exp(-Δt/τ): a first-order lag sampled every step.

    Missing values hold the filter (they neither move it nor restart it).
    """
    alpha = 1.0 - np.exp(-step_minutes / (60.0 * hours))
    return pd.Series(values).ewm(alpha=alpha, adjust=False, ignore_na=True).mean().to_numpy()


def first_order_lag_at(values: np.ndarray, hours_before: np.ndarray, hours: float) -> np.ndarray:
    """first_order_lag at irregular sample times (hours before now, decreasing): the filter starts at the
    first value, i.e. it takes the plant for settled before the first sample."""
    if hours <= 0:
        return np.asarray(values, dtype=float)
    times = pd.to_datetime(-np.asarray(hours_before, dtype=float) * 3600.0, unit="s")
    halflife = pd.Timedelta(hours=hours * np.log(2.0))  # pandas' decay exp(-ln2·Δt/halflife) = exp(-Δt/τ)
    series = pd.Series(np.asarray(values, dtype=float))
    return series.ewm(halflife=halflife, times=times, adjust=False).mean().to_numpy()


def add_lagged_inputs(frame: pd.DataFrame, spec: PlantSpec, step_minutes: float) -> pd.DataFrame:
    """`frame` (minute rows, time-ordered) with the derived features the models read (state estimates,
    dragon/features.py; left out when the frame lacks one of their tags) and one column per distinct
    (feature, lag) of the models."""
    derived = [
        name
        for name in spec.model_derived_inputs
        if all(tag in frame for tag in spec.derived_features[name].inputs)
    ]
    if derived:
        frame = add_derived(frame, spec.derived_features, derived)
    lagged = {}
    for name in spec.model_order:
        for feature, hours in input_lags(spec, name).items():
            column = lag_column(feature, hours)
            if hours > 0 and column not in lagged and feature in frame:
                lagged[column] = first_order_lag(frame[feature].to_numpy(float), hours, step_minutes)
    return frame.assign(**lagged) if lagged else frame


def settling_hours(spec: PlantSpec) -> float:
    """How long after the start of a history (or a gap) the lagged inputs are not yet trustworthy."""
    return SETTLING_TIME_CONSTANTS * max((m.lag_hours for m in spec.models.values()), default=0.0)
