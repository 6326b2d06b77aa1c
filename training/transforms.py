"""Data preparation for training: check → steady-state selection → resample → time-ordered split.

This is the step a Lambda (or a Fargate task for large data) runs on AWS and that
runs in-process locally. It turns a minute-by-minute history into:

* `train` / `holdout`: steady, normal operation averaged to the model time step, for the GAMs
  (a GAM of steady-state behaviour must not learn from transients or faults), with the lagged
  inputs of lag-compensated models (dragon/dynamics.py) beside the raw tags;
* `detector_train`: all normal operation of the training period, steady or not (the anomaly
  detectors must know every normal state, including transients), less the recovery after episodes;
* `detector_holdout`: every bucket of the hold-out period with its `episode` label and `recovering`
  flag (recovering_mask), for the gate;
* `baseline_rows`: every reading of the training period outside labelled episodes, as recorded (not
  averaged, recovery included), for the drift baselines: monitoring judges single served states
  and raw history windows, and a baseline of bucket means would call their noise drift.

The split is by time (the last `holdout_fraction` of the span), never random: neighbouring
minutes are nearly identical and a random split would leak. Every minute row that does not end
up in `train` or `holdout` is counted under one reason, so rows_in = rows_used + dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dragon.data import DataQualityReport, check_history, parse_timestamps
from dragon.dynamics import add_lagged_inputs, settling_hours
from dragon.errors import DataError
from dragon.spec import PlantSpec

EPISODE = "episode"
RECOVERING = "recovering"  # bucket flag: the plant is settling after an episode (recovering_mask)
TRUTH_STEADY = "steady"
DATA_PROBLEMS = "data problems"
LABELLED_ABNORMAL = "labelled abnormal"
NOT_STEADY = "not steady"
LAGS_SETTLING = "lagged inputs settling"  # 3 τ after the start, a gap or an episode (dragon/dynamics.py)
RESAMPLED_AWAY = "resampled away"  # steady normal minutes in a bucket that also holds other minutes
GAP_SAMPLES = 5  # a time step this many sample periods long restarts the steady-state filters
MIN_HELD_WINDOW = 5  # a sample-and-hold tag is judged over at least this many of its samples


@dataclass
class TransformReport:
    source: str
    rows_in: int
    rows_used: int  # minute rows inside the steady normal buckets of train + holdout
    dropped: dict[str, int]  # {reason: minute rows}, each row once
    steady_share: float  # share of checked rows the steady-state test judged steady
    ssd_agreement: dict[str, float] | None  # precision/recall of the test against the truth's steady flag
    resample_minutes: int
    buckets: dict[str, int]  # rows of each output frame
    train_period: tuple[str, str]
    holdout_period: tuple[str, str]
    data_quality: DataQualityReport
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_in": self.rows_in,
            "rows_used": self.rows_used,
            "dropped": dict(self.dropped),
            "steady_share": self.steady_share,
            "ssd_agreement": dict(self.ssd_agreement) if self.ssd_agreement else None,
            "resample_minutes": self.resample_minutes,
            "buckets": dict(self.buckets),
            "train_period": list(self.train_period),
            "holdout_period": list(self.holdout_period),
            "data_quality": self.data_quality.to_dict(),
            "notes": list(self.notes),
        }

    def render(self):
        from rich.console import Group
        from rich.table import Table

        table = Table(title="training data", show_header=False)
        table.add_row("rows in", f"{self.rows_in:,}")
        for reason, count in self.dropped.items():
            table.add_row(f"  dropped: {reason}", f"{count:,}")
        table.add_row("rows used (steady, normal)", f"{self.rows_used:,}")
        table.add_row("judged steady", f"{self.steady_share:.1%}")
        if self.ssd_agreement:
            agreement = self.ssd_agreement
            scores = f"precision {agreement['precision']:.2f}, recall {agreement['recall']:.2f}"
            table.add_row("steady test vs truth", scores)
        for name, count in self.buckets.items():
            table.add_row(f"{name} ({self.resample_minutes} min rows)", f"{count:,}")
        table.add_row("training period", " → ".join(self.train_period))
        table.add_row("hold-out period", " → ".join(self.holdout_period))
        for note in self.notes:
            table.add_row("note", note)
        return Group(self.data_quality.render(), table)


@dataclass
class TrainingData:
    train: pd.DataFrame  # steady normal buckets of the training period
    holdout: pd.DataFrame  # steady normal buckets of the hold-out period
    detector_train: pd.DataFrame  # normal buckets of the training period, steady or not
    detector_holdout: pd.DataFrame  # every bucket of the hold-out period, with `episode`
    baseline_rows: pd.DataFrame  # readings of the training period outside episodes, not averaged (drift)
    train_truth: pd.DataFrame | None  # the truth averaged the same way, row-aligned with `train`
    holdout_truth: pd.DataFrame | None  # ... row-aligned with `holdout`
    report: TransformReport


def prepare_training_data(
    frame: pd.DataFrame, spec: PlantSpec, *, truth: pd.DataFrame | None = None, source: str
) -> TrainingData:
    """Check, select steady normal operation, resample and split a history (module docstring)."""
    time_column = spec.time_column
    if truth is not None:
        truth = _truth_with_times(truth, frame, time_column, source)
    checked = check_history(frame, spec, source)
    clean = checked.clean
    times = clean[time_column]

    if EPISODE in clean:  # a CSV round trip turns empty labels into NaN (a float column when all are empty)
        clean[EPISODE] = _episode_labels(clean)
        abnormal = clean[EPISODE].to_numpy() != ""
    else:
        abnormal = np.zeros(len(clean), dtype=bool)
    steady = steady_state_mask(clean, spec)
    recovering = recovering_mask(clean, spec, _labelled_times(frame, time_column))
    settling = lags_settling(clean, spec) | recovering
    normal_steady = steady & ~abnormal & ~settling
    clean = with_lagged_inputs(clean, spec)

    bucket = times.dt.floor(f"{spec.training.resample_minutes}min")
    codes, starts = pd.factorize(bucket, sort=True)
    resampled = resample(clean, codes, starts, time_column)
    rows = np.bincount(codes, minlength=len(starts))
    bucket_normal = np.bincount(codes, weights=~(abnormal | recovering), minlength=len(starts)) == rows
    resampled[RECOVERING] = np.bincount(codes, weights=recovering, minlength=len(starts)) > 0
    bucket_steady = np.bincount(codes, weights=normal_steady, minlength=len(starts)) == rows

    cut = _holdout_start(times, spec)
    in_holdout = np.asarray(starts >= cut)
    if in_holdout.all() or not in_holdout.any():
        raise DataError(
            f"{source}: the history spans {times.iloc[0]} to {times.iloc[-1]}, too short to split off "
            f"a hold-out period of {spec.training.holdout_fraction:.0%} "
            f"at {spec.training.resample_minutes}-minute steps"
        )
    frames = {
        "train": bucket_steady & ~in_holdout,
        "holdout": bucket_steady & in_holdout,
        "detector_train": bucket_normal & ~in_holdout,
        "detector_holdout": in_holdout,
    }
    selected = {name: resampled.loc[mask].reset_index(drop=True) for name, mask in frames.items()}

    minute_in_used_bucket = bucket_steady[codes]
    dropped = {
        DATA_PROBLEMS: checked.report.rows_dropped,
        LABELLED_ABNORMAL: int(abnormal.sum()),
        LAGS_SETTLING: int((~abnormal & settling).sum()),
        NOT_STEADY: int((~abnormal & ~settling & ~steady).sum()),
        RESAMPLED_AWAY: int((normal_steady & ~minute_in_used_bucket).sum()),
    }
    train_truth = holdout_truth = None
    agreement = None
    notes: list[str] = []
    if truth is not None:
        aligned = truth.drop_duplicates(time_column).set_index(time_column)
        # Flags become 0/1 so that a missing truth row stays NaN and a bucket's flag is its mean.
        flags = [c for c in aligned.columns if pd.api.types.is_bool_dtype(aligned[c])]
        aligned = aligned.astype(dict.fromkeys(flags, float))
        aligned = aligned.reindex(times).reset_index(drop=True)
        unmatched = int(aligned.isna().all(axis=1).sum())
        if unmatched:
            notes.append(f"{unmatched} checked row(s) have no truth row with the same timestamp")
        if TRUTH_STEADY in aligned:
            agreement = _ssd_agreement(steady[~abnormal], aligned[TRUTH_STEADY].to_numpy()[~abnormal])
        aligned.insert(0, time_column, times.array)
        truth_resampled = resample(aligned, codes, starts, time_column)
        if TRUTH_STEADY in truth_resampled:
            truth_resampled[TRUTH_STEADY] = truth_resampled[TRUTH_STEADY] == 1.0  # every minute steady
        train_truth = truth_resampled.loc[frames["train"]].reset_index(drop=True)
        holdout_truth = truth_resampled.loc[frames["holdout"]].reset_index(drop=True)

    hold_start = starts[in_holdout][0]
    report = TransformReport(
        source=source,
        rows_in=checked.report.rows_in,
        rows_used=int(rows[bucket_steady].sum()),
        dropped=dropped,
        steady_share=float(steady.mean()) if len(steady) else 0.0,
        ssd_agreement=agreement,
        resample_minutes=spec.training.resample_minutes,
        buckets={name: len(f) for name, f in selected.items()},
        train_period=(_iso(starts[0]), _iso(hold_start)),
        holdout_period=(_iso(hold_start), _iso(times.iloc[-1])),
        data_quality=checked.report,
        notes=notes,
    )
    for name in ("train", "holdout"):
        if selected[name].empty:
            raise DataError(
                f"{source}: no steady, normal {spec.training.resample_minutes}-minute rows in the {name} "
                "period "
                f"(of {report.rows_in} rows: {', '.join(f'{k} {v}' for k, v in dropped.items())}); "
                "check the history or loosen [steady_state] ratio_threshold / window_minutes / hold_minutes"
            )
    return TrainingData(
        train=selected["train"],
        holdout=selected["holdout"],
        detector_train=selected["detector_train"],
        detector_holdout=selected["detector_holdout"],
        baseline_rows=clean.loc[
            ~abnormal & ~in_holdout[codes],
            [time_column, *(t for t in spec.used_tags if t in clean)],
        ].reset_index(drop=True),
        train_truth=train_truth,
        holdout_truth=holdout_truth,
        report=report,
    )


def steady_state_mask(frame: pd.DataFrame, spec: PlantSpec) -> np.ndarray:
    """Rows where every steady-state tag passes the variance-ratio test (all True when disabled).

    Rows within one window of the start of the history or of a gap are not steady: the filters
    have not yet seen enough of the signal to judge it.
    """
    settings = spec.steady_state
    if not settings.enabled:
        return np.ones(len(frame), dtype=bool)
    tags = settings.tags or list(spec.model_targets.values())
    absent = [tag for tag in tags if tag not in frame]
    if absent:
        raise DataError(f"[steady_state] tags: the data has no column for {', '.join(absent)}")
    times = _epoch_ns(frame, spec.time_column)
    if len(times) < 2:
        return np.zeros(len(frame), dtype=bool)
    step_minutes = _step_minutes(times)
    window = max(int(round(settings.window_minutes / step_minutes)), 2)
    ratio = np.column_stack([_tag_variance_ratio(frame[tag].ffill().to_numpy(float), window) for tag in tags])
    unsteady = (ratio >= settings.ratio_threshold).any(axis=1)
    hold = int(round(settings.hold_minutes / step_minutes))
    if hold > 0:  # steady only after passing the test for the whole hold time
        unsteady = pd.Series(unsteady, dtype=float).rolling(hold + 1, min_periods=1).max().to_numpy() > 0

    warming_up = _minutes_into_segment(times, step_minutes) < settings.window_minutes
    return ~(unsteady | warming_up)


def with_lagged_inputs(frame: pd.DataFrame, spec: PlantSpec) -> pd.DataFrame:
    """`frame` (time-ordered rows) with the lagged input columns of its lag-compensated models."""
    return add_lagged_inputs(frame, spec, _step_minutes(_epoch_ns(frame, spec.time_column)))


def lags_settling(frame: pd.DataFrame, spec: PlantSpec) -> np.ndarray:
    """Rows too close to the start of the history or of a gap for the lagged inputs to have settled."""
    hours = settling_hours(spec)
    times = _epoch_ns(frame, spec.time_column)
    if hours <= 0 or len(times) < 2:
        return np.zeros(len(frame), dtype=bool)
    return _minutes_into_segment(times, _step_minutes(times)) < 60.0 * hours


def recovering_mask(frame: pd.DataFrame, spec: PlantSpec, labelled_ns: np.ndarray) -> np.ndarray:
    """Unlabelled rows within the plant's settling time after an abnormal one.

    An episode label covers the injection, not the hours the outputs (and lagged inputs) take to
    come back: those rows are neither an episode nor normal operation. The GAMs and detectors do
    not learn from them and the gate's false-alarm rate does not count them. `labelled_ns`: the times
    (epoch ns) of the labelled rows of the history as recorded, including rows the data check dropped:
    a stuck sensor's episode is mostly frozen readings, and settling is counted from its end.
    """
    hours = settling_hours(spec)
    times = _epoch_ns(frame, spec.time_column)
    if hours <= 0 or not len(labelled_ns):
        return np.zeros(len(frame), dtype=bool)
    labelled_ns = np.sort(labelled_ns)
    before = np.searchsorted(labelled_ns, times, side="right") - 1  # the last labelled row at or before
    since = times - labelled_ns[np.maximum(before, 0)]
    labelled = np.isin(times, labelled_ns)
    return (before >= 0) & ~labelled & (since < 3600e9 * hours)


def _labelled_times(frame: pd.DataFrame, time_column: str) -> np.ndarray:
    """Epoch ns of the rows of the history as read that carry an episode label (NaT rows left out)."""
    if EPISODE not in frame:
        return np.zeros(0, dtype=np.int64)
    labelled = _episode_labels(frame).to_numpy() != ""
    times = parse_timestamps(frame.loc[labelled, time_column])
    return times.dropna().dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view("int64")


def _epoch_ns(frame: pd.DataFrame, time_column: str) -> np.ndarray:
    return frame[time_column].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view("int64")


def _step_minutes(times: np.ndarray) -> float:
    """The sample period: the median time step (1.0 for a single row)."""
    return float(np.median(np.diff(times))) / 60e9 if len(times) > 1 else 1.0


def _minutes_into_segment(times: np.ndarray, step_minutes: float) -> np.ndarray:
    """Minutes since the start of each row's segment; a step over GAP_SAMPLES sample periods starts one."""
    gap = np.r_[True, np.diff(times) > GAP_SAMPLES * step_minutes * 60e9]
    segment_start = pd.Series(np.where(gap, times, np.nan)).ffill().to_numpy()
    return (times - segment_start) / 60e9


