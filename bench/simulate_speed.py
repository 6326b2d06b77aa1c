"""Time `generate_history` (default: one year at 1-minute samples) and print rows per second."""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one core each on a shared machine

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=365.0, help="history length (default one year)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-minutes", type=float, default=1.0)
    args = parser.parse_args()

    from dragon.simulator import generate_history

    start = time.perf_counter()
    simulated = generate_history(args.days, args.seed, sample_minutes=args.sample_minutes)
    seconds = time.perf_counter() - start
    rows = len(simulated.history)
    print(f"threads: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    print(
        f"days {args.days:g}, sample {args.sample_minutes:g} min: {rows} rows in {seconds:.2f} s "
        f"({rows / seconds:,.0f} rows/s)"
    )
    print(json.dumps({"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds)}))


if __name__ == "__main__":
    main()
