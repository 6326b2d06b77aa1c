"""Lag compensation: lagged inputs per model, settling after starts and episodes, the Wiener identity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dragon.dynamics import first_order_lag, input_lags, model_inputs
from dragon.spec import parse_plant
from training.evaluation import truth_column
from training.gam_fit import fit_gam
from training.transforms import LAGS_SETTLING, RECOVERING, prepare_training_data

# Two stages in series: the reactor answers the heater in 2 h, the purity answers the reactor in 3 h.
LAGGED_PLANT = """
[plant]
name = "lagged"
time_column = "time"

[tags.heater]
role = "setpoint"
valid = [0.0, 200.0]
bounds = [80.0, 120.0]
max_move = 2.0

[tags.feed]
role = "disturbance"
valid = [0.0, 100.0]

[tags.product]
role = "measurement"
valid = [0.0, 100.0]

[tags.purity]
role = "measurement"
valid = [0.0, 100.0]

[models.reactor]
target = "product"
features = ["heater", "feed"]
n_splines = 6
lag_hours = 2.0

[models.separator]
target = "purity"
features = ["product", "feed"]
n_splines = 6
lag_hours = 3.0

[objective]
maximize = "separator"

[steady_state]
enabled = false

[training]
resample_minutes = 10
holdout_fraction = 0.25
min_rows = 50
"""


@pytest.fixture(scope="module")
def spec():
    return parse_plant(LAGGED_PLANT, "lagged.toml")


def reactor_steady_state(heater: np.ndarray, feed: np.ndarray) -> np.ndarray:
    return 0.5 * heater - 0.2 * feed


def lagged_history(days: int = 6, seed: int = 0) -> pd.DataFrame:
    """The heater moves every 4 h (never long enough to settle), the product follows through a 2 h lag."""
    rng = np.random.default_rng(seed)
    minutes = days * 1440
    heater = np.repeat(rng.uniform(90.0, 110.0, minutes // 240 + 1), 240)[:minutes]
    feed = 60.0 + rng.normal(0, 1.0, minutes).cumsum() * 0.02
    product = first_order_lag(reactor_steady_state(heater, feed), 2.0, 1.0)
    return pd.DataFrame(
        {
            "time": pd.date_range("2026-05-01", periods=minutes, freq="1min", tz="UTC"),
            "heater": heater,
            "feed": feed,
            "product": product + rng.normal(0, 0.05, minutes),
            "purity": 90.0 + 0.1 * product,
            "episode": "",
        }
    )


def test_a_first_order_lag_reaches_63_percent_of_a_step_after_one_time_constant():
    step = np.r_[np.zeros(10), np.ones(600)]
    response = first_order_lag(step, 2.0, 1.0)
    assert response[9] == 0.0
    assert response[10 + 120] == pytest.approx(1 - np.exp(-1), abs=0.01)
    assert response[-1] > 0.99


def test_an_upstream_measurement_gets_only_the_lag_its_own_lag_leaves(spec):
    assert input_lags(spec, "reactor") == {"heater": 2.0, "feed": 2.0}
    assert input_lags(spec, "separator") == {"product": 1.0, "feed": 3.0}
    assert model_inputs(spec, "separator") == ["product@lag1h", "feed@lag3h"]


def test_lagged_inputs_recover_the_steady_state_map_from_rows_that_never_settle(spec):
    data = prepare_training_data(lagged_history(), spec, source="lagged.parquet")
    model = spec.models["reactor"]
    fitted = fit_gam(model, data.train[model_inputs(spec, "reactor")], data.train["product"]).gam
    raw = fit_gam(model, data.train[model.features], data.train["product"]).gam

    grid = np.column_stack([np.linspace(92.0, 108.0, 9), np.full(9, 60.0)])
    truth = reactor_steady_state(grid[:, 0], grid[:, 1])
    # The GAM fed lagged inputs is the steady-state map; fed the raw inputs it smears the lag into it.
    assert np.abs(fitted.predict(grid) - truth).max() < 0.15
    assert np.abs(raw.predict(grid) - truth).max() > 4 * np.abs(fitted.predict(grid) - truth).max()


def test_rows_after_the_start_and_after_an_episode_wait_for_the_lags_to_settle(spec):
    frame = lagged_history()
    frame.loc[2000:2059, "episode"] = "pump_trip"  # one abnormal hour
    data = prepare_training_data(frame, spec, source="lagged.parquet")
    settle_minutes = 3 * 3.0 * 60  # 3 time constants of the slowest model
    report = data.report
    # 540 minutes from the start; after the episode the clock runs from its last abnormal minute
    assert report.dropped[LAGS_SETTLING] == settle_minutes + (settle_minutes - 1)
    assert report.rows_used + sum(report.dropped.values()) == report.rows_in
    train_times = data.train["time"]
    start = frame["time"].iloc[0]
    assert train_times.min() >= start + pd.Timedelta(minutes=settle_minutes)
    after_episode = (train_times >= frame["time"].iloc[2000]) & (
        train_times < frame["time"].iloc[2060] + pd.Timedelta(minutes=settle_minutes)
    )
    assert not after_episode.any()
    assert {"heater@lag2h", "product@lag1h", "feed@lag3h"} <= set(data.train.columns)


def test_a_lag_compensated_model_is_scored_against_the_noise_free_measurement(spec):
    assert truth_column(spec.models["reactor"]) == "product_lagged"
    static = spec.models["reactor"].model_copy(update={"lag_hours": 0.0})
    assert truth_column(static) == "product_true"


def test_buckets_recovering_from_an_episode_are_flagged_and_kept_out_of_detector_training(spec):
    frame = lagged_history()
    frame.loc[7000:7054, "episode"] = "vacuum_loss"  # in the hold-out period (the last 36 h)
    frame.loc[3000:3059, "episode"] = "vacuum_loss"  # in the training period
    data = prepare_training_data(frame, spec, source="lagged.parquet")
    recovering = data.detector_holdout.loc[data.detector_holdout[RECOVERING], "time"]
    end = frame["time"].iloc[7054]  # mid-bucket
    assert recovering.min() == end.floor("10min") and recovering.max() < end + pd.Timedelta(hours=9)
    assert len(recovering) == 9 * 6 + 1  # 9 h of 10-minute buckets, the first shared with the episode
    training_end = frame["time"].iloc[3059]
    after = (data.detector_train["time"] >= training_end.floor("10min")) & (
        data.detector_train["time"] < training_end + pd.Timedelta(hours=9)
    )
    assert not after.any() and len(data.detector_train) > 0