def _tag_variance_ratio(values: np.ndarray, window: int) -> np.ndarray:
    """The R statistic of one tag at every row, for continuous and for sample-and-hold tags.

    A tag that holds each value for several rows (an hourly yield estimate, a lab value) is
    tested on its distinct samples, with the window in those samples (at least a few), and each
    row gets the R of its latest sample: tested row by row, the holds would read as steps.
    """
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    lengths = np.diff(np.r_[starts, len(values)])
    hold = float(np.median(lengths))
    if hold <= 1.0:
        return variance_ratio(values, window)
    samples = max(int(round(window / hold)), MIN_HELD_WINDOW)
    return np.repeat(variance_ratio(values[starts], samples), lengths)


def variance_ratio(values: np.ndarray, window: int) -> np.ndarray:
    """Cao–Rhinehart R statistic with exponential filters spanning `window` samples.

    R = (2 - λ)·v²/δ², where v² filters the squared deviation from the filtered mean and δ²
    the squared difference of successive samples. R ≈ 1 for noise around a constant level and
    grows when the level moves (a ramp inflates v² but barely changes δ²). Vectorised: pandas'
    exponential filters run in compiled code.
    """
    lam = 2.0 / (window + 1.0)
    x = pd.Series(values)
    mean = x.ewm(alpha=lam, adjust=False).mean()
    v2 = ((x - mean.shift(1)) ** 2).ewm(alpha=lam, adjust=False, ignore_na=True).mean().to_numpy()
    d2 = (x.diff() ** 2).ewm(alpha=lam, adjust=False, ignore_na=True).mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (2.0 - lam) * v2 / d2
    # A signal that does not move at all is steady; one that moved only through its mean is not.
    return np.where(d2 > 0, ratio, np.where(v2 > 0, np.inf, 1.0))


