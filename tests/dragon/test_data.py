"""The data layer: reading a history, every data problem counted, one plant state validated."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from dragon.data import (
    BAD_TIMESTAMP,
    DUPLICATE_TIMESTAMP,
    FROZEN,
    MISSING,
    NON_NUMERIC,
    OUT_OF_RANGE,
    UNSORTED,
    check_history,
    parse_state,
    read_history,
)
from dragon.errors import DataError
from dragon.spec import load_plant

LAB_TAGS = ("feed_inhibitor", "feed_chp", "ox2_dmba", "ox2_ap")
SAMPLE_MINUTES = 5
LAB_HOLD_ROWS = 8 * 60 // SAMPLE_MINUTES  # lab values hold for 8 h


@pytest.fixture(scope="module")
def spec():
    return load_plant()


def crafted_history(spec, days: float = 3.0, seed: int = 0) -> pd.DataFrame:
    """Every tag of the plant, noisy inside its valid range, lab tags held for 8 h, plus labels."""
    rng = np.random.default_rng(seed)
    n = int(days * 24 * 60 / SAMPLE_MINUTES)
    frame = {"timestamp": pd.date_range("2026-03-01", periods=n, freq=f"{SAMPLE_MINUTES}min", tz="UTC")}
    for name, tag in spec.tags.items():
        low, high = tag.bounds or tag.valid
        centre, spread = (low + high) / 2, (high - low) / 100
        if name in LAB_TAGS:
            samples = centre + rng.normal(0, spread, n // LAB_HOLD_ROWS + 1)
            frame[name] = np.repeat(samples, LAB_HOLD_ROWS)[:n]
        else:
            frame[name] = centre + rng.normal(0, spread, n)
    frame = pd.DataFrame(frame)
    frame["episode"] = ""
    frame["step_test"] = False
    frame["operator_note"] = "ok"
    return frame


def test_clean_history_passes_untouched(spec):
    frame = crafted_history(spec)
    checked = check_history(frame, spec, source="crafted")
    report = checked.report
    assert report.rows_in == report.rows_kept == len(frame)
    assert report.problems == {} and report.dropped == {} and report.warnings == []
    assert report.ignored_columns == ["episode", "step_test", "operator_note"]
    assert list(checked.clean.columns) == list(frame.columns)
    expected = frame.assign(timestamp=frame["timestamp"].astype("datetime64[ns, UTC]"))  # time in ns
    pd.testing.assert_frame_equal(checked.clean, expected)


def test_each_problem_is_detected_counted_and_located(spec):
    frame = crafted_history(spec)
    n = len(frame)
    frame["ox1_chp"] = frame["ox1_chp"].astype(object)
    frame.loc[[3, 40], "ox1_chp"] = ["n/a", "12,5"]  # rows 4 and 41 of the file
    frame.loc[[5, 6, 7], "ox2_chp"] = np.nan
    frame.loc[9, "yield"] = 120.0  # valid [85, 100]
    frame.loc[11, "concentrated_chp"] = -1.0
    frame.loc[100:199, "cumene_feed"] = 210.0  # 100 x 5 min = 500 min > frozen_minutes 240
    frame["timestamp"] = frame["timestamp"].astype(object)
    frame.loc[13, "timestamp"] = "not a time"
    frame.loc[[20, 21]] = frame.loc[[21, 20]].to_numpy()  # row 22 comes before row 21
    frame = pd.concat([frame, frame.iloc[[30]]], ignore_index=True)  # row n+1 repeats row 31
    frame["timestamp"] = frame["timestamp"].astype(str)

    report = check_history(frame, spec, source="crafted").report
    problems = report.problems
    assert problems["ox1_chp"] == {NON_NUMERIC: 2}
    assert report.examples["ox1_chp"][NON_NUMERIC] == [4, 41]
    assert problems["ox2_chp"] == {MISSING: 3}
    assert report.examples["ox2_chp"][MISSING] == [6, 7, 8]
    assert problems["yield"] == {OUT_OF_RANGE: 1}
    assert problems["concentrated_chp"] == {OUT_OF_RANGE: 1}
    assert problems["cumene_feed"] == {FROZEN: 100}
    assert report.examples["cumene_feed"][FROZEN] == [101, 102, 103, 104, 105]
    assert problems["timestamp"][BAD_TIMESTAMP] == 1
    assert problems["timestamp"][UNSORTED] == 2  # row 22 and the appended repeat
    assert problems["timestamp"][DUPLICATE_TIMESTAMP] == 1
    assert report.examples["timestamp"][DUPLICATE_TIMESTAMP] == [n + 1]
    assert report.dropped == {
        BAD_TIMESTAMP: 1,
        DUPLICATE_TIMESTAMP: 1,
        NON_NUMERIC: 2,
        MISSING: 3,
        OUT_OF_RANGE: 2,
        FROZEN: 100,
    }
    assert report.rows_in == n + 1
    assert report.rows_kept + sum(report.dropped.values()) == report.rows_in
    json.dumps(report.to_dict())  # JSON-safe


def test_clean_frame_is_sorted_unique_numeric_and_keeps_label_columns(spec):
    frame = crafted_history(spec)
    frame = pd.concat([frame.iloc[200:], frame.iloc[:200]], ignore_index=True)  # rotated: unsorted
    frame.loc[0, "episode"] = "vacuum_loss"
    frame.loc[0, "step_test"] = True
    clean = check_history(frame, spec, source="crafted").clean
    assert clean["timestamp"].is_monotonic_increasing and clean["timestamp"].is_unique
    assert str(clean["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(clean[tag].dtype == float for tag in spec.tags)
    assert (clean["operator_note"] == "ok").all()
    labelled = clean.loc[clean["episode"] == "vacuum_loss"]
    assert len(labelled) == 1 and bool(labelled["step_test"].iloc[0])


def test_lab_values_that_hold_between_samples_are_not_frozen_but_a_stuck_lab_value_is(spec):
    frame = crafted_history(spec, days=5)
    assert not check_history(frame, spec, source="crafted").report.problems
    stuck = slice(2 * LAB_HOLD_ROWS, 5 * LAB_HOLD_ROWS - 1)  # held for 24 h instead of 8 h
    frame.loc[stuck, "feed_chp"] = frame.loc[2 * LAB_HOLD_ROWS, "feed_chp"]
    report = check_history(frame, spec, source="crafted").report
    assert report.problems == {"feed_chp": {FROZEN: 3 * LAB_HOLD_ROWS}}


def test_missing_unused_tag_column_is_a_warning(spec):
    unused = [tag for tag in spec.tags if tag not in spec.used_tags]
    assert unused, "the default plant has tags no model reads"
    frame = crafted_history(spec).drop(columns=unused)
    checked = check_history(frame, spec, source="crafted")
    assert checked.report.rows_kept == len(frame)
    assert all(tag in checked.report.warnings[0] for tag in unused)


def test_missing_used_tag_columns_are_all_named(spec):
    frame = crafted_history(spec).drop(columns=["ox1_temperature", "yield", "evaporator_pressure"])
    with pytest.raises(DataError) as error:
        check_history(frame, spec, source="plant.csv")
    message = str(error.value)
    assert "plant.csv" in message
    assert all(tag in message for tag in ("ox1_temperature", "yield", "evaporator_pressure"))


def test_too_few_usable_rows_names_the_problem(spec):
    frame = crafted_history(spec, days=1)
    frame.loc[50:, "ox2_temperature"] = 500.0  # valid [0, 200]
    with pytest.raises(DataError) as error:
        check_history(frame, spec, source="plant.csv")
    message = str(error.value)
    assert "plant.csv" in message and "min_rows" in message
    assert "ox2_temperature" in message and OUT_OF_RANGE in message


def test_report_renders_every_problem(spec):
    frame = crafted_history(spec)
    frame.loc[9, "yield"] = 120.0
    report = check_history(frame, spec, source="crafted.csv").report
    console = Console(record=True, width=140)
    console.print(report.render())
    text = console.export_text()
    assert "crafted.csv" in text and "yield" in text and OUT_OF_RANGE in text and "10" in text


# --- reading files ------------------------------------------------------------------


def test_read_csv_with_iso_or_epoch_times_and_parquet(spec, tmp_path):
    frame = crafted_history(spec, days=1)
    iso = tmp_path / "iso.csv"
    frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S%z")).to_csv(iso, index=False)
    epoch = tmp_path / "epoch.csv"
    seconds = (frame["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    frame.assign(timestamp=seconds).to_csv(epoch, index=False)
    parquet = tmp_path / "history.parquet"
    frame.to_parquet(parquet)
    for path in (iso, epoch, parquet):
        read = read_history(path, spec)
        assert str(read["timestamp"].dtype) == "datetime64[ns, UTC]", path
        assert read["timestamp"].equals(frame["timestamp"].astype("datetime64[ns, UTC]")), path
        np.testing.assert_allclose(read["yield"], frame["yield"])


def test_unparseable_timestamps_in_a_file_are_counted_with_rows(spec, tmp_path):
    frame = crafted_history(spec, days=1)
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.loc[[2, 7], "timestamp"] = ["yesterday", ""]
    path = tmp_path / "h.csv"
    frame.to_csv(path, index=False)
    report = check_history(read_history(path, spec), spec, source=str(path)).report
    assert report.problems["timestamp"] == {BAD_TIMESTAMP: 2}
    assert report.examples["timestamp"][BAD_TIMESTAMP] == [3, 8]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("absent.csv", None, "not found"),
        ("history.xlsx", b"x", "unknown file type"),
        ("broken.parquet", b"this is not parquet", "cannot read"),
        ("notime.csv", b"a,b\n1,2\n", "no time column 'timestamp'"),
    ],
)
def test_unreadable_files_are_data_errors_naming_the_file(spec, tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as error:
        read_history(path, spec)
    assert str(path) in str(error.value) and expected in str(error.value)


# --- one plant state ----------------------------------------------------------------


def test_parse_state_accepts_a_history_row(spec):
    row = crafted_history(spec, days=0.1).iloc[0]
    raw = {tag: float(row[tag]) for tag in spec.tags} | {"timestamp": "2026-03-01T00:00:00Z"}
    state = parse_state(raw, spec)
    assert set(state) == set(spec.tags) and all(isinstance(v, float) for v in state.values())
    required_only = {tag: raw[tag] for tag in spec.required_state_tags}
    assert parse_state(required_only, spec) == required_only


def test_parse_state_reports_every_problem_at_once(spec):
    row = crafted_history(spec, days=0.1).iloc[0]
    raw = {tag: float(row[tag]) for tag in spec.required_state_tags}
    del raw["ox1_temperature"], raw["cumene_feed"]
    raw |= {
        "reactor_x": 1.0,
        "ox2_temperature": "98.0",
        "ox1_offgas_o2": True,
        "ox2_offgas_o2": None,
        "oxidation_ph": [7.3],
        "evaporator_pressure": {"value": 2.8},
        "evaporator_temperature": float("nan"),
        "cooling_water_temperature": float("inf"),
        "ox1_chp": 99.0,
    }
    with pytest.raises(DataError) as error:
        parse_state(raw, spec, source="request")
    message = str(error.value)
    assert message.startswith("request")
    for needle in (
        "ox1_temperature",
        "cumene_feed",
        "reactor_x",
        "ox2_temperature = '98.0'",
        "ox1_offgas_o2 = True",
        "ox2_offgas_o2 = None",
        "oxidation_ph = [7.3]",
        "evaporator_pressure",
        "evaporator_temperature = nan",
        "cooling_water_temperature = inf",
        "ox1_chp = 99.0: outside the valid range [0.0, 40.0]",
    ):
        assert needle in message, needle
    assert "10 problem(s)" in message


# --- the recent window sent with a state (dragon.data.parse_window) ---------------------------------


def _window_case():
    from dragon.spec import load_plant

    spec = load_plant()
    state = {tag: float(sum(spec.tags[tag].valid) / 2) for tag in spec.required_state_tags}
    state["timestamp"] = "2026-01-01T12:00:00Z"
    rows = [dict(state, timestamp=f"2026-01-01T11:{minute:02d}:00Z") for minute in (40, 45, 50)]
    return spec, state, rows


def test_a_recent_window_parses_to_states_oldest_first():
    from dragon.data import parse_window

    spec, state, rows = _window_case()
    window = parse_window(rows, state, spec)
    assert len(window.rows) == 3 and all("timestamp" not in row for row in window.rows)
    assert window.hours_before == pytest.approx([20 / 60, 15 / 60, 10 / 60])
    assert parse_window(rows[-1:], state, spec).rows  # a window of one row is allowed
    untimed = {tag: value for tag, value in state.items() if tag != "timestamp"}
    assert parse_window([untimed], untimed, spec).hours_before is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: rows[1].pop("ox1_chp"), r"(?s)recent\[1\].*missing tag"),
        (
            lambda rows: rows[2].update(phenol_production=30.0),
            r"recent\[2\]: carries other tags.*phenol_production",
        ),
        (lambda rows: rows[0].update(ox1_chp=float("nan")), r"(?s)recent\[0\].*ox1_chp.*not a finite number"),
        (lambda rows: rows.reverse(), r"recent\[1\].*not after the row before it"),
        (lambda rows: rows[2].update(timestamp=rows[1]["timestamp"]), r"recent\[2\].*not after"),
        (lambda rows: rows[2].update(timestamp="2026-01-01T12:05:00Z"), r"recent\[2\].*not before the state"),
        (
            lambda rows: rows[0].update(timestamp="2025-12-31T06:00:00Z"),
            r"recent\[0\]: 30.0 h before the state; a recent window spans at most 24 h",
        ),
        (lambda rows: rows[1].update(timestamp="yesterday"), r"recent\[1\].timestamp: missing or not a time"),
    ],
)
def test_a_bad_recent_window_is_refused_naming_the_row(change, message):
    from dragon.data import parse_window

    spec, state, rows = _window_case()
    change(rows)
    with pytest.raises(DataError, match=message):
        parse_window(rows, state, spec)


@pytest.mark.parametrize("minutes", [1439, 1440, 2000])
def test_window_positions_reach_back_the_window_thinned_from_the_state(minutes):
    """A minute history: the rows of the 24 h before the last one, every n-th counted back from it."""
    from dragon.data import MAX_WINDOW_ROWS, window_positions

    hours = np.arange(minutes + 1) / 60.0
    at = minutes
    positions = window_positions(hours, at, 24.0)
    within = np.flatnonzero((hours > hours[at] - 24.0) & (np.arange(len(hours)) < at))
    thin = -(-len(within) // MAX_WINDOW_ROWS)
    assert len(positions) <= MAX_WINDOW_ROWS and np.all(np.diff(positions) == thin)
    assert positions[-1] == at - thin and positions[0] >= within[0] and positions[0] - thin < within[0]
    assert len(window_positions(hours, 0, 24.0)) == 0  # nothing before the first row
