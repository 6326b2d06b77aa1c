"""Smoothing selection speed: pygam's gridsearch versus training/gam_fit.py.

For each history size the GAMs of the default plant (four) are fitted twice, each
fitter in its own subprocess (clean peak RSS) on the same rows:
  (a) pygam: `LinearGAM.gridsearch` over the spec's lambda grid (shared lambda, the
      same terms from `build_gam`), refitting on every row for every candidate;
  (b) project: `fit_gam` (sufficient statistics, per-term GCV selection).
Side by side, the project's fitter also refits each model that has an interaction with a monotonic
constraint on a tensor margin (`shape_cpu_ratio`: CPU seconds with / without; target within 3x).
Printed: wall and CPU seconds (fitting only), peak RSS of the fitting (data loading included,
scoring excluded), hold-out RMSE / sd(target) per model,
and the speed-up. The last line is one JSON object with the figures of the largest
size (all the GAMs together; RMSE as the mean over the models of RMSE / sd).

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_speed.py [--sizes 50000 200000 500000] [--quick]

Thread pools are pinned to one thread before numpy loads (a shared 2-core machine).
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
for _var in THREAD_VARS:
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from dragon.features import add_derived  # noqa: E402
from dragon.simulator import generate_history  # noqa: E402
from dragon.spec import PlantSpec, load_plant  # noqa: E402

HOLDOUT_EVERY = 5  # every 5th day-long block of rows is held out (whole blocks: little leakage)
MAX_HOLDOUT_ROWS = 100_000
ROWS_PER_DAY = 1440
FITTERS = ("pygam", "project")


def plant_history(spec: PlantSpec, rows: int, seed: int) -> dict[str, np.ndarray]:
    """`rows` normal-operation rows of the reference plant simulator, 1-minute samples.

    Rows inside labelled abnormal episodes, with a missing value or outside a tag's
    valid range are dropped (what data validation does before training).
    """
    tags = sorted(spec.used_tags)
    days = rows / ROWS_PER_DAY * 1.3  # headroom for the dropped rows
    while True:
        frame = generate_history(days, seed, sample_minutes=1.0).history
        keep = (frame["episode"] == "").to_numpy().copy()
        for tag in tags:
            low, high = spec.tags[tag].valid
            keep &= frame[tag].between(low, high).to_numpy()  # False for NaN too
        if keep.sum() >= rows:
            break
        days *= 1.1 * rows / keep.sum()
    # the state estimates the models read (derived inputs), as training adds them
    frame = add_derived(frame.loc[keep, tags], spec.derived_features, spec.model_derived_inputs)
    return {column: frame[column].to_numpy(dtype=np.float64)[:rows] for column in frame.columns}


def worker(fitter: str, data_path: Path, train_rows: int) -> dict:
    """Fit the plant's GAMs with one fitter; runs in its own process for a clean peak RSS."""
    from training.gam_fit import build_gam, fit_gam

    spec = load_plant()
    with np.load(data_path) as npz:
        history = {tag: npz[tag] for tag in npz.files}
    rss_before_mb = _current_rss_mb()
    seconds, cpu_seconds, gams = {}, {}, {}
    for name, model in spec.models.items():
        X = np.column_stack([history[f] for f in model.features])[:train_rows]
        y = history[model.target][:train_rows]
        started, cpu_started = time.perf_counter(), time.process_time()
        if fitter == "pygam":
            gams[name] = build_gam(model)
            gams[name].gridsearch(X, y, lam=np.asarray(model.lam_grid), progress=False)
        else:
            gams[name] = fit_gam(model, X, y).gam
        seconds[name] = time.perf_counter() - started
        cpu_seconds[name] = time.process_time() - cpu_started  # robust to other jobs on a shared machine
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # fitting only, before scoring
    shaped_seconds = shaped_fits(spec, history, train_rows) if fitter == "project" else {}
    rmse = {}
    for name, model in spec.models.items():
        X_test = np.column_stack([history[f] for f in model.features])[train_rows:]
        y_test = history[model.target][train_rows:]
        residual = gams[name].predict(X_test) - y_test
        rmse[name] = float(np.sqrt(np.mean(residual**2)) / y_test.std())
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rmse": rmse,
        "peak_mb": peak_mb,
        "rss_before_mb": rss_before_mb,
        "shaped_cpu_seconds": shaped_seconds,
    }


