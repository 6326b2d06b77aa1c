"""Time the training-data preparation (check → steady-state selection → resample → split).

    .venv/bin/python bench/transform_speed.py            # ~500k minute rows (347 simulated days)
    .venv/bin/python bench/transform_speed.py --quick    # 30 days

Prints the transform report and, last, one JSON line with rows, seconds and the steady-state
test's agreement with the simulator's truth.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=347.0, help="simulated days (347 days = 499,680 rows)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="30 days only")
    args = parser.parse_args()
    days = 30.0 if args.quick else args.days

    from rich.console import Console

    from dragon.simulator import generate_history
    from dragon.spec import load_plant
    from training.transforms import prepare_training_data

    spec = load_plant()
    started = time.perf_counter()
    simulated = generate_history(days, args.seed)
    simulate_seconds = time.perf_counter() - started

    started = time.perf_counter()
    source = f"simulated {days:g} days"
    data = prepare_training_data(simulated.history, spec, truth=simulated.truth, source=source)
    seconds = time.perf_counter() - started

    Console().print(data.report.render())
    report = data.report
    print(
        json.dumps(
            {
                "rows": report.rows_in,
                "transform_seconds": round(seconds, 3),
                "simulate_seconds": round(simulate_seconds, 3),
                "rows_used": report.rows_used,
                "steady_share": round(report.steady_share, 4),
                "ssd_agreement": report.ssd_agreement,
                "omp_threads": os.environ["OMP_NUM_THREADS"],
            }
        )
    )


if __name__ == "__main__":
    main()
