"""Reading and checking plant history, and reading one plant state.

`read_history` turns a CSV or Parquet file into a frame with a UTC time column.
`check_history` finds every data problem (missing columns, non-numbers, NaN,
values outside a tag's `valid` range, duplicate or unsorted timestamps, frozen
sensors), turns bad readings into NaN, drops the rows a model or detector cannot
use and counts everything it touched in a `DataQualityReport`: nothing is
dropped silently. `parse_state` validates a single plant state for
recommendation and reports every problem of the state at once.

Every table (a history here, a batch input, a CSV request body) follows the same three
rules, through `table_columns` and `ROW_NUMBERS`: rows are numbered from 1 in the order they
were read (the CSV header is not a row); columns that are not tags of the plant (labels such
as `episode`) are ignored and named once; a required tag without a column is one file-level
error naming it, never an error on every row.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from dragon.dynamics import settling_hours
from dragon.errors import DataError
from dragon.spec import PlantSpec

# Reading problems, in the order a dropped row is attributed to them (first one wins).
BAD_TIMESTAMP = "bad timestamp"
DUPLICATE_TIMESTAMP = "duplicate timestamp"
NON_NUMERIC = "non-numeric"
MISSING = "missing (NaN)"
OUT_OF_RANGE = "outside valid range"
FROZEN = "frozen sensor"
UNSORTED = "unsorted timestamp"  # counted and fixed (rows are sorted), never a reason to drop
READING_PROBLEMS = (NON_NUMERIC, MISSING, OUT_OF_RANGE, FROZEN)
DROP_REASONS = (BAD_TIMESTAMP, DUPLICATE_TIMESTAMP, *READING_PROBLEMS)

EXAMPLE_ROWS = 5  # first offending rows kept per tag and problem
HOLD_FACTOR = 1.5  # a run longer than 1.5 x the tag's typical hold is frozen, not sampled
HOLD_QUANTILE = 0.9  # "typical hold": this quantile of the tag's complete run lengths
MIN_COMPLETE_RUNS = 3
SUFFIXES = (".csv", ".parquet", ".pq")
HISTORY_SUFFIXES = (".csv", ".parquet")  # what a training channel or an S3 history prefix holds
ROW_NUMBERS = "rows are numbered from 1 in file order (the CSV header is not a row)"


def is_history_file(name: str) -> bool:
    """A history table by its name (a path or an S3 key): .csv or .parquet, not a simulator's truth file
    beside it (h.truth.parquet)."""
    path = PurePosixPath(name)
    return path.suffix in HISTORY_SUFFIXES and ".truth" not in path.suffixes


@dataclass
class DataQualityReport:
    """What the checks found in one history and what they did about it."""

    source: str
    rows_in: int
    rows_kept: int
    problems: dict[str, dict[str, int]] = field(default_factory=dict)  # {tag: {problem: count}}
    examples: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # {tag: {problem: [row, ...]}}
    dropped: dict[str, int] = field(default_factory=dict)  # {reason: rows}, each dropped row once
    warnings: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)  # not tags of the plant: carried, never checked

    @property
    def rows_dropped(self) -> int:
        return self.rows_in - self.rows_kept

    def count(self, tag: str, problem: str, rows: np.ndarray) -> None:
        """Record `len(rows)` occurrences of a problem (rows: 1-based numbers, in file order)."""
        if len(rows) == 0:
            return
        self.problems.setdefault(tag, {})[problem] = int(len(rows))
        self.examples.setdefault(tag, {})[problem] = [int(r) for r in np.sort(rows)[:EXAMPLE_ROWS]]

    def top_problems(self, limit: int = 5) -> list[str]:
        """The largest problems as 'tag: N problem (e.g. rows ...)', worst first."""
        items = [(n, tag, problem) for tag, per in self.problems.items() for problem, n in per.items()]
        items.sort(key=lambda item: (-item[0], item[1], item[2]))
        return [
            f"{tag}: {count} {problem} (e.g. rows {', '.join(map(str, self.examples[tag][problem]))})"
            for count, tag, problem in items[:limit]
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "rows_dropped": self.rows_dropped,
            "dropped": dict(self.dropped),
            "problems": {tag: dict(per) for tag, per in self.problems.items()},
            "examples": {tag: {p: list(r) for p, r in per.items()} for tag, per in self.examples.items()},
            "warnings": list(self.warnings),
            "ignored_columns": list(self.ignored_columns),
        }

    def render(self):
        """A rich renderable for the CLI: summary, drop reasons, problems per tag, warnings."""
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text

        summary = Table(title=f"data quality: {escape(self.source)}", show_header=False)
        summary.add_row("rows in", f"{self.rows_in:,}")
        summary.add_row("rows kept", f"{self.rows_kept:,}")
        share = self.rows_dropped / self.rows_in if self.rows_in else 0.0
        summary.add_row("rows dropped", f"{self.rows_dropped:,} ({share:.1%})")
        for reason in DROP_REASONS:
            if self.dropped.get(reason):
                summary.add_row(f"  dropped: {reason}", f"{self.dropped[reason]:,}")
        parts: list[Any] = [summary]
        if self.problems:
            problems = Table(
                "tag",
                "problem",
                "count",
                "first rows",
                title="problems per tag",
                caption=ROW_NUMBERS,
            )
            for tag, per in self.problems.items():
                for problem, count in per.items():
                    rows = ", ".join(map(str, self.examples[tag][problem]))
                    problems.add_row(escape(tag), problem, f"{count:,}", rows)
            parts.append(problems)
        else:
            parts.append(Text("no data problems found", style="green"))
        if self.ignored_columns:
            parts.append(
                Text(f"columns that are not tags of the plant (ignored): {', '.join(self.ignored_columns)}")
            )
        parts.extend(Text(f"warning: {w}", style="yellow") for w in self.warnings)
        return Group(*parts)


@dataclass
class CheckedHistory:
    clean: pd.DataFrame  # sorted, unique timestamps, tags as float, no NaN in a used tag
    report: DataQualityReport


def read_history(path: Path, spec: PlantSpec) -> pd.DataFrame:
    """Read a history (CSV or Parquet by suffix) and parse its time column to UTC.

    Timestamps that cannot be parsed become NaT; `check_history` counts and drops them.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown file type '{path.suffix}' (use .csv or .parquet)")
    if not path.is_file():
        raise DataError(f"{path}: file not found (pass --data PATH to a CSV or Parquet history)")
    import pyarrow

    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, UnicodeDecodeError, pyarrow.ArrowException) as error:
        raise DataError(f"{path}: cannot read the file as {suffix[1:]}: {error}") from None
    if spec.time_column not in frame.columns:
        raise DataError(
            f"{path}: no time column '{spec.time_column}' (columns: {_preview(frame.columns)}); "
            "the plant spec's [plant] time_column names it"
        )
    frame[spec.time_column] = parse_timestamps(frame[spec.time_column])
    return frame


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO-8601 strings, epoch seconds or datetimes -> datetime64[ns, UTC]; unparseable -> NaT."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return _from_epoch(values.astype(float))
    parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    # A text column may still hold epoch seconds (e.g. one bad cell made the CSV column text).
    epoch = pd.to_numeric(values, errors="coerce")
    use_epoch = parsed.isna() & epoch.notna()
    if use_epoch.any():
        parsed = parsed.where(~use_epoch, _from_epoch(epoch))
    return parsed.astype("datetime64[ns, UTC]")


