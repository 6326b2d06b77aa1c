"""Move responses of the GAM chain against the simulator's truth: what the optimizer relies on.

The optimizer asks the chain one question: if these setpoints move, how much do the targets move?
This bench trains the plant's GAMs on `--days` of simulated history two ways, side by side:

* `static`  the previous method: no lag compensation, steady-state selection on the outputs (window
            120 min, hold 60 min);
* `lagged`  the plant as shipped: lag-compensated inputs on every normal row (dragon/dynamics.py);

then takes `--states` truly steady, normal states of the last 20 % of the history, moves one setpoint
at a time by a typical step and compares the chain's predicted change of ox2_chp, concentrated_chp
and yield with the true steady-state change (the hidden states as they were at that time). It prints
the mean true and predicted change and the mean absolute error per (setpoint, output), and the mean
absolute error over all pairs, scaled by each output's mean |true change| so outputs weigh alike.

    OMP_NUM_THREADS=1 .venv/bin/python bench/move_response.py               # 90 days, seed 1
    OMP_NUM_THREADS=1 .venv/bin/python bench/move_response.py --seed 3 --days 120

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from dragon.dynamics import model_input_matrix
from dragon.features import add_derived
from dragon.simulator import generate_history
from dragon.simulator.truth import steady_state
from dragon.spec import PlantSpec, SteadyStateSettings, load_plant
from training.gam_fit import fit_gam
from training.transforms import prepare_training_data

MOVES = {  # setpoint: a typical move (about the plant's max_move)
    "ox1_temperature": 1.0,
    "ox2_temperature": 1.0,
    "ox1_offgas_o2": 0.5,
    "ox2_offgas_o2": 0.5,
    "oxidation_ph": 0.2,
    "evaporator_temperature": 2.0,
    "evaporator_pressure": 0.2,
}
OUTPUTS = ("ox2_chp", "concentrated_chp", "yield")
HIDDEN_STATES = ("chi", "xi_sp", "xi_ev")


def static_spec(spec: PlantSpec) -> PlantSpec:
    models = {name: m.model_copy(update={"lag_hours": 0.0}) for name, m in spec.models.items()}
    steady = SteadyStateSettings(enabled=True, window_minutes=120, hold_minutes=60)
    return spec.model_copy(update={"models": models, "steady_state": steady})


def fit_chain(spec: PlantSpec, history, source: str) -> dict:
    data = prepare_training_data(history, spec, source=source)
    return {
        name: fit_gam(
            model, model_input_matrix(data.train, spec, name), data.train[model.target].to_numpy(float)
        ).gam
        for name, model in spec.models.items()
    }


def predict_chain(spec: PlantSpec, gams: dict, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each model in order, fed its upstream models' predictions: the optimizer's chain."""
    values = dict(state)
    for name in spec.model_order:
        model = spec.models[name]
        values[model.target] = gams[name].predict(np.column_stack([values[f] for f in model.features]))
    return values


def steady_normal_states(simulated, spec: PlantSpec, count: int, seed: int) -> dict[str, np.ndarray]:
    """True inputs and hidden states of `count` truly steady, normal rows of the last 20 %."""
    truth, history = simulated.truth, simulated.history
    late = np.arange(len(truth)) >= 0.8 * len(truth)
    normal = history["episode"].fillna("").astype(str).to_numpy() == ""
    rows = np.flatnonzero(late & normal & truth["steady"].to_numpy(bool))
    picked = np.random.default_rng(seed).choice(rows, size=min(count, len(rows)), replace=False)
    inputs = [t for t, tag in spec.tags.items() if tag.role != "measurement" and f"{t}_true" in truth]
    state = {tag: truth[f"{tag}_true"].to_numpy()[picked] for tag in inputs}
    state.update({h: truth[h].to_numpy()[picked] for h in HIDDEN_STATES})
    return state


def response_errors(spec: PlantSpec, gams: dict, state: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per (setpoint, output) the true and predicted change for one move. The chain sees what the
    optimizer sees: the plant measured at the current (settled) state, every input but the moved setpoint
    held there, measured inputs such as the steam temperature and derived state estimates included."""
    before = steady_state(state)
    current = add_derived({**state, **before}, spec.derived_features, spec.model_derived_inputs)
    predicted_before = predict_chain(spec, gams, current)
    rows = {}
    for setpoint, step in MOVES.items():
        after = steady_state({**state, setpoint: state[setpoint] + step})
        predicted_after = predict_chain(spec, gams, {**current, setpoint: current[setpoint] + step})
        for output in OUTPUTS:
            true_change = after[output] - before[output]
            predicted_change = predicted_after[output] - predicted_before[output]
            rows[f"{setpoint}->{output}"] = {
                "true": float(true_change.mean()),
                "predicted": float(predicted_change.mean()),
                "mae": float(np.abs(predicted_change - true_change).mean()),
                "scale": float(np.abs(true_change).mean()),
            }
    return rows


def scaled_mae(rows: dict[str, dict]) -> float:
    """Mean over pairs of MAE / the output's mean |true change| over all moves."""
    scale = {o: np.mean([r["scale"] for k, r in rows.items() if k.endswith(f"->{o}")]) for o in OUTPUTS}
    return float(np.mean([r["mae"] / scale[k.rsplit("->", 1)[1]] for k, r in rows.items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--states", type=int, default=150)
    args = parser.parse_args()
    spec = load_plant()
    simulated = generate_history(args.days, args.seed)
    source = f"simulated seed {args.seed}"
    state = steady_normal_states(simulated, spec, args.states, args.seed)
    arms = {"static": static_spec(spec), "lagged": spec}
    results = {
        label: response_errors(arm, fit_chain(arm, simulated.history, source), state)
        for label, arm in arms.items()
    }
    print(f"{args.days:g} days, seed {args.seed}, {len(state['cumene_feed'])} steady normal states")
    heads = " ".join(f"{a + ' Δ':>9s} {a + ' mae':>10s}" for a in arms)
    print(f"{'move -> output':40s} {'true Δ':>8s} {heads}")
    for pair in results["lagged"]:
        cells = " ".join(
            f"{results[a][pair]['predicted']:+9.3f} {results[a][pair]['mae']:10.3f}" for a in arms
        )
        print(f"{pair:40s} {results['lagged'][pair]['true']:+8.3f} {cells}")
    summary = {label: scaled_mae(rows) for label, rows in results.items()}
    print(
        "scaled mean absolute error: "
        + ", ".join(f"{a} {v:.3f}" for a, v in summary.items())
        + f"; static / lagged = {summary['static'] / summary['lagged']:.2f}"
    )
    print(json.dumps({"days": args.days, "seed": args.seed, "scaled_mae": summary, "pairs": results}))


if __name__ == "__main__":
    main()
