"""Decision quality against the simulator's truth: train on seed A, recommend on held-out states.

For steady states of a different seed's history (and novel regimes the training never saw:
cumene feed 30 % above anything in training), recommend one move-limited step and score it with
the true plant (dragon/simulator Oracle): the captured share of the move-limited oracle's gain,
true threshold violations (concentrated CHP > 85 wt %), true production losses (> 0.5 %), and
the gate: abnormal states blocked (process episodes + novel operation; sensor faults reported
separately, a state `parse_state` refuses counts as blocked) and normal states blocked.

Each state comes with its time and recent window (the history's rows of the last `max_window_hours`,
as the endpoint receives them, lag-compensated anchors), and the same bundle is scored with each
trust guard turned off in turn (the arms), and with all of them off (the previous behaviour: single-
reading anchors, uncalibrated intervals, mean gain, no production guard, no consistency check), side
by side. Ends with one JSON line of the figures of the product ("guarded") and of every arm.

    OMP_NUM_THREADS=1 .venv/bin/python bench/decision_quality.py [--quick] [--bundle DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from recommend_latency import TRAIN_SEED, train_default_bundle  # noqa: E402

CHP_LIMIT = 85.0
PRODUCTION_LOSS = 0.005
MIN_ORACLE_GAIN = 0.01  # states where even the oracle cannot gain this much do not score captured gain
NOVEL_FEED_FACTOR = 1.3


def arms(bundle) -> dict:
    """{arm: bundle}: the product, each guard off in turn, and all of them off."""
    from dataclasses import replace

    from dragon.calibration import Calibration

    spec = bundle.spec

    def with_spec(production=spec.production, **optimizer) -> object:
        return spec.model_copy(
            update={"optimizer": spec.optimizer.model_copy(update=optimizer), "production": production}
        )

    uncalibrated = Calibration(
        models={
            name: m.model_copy(update={"interval_scale": 1.0, "covariance_scale": 1.0})
            for name, m in bundle.calibration.models.items()
        },
        measurement_noise=bundle.calibration.measurement_noise,
    )
    everything_off = with_spec(production=None, risk_aversion=0.0, consistency_sigma=0.0)
    return {
        "guarded": (bundle, True),
        "no window anchor": (bundle, False),
        "no calibration": (replace(bundle, calibration=uncalibrated), True),
        "no risk aversion": (replace(bundle, spec=with_spec(risk_aversion=0.0)), True),
        "no production guard": (replace(bundle, spec=with_spec(production=None)), True),
        "no consistency check": (replace(bundle, spec=with_spec(consistency_sigma=0.0)), True),
        "all guards off": (replace(bundle, spec=everything_off, calibration=uncalibrated), False),
    }


def held_out(spec, days: float, seed: int):
    from dragon.simulator import PROCESS_EPISODES, SENSOR_EPISODES, generate_history

    sim = generate_history(days=days, seed=seed, sample_minutes=5.0)
    episode = sim.history["episode"].astype(str).to_numpy()
    steady = sim.truth["steady"].to_numpy()
    groups = {
        "normal": np.flatnonzero(steady & ~np.isin(episode, (*PROCESS_EPISODES, *SENSOR_EPISODES))),
        "process": np.flatnonzero(np.isin(episode, PROCESS_EPISODES)),
        "sensor": np.flatnonzero(np.isin(episode, SENSOR_EPISODES)),
    }
    return sim, groups


class Historian:
    """The hold-out history as the endpoint's callers send it: a state (with its time) and its recent
    window, the rows of the last `max_window_hours` before it that the plant spec accepts."""

    def __init__(self, sim, spec) -> None:
        from dragon.data import elapsed_hours, max_window_hours

        column = spec.time_column
        tags = [t for t in spec.tags if t in sim.history]
        frame = sim.history[[column, *tags]].copy()
        frame[column] = frame[column].map(lambda t: t.isoformat())
        self.spec, self.records = spec, frame.to_dict("records")
        self.hours = elapsed_hours(sim.history[column])
        self.reach_hours = max_window_hours(spec)
        self._valid: dict[int, bool] = {}

    def state(self, row: int) -> dict:
        return dict(self.records[row])

    def window(self, row: int) -> list[dict]:
        from dragon.data import window_positions

        positions = window_positions(self.hours, row, self.reach_hours)
        return [self.records[i] for i in positions if self._accepted(i)]

    def _accepted(self, row: int) -> bool:
        from dragon.data import parse_state
        from dragon.errors import DataError

        if row not in self._valid:
            try:
                parse_state(self.records[row], self.spec)
                self._valid[row] = True
            except DataError:
                self._valid[row] = False
        return self._valid[row]


def oracle_inputs(sim, row: int, setpoints: list[str]) -> tuple[dict, dict]:
    """(state for the oracle: true setpoints and disturbances, hidden states) of a history row."""
    truth = sim.truth.iloc[row]
    state = {c[: -len("_true")]: float(truth[c]) for c in sim.truth.columns if c.endswith("_true")}
    hidden = {name: float(truth[name]) for name in ("chi", "xi_sp", "xi_ev")}
    return state, hidden


def score_arm(recommender, with_window: bool, sim, historian, rows, oracle) -> dict:
    """The decision-quality figures of one recommender over the held-out rows."""
    from dragon.data import parse_state, parse_window
    from dragon.errors import DataError

    spec = historian.spec

    def recommend_raw(raw: dict, row: int):
        try:
            state = parse_state(raw, spec)
            window = parse_window(historian.window(row), raw, spec) if with_window else None
            return recommender.recommend(state, window)
        except DataError:
            return None  # never reaches the optimizer: counts as blocked

    captured, violations, losses, recommended, normal_blocked = [], 0, 0, 0, 0
    for row in rows["normal"]:
        result = recommend_raw(historian.state(row), row)
        if result is None or result.status == "blocked":
            normal_blocked += 1
            continue
        state, hidden = oracle_inputs(sim, row, spec.setpoints)
        best = oracle.best_setpoints(state, hidden, move_limited=True)
        moved = {t: state[t] for t in spec.setpoints}
        if result.status == "recommended":  # apply the recommended *moves* to the true setpoints
            moved = {t: state[t] + result.moves[t] for t in spec.setpoints}
        true = oracle.evaluate(moved, state, hidden)
        true_gain = true["yield"] - best.current_yield
        if result.status == "recommended":
            recommended += 1
            violations += true["concentrated_chp"] > CHP_LIMIT
            losses += true["phenol_production"] < (1 - PRODUCTION_LOSS) * best.current_phenol_production
        if best.gain > MIN_ORACLE_GAIN:
            captured.append(true_gain / best.gain)

    def blocked_share(group, transform=None) -> float:
        blocked = 0
        for row in rows[group]:
            raw = historian.state(row)
            if transform:
                raw = transform(raw, row)
            result = recommend_raw(raw, row)
            blocked += result is None or result.status == "blocked"
        return blocked / max(len(rows[group]), 1)

    def novel(raw: dict, row: int) -> dict:
        """Feed far above training; measurements from the true plant at that feed."""
        state, hidden = oracle_inputs(sim, row, spec.setpoints)
        state["cumene_feed"] = min(
            state["cumene_feed"] * NOVEL_FEED_FACTOR, spec.tags["cumene_feed"].valid[1]
        )
        true = oracle.evaluate({t: state[t] for t in spec.setpoints}, state, hidden)
        return {**raw, "cumene_feed": state["cumene_feed"], **{k: v for k, v in true.items() if k in raw}}

    n_process, n_novel = len(rows["process"]), len(rows["novel"])
    abnormal_blocked = (blocked_share("process") * n_process + blocked_share("novel", novel) * n_novel) / max(
        n_process + n_novel, 1
    )
    return {
        "states": len(rows["normal"]),
        "captured_gain_mean": round(float(np.mean(captured)), 4) if captured else None,
        "captured_gain_median": round(float(np.median(captured)), 4) if captured else None,
        "violation_rate": round(violations / max(recommended, 1), 4),
        "production_loss_rate": round(losses / max(recommended, 1), 4),
        "abnormal_blocked_rate": round(float(abnormal_blocked), 4),
        "sensor_fault_blocked_rate": round(float(blocked_share("sensor")), 4),
        "normal_blocked_rate": round(normal_blocked / max(len(rows["normal"]), 1), 4),
        "recommended": recommended,
        "scored_for_gain": len(captured),
        "abnormal_states": n_process + n_novel,
        "sensor_fault_states": len(rows["sensor"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 normal states, 150 days of training")
    parser.add_argument("--states", type=int, default=300)
    parser.add_argument("--abnormal", type=int, default=100, help="states per abnormal group")
    parser.add_argument("--days", type=float, default=240.0)
    parser.add_argument("--holdout-days", type=float, default=120.0)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--arms", default="all", help="comma-separated arm names, or all")
    args = parser.parse_args()
    if args.quick:
        args.states, args.abnormal, args.days, args.holdout_days = 60, 30, 150.0, 90.0

    from dragon.bundle import load_bundle
    from dragon.simulator import Oracle
    from optimizer.recommender import Recommender

    rng = np.random.default_rng(5)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="dragon-quality-") as tmp:
        bundle = load_bundle(args.bundle or train_default_bundle(args.days, TRAIN_SEED, Path(tmp)))
        spec = bundle.spec
        oracle = Oracle()
        sim, groups = held_out(spec, args.holdout_days, seed=97)
        historian = Historian(sim, spec)
        rows = {
            "normal": rng.permutation(groups["normal"])[: args.states],
            "process": rng.permutation(groups["process"])[: args.abnormal],
            "novel": rng.permutation(groups["normal"])[: args.abnormal],
            "sensor": rng.permutation(groups["sensor"])[: args.abnormal],
        }
        chosen = arms(bundle)
        if args.arms != "all":
            chosen = {name: chosen[name] for name in args.arms.split(",")}
        for name, (arm_bundle, with_window) in chosen.items():
            recommender = Recommender(arm_bundle, model_version="bench")
            figures[name] = score_arm(recommender, with_window, sim, historian, rows, oracle)
            print(f"{name:>22}: {figures[name]}", file=sys.stderr, flush=True)

    print(json.dumps(figures))


if __name__ == "__main__":
    main()
