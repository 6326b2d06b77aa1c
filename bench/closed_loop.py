"""Closed loop over weeks: `dragon trial`'s three arms on seeds the training never saw.

A version of the plant (`--plant`, default the shipped one; trained on `--train-days` of seed 11 of
its simulator's history, or `--bundle DIR`) runs in closed loop on the plant's simulator for `--days`
days per seed, a decision every `--every` hours, side by side with the plant's operators and the
move-limited oracle on the same disturbances (inference/trial.py). Prints each seed's arms side by
side, then one JSON line: captured share of the oracle's gain (summed gains), minutes above a true
limit caused by the advisor (the operators' arm within), true production change, true yield gain,
money per year (mean over seeds), moves, blocked share, the longest blocked run and move reversals;
the operator and oracle figures beside them.

    OMP_NUM_THREADS=1 .venv/bin/python bench/closed_loop.py [--days 30] [--every 2] [--seeds 201 202 203]
        [--bundle DIR] [--plant PATH] [--train-days 75] [--jobs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from recommend_latency import TRAIN_SEED, train_default_bundle  # noqa: E402

TRAIN_DAYS = 75


def train_plant_bundle(spec, days: float, seed: int, workdir: Path) -> Path:
    """A bundle trained on `days` of the plant simulator's own history (its operators' step tests)."""
    from dragon.simulator.protocol import load_simulator, record_history
    from training.pipeline import train_bundle

    simulator = load_simulator(spec)(spec, days=days, seed=seed, step_tests=True)
    record_history(simulator, days).measured.to_parquet(workdir / "history.parquet")
    train_bundle([workdir / "history.parquet"], spec, workdir / "bundle", workdir / "report", seed=seed)
    return workdir / "bundle"


def _trial_of_seed(plant: Path | None, bundle_dir: Path, days: float, every: float, seed: int):
    """(the trial's summary, seconds) of one seed, in a worker process."""
    from dragon.bundle import load_bundle
    from dragon.spec import load_plant
    from inference.trial import TrialSettings, run_trial, score_trial

    started = time.perf_counter()
    settings = TrialSettings(days=days, every_hours=every, seed=seed)
    summary = score_trial(run_trial(load_plant(plant), load_bundle(bundle_dir), "bench", settings))
    return summary, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[201, 202, 203])
    parser.add_argument("--bundle", type=Path, default=None, help="a trained bundle (default: train one)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run side by side, in processes")
    parser.add_argument("--train-days", type=float, default=TRAIN_DAYS, help="history to train on, days")
    parser.add_argument(
        "--plant", type=Path, default=None, help="plant spec with a [simulator] (default: shipped)"
    )
    args = parser.parse_args()

    from dragon.spec import load_plant
    from inference.trial import ARMS

    spec = load_plant(args.plant)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        if args.bundle:
            bundle_dir = args.bundle
        elif args.plant:
            bundle_dir = train_plant_bundle(spec, args.train_days, TRAIN_SEED, Path(tmp))
        else:
            bundle_dir = train_default_bundle(args.train_days, TRAIN_SEED, Path(tmp))
        trained = time.perf_counter() - started
        work = partial(_trial_of_seed, args.plant, bundle_dir, args.days, args.every)
        with ProcessPoolExecutor(min(args.jobs, len(args.seeds))) as pool:
            results = list(pool.map(work, args.seeds))
        summaries = []
        for seed, (summary, seconds) in zip(args.seeds, results, strict=True):
            summaries.append(summary)
            print(f"seed {seed}: {args.days:g} days, a decision every {args.every:g} h, {seconds:.0f} s")
            print(f"  {'arm':<9} {'yield %':>8} {'production t/h':>15} {'limit min':>10} {'money/h':>10}")
            for arm in ARMS:
                figures = summary.arms[arm]
                money = "-" if figures.money_per_hour is None else f"{figures.money_per_hour:,.0f}"
                minutes = sum(figures.violation_minutes.values())
                print(f"  {arm:<9} {figures.objective_mean:8.3f} {figures.production_mean:15.2f} "
                      f"{minutes:10.0f} {money:>10}")  # fmt: skip
            print(f"  captured {summary.captured_share}, gain {summary.yield_gain_pct:+.3f} (oracle "
                  f"{summary.oracle_gain_pct:+.3f}) % points, "
                  f"production {summary.production_change_pct:+.2f} %, "
                  f"statuses {summary.statuses}, streak {summary.blocked_streak_max}, "
                  f"reversals {summary.move_reversals}")  # fmt: skip
            for reason, count in list(summary.reasons.items())[:4]:
                print(f"    {count:4d} x {reason}")
    gains = np.array([s.yield_gain_pct for s in summaries])
    oracle = np.array([s.oracle_gain_pct for s in summaries])
    money = [s.money_per_year for s in summaries if s.money_per_year is not None]
    print(
        json.dumps(
            {
                "plant": spec.name,
                "days": args.days,
                "every_hours": args.every,
                "seeds": args.seeds,
                "captured_share": round(float(gains.sum() / oracle.sum()), 4),
                "captured_share_by_seed": [
                    None if s.captured_share is None else round(s.captured_share, 4) for s in summaries
                ],  # fmt: skip
                "violation_minutes": sum(s.violation_minutes_caused for s in summaries),
                "violation_minutes_advisor_all": sum(s.violation_minutes for s in summaries),
                "operator_violation_minutes": sum(s.operator_violation_minutes for s in summaries),
                "oracle_violation_minutes": sum(
                    sum(s.arms["oracle"].violation_minutes.values()) for s in summaries
                ),
                "production_change_pct": round(
                    float(np.mean([s.production_change_pct for s in summaries])), 3
                ),
                "yield_gain_pct": round(float(gains.mean()), 4),
                "oracle_gain_pct": round(float(oracle.mean()), 4),
                "money_per_year": round(float(np.mean(money)), 0) if money else None,
                "money_yield_per_year": round(float(np.mean([s.money_yield_per_year for s in summaries])), 0)
                if money
                else None,
                "currency": summaries[0].currency,
                "moves": sum(s.moves for s in summaries),
                "blocked_share": round(float(np.mean([s.blocked_share for s in summaries])), 4),
                "blocked_streak_max": max(s.blocked_streak_max for s in summaries),
                "move_reversals": sum(s.move_reversals for s in summaries),
                "train_seconds": round(trained, 1),
                "threads": os.environ["OMP_NUM_THREADS"],
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