def resample(frame: pd.DataFrame, codes: np.ndarray, starts: pd.Index, time_column: str) -> pd.DataFrame:
    """One row per bucket: numeric columns averaged, flags (bool) true when any row is, text the most
    common value (e.g. the `episode` label). The time column becomes the bucket start."""
    out = {time_column: starts}
    columns = [c for c in frame.columns if c != time_column]
    numeric = [c for c in columns if _is_number(frame[c])]
    flags = [c for c in columns if pd.api.types.is_bool_dtype(frame[c].dtype)]
    means = frame[numeric].groupby(codes, sort=True).mean() if numeric else None
    anys = frame[flags].groupby(codes, sort=True).any() if flags else None
    for column in columns:
        if column in numeric:
            out[column] = means[column].to_numpy()
        elif column in flags:
            out[column] = anys[column].to_numpy()
        else:
            out[column] = _most_common(frame[column], codes, len(starts))
    return pd.DataFrame(out)


def _most_common(values: pd.Series, codes: np.ndarray, buckets: int) -> np.ndarray:
    text = values.fillna("").astype(str).to_numpy()
    counts = pd.DataFrame({"bucket": codes, "value": text}).value_counts(sort=False).reset_index(name="n")
    # Ties go to the label that sorts first, so the result does not depend on row order.
    counts = counts.sort_values(["bucket", "n", "value"], ascending=[True, False, True])
    first = counts.drop_duplicates("bucket")
    result = np.full(buckets, "", dtype=object)
    result[first["bucket"].to_numpy()] = first["value"].to_numpy()
    return result


