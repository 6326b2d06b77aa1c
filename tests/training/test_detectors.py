"""Isolation Forest detectors: calibrated threshold, flagging, and the gate's bookkeeping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dragon.errors import DataError
from dragon.spec import DetectorSpec
from training.detectors import PROCESS_EPISODES, detector_flags, evaluate_gate, fit_detector

FEATURES_A = ["a1", "a2", "a3"]
FEATURES_B = ["b1", "b2"]


def normal_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 5)), columns=FEATURES_A + FEATURES_B)


@pytest.fixture(scope="module")
def detectors():
    train = normal_rows(2000, seed=1)
    return {
        name: fit_detector(DetectorSpec(name=name, features=tags, contamination=0.02, n_estimators=50), train)
        for name, tags in [("a", FEATURES_A), ("b", FEATURES_B)]
    }


def test_a_feature_s_own_envelope_margin_narrows_only_its_envelope():
    train = normal_rows(2000, seed=1)
    wide = fit_detector(DetectorSpec(name="a", features=FEATURES_A, n_estimators=20), train)
    spec = DetectorSpec(name="a", features=FEATURES_A, n_estimators=20, envelope_margins={FEATURES_A[0]: 0.0})
    narrow = fit_detector(spec, train)
    assert narrow.envelope_high[0] < wide.envelope_high[0] and narrow.envelope_low[0] > wide.envelope_low[0]
    assert (
        narrow.envelope_high[1:] == wide.envelope_high[1:]
        and narrow.envelope_low[1:] == wide.envelope_low[1:]
    )


def test_threshold_gives_the_intended_false_alarm_rate_on_fresh_normal_rows(detectors):
    fresh = normal_rows(6000, seed=2)
    for detector in detectors.values():
        _, flagged = detector_flags(detector, fresh)
        assert 0.01 <= flagged.mean() <= 0.035, (detector.name, flagged.mean())


def test_obviously_shifted_row_is_flagged_and_a_central_row_is_not(detectors):
    # Isolation Forest scores saturate outside the training range, so "obvious" means away in every feature.
    rows = pd.DataFrame([[0.0] * 5, [6.0, -6.0, 6.0, 0.0, 0.0]], columns=FEATURES_A + FEATURES_B)
    scores, flagged = detector_flags(detectors["a"], rows)
    assert list(flagged) == [False, True]
    assert scores[1] > detectors["a"].threshold > scores[0]


def test_fit_uses_the_seed_reproducibly():
    train = normal_rows(500, seed=3)
    spec = DetectorSpec(name="a", features=FEATURES_A, n_estimators=20)
    first, second = fit_detector(spec, train, seed=7), fit_detector(spec, train, seed=7)
    assert first.threshold == second.threshold
    assert fit_detector(spec, train, seed=8).threshold != first.threshold


def crafted_frame() -> pd.DataFrame:
    """Rows at the centre (never flagged) or 50 sd out in all of one detector's features (always flagged)."""
    plan = [  # (episode, rows, rows far out in a-features, rows far out in b-features)
        ("", 100, 1, 1),  # 2 false alarms in 100 normal rows
        ("vacuum_loss", 10, 6, 0),
        ("carbonate_pump_trip", 10, 0, 10),
        ("novel_operation", 20, 5, 5),
        ("t1_sensor_stuck", 8, 0, 2),
    ]
    frames = []
    for episode, n, far_a, far_b in plan:
        values = np.zeros((n, 5))
        values[:far_a, :3] = 50.0
        values[far_a : far_a + far_b, 3:] = -50.0
        frame = pd.DataFrame(values, columns=FEATURES_A + FEATURES_B)
        frame["episode"] = episode
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_evaluate_gate_counts_recall_and_false_alarms(detectors):
    gate = evaluate_gate(detectors, crafted_frame())
    assert gate.false_alarm_rate == pytest.approx(2 / 100)
    assert gate.recall_by_episode == pytest.approx(
        {"t1_sensor_stuck": 2 / 8, "vacuum_loss": 0.6, "carbonate_pump_trip": 1.0, "novel_operation": 0.5}
    )
    assert list(gate.recall_by_episode) == [
        "t1_sensor_stuck",
        "carbonate_pump_trip",
        "vacuum_loss",
        "novel_operation",
    ]
    assert gate.recall == pytest.approx((6 + 10 + 10) / 40)  # the sensor fault is not in the gate recall
    assert "t1_sensor_stuck" not in PROCESS_EPISODES
    assert (gate.n_rows, gate.n_normal) == (148, 100)
    assert gate.by_episode["vacuum_loss"].precision == pytest.approx(6 / 8)
    a, b = gate.detectors["a"], gate.detectors["b"]
    assert a.false_alarm_rate == pytest.approx(0.01) and b.false_alarm_rate == pytest.approx(0.01)
    assert a.by_episode["vacuum_loss"].recall == pytest.approx(0.6)
    assert b.by_episode["vacuum_loss"].recall == 0.0
    # The 10 far rows outscore the 99 central normal rows and tie with the one far normal row.
    assert b.by_episode["carbonate_pump_trip"].auc == pytest.approx(1.0 - 0.5 / 100)
    assert gate.to_dict()["recall_by_episode"]["vacuum_loss"] == pytest.approx(0.6)
    assert a.to_dict()["threshold"] == a.threshold


