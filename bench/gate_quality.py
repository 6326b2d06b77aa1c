"""Gate quality on a simulated history: the detectors of a plant (forests + envelopes), end to end.

Simulates `--days` of the default plant (seed `--seed`), prepares it exactly as training does, fits one
detector per `[detectors.*]` table on the normal rows of the training period and evaluates the gate on
the hold-out period: gate recall (process episodes + novel operation), recall per episode type, false-alarm
rate on normal rows, and per detector the threshold, false alarms and AUC per episode.

A 90-day hold-out holds only a few episode types (about one event per type in 90 days, the hold-out is
the last 20 %), so the last 85 % of a second, independent history (`--cross-seed`, default 2) is scored
with the same detectors: the false-alarm rate must hold on an unseen history, not only on the training
history's hold-out. `--features NAME=tag,tag,...` tries another feature list for a detector (tags or
derived features). Each detector's catches are split into forest and envelope.

It also compares two threshold calibrations on the hold-out normal rows: in-sample (quantile of the
training rows' own scores) against the out-of-block calibration training uses (training/detectors.py).

    OMP_NUM_THREADS=1 .venv/bin/python bench/gate_quality.py            # 90 days, seed 1, cross seed 2
    OMP_NUM_THREADS=1 .venv/bin/python bench/gate_quality.py --quick    # 30 days

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from dragon.simulator import generate_history
from dragon.spec import PlantSpec, load_plant
from training.detectors import GateMetrics, detector_flags, evaluate_gate, fit_detector
from training.transforms import prepare_training_data


def _with_features(spec: PlantSpec, overrides: list[str]) -> PlantSpec:
    detectors = dict(spec.detectors)
    for override in overrides:
        name, _, tags = override.partition("=")
        detectors[name] = detectors[name].model_copy(update={"features": tags.split(",")})
    return spec.model_copy(update={"detectors": detectors})


def _prepared(spec: PlantSpec, days: float, seed: int, holdout_fraction: float | None = None):
    if holdout_fraction is not None:
        training = spec.training.model_copy(update={"holdout_fraction": holdout_fraction})
        spec = spec.model_copy(update={"training": training})
    simulated = generate_history(days, seed)
    source = f"simulated seed {seed}"
    return prepare_training_data(simulated.history, spec, truth=simulated.truth, source=source)


def _print_gate(title: str, gate: GateMetrics) -> None:
    print(f"\n== {title}: {gate.n_rows} rows, {gate.n_normal} normal")
    recall = "n/a" if gate.recall is None else f"{gate.recall:.3f}"
    print(f"gate recall {recall}   false-alarm rate {gate.false_alarm_rate:.4f}")
    names = list(gate.detectors)
    heads = " ".join(f"{n[:12] + ' rec/auc/forest/env':>30s}" for n in names)
    print(f"{'episode':26s} {'rows':>6s} {'gate':>6s} {heads}")
    for episode, metrics in gate.by_episode.items():
        own = [gate.detectors[n].by_episode[episode] for n in names]
        cells = " ".join(
            f"{f'{m.recall:.3f} / {m.auc:.3f} / {m.by_forest} / {m.by_envelope}':>30s}" for m in own
        )
        print(f"{episode:26s} {metrics.rows:6d} {metrics.recall:6.3f} {cells}")
    for name, detector in gate.detectors.items():
        print(
            f"detector {name}: threshold {detector.threshold:.4f}, "
            f"false alarms {detector.false_alarm_rate:.4f} (forest {detector.forest_false_alarm_rate:.4f}, "
            f"envelope {detector.envelope_false_alarm_rate:.4f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="30 simulated days")
    parser.add_argument("--cross-seed", type=int, default=2, help="also score a second history (-1: skip)")
    parser.add_argument("--features", action="append", default=[], metavar="NAME=tag,tag,...")
    args = parser.parse_args()
    days = 30.0 if args.quick else args.days
    spec = _with_features(load_plant(), args.features)

    started = time.perf_counter()
    data = _prepared(spec, days, args.seed)
    prepared = time.perf_counter()
    detectors = {
        name: fit_detector(d, data.detector_train, derived=spec.derived_features, seed=0)
        for name, d in spec.detectors.items()
    }
    fitted = time.perf_counter()
    gate = evaluate_gate(detectors, data.detector_holdout)
    evaluated = time.perf_counter()
    _print_gate(f"hold-out of {days:g} days, seed {args.seed}", gate)

    # Calibration check: the false-alarm rate each threshold gives on the hold-out normal rows.
    normal = data.detector_holdout[data.detector_holdout["episode"].fillna("") == ""]
    calibration = {}
    for name, detector in detectors.items():
        train_rows = detector.feature_rows(data.detector_train)
        train_rows = train_rows[np.isfinite(train_rows).all(axis=1)]
        in_sample = np.quantile(detector.scores(train_rows), 1 - detector.contamination)
        scores, _ = detector_flags(detector, normal)
        calibration[name] = {
            "contamination": detector.contamination,
            "in_sample_threshold": float(in_sample),
            "in_sample_false_alarm": float(np.mean(scores > in_sample)),
            "out_of_block_threshold": detector.threshold,
            "out_of_block_false_alarm": float(np.mean(scores > detector.threshold)),
        }
    print("\nforest calibration (hold-out normal rows, forest threshold alone):")
    for name, figures in calibration.items():
        print(
            f"  {name}: in-sample {figures['in_sample_threshold']:.4f} "
            f"-> {figures['in_sample_false_alarm']:.4f}, out-of-block "
            f"{figures['out_of_block_threshold']:.4f} -> {figures['out_of_block_false_alarm']:.4f}"
        )

    result = {
        "days": days,
        "seed": args.seed,
        "features": {name: d.features for name, d in spec.detectors.items()},
        "derived": {name: d.expression for name, d in spec.derived.items()},
        "detector_train_rows": len(data.detector_train),
        "gate": gate.to_dict(),
        "detectors": {name: d.to_dict() for name, d in gate.detectors.items()},
        "calibration": calibration,
        "seconds": {"prepare": prepared - started, "fit": fitted - prepared, "evaluate": evaluated - fitted},
    }
    if args.cross_seed >= 0:
        other = _prepared(spec, days, args.cross_seed, holdout_fraction=0.85)
        cross = evaluate_gate(detectors, other.detector_holdout)
        _print_gate(f"last 85 % of a second history, seed {args.cross_seed}", cross)
        result["cross_seed"] = {
            "seed": args.cross_seed,
            "gate": cross.to_dict(),
            "detectors": {name: d.to_dict() for name, d in cross.detectors.items()},
            "auc": {name: {e: m.auc for e, m in d.by_episode.items()} for name, d in cross.detectors.items()},
        }
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
