"""Batch runs: one output row per input row, bad rows become error rows, the run never stops."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from console import run_dragon

from dragon.errors import DataError
from inference.batch import run_batch


@pytest.fixture(scope="module")
def table_with_bad_rows(small_history, loaded_bundle, tmp_path_factory) -> Path:
    """12 history rows (with their timestamps and an extra column) of which rows 3, 7 and 9 are bad."""
    spec = loaded_bundle.spec
    frame = pd.read_parquet(small_history).dropna(subset=spec.required_state_tags).iloc[::211].head(12)
    frame = frame[[spec.time_column, *spec.required_state_tags]].reset_index(drop=True)
    frame["operator_note"] = "ok"
    tag = spec.required_state_tags[0]
    frame[tag] = frame[tag].astype(object)
    frame.loc[3, tag] = float("nan")
    frame.loc[7, tag] = "sensor fault"
    frame.loc[9, spec.required_state_tags[1]] = 1e12
    path = tmp_path_factory.mktemp("batch") / "states.csv"
    frame.to_csv(path, index=False)
    return path


def test_bad_rows_become_error_rows(table_with_bad_rows, trained_bundle, loaded_bundle, tmp_path):
    seen = []
    summary = run_batch(
        table_with_bad_rows,
        tmp_path / "answers.csv",
        trained_bundle,
        "3",
        workers=1,
        chunk_rows=5,
        progress=lambda advance, total: seen.append((advance, total)),
    )
    out = pd.read_csv(tmp_path / "answers.csv", dtype={"model_version": str})
    assert summary.rows == len(out) == 12
    assert list(out["row"]) == list(range(1, 13))  # counted from 1, as `dragon check` counts rows
    assert list(out.columns[:3]) == ["row", loaded_bundle.spec.time_column, "status"]
    errors = out[out["status"] == "error"]
    assert list(errors["row"]) == [4, 8, 10]
    assert "sensor fault" in errors.loc[errors["row"] == 8, "errors"].item()
    assert set(out.loc[out["status"] != "error", "status"]) <= {"recommended", "hold", "blocked"}
    assert (out["model_version"] == "3").all()
    assert summary.ignored_columns == ["operator_note"]
    assert sum(advance for advance, _ in seen) == 12 and {total for _, total in seen} == {12}
    assert seen[0] == (0, 12)  # the table read and checked: the bar may start


def test_unknown_input_type_is_a_data_error(trained_bundle, tmp_path):
    (tmp_path / "states.txt").write_text("x")
    with pytest.raises(DataError, match="unknown input file type"):
        run_batch(tmp_path / "states.txt", tmp_path / "out.csv", trained_bundle, workers=1)


def test_dragon_batch_on_two_workers(table_with_bad_rows, trained_bundle, tmp_path):
    """The CLI end to end, with worker processes that each load the bundle."""
    output = tmp_path / "answers.parquet"
    result = run_dragon(
        "batch",
        "--input",
        str(table_with_bad_rows),
        "--output",
        str(output),
        "--bundle",
        str(trained_bundle),
        "--workers",
        "2",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 12 and summary["statuses"]["error"] == 3 and summary["workers"] == 2
    out = pd.read_parquet(output)
    assert list(out["row"]) == list(range(1, 13))
    assert out["model_version"].str.startswith("bundle-").all()


def test_a_required_column_missing_is_one_file_level_error(
    table_with_bad_rows, trained_bundle, loaded_bundle, tmp_path
):
    """Not one error row per row: the run stops before any work, exit 2, one line naming the column
    (and no progress bar drawn before it)."""
    missing = loaded_bundle.spec.required_state_tags[-1]
    table = tmp_path / "no_column.csv"
    pd.read_csv(table_with_bad_rows).drop(columns=[missing]).to_csv(table, index=False)
    output = tmp_path / "answers.csv"
    result = run_dragon(
        "batch", "--input", str(table), "--output", str(output), "--bundle", str(trained_bundle), cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    message = result.stderr.strip()
    assert "no_column.csv" in message and missing in message and "no column" in message
    assert "Traceback" not in result.stderr and not output.exists()


@pytest.fixture(scope="module")
def history_table(small_history, loaded_bundle, tmp_path_factory) -> Path:
    """8 consecutive history rows (time-sorted): a plant's history, each row a state."""
    spec = loaded_bundle.spec
    frame = pd.read_parquet(small_history).dropna(subset=spec.required_state_tags).iloc[600:608]
    path = tmp_path_factory.mktemp("history") / "history.csv"
    frame[[spec.time_column, *spec.required_state_tags]].to_csv(path, index=False)
    return path


def test_a_history_answers_every_row_with_the_rows_before_it(
    history_table, trained_bundle, loaded_bundle, tmp_path
):
    """Each row as the endpoint answers it sent with its recent window, also across chunk borders."""
    from inference.answering import Answerer
    from inference.payloads import Record

    summary = run_batch(history_table, tmp_path / "answers.csv", trained_bundle, "3", workers=1, chunk_rows=3)
    assert summary.alone_because is None
    out = pd.read_csv(tmp_path / "answers.csv")
    methods = out.filter(like="anchors.").filter(like=".method")
    assert not methods.empty
    assert (methods.iloc[0] == "single reading").all()  # nothing was recorded before the first row
    assert methods.iloc[1:].map(lambda method: method.startswith("window mean")).all().all()
    rows = pd.read_csv(history_table).to_dict("records")  # row 5 sits in the second chunk
    endpoint = Answerer.load(loaded_bundle, "3").answer([Record(rows[4], recent=rows[:4])])[0]
    batch_row = out[out["row"] == 5].iloc[0]
    assert batch_row["status"] == endpoint.status
    for model, anchor in endpoint.anchors.items():
        assert batch_row[f"anchors.{model}.value"] == pytest.approx(anchor.value)
        assert batch_row[f"anchors.{model}.rows"] == anchor.rows == 5


def test_rows_out_of_time_order_are_answered_alone_and_the_run_says_why(
    history_table, trained_bundle, tmp_path
):
    table = tmp_path / "shuffled.csv"
    frame = pd.read_csv(history_table)
    frame.iloc[[0, 3, 1, 2, *range(4, len(frame))]].to_csv(table, index=False)
    output = tmp_path / "answers.csv"
    result = run_dragon(
        "batch", "--input", str(table), "--output", str(output), "--bundle", str(trained_bundle),
        "--workers", "1", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert "each row answered alone" in said and "row 3" in said and "not after the row before it" in said
    methods = pd.read_csv(output).filter(like="anchors.").filter(like=".method")
    assert (methods == "single reading").all().all()
