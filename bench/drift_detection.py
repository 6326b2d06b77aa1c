"""Drift detection on simulated windows of the default plant (dragon/drift.py).

Baseline: the normal rows (no episode label) of a history (seed 1) over the union of the model
and detector features, in time order, every fifth week held out. Setpoints are judged by range
only (roles from the plant spec). Measured:

* false alarms on no-drift windows of 500, 2000 and 10000 rows:
  - `heldout_random`, `heldout_contiguous` (the headline pair): random rows, and contiguous
    blocks, of the held-out weeks: the population the baseline describes, disjoint from it;
  - `other_seed_contiguous`: contiguous blocks of another simulated year (seed 2: its own draws
    of load segments, operator offsets, weekly setpoints). Against one training year this is
    partly real novelty (an operating point the baseline never held), so it is reported, not
    the target;
* detection of a half-standard-deviation shift of one key measured feature (ox2_chp, the
  constrained oxidation-2 target) in 500 random held-out rows; the fouling indicator
  evaporator_steam_temperature is reported too (a slow feature: few independent draws a year);
* delay, in rows, from the start of an `evaporator_fouling_step` injected into a seed-2
  history (never in the baseline) to the first alert of a window sliding in steps of 10 rows
  (windows ending before the start must be quiet, else the episode counts as pre-alerted).

    OMP_NUM_THREADS=1 .venv/bin/python bench/drift_detection.py [--quick] [--days 365]

The last line is one JSON object with false_alarm_rate (the held-out nulls, worst case over
sizes and both kinds), detection_rate_500 and median_delay_rows, plus the details.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dragon.drift import analyse_drift, compute_baselines  # noqa: E402
from dragon.simulator import Episode, generate_history  # noqa: E402
from dragon.spec import load_plant  # noqa: E402

SIZES = (500, 2000, 10000)
KEY_FEATURE = "ox2_chp"  # the constrained oxidation-2 target: a measured model input and output
SLOW_FEATURE = "evaporator_steam_temperature"  # the fouling indicator: few independent draws a year
FOULING = "evaporator_fouling_step"
HELD_OUT_EVERY = 5  # every fifth week is held out of the baseline
DELAY_WINDOW = 500
DELAY_STEP = 10


def monitored_tags(spec) -> list[str]:
    features = {f for m in spec.models.values() for f in m.features}
    features |= {f for d in spec.detectors.values() for f in d.features}
    return [tag for tag in spec.tags if tag in features]


def split_weeks(history: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """(baseline rows, held-out weeks): normal rows, every HELD_OUT_EVERY-th week held out."""
    normal = history[history["episode"] == ""]
    elapsed = (normal["timestamp"] - history["timestamp"].iloc[0]).dt.total_seconds()
    week = (elapsed // (7 * 86400)).astype(int)
    held = (week % HELD_OUT_EVERY) == HELD_OUT_EVERY - 1
    return normal[~held], [block for _, block in normal[held].groupby(week[held]) if len(block) > 0]


def judge(baselines, spec, window: pd.DataFrame):
    return analyse_drift(baselines, window, spec.drift, spec.tags, time_column=spec.time_column)


def draw(source, size: int, contiguous: bool, rng: np.random.Generator) -> pd.DataFrame | None:
    """A random-row window of a table, or a contiguous block of one of a list of tables."""
    if contiguous:
        blocks = [b for b in source if len(b) >= size]
        if not blocks:
            return None
        block = blocks[int(rng.integers(len(blocks)))]
        start = int(rng.integers(0, len(block) - size + 1))
        return block.iloc[start : start + size]
    pool = pd.concat(source) if isinstance(source, list) else source
    return pool.iloc[np.sort(rng.choice(len(pool), size, replace=False))]


def false_alarms(
    baselines, spec, source, size: int, windows: int, contiguous: bool, rng: np.random.Generator
) -> tuple[float | None, dict[str, int]]:
    alarms, judged, culprits = 0, 0, {}
    for _ in range(windows):
        window = draw(source, size, contiguous, rng)
        if window is None:
            return None, {}
        report = judge(baselines, spec, window)
        judged += 1
        alarms += int(report.drift)
        for violation in report.violations:
            key = f"{violation.feature}:{violation.kind}"
            culprits[key] = culprits.get(key, 0) + 1
    return float(alarms / judged), culprits


def detection_rate(baselines, spec, source, windows: int, rng: np.random.Generator, feature: str) -> float:
    shift = 0.5 * baselines[feature].std
    hits = 0
    for _ in range(windows):
        window = draw(source, 500, False, rng).copy()
        window[feature] += shift
        hits += judge(baselines, spec, window).features[feature].status == "alert"
    return float(hits / windows)


def fouling_delay(baselines, spec, history: pd.DataFrame, start_row: int, end_row: int) -> dict:
    """Rows from the episode's first row to the first drifting sliding window."""
    before = history.iloc[max(0, start_row - DELAY_WINDOW) : start_row]
    pre_alert = len(before) == DELAY_WINDOW and judge(baselines, spec, before).drift
    delay, culprits = None, []
    for end in range(start_row + DELAY_STEP, end_row + 1, DELAY_STEP):
        report = judge(baselines, spec, history.iloc[end - DELAY_WINDOW : end])
        if report.drift:
            delay, culprits = end - start_row, [f"{v.feature}:{v.kind}" for v in report.violations]
            break
    return {
        "start_row": int(start_row),
        "pre_alert": bool(pre_alert),
        "delay_rows": delay,
        "alerts": culprits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="120-day histories, 30 windows per case")
    parser.add_argument("--days", type=float, default=None, help="days per simulated history (default 365)")
    parser.add_argument("--windows", type=int, default=None, help="windows per case (default 200)")
    args = parser.parse_args()
    days = args.days or (120.0 if args.quick else 365.0)
    windows = args.windows or (30 if args.quick else 200)
    spec = load_plant()
    tags = monitored_tags(spec)
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    train = generate_history(days, seed=1).history
    other = generate_history(days, seed=2).history
    fouling_start_h, fouling_end_h = days * 24 * 0.5, days * 24 * 0.5 + 240.0
    episode = Episode(FOULING, fouling_start_h, fouling_end_h)
    fouled = generate_history(days, seed=2, episodes=[episode]).history
    print(
        f"histories: 3 x {days:g} days ({len(train)} rows each) in {time.perf_counter() - started:.1f} s; "
        f"{len(tags)} features ({sum(spec.tags[t].role == 'setpoint' for t in tags)} setpoints: range only); "
        "threads 1"
    )
    baseline_rows, held_out = split_weeks(train)
    baselines = compute_baselines(baseline_rows, tags, time_column=spec.time_column)
    judged = [t for t in tags if spec.tags[t].role != "setpoint"]
    low_information = sorted(judged, key=lambda t: baselines[t].information)[:5]
    print(
        f"baseline: {len(baseline_rows)} rows over {baselines[tags[0]].span_hours / 24:.0f} days; "
        f"held out: {len(held_out)} weeks ({sum(map(len, held_out))} rows); lowest effective sample sizes: "
        + ", ".join(f"{t} {baselines[t].information:.0f}" for t in low_information)
    )

    other_normal = other[other["episode"] == ""]
    other_blocks = [b for _, b in other_normal.groupby((other_normal.index.to_series().diff() != 1).cumsum())]
    rates: dict[str, dict[int, float | None]] = {}
    for name, source, contiguous in (
        ("heldout_random", held_out, False),
        ("heldout_contiguous", held_out, True),
        ("other_seed_contiguous", other_blocks, True),
    ):
        rates[name] = {}
        for size in SIZES:
            rate, culprits = false_alarms(baselines, spec, source, size, windows, contiguous, rng)
            rates[name][size] = rate
            top = ", ".join(f"{k} {v}" for k, v in sorted(culprits.items(), key=lambda kv: -kv[1])[:3])
            shown = "  n/a (no block that long)" if rate is None else f"{rate:6.1%}"
            print(f"false alarms  {name:22s} {size:6d} rows: {shown}  {top}")

    detected = detection_rate(baselines, spec, held_out, windows, rng, KEY_FEATURE)
    print(f"detection of a 0.5-sd shift of {KEY_FEATURE} in 500 random held-out rows: {detected:.1%}")
    detected_slow = detection_rate(baselines, spec, held_out, windows, rng, SLOW_FEATURE)
    print(f"detection of a 0.5-sd shift of {SLOW_FEATURE} in 500 random held-out rows: {detected_slow:.1%}")

    hours = (fouled["timestamp"] - fouled["timestamp"].iloc[0]).dt.total_seconds().to_numpy() / 3600
    start_row = int(np.searchsorted(hours, fouling_start_h))
    end_row = int(np.searchsorted(hours, fouling_end_h))
    delay = fouling_delay(baselines, spec, fouled, start_row, end_row)
    print(
        f"fouling step injected at row {start_row} ({end_row - start_row} rows long), "
        f"{DELAY_WINDOW}-row window sliding by {DELAY_STEP}: pre-alert {delay['pre_alert']}, "
        f"first alert after {delay['delay_rows']} rows "
        f"({', '.join(delay['alerts'][:3])})"
    )
    print(f"total {time.perf_counter() - started:.1f} s")
    heldout = [
        rate
        for name in ("heldout_random", "heldout_contiguous")
        for rate in rates[name].values()
        if rate is not None
    ]
    print(
        json.dumps(
            {
                "false_alarm_rate": max(heldout),
                "detection_rate_500": detected,
                "median_delay_rows": None if delay["pre_alert"] else delay["delay_rows"],
                "detection_feature": KEY_FEATURE,
                "false_alarm_by_null": {
                    name: {str(k): v for k, v in by_size.items()} for name, by_size in rates.items()
                },
                f"detection_rate_500_{SLOW_FEATURE}": detected_slow,
                "fouling": delay,
                "days": days,
                "windows": windows,
            }
        )
    )


if __name__ == "__main__":
    main()