def _nanoseconds(times: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds (NaT becomes the int64 minimum)."""
    return times.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view("int64")


def _from_epoch(seconds: pd.Series) -> pd.Series:
    finite = seconds.where(np.isfinite(seconds))
    return pd.to_datetime(finite, unit="s", utc=True, errors="coerce").astype("datetime64[ns, UTC]")


def check_history(frame: pd.DataFrame, spec: PlantSpec, source: str) -> CheckedHistory:
    """Check a history against the spec; return the clean frame and the report, or raise DataError.

    Bad readings become NaN; rows with NaN in a tag a model or detector uses are dropped and
    counted by reason. Columns that are not tags (labels such as `episode`) pass through untouched.
    """
    time_column = spec.time_column
    if time_column not in frame.columns:
        raise DataError(f"{source}: no time column '{time_column}' (columns: {_preview(frame.columns)})")
    used = spec.used_tags
    ignored = table_columns(frame.columns, spec, used, source=source, needed_by="a model or detector uses")
    report = DataQualityReport(source=source, rows_in=len(frame), rows_kept=0, ignored_columns=ignored)
    missing_unused = [tag for tag in spec.tags if tag not in frame.columns]
    if missing_unused:
        report.warnings.append(
            f"no column for unused tag(s) {', '.join(missing_unused)} (no model or detector reads them)"
        )

    frame = frame.reset_index(drop=True)
    row_number = np.arange(1, len(frame) + 1)
    times = parse_timestamps(frame[time_column])
    drop_reason = np.full(len(frame), "", dtype=object)

    bad_time = times.isna().to_numpy()
    report.count(time_column, BAD_TIMESTAMP, row_number[bad_time])
    drop_reason[bad_time] = BAD_TIMESTAMP

    # Sort (stably, so the first of two equal timestamps stays first) and count rows out of order.
    stamps = _nanoseconds(times)
    valid_stamps = np.where(bad_time, np.iinfo(np.int64).min, stamps)
    running_max = np.maximum.accumulate(valid_stamps)
    out_of_order = np.zeros(len(frame), dtype=bool)
    out_of_order[1:] = (valid_stamps[1:] < running_max[:-1]) & ~bad_time[1:]
    report.count(time_column, UNSORTED, row_number[out_of_order])
    order = np.argsort(np.where(bad_time, np.iinfo(np.int64).max, stamps), kind="stable")

    frame = frame.iloc[order].reset_index(drop=True)
    frame[time_column] = times.iloc[order].reset_index(drop=True)
    row_number, bad_time, drop_reason = row_number[order], bad_time[order], drop_reason[order]
    duplicate = frame[time_column].duplicated(keep="first").to_numpy() & ~bad_time
    report.count(time_column, DUPLICATE_TIMESTAMP, row_number[duplicate])
    drop_reason[duplicate & (drop_reason == "")] = DUPLICATE_TIMESTAMP

    # Readings are judged on the rows whose timestamp is usable, in time order (a row already
    # dropped for its timestamp is not counted again for its readings).
    ok_rows = ~(bad_time | duplicate)
    ok_times = _nanoseconds(frame[time_column])[ok_rows]
    step = float(np.median(np.diff(ok_times))) if len(ok_times) > 1 else 0.0  # the sample period
    used_set = set(used)
    for tag in spec.tags:
        if tag not in frame.columns:
            continue
        values, bad = _check_tag(frame[tag], tag, spec, ok_rows, (ok_times, step), row_number, report)
        frame[tag] = values
        readings = values[ok_rows]
        if len(readings) > 1 and np.nanmin(readings, initial=np.inf) == np.nanmax(readings, initial=-np.inf):
            value = readings[~np.isnan(readings)][0]
            report.warnings.append(f"{tag} holds one value ({value:g}) in every row")
        if tag in used_set:
            for problem in READING_PROBLEMS:
                drop_reason[bad[problem] & (drop_reason == "")] = problem

    keep = drop_reason == ""
    for reason in DROP_REASONS:
        count = int((drop_reason == reason).sum())
        if count:
            report.dropped[reason] = count
    clean = frame.loc[keep].reset_index(drop=True)
    report.rows_kept = len(clean)
    if report.rows_kept < spec.training.min_rows:
        problems = "; ".join(report.top_problems()) or "none found (the history is just short)"
        raise DataError(
            f"{source}: only {report.rows_kept} usable row(s) of {report.rows_in} remain, the plant spec's "
            f"[training] min_rows is {spec.training.min_rows}. Top problems: {problems}"
        )
    return CheckedHistory(clean=clean, report=report)


def table_columns(
    columns: Any, spec: PlantSpec, required: list[str], *, source: str, needed_by: str
) -> list[str]:
    """The columns of a table that are not tags of the plant (nor its time column): the caller ignores
    them and names them once. Raise one DataError naming every `required` tag without a column
    (`needed_by` says why they are required, e.g. "a recommendation reads")."""
    names = [str(column) for column in columns]
    missing = [tag for tag in required if tag not in names]
    if missing:
        raise DataError(
            f"{source}: {len(missing)} tag(s) that {needed_by} have no column: {', '.join(missing)} "
            f"(columns: {_preview(pd.Index(names))})"
        )
    return [name for name in names if name not in spec.tags and name not in (spec.time_column, "timestamp")]


def _check_tag(
    raw: pd.Series,
    tag: str,
    spec: PlantSpec,
    ok_rows: np.ndarray,
    ok_times: tuple[np.ndarray, float],
    row_number: np.ndarray,
    report: DataQualityReport,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One tag's readings as float with bad ones set to NaN, and a mask per problem."""
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.to_numpy(dtype=float, na_value=np.nan)
        non_numeric = np.zeros(len(raw), dtype=bool)
    else:
        # Text like "1.5" is a number; "n/a", "True" or an object is not.
        present = raw.notna().to_numpy()
        values = pd.to_numeric(raw.astype(str).where(present), errors="coerce").to_numpy(dtype=float)
        non_numeric = present & np.isnan(values)
    missing = np.isnan(values) & ~non_numeric
    low, high = spec.tags[tag].valid
    with np.errstate(invalid="ignore"):
        out_of_range = ~np.isnan(values) & ((values < low) | (values > high))
    frozen = np.zeros(len(raw), dtype=bool)
    frozen[ok_rows] = _frozen_readings(values[ok_rows], *ok_times, spec.training.frozen_minutes)

    bad = {NON_NUMERIC: non_numeric, MISSING: missing, OUT_OF_RANGE: out_of_range, FROZEN: frozen}
    for problem, mask in bad.items():
        report.count(tag, problem, row_number[mask & ok_rows])
    values = np.where(out_of_range | frozen, np.nan, values)
    return values, bad


def _frozen_readings(
    values: np.ndarray, times_ns: np.ndarray, step: float, frozen_minutes: int
) -> np.ndarray:
    """Readings inside a run of one unchanging value that lasts too long.

    Lab values legitimately hold between samples (every 8 h in the default plant), so a run
    counts as frozen only when it outlasts max(frozen_minutes, 1.5 x the tag's typical hold),
    the typical hold being a high quantile of the runs that start and end inside the history.
    """
    n = len(values)
    if n < 2:
        return np.zeros(n, dtype=bool)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])  # NaN != NaN: NaN never forms a run
    ends = np.r_[starts[1:], n] - 1
    minutes = (times_ns[ends] - times_ns[starts] + step) / 60e9
    # Runs cut by the start or end of the history are censored; use them only when few others exist.
    runs = minutes[~np.isnan(values[starts])]
    complete = minutes[1:-1][~np.isnan(values[starts[1:-1]])]
    typical = float(np.quantile(complete if len(complete) >= MIN_COMPLETE_RUNS else runs, HOLD_QUANTILE))
    limit = max(float(frozen_minutes), HOLD_FACTOR * typical)
    frozen_run = (minutes > limit) & ~np.isnan(values[starts])
    return np.repeat(frozen_run, ends - starts + 1)


