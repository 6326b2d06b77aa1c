"""Latency of one full recommendation (gate + multi-start SLSQP + explanation) on the default plant.

Trains a bundle on a simulated history (training/pipeline.train_bundle), then times
`Recommender.recommend` over varied historian states, and side by side a naive baseline: pygam
`predict` inside SLSQP with finite-difference gradients and sklearn `score_samples` for the gate,
same chain, constraints, starts and box. Ends with one JSON line:
{"p50_ms", "p99_ms", "baseline_p50_ms", "speedup", ...}.

    OMP_NUM_THREADS=1 .venv/bin/python bench/recommend_latency.py [--quick] [--bundle DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

TRAIN_SEED = 11


def train_default_bundle(days: float, seed: int, workdir: Path, sample_minutes: float = 5.0) -> Path:
    """A bundle of the default plant trained on `days` of simulated history (seed `seed`)."""
    from dragon.simulator import write_history
    from dragon.spec import load_plant
    from training.pipeline import train_bundle

    history, _ = write_history(
        days=days, seed=seed, out=workdir / "history.parquet", sample_minutes=sample_minutes
    )
    train_bundle([history], load_plant(), workdir / "bundle", workdir / "report", seed=seed)
    return workdir / "bundle"


def historian_states(spec, days: float, seed: int, count: int, *, normal_only: bool = True) -> list[dict]:
    """Valid plant states from a simulated history (steady rows outside abnormal episodes)."""
    from dragon.data import parse_state
    from dragon.errors import DataError
    from dragon.simulator import generate_history

    sim = generate_history(days=days, seed=seed, sample_minutes=5.0)
    frame = sim.history
    keep = sim.truth["steady"].to_numpy().copy()
    if normal_only:
        keep &= (
            frame["episode"].isin(["", "nan", "None", "none"]).to_numpy() | frame["episode"].isna().to_numpy()
        )
    rows = frame[keep]
    rng = np.random.default_rng(seed)
    states = []
    for index in rng.permutation(len(rows)):
        try:
            states.append(parse_state({t: rows.iloc[index][t] for t in spec.tags if t in rows}, spec))
        except DataError:
            continue
        if len(states) == count:
            break
    return states


def naive_recommend(bundle, state: dict) -> float:
    """The baseline: the same problem solved with pygam.predict and finite differences."""
    from scipy.optimize import minimize
    from scipy.stats import qmc

    spec = bundle.spec
    for detector in bundle.detectors.values():  # sklearn score_samples, one call per detector
        if detector.assess(detector.feature_rows(state))[1][0]:
            return 0.0
    order = spec.model_order
    u0 = np.array([state[t] for t in spec.setpoints])
    low = np.maximum(
        [spec.tags[t].bounds[0] for t in spec.setpoints], u0 - [spec.tags[t].max_move for t in spec.setpoints]
    )
    high = np.minimum(
        [spec.tags[t].bounds[1] for t in spec.setpoints], u0 + [spec.tags[t].max_move for t in spec.setpoints]
    )
    high = np.maximum(high, low)

    def chain(u):
        values = dict(state, **dict(zip(spec.setpoints, u, strict=True)))
        out = {}
        for name in order:
            model = spec.models[name]
            X = np.array([[values[f] for f in model.features]])
            q = [c.confidence for c in spec.constraints if c.model == name] or [0.5]
            intervals = bundle.gams[name].prediction_intervals(X, quantiles=[1 - q[0], q[0]])[0]
            values[model.target] = float(bundle.gams[name].predict(X)[0])
            out[name] = (values[model.target], intervals)
        return out

    current = chain(u0)

    def objective(u):
        return -chain(u)[spec.objective.model][0]

    def margins(u):
        out = chain(u)
        result = []
        for c in spec.constraints:
            value, (lower, upper) = out[c.model]
            if c.max is not None:
                limit = current[c.model][0] + c.tolerance if c.max == "current" else c.max
                result.append(limit - upper)
            if c.min is not None:
                limit = current[c.model][0] - c.tolerance if c.min == "current" else c.min
                result.append(lower - limit)
        return np.array(result)

    starts = [u0.clip(low, high)] + list(
        low + qmc.LatinHypercube(d=len(u0), seed=0).random(spec.optimizer.starts - 1) * (high - low)
    )
    best = 0.0
    for start in starts:
        result = minimize(
            objective,
            start,
            method="SLSQP",
            bounds=list(zip(low, high, strict=True)),
            constraints=[{"type": "ineq", "fun": margins}],
            options={"maxiter": 60},
        )
        best = max(best, -result.fun)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="200 states, 5 baseline states, 60 days of training"
    )
    parser.add_argument("--states", type=int, default=1000)
    parser.add_argument("--baseline-states", type=int, default=20)
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--bundle", type=Path, help="reuse a trained bundle instead of training one")
    args = parser.parse_args()
    if args.quick:
        args.states, args.baseline_states, args.days = 200, 5, 60.0

    from dragon.bundle import load_bundle
    from optimizer.recommender import Recommender

    with tempfile.TemporaryDirectory(prefix="dragon-bench-") as tmp:
        bundle_dir = args.bundle or train_default_bundle(args.days, TRAIN_SEED, Path(tmp))
        bundle = load_bundle(bundle_dir)
        recommender = Recommender(bundle, model_version="bench")
        # States from the training period (a bundle passes its own gate there): the full path is timed.
        states = historian_states(bundle.spec, args.days, TRAIN_SEED, args.states)
        for state in states[:5]:  # warm-up (first calls compile numpy/scipy paths)
            recommender.recommend(state)
        times, statuses = [], {}
        for state in states:
            started = time.perf_counter()
            result = recommender.recommend(state)
            times.append(time.perf_counter() - started)
            statuses[result.status] = statuses.get(result.status, 0) + 1
        baseline = []
        for state in states[: args.baseline_states]:
            started = time.perf_counter()
            naive_recommend(bundle, state)
            baseline.append(time.perf_counter() - started)
    p50, p99 = (float(np.percentile(times, q) * 1000) for q in (50, 99))
    base50 = float(np.percentile(baseline, 50) * 1000)
    print(
        f"recommend: {len(times)} states, p50 {p50:.2f} ms, p99 {p99:.2f} ms, statuses {statuses}",
        file=sys.stderr,
    )
    print(
        f"baseline (pygam + finite differences): {len(baseline)} states, p50 {base50:.1f} ms", file=sys.stderr
    )
    print(
        json.dumps(
            {
                "p50_ms": round(p50, 3),
                "p99_ms": round(p99, 3),
                "baseline_p50_ms": round(base50, 3),
                "speedup": round(base50 / p50, 1),
                "states": len(times),
                "baseline_states": len(baseline),
                "statuses": statuses,
                "threads": os.environ.get("OMP_NUM_THREADS"),
            }
        )
    )


if __name__ == "__main__":
    main()