def _is_number(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)


def _episode_labels(frame: pd.DataFrame) -> pd.Series:
    return frame[EPISODE].astype(object).where(frame[EPISODE].notna(), "").astype(str).str.strip()


def _holdout_start(times: pd.Series, spec: PlantSpec) -> pd.Timestamp:
    """The hold-out period is the last `holdout_fraction` of the time span, on a bucket boundary."""
    first, last = times.iloc[0], times.iloc[-1]
    cut = last - (last - first) * spec.training.holdout_fraction
    return cut.floor(f"{spec.training.resample_minutes}min")


def _truth_with_times(
    truth: pd.DataFrame, frame: pd.DataFrame, time_column: str, source: str
) -> pd.DataFrame:
    """The truth, with its own time column parsed, or the history's when it is row-aligned without one."""
    truth = truth.reset_index(drop=True)
    if time_column in truth:
        truth[time_column] = parse_timestamps(truth[time_column])
    elif len(truth) == len(frame):
        truth.insert(0, time_column, parse_timestamps(frame[time_column]).array)
    else:
        raise DataError(
            f"{source}: the truth has no '{time_column}' column and {len(truth)} rows for "
            f"{len(frame)} history rows; it cannot be aligned"
        )
    return truth.loc[truth[time_column].notna()]


def _ssd_agreement(detected: np.ndarray, true_steady: np.ndarray) -> dict[str, float] | None:
    known = ~pd.isna(true_steady)
    if not known.any():
        return None
    detected, actual = detected[known], true_steady[known].astype(bool)
    both = float((detected & actual).sum())
    return {
        "precision": both / detected.sum() if detected.any() else 0.0,
        "recall": both / actual.sum() if actual.any() else 0.0,
        "truth_steady_share": float(actual.mean()),
        "rows": int(known.sum()),
    }


def _iso(stamp: pd.Timestamp) -> str:
    return pd.Timestamp(stamp).isoformat()
