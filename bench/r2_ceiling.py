"""What limits the GAMs' hold-out R² on 90 simulated days: the data, the hidden states or the method.

For each seed it simulates `--days` of the default plant, prepares it exactly as training does and fits
each model four ways, side by side:

* `static`   the previous method: no lag compensation, steady-state selection on the outputs (window
             120 min, hold 60 min), scored against the steady-state truth `<target>_true`;
* `lagged`   the plant as shipped: lag-compensated inputs on every normal row (dragon/dynamics.py),
             scored against the noise-free measured target `<target>_lagged` (what `dragon train` reports);
* `+hidden`  `lagged` plus the simulator's hidden states (kinetic activity chi, sparger efficiency xi_sp,
             evaporator fouling xi_ev) as extra features: what a perfect soft sensor of them would add;
* `perfect`  the true steady-state inputs to the true steady-state target, no noise, no lag, no hidden
             states: the ceiling of an additive GAM over these features on this hold-out.

`static` fails outright (DataError, shown as "fail") when the output test keeps too few rows.

    OMP_NUM_THREADS=1 .venv/bin/python bench/r2_ceiling.py                 # seeds 0 1 2 3, 90 days
    OMP_NUM_THREADS=1 .venv/bin/python bench/r2_ceiling.py --seeds 0 --days 60

The last line printed is one JSON object: {seed: {model: {arm: r2}}} plus the medians over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
from move_response import static_spec

from dragon.dynamics import model_inputs
from dragon.errors import DataError
from dragon.simulator import generate_history
from dragon.spec import PlantSpec, load_plant
from training.evaluation import truth_column
from training.gam_fit import fit_gam
from training.transforms import prepare_training_data

HIDDEN_STATES = ["chi", "xi_sp", "xi_ev"]
ARMS = ("static", "lagged", "+hidden", "perfect")


def _r2(truth: np.ndarray, predicted: np.ndarray) -> float:
    return 1.0 - float(((truth - predicted) ** 2).sum()) / float(((truth - truth.mean()) ** 2).sum())


def _fit_and_score(model, train_X, train_y, holdout_X, holdout_truth) -> float:
    gam = fit_gam(model, train_X, train_y).gam
    return _r2(holdout_truth, gam.predict(holdout_X))


def _static_arm(spec: PlantSpec, history, truth, source: str) -> dict[str, float | None]:
    static = static_spec(spec)
    try:
        data = prepare_training_data(history, static, truth=truth, source=source)
        return {
            name: _fit_and_score(
                model,
                data.train[model.features].to_numpy(float),
                data.train[model.target].to_numpy(float),
                data.holdout[model.features].to_numpy(float),
                data.holdout_truth[truth_column(model)].to_numpy(float),
            )
            for name, model in static.models.items()
        }
    except DataError:  # too few steady rows for a model's basis
        return dict.fromkeys(static.models)


def _seed_scores(spec: PlantSpec, days: float, seed: int) -> dict[str, dict[str, float | None]]:
    simulated = generate_history(days, seed)
    source = f"simulated seed {seed}"
    data = prepare_training_data(simulated.history, spec, truth=simulated.truth, source=source)
    train, holdout = data.train, data.holdout
    train_truth, holdout_truth = data.train_truth, data.holdout_truth
    static = _static_arm(spec, simulated.history, simulated.truth, source)
    scores = {}
    for name in spec.model_order:
        model = spec.models[name]
        inputs = model_inputs(spec, name)
        target_truth = holdout_truth[truth_column(model)].to_numpy(float)
        with_hidden = model.model_copy(update={"features": [*model.features, *HIDDEN_STATES]})
        true_inputs, steady_target = [f"{feature}_true" for feature in model.features], f"{model.target}_true"
        scores[name] = {
            "static": static[name],
            "lagged": _fit_and_score(
                model,
                train[inputs].to_numpy(float),
                train[model.target].to_numpy(float),
                holdout[inputs].to_numpy(float),
                target_truth,
            ),
            "+hidden": _fit_and_score(
                with_hidden,
                np.column_stack([train[inputs], train_truth[HIDDEN_STATES]]),
                train[model.target].to_numpy(float),
                np.column_stack([holdout[inputs], holdout_truth[HIDDEN_STATES]]),
                target_truth,
            ),
            "perfect": _fit_and_score(
                model,
                train_truth[true_inputs].to_numpy(float),
                train_truth[steady_target].to_numpy(float),
                holdout_truth[true_inputs].to_numpy(float),
                holdout_truth[steady_target].to_numpy(float),
            ),
            "holdout_sd": float(target_truth.std()),
        }
    return scores


def _cell(value: float | None) -> str:
    return "fail" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--days", type=float, default=90.0)
    args = parser.parse_args()
    spec = load_plant()
    results = {}
    for seed in args.seeds:
        results[seed] = _seed_scores(spec, args.days, seed)
        print(f"\n== seed {seed}, {args.days:g} days: hold-out R² against the noise-free truth")
        print(f"{'model':14s} " + " ".join(f"{arm:>9s}" for arm in ARMS) + f" {'sd':>7s}")
        for name, row in results[seed].items():
            cells = " ".join(f"{_cell(row[arm]):>9s}" for arm in ARMS)
            print(f"{name:14s} {cells} {row['holdout_sd']:7.3f}")
    medians = {
        name: {
            arm: statistics.median(v)
            if (v := [results[s][name][arm] for s in results if results[s][name][arm] is not None])
            else None
            for arm in ARMS
        }
        for name in spec.model_order
    }
    print("\n== medians over seeds (static: over the seeds it trained on)")
    for name, row in medians.items():
        print(f"{name:14s} " + " ".join(f"{_cell(row[arm]):>9s}" for arm in ARMS))
    print(json.dumps({"days": args.days, "seeds": results, "median": medians}))


if __name__ == "__main__":
    main()