def shaped_fits(spec: PlantSpec, history: dict[str, np.ndarray], train_rows: int) -> dict[str, float]:
    """CPU seconds of each model with an interaction refitted with `monotonic_inc` on the first feature
    of its first tensor term (a constraint on a tensor margin: the costly case); `<name>+shape`."""
    from training.gam_fit import fit_gam

    seconds = {}
    for name, model in spec.models.items():
        if not model.interactions:
            continue
        shaped = model.model_copy(
            update={"shape": {**model.shape, model.interactions[0][0]: "monotonic_inc"}}
        )
        X = np.column_stack([history[f] for f in model.features])[:train_rows]
        started = time.process_time()
        fit_gam(shaped, X, history[model.target][:train_rows])
        seconds[name] = time.process_time() - started
    return seconds


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def run_size(spec: PlantSpec, rows: int, seed: int, workdir: Path) -> dict:
    total = rows * HOLDOUT_EVERY // (HOLDOUT_EVERY - 1) + ROWS_PER_DAY
    history = plant_history(spec, total, seed)
    held_out = np.arange(total) // ROWS_PER_DAY % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
    train_index = np.flatnonzero(~held_out)[:rows]
    test_index = np.flatnonzero(held_out)[:MAX_HOLDOUT_ROWS]
    # training rows first, then the hold-out rows: the worker splits at `rows`
    order = np.r_[train_index, test_index]
    data_path = workdir / f"history_{rows}.npz"
    np.savez(data_path, **{tag: values[order] for tag, values in history.items()})
    print(
        f"\n== {rows} training rows + {len(test_index)} hold-out rows (every {HOLDOUT_EVERY}th block of "
        f"{ROWS_PER_DAY} rows, about a day) of dragon.simulator",
        flush=True,
    )
    results = {}
    for fitter in FITTERS:
        command = [
            sys.executable,
            __file__,
            "--worker",
            fitter,
            "--data",
            str(data_path),
            "--rows",
            str(rows),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{fitter} worker failed:\n{done.stderr[-3000:]}")
        results[fitter] = json.loads(done.stdout.strip().splitlines()[-1])
    _print_table(spec, results)
    a, b = results["pygam"], results["project"]
    summary = {
        "rows": rows,
        "project_seconds": round(sum(b["seconds"].values()), 3),
        "pygam_seconds": round(sum(a["seconds"].values()), 3),
        "project_cpu_seconds": round(sum(b["cpu_seconds"].values()), 3),
        "pygam_cpu_seconds": round(sum(a["cpu_seconds"].values()), 3),
        "project_rmse": round(float(np.mean(list(b["rmse"].values()))), 6),
        "pygam_rmse": round(float(np.mean(list(a["rmse"].values()))), 6),
        "project_peak_mb": round(b["peak_mb"], 1),
        "pygam_peak_mb": round(a["peak_mb"], 1),
    }
    summary["speedup"] = round(summary["pygam_seconds"] / summary["project_seconds"], 1)
    shape_ratio = {
        name: seconds / b["cpu_seconds"][name] for name, seconds in b["shaped_cpu_seconds"].items()
    }
    summary["shape_cpu_ratio"] = {name: round(ratio, 2) for name, ratio in shape_ratio.items()}
    summary["shape_cpu_ratio_worst"] = round(max(shape_ratio.values()), 2) if shape_ratio else None
    for name, ratio in shape_ratio.items():
        print(
            f"{name} + monotonic_inc on {spec.models[name].interactions[0][0]} (a tensor margin): "
            f"{b['shaped_cpu_seconds'][name]:.2f} cpu s against {b['cpu_seconds'][name]:.2f} without: "
            f"{ratio:.2f}x"
        )
    print(
        f"total: project {summary['project_seconds']:.2f} s (cpu {summary['project_cpu_seconds']:.2f} s), "
        f"pygam {summary['pygam_seconds']:.2f} s (cpu {summary['pygam_cpu_seconds']:.2f} s), "
        f"speed-up {summary['speedup']:.1f}x; mean RMSE/sd project {summary['project_rmse']:.5f}, "
        f"pygam {summary['pygam_rmse']:.5f} "
        f"({100 * (summary['project_rmse'] / summary['pygam_rmse'] - 1):+.2f} %)"
    )
    return summary


def _print_table(spec: PlantSpec, results: dict) -> None:
    print(f"{'model':<14}{'project s':>11}{'pygam s':>11}{'speed-up':>10}{'project rmse/sd':>17}", end="")
    print(f"{'pygam rmse/sd':>15}")
    a, b = results["pygam"], results["project"]
    for name in spec.models:
        speedup = a["seconds"][name] / b["seconds"][name]
        print(
            f"{name:<14}{b['seconds'][name]:>11.2f}{a['seconds'][name]:>11.2f}{speedup:>9.1f}x"
            f"{b['rmse'][name]:>17.5f}{a['rmse'][name]:>15.5f}"
        )
    for fitter in FITTERS:
        r = results[fitter]
        print(f"{fitter}: peak RSS {r['peak_mb']:.0f} MB (data loaded: {r['rss_before_mb']:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 500_000])
    parser.add_argument("--quick", action="store_true", help="one small size (20k rows): a smoke run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", choices=FITTERS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.rows)))
        return
    sizes = [20_000] if args.quick else args.sizes
    print("threads: " + ", ".join(f"{v}={os.environ[v]}" for v in THREAD_VARS) + f"; cpus={os.cpu_count()}")
    spec = load_plant()
    with tempfile.TemporaryDirectory() as workdir:
        summaries = [run_size(spec, rows, args.seed, Path(workdir)) for rows in sizes]
    print(json.dumps(summaries[-1]))


if __name__ == "__main__":
    main()
