"""Drift detection on simulated windows of the default plant (dragon/drift.py).

Baseline: the normal rows (no episode label) of a training history, seed 1, over the union
of the model and detector features, in time order (the batch-means effective sample size
needs it). Measured:

* false alarms on no-drift windows of 500, 2000 and 10000 rows, three ways, because "no
  drift" is not one thing for autocorrelated minute data:
  - `same_population_random`: random rows of the training history itself: the exact
    distribution the baseline describes (checks the statistics' sampling calibration);
  - `other_seed_random`: random rows of another history (seed 2, same regime *laws*, its own
    draws of load segments, operator offsets, weekly setpoints);
  - `other_seed_contiguous`: contiguous blocks of that history, what a monitor really sees
    (a 500-row window is 8 h of one operating regime). This is the headline figure;
* detection of a half-standard-deviation shift of one key feature in 500 random rows of
  seed 2 (the alert must be on the shifted feature);
* delay, in rows, from the start of each `evaporator_fouling_step` episode of seed 2 to the
  first alert of a 500-row window sliding in steps of 10 rows (windows ending before the
  start must be quiet, else the episode counts as pre-alerted).

    OMP_NUM_THREADS=1 .venv/bin/python bench/drift_detection.py [--quick] [--days 365]

The last line is one JSON object with false_alarm_rate (the contiguous one, the worst size),
detection_rate_500 and median_delay_rows, plus the details.
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
from dragon.simulator import generate_history  # noqa: E402
from dragon.spec import load_plant  # noqa: E402

SIZES = (500, 2000, 10000)
KEY_FEATURE = "evaporator_steam_temperature"  # the fouling indicator of the concentration model
OTHER_KEY_FEATURE = "ox2_chp"  # the constrained model's target, a feature with more information
FOULING = "evaporator_fouling_step"


def monitored_tags(spec) -> list[str]:
    features = {f for m in spec.models.values() for f in m.features}
    features |= {f for d in spec.detectors.values() for f in d.features}
    return [tag for tag in spec.tags if tag in features]


def false_alarms(
    baselines, spec, source: pd.DataFrame, size: int, windows: int, contiguous: bool, rng: np.random.Generator
) -> tuple[float, dict[str, int]]:
    alarms, culprits = 0, {}
    for _ in range(windows):
        if contiguous:
            start = int(rng.integers(0, len(source) - size))
            window = source.iloc[start : start + size]
        else:
            window = source.iloc[np.sort(rng.choice(len(source), size, replace=False))]
        report = analyse_drift(baselines, window, spec.drift, spec.tags)
        alarms += int(report.drift)
        for violation in report.violations:
            key = f"{violation.feature}:{violation.kind}"
            culprits[key] = culprits.get(key, 0) + 1
    return float(alarms / windows), culprits


def detection_rate(
    baselines, spec, source: pd.DataFrame, windows: int, rng: np.random.Generator, feature: str = KEY_FEATURE
) -> float:
    shift = 0.5 * baselines[feature].std
    hits = 0
    for _ in range(windows):
        window = source.iloc[np.sort(rng.choice(len(source), 500, replace=False))].copy()
        window[feature] += shift
        report = analyse_drift(baselines, window, spec.drift, spec.tags)
        hits += report.features[feature].status == "alert"
    return float(hits / windows)


def fouling_delays(baselines, spec, history: pd.DataFrame, size: int = 500, step: int = 10) -> list[dict]:
    """Delay from each fouling episode's first row to the first drifting sliding window."""
    labelled = (history["episode"] == FOULING).to_numpy()
    starts = np.flatnonzero(labelled & ~np.r_[False, labelled[:-1]])
    results = []
    for start in starts.tolist():
        before = history.iloc[max(0, start - size) : start]
        pre_alert = len(before) == size and analyse_drift(baselines, before, spec.drift, spec.tags).drift
        delay = None
        for end in range(start + step, min(len(history), start + 20 * size) + 1, step):
            report = analyse_drift(baselines, history.iloc[end - size : end], spec.drift, spec.tags)
            if report.drift:
                delay = end - start
                break
        results.append({"start_row": int(start), "pre_alert": bool(pre_alert), "delay_rows": delay})
    return results


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
    test = generate_history(days, seed=2).history
    print(
        f"histories: 2 x {days:g} days ({len(train)} rows each) in {time.perf_counter() - started:.1f} s; "
        f"{len(tags)} features; threads 1"
    )
    normal_train = train[train["episode"] == ""]
    normal_test = test[test["episode"] == ""]
    baselines = compute_baselines(normal_train, tags)
    low_information = sorted(baselines, key=lambda t: baselines[t].information)[:5]
    print(
        "lowest effective sample sizes of the baseline: "
        + ", ".join(f"{t} {baselines[t].information:.0f}" for t in low_information)
    )

    rates: dict[str, dict[int, float]] = {}
    for name, source, contiguous in (
        ("same_population_random", normal_train, False),
        ("other_seed_random", normal_test, False),
        ("other_seed_contiguous", normal_test, True),
    ):
        rates[name] = {}
        for size in SIZES:
            rate, culprits = false_alarms(baselines, spec, source, size, windows, contiguous, rng)
            rates[name][size] = rate
            top = ", ".join(f"{k} {v}" for k, v in sorted(culprits.items(), key=lambda kv: -kv[1])[:3])
            print(f"false alarms  {name:24s} {size:6d} rows: {rate:6.1%}  {top}")

    detected = detection_rate(baselines, spec, normal_test, windows, rng)
    print(f"detection of a 0.5-sd shift of {KEY_FEATURE} in 500 random rows: {detected:.1%}")
    detected_other = detection_rate(baselines, spec, normal_test, windows, rng, OTHER_KEY_FEATURE)
    print(f"detection of a 0.5-sd shift of {OTHER_KEY_FEATURE} in 500 random rows: {detected_other:.1%}")

    delays = fouling_delays(baselines, spec, test)
    for item in delays:
        print(
            f"fouling episode at row {item['start_row']}: pre-alert {item['pre_alert']}, "
            f"first alert after {item['delay_rows']} rows"
        )
    found = [d["delay_rows"] for d in delays if d["delay_rows"] is not None and not d["pre_alert"]]
    median_delay = float(np.median(found)) if found else None
    print(f"total {time.perf_counter() - started:.1f} s")
    print(
        json.dumps(
            {
                "false_alarm_rate": max(rates["other_seed_contiguous"].values()),
                "detection_rate_500": detected,
                "median_delay_rows": median_delay,
                "false_alarm_by_null": {
                    name: {str(k): v for k, v in by_size.items()} for name, by_size in rates.items()
                },
                f"detection_rate_500_{OTHER_KEY_FEATURE}": detected_other,
                "fouling_episodes": delays,
                "days": days,
                "windows": windows,
            }
        )
    )


if __name__ == "__main__":
    main()
