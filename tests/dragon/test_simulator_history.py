"""The historian layer: determinism, columns, episodes, lags and the written files."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from dragon.errors import DataError
from dragon.simulator import EPISODE_TYPES, PROCESS_EPISODES, SENSOR_EPISODES, generate_history, write_history
from dragon.simulator.episodes import Episode, schedule_episodes
from dragon.simulator.history import HISTORY_TAGS

OX1_TAGS = ["ox1_temperature", "ox1_offgas_o2", "ox1_chp", "ox1_air_flow", "ox1_level"]


@pytest.fixture(scope="module")
def short():
    return generate_history(2.0, seed=7)


def test_columns_and_types(short):
    history, truth = short.history, short.truth
    assert list(history.columns) == ["timestamp", *HISTORY_TAGS, "episode", "step_test"]
    assert len(history) == len(truth) == 2 * 24 * 60
    assert str(history["timestamp"].dt.tz) == "UTC"
    assert history["timestamp"].iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")
    assert (history["timestamp"] == truth["timestamp"]).all()
    assert history["step_test"].dtype == bool
    assert set(history["episode"]) <= {"", *EPISODE_TYPES}
    assert {"yield_true", "yield_lagged", "chi", "xi_sp", "xi_ev", "steady"} <= set(truth)
    assert "ox1_temperature_true" in truth
    assert not {"chi", "xi_sp", "xi_ev"} & set(history)
    assert history[list(HISTORY_TAGS)].notna().all().all()


def test_same_arguments_give_identical_frames(short):
    again = generate_history(2.0, seed=7)
    pd.testing.assert_frame_equal(short.history, again.history)
    pd.testing.assert_frame_equal(short.truth, again.truth)
    other = generate_history(2.0, seed=8)
    assert not other.history["ox2_chp"].equals(short.history["ox2_chp"])


def test_lags_start_settled_and_follow_the_truth(short):
    truth = short.truth
    assert truth["yield_lagged"].iloc[0] == pytest.approx(truth["yield_true"].iloc[0])
    # a 3 h lag moves less than the steady state it follows
    assert truth["ox1_chp_lagged"].diff().abs().max() <= truth["ox1_chp_true"].diff().abs().max() + 1e-12
    steady = truth["steady"]
    assert steady.dtype == bool and 0 < steady.mean() <= 1


def test_lab_values_are_held_for_eight_hours(short):
    dmba = short.history["ox2_dmba"].to_numpy()
    changes = np.flatnonzero(np.diff(dmba) != 0)
    assert np.all(np.diff(changes) == 8 * 60)


def test_schedule_scales_with_length_and_keeps_gaps():
    year = schedule_episodes(365, np.random.default_rng(1))
    assert len(year) == 27
    quarter = schedule_episodes(90, np.random.default_rng(1))
    assert len({e.kind for e in quarter}) >= 7
    for events in (year, quarter):
        for before, after in zip(events, events[1:], strict=False):
            assert after.start_hours - before.end_hours >= 96.0
    assert schedule_episodes(3, np.random.default_rng(1)) == []
    assert set(SENSOR_EPISODES) | set(PROCESS_EPISODES) == set(EPISODE_TYPES)


def _with(kind, start=20.0, end=30.0):
    return generate_history(2.0, seed=3, step_tests=False, episodes=[Episode(kind, start, end)])


@pytest.fixture(scope="module")
def normal():
    return generate_history(2.0, seed=3, step_tests=False, episodes=False)


def _changed(a, b):
    return {tag for tag in HISTORY_TAGS if not np.array_equal(a.history[tag], b.history[tag])}


def test_vacuum_loss_changes_only_the_concentrator_and_downstream(normal):
    faulty = _with("vacuum_loss")
    changed = _changed(faulty, normal)
    assert "evaporator_pressure" in changed and "concentrated_chp" in changed and "yield" in changed
    assert not changed & set(OX1_TAGS + ["ox2_chp", "ox2_temperature", "ox2_dmba", "ox2_ap"])
    window = faulty.history["episode"] == "vacuum_loss"
    assert window.sum() == 10 * 60
    assert (
        (
            faulty.truth.loc[window, "evaporator_pressure_true"]
            - normal.truth.loc[window, "evaporator_pressure_true"]
        )
        .round(9)
        .eq(5.0)
        .all()
    )


def test_sensor_faults_change_readings_not_the_plant_they_read(normal):
    stuck = _with("t1_sensor_stuck")
    window = stuck.history["episode"] == "t1_sensor_stuck"
    assert stuck.history.loc[window, "ox1_temperature"].nunique() == 1  # frozen reading
    assert stuck.truth.loc[window, "ox1_temperature_true"].std() > 0.0  # the true T1 wanders
    # the wandering T1 reaches the outputs (and the operator's Tev trim), never the vacuum
    assert "ox1_chp" in _changed(stuck, normal) and "evaporator_pressure" not in _changed(stuck, normal)

    low = _with("ox1_o2_analyser_low")
    window = low.history["episode"] == "ox1_o2_analyser_low"
    true_o2 = low.truth.loc[window, "ox1_offgas_o2_true"] - normal.truth.loc[window, "ox1_offgas_o2_true"]
    assert np.allclose(true_o2, 2.0)
    assert np.allclose(low.history.loc[window, "ox1_offgas_o2"], normal.history.loc[window, "ox1_offgas_o2"])
    assert (low.history.loc[window, "ox1_air_flow"] > normal.history.loc[window, "ox1_air_flow"]).mean() > 0.9


def test_air_compressor_limit_caps_ox1_air(normal):
    capped = _with("air_compressor_limit")
    window = capped.history["episode"] == "air_compressor_limit"
    assert capped.truth.loc[window, "ox1_air_flow_true"].max() <= 20.0 + 1e-6
    true_o2 = capped.truth.loc[window, "ox1_offgas_o2_true"]
    assert (true_o2 < normal.truth.loc[window, "ox1_offgas_o2_true"]).all()


def test_write_history_round_trips(tmp_path):
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"h{suffix}"
        history_path, truth_path = write_history(0.25, 5, out)
        assert truth_path == tmp_path / f"h.truth{suffix}" and truth_path.exists()
        read = pd.read_csv(history_path) if suffix == ".csv" else pd.read_parquet(history_path)
        assert len(read) == 6 * 60 and list(read.columns)[0] == "timestamp"
        first = hashlib.sha256(history_path.read_bytes()).hexdigest()
        write_history(0.25, 5, out)
        assert hashlib.sha256(history_path.read_bytes()).hexdigest() == first


def test_write_history_rejects_bad_suffix_and_unwritable_path(tmp_path):
    with pytest.raises(DataError, match="csv or"):
        write_history(0.1, 0, tmp_path / "h.xlsx")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="cannot write"):
        write_history(0.1, 0, blocker / "h.csv")