def test_rows_recovering_after_an_episode_count_in_no_rate(detectors):
    frame = crafted_frame()
    frame["recovering"] = False
    frame.loc[[0, 1], "recovering"] = True  # the two far-out "normal" rows
    gate = evaluate_gate(detectors, frame)
    assert gate.false_alarm_rate == 0.0
    assert (gate.n_normal, gate.n_recovering) == (98, 2)
    assert gate.by_episode["vacuum_loss"].precision == 1.0
    assert gate.recall == pytest.approx((6 + 10 + 10) / 40)


def test_unscorable_row_is_flagged_and_unlabelled_rows_count_as_normal(detectors):
    rows = pd.DataFrame(np.zeros((4, 5)), columns=FEATURES_A + FEATURES_B)
    rows.loc[2, "b2"] = np.nan
    gate = evaluate_gate(detectors, rows)
    assert gate.false_alarm_rate == pytest.approx(0.25)
    assert gate.recall is None and gate.recall_by_episode == {}
    assert gate.detectors["a"].false_alarm_rate == 0.0


def test_bad_training_data_is_a_clear_error():
    spec = DetectorSpec(name="ox", features=["a1", "missing_tag"])
    with pytest.raises(DataError, match="missing_tag"):
        fit_detector(spec, normal_rows(200, seed=4))
    rows = normal_rows(200, seed=4)
    rows["a2"] = np.nan
    with pytest.raises(DataError, match="no values at all for a2"):
        fit_detector(DetectorSpec(name="ox", features=["a1", "a2"]), rows)


def test_envelope_flags_a_far_out_value_the_forest_misses():
    # Eight features: a row 40 sd out in one of them isolates barely faster than an extreme normal row.
    columns = [f"x{i}" for i in range(8)]
    rng = np.random.default_rng(5)
    train = pd.DataFrame(rng.normal(size=(2000, 8)), columns=columns)
    spec = DetectorSpec(name="wide", features=columns, contamination=0.01, n_estimators=50)
    detector = fit_detector(spec, train)
    far = pd.DataFrame([[40.0] + [0.0] * 7, [0.0] * 8], columns=columns)
    scores, flagged, outside = detector.assess(detector.feature_rows(far))
    assert scores[0] <= detector.threshold  # the forest alone would let it through
    assert list(outside) == [True, False] and list(flagged) == [True, False]
    assert detector.envelope_breaches(detector.feature_rows(far)[0]) == ["x0"]
    assert detector.envelope_low[0] < -3.0 and detector.envelope_high[0] > 3.0  # quantile +- margin
    # Without an envelope only the forest decides.
    bare = fit_detector(spec.model_copy(update={"envelope": False}), train)
    assert bare.envelope_low == [] and not bare.assess(bare.feature_rows(far))[1][0]


