"""Training data preparation on a tiny plant: steady-state selection, resampling, split, accounting."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dragon.errors import DataError
from dragon.spec import parse_plant
from training.transforms import (
    DATA_PROBLEMS,
    LABELLED_ABNORMAL,
    NOT_STEADY,
    RESAMPLED_AWAY,
    prepare_training_data,
    steady_state_mask,
)

# A plant unlike the default one (other tags, another time column): nothing may be hard-coded.
TINY_PLANT = """
[plant]
name = "tiny"
time_column = "time"

[tags.heater]
role = "setpoint"
valid = [0.0, 200.0]
bounds = [50.0, 150.0]
max_move = 2.0

[tags.feed]
role = "disturbance"
valid = [0.0, 100.0]

[tags.product]
role = "measurement"
valid = [0.0, 100.0]

[models.conversion]
target = "product"
features = ["heater", "feed"]

[objective]
maximize = "conversion"

[steady_state]
window_minutes = 30
ratio_threshold = 2.0
hold_minutes = 10

[training]
resample_minutes = 10
holdout_fraction = 0.25
min_rows = 50
"""
FLAT, RAMP = slice(0, 600), slice(600, 900)  # minutes


@pytest.fixture(scope="module")
def spec():
    return parse_plant(TINY_PLANT, "tiny.toml")


def tiny_history(minutes: int = 1440, seed: int = 0) -> pd.DataFrame:
    """Flat noisy product for 10 h, a 5 h ramp, then flat again; heater and feed just noisy."""
    rng = np.random.default_rng(seed)
    level = np.full(minutes, 40.0)
    level[RAMP] = np.linspace(40.0, 55.0, RAMP.stop - RAMP.start)
    level[RAMP.stop :] = 55.0
    return pd.DataFrame(
        {
            "time": pd.date_range("2026-05-01", periods=minutes, freq="1min", tz="UTC"),
            "heater": 100.0 + rng.normal(0, 0.5, minutes),
            "feed": 60.0 + rng.normal(0, 0.5, minutes),
            "product": level + rng.normal(0, 0.2, minutes),
            "episode": "",
            "step_test": False,
        }
    )


def test_steady_state_test_passes_a_flat_noisy_segment_and_flags_a_ramp(spec):
    frame = tiny_history()
    steady = steady_state_mask(frame, spec)
    warm_up = spec.steady_state.window_minutes
    assert steady[warm_up : FLAT.stop].mean() > 0.95
    assert not steady[:warm_up].any()  # the filters have not seen a window yet
    assert steady[RAMP.start + 30 : RAMP.stop].mean() < 0.05
    assert steady[RAMP.stop + 120 :].mean() > 0.95


def test_a_gap_in_the_history_restarts_the_warm_up(spec):
    frame = tiny_history()
    frame = frame.drop(index=range(300, 400)).reset_index(drop=True)  # 100 minutes missing
    steady = steady_state_mask(frame, spec)
    assert not steady[300 : 300 + spec.steady_state.window_minutes].any()
    assert steady[340 : FLAT.stop - 100].mean() > 0.95


def test_resampling_averages_each_bucket(spec):
    frame = tiny_history()
    frame["product"] = 40.0 + (np.arange(len(frame)) % 10)  # 40..49 within each 10-minute bucket
    frame.loc[::10, "feed"] = 70.0
    data = prepare_training_data(
        frame,
        spec.model_copy(update={"steady_state": spec.steady_state.model_copy(update={"enabled": False})}),
        source="tiny",
    )
    assert (data.train["time"].dt.minute % 10 == 0).all()
    np.testing.assert_allclose(data.train["product"], 44.5)
    expected_feed = frame["feed"].groupby(frame["time"].dt.floor("10min")).mean()
    np.testing.assert_allclose(data.train["feed"], expected_feed.loc[data.train["time"]].to_numpy())
    assert data.report.rows_used == len(frame)


def test_split_is_time_ordered_without_overlap(spec):
    data = prepare_training_data(tiny_history(2880), spec, source="tiny")
    assert data.train["time"].is_monotonic_increasing and data.holdout["time"].is_monotonic_increasing
    assert data.train["time"].max() < data.holdout["time"].min()
    assert data.detector_train["time"].max() < data.detector_holdout["time"].min()
    hold_start = pd.Timestamp(data.report.holdout_period[0])
    assert (data.detector_holdout["time"] >= hold_start).all()
    assert (data.detector_train["time"] < hold_start).all()
    span = pd.Timestamp("2026-05-01T00:00Z") + pd.Timedelta(minutes=2879 * 0.75)
    assert abs(hold_start - span) <= pd.Timedelta(minutes=10)  # the last quarter of the span


def test_every_row_is_accounted_for_and_episodes_stay_out_of_training(spec):
    frame = tiny_history(2880)
    frame.loc[1500:1619, "episode"] = "vacuum_loss"  # training period
    frame.loc[2400:2519, "episode"] = "carbonate_pump_trip"  # hold-out period
    frame.loc[[100, 101], "product"] = np.nan
    frame.loc[200, "heater"] = 900.0
    data = prepare_training_data(frame, spec, source="tiny")
    report = data.report
    assert report.rows_in == len(frame)
    assert report.dropped[DATA_PROBLEMS] == 3
    assert report.dropped[LABELLED_ABNORMAL] == 240
    assert report.dropped[NOT_STEADY] > 0 and report.dropped[RESAMPLED_AWAY] > 0
    assert report.rows_used + sum(report.dropped.values()) == report.rows_in
    # A used bucket holds its ten minutes, less any minute dropped for a data problem.
    assert 0 <= 10 * (len(data.train) + len(data.holdout)) - report.rows_used <= 3
    for name in ("train", "holdout", "detector_train"):
        assert (getattr(data, name)["episode"] == "").all(), name
    labels = data.detector_holdout["episode"].value_counts()
    assert labels["carbonate_pump_trip"] == 12 and "vacuum_loss" not in labels
    assert len(data.detector_holdout) == data.report.buckets["detector_holdout"]
    assert bool(data.detector_holdout["step_test"].any()) is False
    json.dumps(report.to_dict())


def test_steady_normal_rows_only_train_the_gams_but_detectors_see_transients(spec):
    data = prepare_training_data(tiny_history(2880), spec, source="tiny")
    ramp_buckets = pd.date_range("2026-05-01T10:30Z", "2026-05-01T14:50Z", freq="10min")
    assert not data.train["time"].isin(ramp_buckets).any()
    assert ramp_buckets.isin(data.detector_train["time"]).all()


def test_truth_is_aligned_and_the_steady_test_is_scored_against_it(spec):
    frame = tiny_history(2880)
    truth = pd.DataFrame(
        {
            "product_true": frame["product"].rolling(5, min_periods=1).mean(),
            "steady": ~frame.index.isin(range(RAMP.start, RAMP.stop + 60)),
        }
    )
    shuffled = frame.sample(frac=1.0, random_state=0)  # the history arrives unsorted
    truth_with_time = truth.assign(time=frame["time"]).sample(frac=1.0, random_state=1)
    data = prepare_training_data(shuffled, spec, truth=truth_with_time, source="tiny")
    assert len(data.train_truth) == len(data.train) and len(data.holdout_truth) == len(data.holdout)
    assert data.train_truth["time"].equals(data.train["time"])
    np.testing.assert_allclose(data.train_truth["product_true"], data.train["product"], atol=0.5)
    assert data.train_truth["steady"].mean() > 0.9  # the test may call settling minutes steady early
    agreement = data.report.ssd_agreement
    assert agreement["precision"] > 0.95 and agreement["recall"] > 0.8
    # A truth without a time column is row-aligned with the history as given.
    positional = prepare_training_data(frame, spec, truth=truth, source="tiny")
    assert positional.train_truth.equals(data.train_truth)


def test_history_with_no_steady_rows_is_an_error_that_says_why(spec):
    frame = tiny_history(2880)
    frame["product"] = np.linspace(10.0, 90.0, len(frame))  # one long ramp
    with pytest.raises(DataError) as error:
        prepare_training_data(frame, spec, source="ramp.csv")
    assert "ramp.csv" in str(error.value) and "not steady" in str(error.value)


def test_empty_episode_labels_survive_a_csv_round_trip(spec, tmp_path):
    from dragon.data import read_history

    frame = tiny_history(2880)
    path = tmp_path / "tiny.csv"
    frame.to_csv(path, index=False)  # every label empty: pandas reads the column back as NaN floats
    data = prepare_training_data(read_history(path, spec), spec, source=str(path))
    assert (data.detector_holdout["episode"] == "").all()
    assert data.report.dropped[LABELLED_ABNORMAL] == 0


def test_a_sample_and_hold_target_is_judged_on_its_samples(spec):
    frame = tiny_history()
    hourly = frame["product"].iloc[::60].to_numpy()  # an hourly estimate held between samples
    frame["product"] = np.repeat(hourly, 60)[: len(frame)]
    steady = steady_state_mask(frame, spec)
    assert steady[6 * 60 : FLAT.stop].mean() > 0.9  # held values are not steps
    assert steady[RAMP.start + 120 : RAMP.stop].mean() < 0.1


def test_settling_counts_from_the_end_of_an_episode_whose_rows_the_data_check_dropped(spec):
    # A stuck sensor's episode is mostly frozen readings, which the data check drops: the plant still
    # settles after the episode's end, not after its last kept row.
    lagged = spec.model_copy(
        update={"models": {"conversion": spec.models["conversion"].model_copy(update={"lag_hours": 0.5})}}
    )
    frame = tiny_history(2880)
    frame.loc[2000:2399, "episode"] = "t1_sensor_stuck"
    frame.loc[2000:2399, "heater"] = 100.0  # frozen for 400 min: dropped after the first 240
    data = prepare_training_data(frame, lagged, source="tiny")
    holdout = data.detector_holdout.set_index("time")
    settle = pd.Timestamp("2026-05-01T00:00Z") + pd.Timedelta(minutes=2400)
    settling = holdout.loc[settle : settle + pd.Timedelta(minutes=80), "recovering"]
    assert len(settling) >= 8 and settling.all()  # 3 x 0.5 h after the episode's last minute
    assert not holdout.loc[settle + pd.Timedelta(minutes=100) :, "recovering"].any()
    assert not holdout.loc[
        : pd.Timestamp("2026-05-01T00:00Z") + pd.Timedelta(minutes=1990), "recovering"
    ].any()