def parse_state(raw: Mapping[str, Any], spec: PlantSpec, *, source: str = "state") -> dict[str, float]:
    """Validate ONE plant state; return {tag: value} or raise DataError listing every problem.

    Every tag a model or detector reads is required; any other tag of the plant (a model
    target, an unused measurement) is optional and checked when present. The time column is
    ignored.
    """
    if not isinstance(raw, Mapping):
        raise DataError(f"{source}: a plant state must be an object of tag: value, got {type(raw).__name__}")
    ignored = {spec.time_column, "timestamp"}
    problems: list[str] = []
    missing = [tag for tag in spec.required_state_tags if tag not in raw]
    if missing:
        problems.append(f"missing tag(s): {', '.join(missing)}")
    unknown = [str(key) for key in raw if key not in spec.tags and key not in ignored]
    if unknown:
        problems.append(f"unknown tag(s): {', '.join(unknown)} (not tags of plant '{spec.name}')")
    state: dict[str, float] = {}
    for tag, value in raw.items():
        if tag not in spec.tags:
            continue
        problem = _state_value_problem(value, spec.tags[tag].valid)
        if problem:
            problems.append(f"{tag} = {_show(value)}: {problem}")
        else:
            state[tag] = float(value)
    if problems:
        raise DataError(f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    return state


MAX_WINDOW_ROWS = 720  # half a day of minute readings; a longer window is sent thinned
MIN_WINDOW_HOURS = 2.0  # a plant without lags still accepts two hours of recent readings


def max_window_hours(spec: PlantSpec) -> float:
    """How far back a recent window may reach: long enough to see every move that has not settled
    (dragon/dynamics.py: settling_hours), at least MIN_WINDOW_HOURS; older readings do not describe
    the current state."""
    return max(MIN_WINDOW_HOURS, settling_hours(spec))


def elapsed_hours(times: pd.Series) -> np.ndarray:
    """Each time of a datetime column in hours since its first: the `hours` window_positions reads."""
    return (times - times.iloc[0]).dt.total_seconds().to_numpy() / 3600.0


def window_positions(hours: np.ndarray, at: int, reach_hours: float) -> np.ndarray:
    """Positions of the rows recorded in the `reach_hours` before row `at` of a time-sorted series
    (`hours`: each row's time in hours), oldest first, thinned to MAX_WINDOW_ROWS (every n-th row
    counted back from `at`): the recent window a historian client sends with row `at` as the state."""
    first = int(np.searchsorted(hours, hours[at] - reach_hours, side="right"))
    thin = -(-(at - first) // MAX_WINDOW_ROWS) or 1
    return np.arange(at - thin, first - 1, -thin)[::-1]


@dataclass(frozen=True)
class RecentWindow:
    """The validated states just before a state, oldest first (parse_window)."""

    rows: list[dict[str, float]]
    # hours before the state of each row, when the state carries the time column (None otherwise): what
    # lag compensation needs to see a move that has not settled (optimizer/anchor.py)
    hours_before: list[float] | None = None


def parse_window(
    raw_rows: Any, raw_state: Mapping[str, Any], spec: PlantSpec, *, source: str = "recent"
) -> RecentWindow:
    """Validate the recent window sent with a state: the states just before it, oldest first
    (optimizer/anchor.py de-noises each model's anchor with it, and follows the moves that have not
    settled). Each row is a state (parse_state) with the same tags as the state; when the state carries
    the time column, every row does too, strictly increasing, before the state and at most
    max_window_hours before it. Raise DataError naming the row.
    """
    if not isinstance(raw_rows, list):
        raise DataError(
            f"{source}: must be a list of plant states (oldest first), got {type(raw_rows).__name__}"
        )
    if len(raw_rows) > MAX_WINDOW_ROWS:
        raise DataError(
            f"{source}: {len(raw_rows)} rows; a recent window holds at most {MAX_WINDOW_ROWS} "
            "(send a longer window thinned)"
        )
    time_column = spec.time_column
    state_tags = {tag for tag in raw_state if tag in spec.tags}
    rows, times = [], []
    for i, raw in enumerate(raw_rows):
        where = f"{source}[{i}]"
        row = parse_state(raw, spec, source=where)
        if set(row) != state_tags:
            missing, extra = sorted(state_tags - set(row)), sorted(set(row) - state_tags)
            detail = "; ".join(
                part
                for part in (
                    f"lacks {', '.join(missing)}" if missing else "",
                    f"has {', '.join(extra)} the state lacks" if extra else "",
                )
                if part
            )
            raise DataError(f"{where}: carries other tags than the state ({detail})")
        if time_column in raw_state:
            times.append(_window_time(raw.get(time_column), f"{where}.{time_column}"))
        rows.append(row)
    if time_column not in raw_state or not rows:
        return RecentWindow(rows)
    now = _window_time(raw_state[time_column], f"state.{time_column}")
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            raise DataError(
                f"{source}[{i}]: {time_column} {times[i].isoformat()} is not after the row before it "
                "(the window must be sorted oldest first, without duplicate times)"
            )
    if times[-1] >= now:
        raise DataError(f"{source}[{len(times) - 1}]: {time_column} is not before the state's")
    hours_before = [(now - time).total_seconds() / 3600.0 for time in times]
    if hours_before[0] > max_window_hours(spec):
        raise DataError(
            f"{source}[0]: {hours_before[0]:.1f} h before the state; a recent window spans at most "
            f"{max_window_hours(spec):g} h for plant '{spec.name}' (older readings do not describe the "
            "current state)"
        )
    return RecentWindow(rows, hours_before)


def _window_time(value: Any, where: str) -> pd.Timestamp:
    """An ISO-8601 or epoch-seconds time of a window row, or a DataError naming it."""
    try:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return pd.Timestamp(float(value), unit="s", tz="UTC")
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        stamp = None
    if stamp is None or pd.isna(stamp):
        raise DataError(f"{where}: missing or not a time (ISO-8601 or epoch seconds): {_show(value)}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def _state_value_problem(value: Any, valid: tuple[float, float]) -> str:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        kind = "null" if value is None else type(value).__name__
        return f"not a number ({kind})"
    number = float(value)
    if not math.isfinite(number):
        return "not a finite number"
    if not valid[0] <= number <= valid[1]:
        return f"outside the valid range [{valid[0]}, {valid[1]}]"
    return ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _preview(columns: pd.Index, limit: int = 8) -> str:
    names = [str(c) for c in columns[:limit]]
    return ", ".join(names) + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")