def test_detector_on_a_derived_feature_scores_states_and_frames_alike():
    from dragon.features import compile_derived

    rng = np.random.default_rng(6)
    feed = rng.uniform(150, 250, 1500)
    train = pd.DataFrame({"feed": feed, "air": feed * 0.12 * (1 + rng.normal(0, 0.01, 1500))})
    derived = {"air_per_feed": compile_derived("air_per_feed", "air / feed", ["feed", "air"])}
    spec = DetectorSpec(name="air", features=["air_per_feed", "feed"], n_estimators=50)
    detector = fit_detector(spec, train, derived=derived)
    # Air at 20 on a 230 t/h feed: each tag inside its range, the ratio far below it.
    state = {"feed": 230.0, "air": 20.0, "unused": 1.0}
    rows = detector.feature_rows(state)
    assert rows.shape == (1, 2) and rows[0, 0] == pytest.approx(20 / 230)
    assert detector.assess(rows)[2][0]
    frame = pd.DataFrame([state, {"feed": 200.0, "air": 24.0, "unused": 1.0}])
    assert list(evaluate_gate({"air": detector}, frame).detectors["air"].by_episode) == []
    _, flagged = detector_flags(detector, frame)
    assert list(flagged) == [True, False]
    with pytest.raises(DataError, match="air_per_feed"):
        fit_detector(spec, train)  # the derived feature is not given


def test_the_recommender_s_own_checks_block_in_the_gate_and_are_reported_alone(detectors):
    frame = crafted_frame()
    consistency = np.zeros(len(frame), dtype=bool)
    consistency[2:4] = True  # two central normal rows: false alarms of the check alone
    consistency[frame.index[frame["episode"] == "t1_sensor_stuck"][2:6]] = True  # 4 sensor-fault rows
    gate = evaluate_gate(detectors, frame, {"consistency": consistency})
    assert gate.false_alarm_rate == pytest.approx(4 / 100)  # the detectors' 2 and the check's 2
    assert gate.recall_by_episode["t1_sensor_stuck"] == pytest.approx(6 / 8)
    assert gate.check_false_alarm_rate == {"consistency": pytest.approx(2 / 100)}
    assert gate.check_recall_by_episode["consistency"]["t1_sensor_stuck"] == pytest.approx(4 / 8)
    assert gate.to_dict()["check_false_alarm_rate"]["consistency"] == pytest.approx(0.02)


def test_a_setpoint_beyond_one_move_outside_its_bounds_is_beyond_reach():
    from dragon.spec import load_plant
    from training.detectors import setpoints_beyond_reach

    spec = load_plant()
    tag = spec.setpoints[0]
    (low, high), move = spec.tags[tag].bounds, spec.tags[tag].max_move
    rows = pd.DataFrame({t: [np.mean(spec.tags[t].bounds)] * 4 for t in spec.setpoints})
    rows.loc[1, tag] = low - 0.5 * move  # outside, but one move brings it back
    rows.loc[2, tag] = low - 1.5 * move
    rows.loc[3, tag] = high + 1.5 * move
    assert setpoints_beyond_reach(spec, rows).tolist() == [False, False, True, True]


def test_a_feature_s_margins_may_differ_below_and_above():
    train = normal_rows(2000, seed=1)

    def fitted(margin):
        return fit_detector(
            DetectorSpec(name="a", features=FEATURES_A, n_estimators=20, envelope_margins={"a1": margin}),
            train,
        )

    symmetric, asymmetric = fitted(0.1), fitted((0.1, 1.0))
    assert asymmetric.envelope_low[0] == symmetric.envelope_low[0]
    assert asymmetric.envelope_high[0] > symmetric.envelope_high[0] + 0.5  # a spread is about 6 sd here
    assert asymmetric.envelope_high[1:] == symmetric.envelope_high[1:]
    assert DetectorSpec(name="a", features=FEATURES_A, envelope_margins={"a1": [0.1, 1.0]}).margin_of(
        "a1"
    ) == (
        0.1,
        1.0,
    )
