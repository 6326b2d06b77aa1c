"""The default plant behind the simulator protocol (dragon/simulator/protocol.py): closed loop.

`generate_history` computes a whole history at once because its operator is part of the simulation.
In a trial the setpoints come from outside, a step at a time, so this class advances the same plant
chunk by chunk: the drivers (load plan, seasons, drifts, episodes) are drawn up front from the seed as
the history draws them, the steady-state truth is evaluated over each chunk's samples, the first-order
lags carry their state from one chunk to the next, and the sensors read the lagged plant with noise
that is also drawn up front (so every arm of a trial sees the same noise). Lab values are taken every
8 h and held; the yield is an hourly estimate; the analyser and sensor faults act on the readings as in
the history.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from dragon.simulator.episodes import schedule_episodes
from dragon.simulator.history import (
    _COMPONENTS,
    ABS_NOISE,
    HISTORY_TAGS,
    LAB_HOURS,
    LAB_NOISE,
    LAB_OFFSET_HOURS,
    LAG_HOURS,
    REL_NOISE,
    SHIFT_HOURS,
    START,
    YIELD_SIGMA,
    OperatorCalendar,
    _drivers,
    _true_inputs,
    operator_correction,
    true_drivers,
)
from dragon.simulator.oracle import CHP_LIMIT, OX2_CHP_LIMIT, Oracle
from dragon.simulator.protocol import EPISODE, Samples, Scoring
from dragon.simulator.truth import DEFAULT_PARAMETERS, DISTURBANCES, HIDDEN, OUTPUTS, SETPOINTS, steady_state
from dragon.spec import PlantSpec

ONLINE_TAGS = tuple(
    tag for tag in (*SETPOINTS, *DISTURBANCES, *OUTPUTS) if tag in ABS_NOISE or tag in REL_NOISE
)
PRODUCTION_GIVE = (0.0, 0.01, 0.03, 1.0)  # shares of production the oracle may give up to respect the limits
ORACLE_STARTS = 1  # random starts besides u0 and the box centre: the move-limited box is small, they agree


class YetDragonPlant:
    """The cumene oxidation and concentration section, stepped in closed loop."""

    scoring = Scoring(
        objective="yield",
        production="phenol_production",
        limits={"concentrated_chp": (None, CHP_LIMIT), "ox2_chp": (None, OX2_CHP_LIMIT)},
    )
    sample_minutes = 1.0

    def __init__(self, spec: PlantSpec, *, days: float, seed: int, step_tests: bool = False) -> None:
        self.spec = spec
        self.params = DEFAULT_PARAMETERS
        self.dt_h = self.sample_minutes / 60.0
        self.n = int(round(days * 24.0 / self.dt_h)) + 1
        children = np.random.SeedSequence(seed).spawn(len(_COMPONENTS))
        rngs = {name: np.random.default_rng(child) for name, child in zip(_COMPONENTS, children, strict=True)}
        episodes = schedule_episodes(self.n * self.dt_h / 24.0, rngs["episodes"])
        self.drivers, _ = _drivers(self.n, self.dt_h, rngs, step_tests, episodes)
        self.hours = self.drivers.hours
        shift_starts = np.arange(0.0, self.hours[-1] + SHIFT_HOURS, SHIFT_HOURS)
        self.calendar = OperatorCalendar.draw(rngs["operator"], shift_starts / 24.0)
        noise = rngs["noise"]
        self._noise = {tag: noise.standard_normal(self.n) for tag in ONLINE_TAGS}
        lab_samples = int(self.hours[-1] // LAB_HOURS) + 2
        self._lab_noise = {
            tag: rngs["lab"].uniform(-1.0, 1.0, lab_samples)
            if kind == "uniform"
            else rngs["lab"].standard_normal(lab_samples)
            for tag, (kind, _) in LAB_NOISE.items()
        }
        self._yield_noise = rngs["lab"].standard_normal(int(self.hours[-1]) + 2) * YIELD_SIGMA
        self._lagged = {tag: np.full(self.n, np.nan) for tag in OUTPUTS}  # the plant's true outputs so far
        self._setpoint_t1 = np.full(self.n, np.nan)  # what a stuck T1 sensor freezes at
        self._k = 0
        self._operator = {"t2": 98.0, "tev": 82.0, "shift": -1}
        self.oracle_solver = Oracle(
            self.params,
            bounds={tag: spec.tags[tag].bounds for tag in SETPOINTS},
            max_move={tag: spec.tags[tag].max_move for tag in SETPOINTS},
            starts=ORACLE_STARTS,
        )

    # --- the protocol ---------------------------------------------------------------------
    def step(self, setpoints: Mapping[str, float], hours: float) -> Samples:
        count = max(1, int(round(hours / self.dt_h)))
        if self._k + count > self.n:
            raise ValueError(f"the simulation covers {self.hours[-1]:.0f} h; it cannot step further")
        idx = np.arange(self._k, self._k + count)
        held = {tag: np.full(count, float(setpoints[tag])) for tag in SETPOINTS}
        inputs = _true_inputs(idx, held, self.drivers, self.params)
        steady = steady_state(inputs, self.params)
        for tag in OUTPUTS:
            previous = steady[tag][0] if self._k == 0 else self._lagged[tag][self._k - 1]  # starts settled
            a = np.exp(-self.dt_h / LAG_HOURS[tag])
            self._lagged[tag][idx] = lfilter([1.0 - a], [1.0, -a], steady[tag], zi=[a * previous])[0]
        self._setpoint_t1[idx] = held["ox1_temperature"] + self.drivers.step_offset["ox1_temperature"][idx]
        self._k += count
        time = START + pd.to_timedelta(np.round(self.hours[idx] * 3600.0 * 1e6).astype(np.int64), unit="us")
        readings = self._read(idx, inputs)
        readings["phenol_plan"] = np.full(count, round(self.steady_state(setpoints)["phenol_production"], 1))
        column = self.spec.time_column
        measured = pd.DataFrame({column: time, **{tag: readings[tag] for tag in HISTORY_TAGS}})
        measured[EPISODE] = self.drivers.episode[idx].astype(str)
        scored = {self.scoring.objective, self.scoring.production, *self.scoring.limits}
        truth = pd.DataFrame(
            {column: time, **{tag: self._lagged[tag][idx] for tag in OUTPUTS if tag in scored}}
        )
        return Samples(measured, truth)

    def _state_now(self) -> tuple[dict[str, float], dict[str, float]]:
        """The true disturbances and hidden states at the next sample (episodes included)."""
        inputs = true_drivers(np.array([min(self._k, self.n - 1)]), self.drivers)
        return (
            {tag: float(inputs[tag][0]) for tag in DISTURBANCES},
            {tag: float(inputs[tag][0]) for tag in HIDDEN},
        )

    def steady_state(self, setpoints: Mapping[str, float]) -> dict[str, float]:
        disturbances, hidden = self._state_now()
        return self.oracle_solver.evaluate(setpoints, disturbances, hidden)

    def oracle(self, setpoints: Mapping[str, float]) -> dict[str, float]:
        disturbances, hidden = self._state_now()
        state = {**disturbances, **{tag: float(setpoints[tag]) for tag in SETPOINTS}}
        # When a disturbance pushes the plant over a limit, holding production can make every move
        # infeasible (the solver then holds): the limits come first, production gives way step by step.
        for tolerance in PRODUCTION_GIVE:
            best = self.oracle_solver.best_setpoints(state, hidden, move_limited=True, tolerance=tolerance)
            if best.concentrated_chp <= CHP_LIMIT + 1e-6 and best.outputs["ox2_chp"] <= OX2_CHP_LIMIT + 1e-6:
                break
        return best.setpoints

    def operator(self, recent: pd.DataFrame) -> dict[str, float]:
        """The historical operator (history.py's policy): once per 8-h shift, T2 on the CHP2 reading, Tev
        when the CHPc reading leaves its band; T1 follows T2 by a monthly offset; O2, pH and Pev from its
        own calendar."""
        shift = int(self.hours[min(self._k, self.n - 1)] // SHIFT_HOURS)
        state = self._operator
        if shift != state["shift"] and len(recent):
            i = min(self._k, self.n - 1)
            novel = self.drivers.episode[i] == "novel_operation"
            testing_t = any(self.drivers.step_offset[tag][i] != 0.0 for tag in SETPOINTS[:2])
            testing_ev = any(self.drivers.step_offset[tag][i] != 0.0 for tag in SETPOINTS[5:])
            last = recent.iloc[-1]
            state["t2"], state["tev"] = operator_correction(
                state["t2"],
                state["tev"],
                None if novel or testing_t else float(last["ox2_chp"]),
                None if testing_ev else float(last["concentrated_chp"]),
                float(self.calendar.jitter[shift]),
            )
        state["shift"] = shift
        return self.calendar.setpoints(shift, state["t2"], state["tev"])

    # --- sensors ----------------------------------------------------------------------------
    def _read(self, idx: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What the historian records at samples `idx`: online sensors, held lab samples, faults."""
        true_values = {**inputs, **{tag: self._lagged[tag][idx] for tag in OUTPUTS}}
        readings: dict[str, np.ndarray] = {}
        for tag in ONLINE_TAGS:
            if tag in LAB_NOISE or tag == "yield":
                continue
            if tag in REL_NOISE:
                readings[tag] = true_values[tag] * (1.0 + REL_NOISE[tag] * self._noise[tag][idx])
            else:
                readings[tag] = true_values[tag] + ABS_NOISE[tag] * self._noise[tag][idx]
        label = self.drivers.episode[idx]
        stuck = label == "t1_sensor_stuck"
        if stuck.any():  # a stuck PV freezes at the setpoint it showed when it stuck
            all_stuck = self.drivers.episode[: idx[-1] + 1] == "t1_sensor_stuck"
            first = all_stuck & ~np.concatenate([[False], all_stuck[:-1]])
            frozen_from = np.maximum.accumulate(np.where(first, np.arange(len(all_stuck)), 0))[idx]
            readings["ox1_temperature"] = np.where(
                stuck, self._setpoint_t1[frozen_from], readings["ox1_temperature"]
            )
        readings["ox1_offgas_o2"] = np.where(
            label == "ox1_o2_analyser_low", readings["ox1_offgas_o2"] - 2.0, readings["ox1_offgas_o2"]
        )
        readings["ox2_chp"] = readings["ox2_chp"] + self.drivers.chp2_bias[idx]

        # Lab values every 8 h, held until the next sample; the yield is an hourly estimate.
        hours = self.hours[idx]
        sample = np.floor((hours - LAB_OFFSET_HOURS) / LAB_HOURS).astype(np.int64) + 1
        sample_rows = np.minimum(
            np.round(np.maximum((sample - 1) * LAB_HOURS + LAB_OFFSET_HOURS, 0.0) / self.dt_h).astype(
                np.int64
            ),
            idx,
        )
        for tag, (kind, size) in LAB_NOISE.items():
            if tag in OUTPUTS:
                sampled = self._lagged[tag][sample_rows]
            else:
                sampled = true_drivers(sample_rows, self.drivers)[tag]
            noise = self._lab_noise[tag][sample]
            if kind in ("uniform", "rel"):
                readings[tag] = sampled * (1.0 + size * noise)
            else:
                readings[tag] = sampled + size * noise
        hour = np.floor(hours).astype(np.int64)
        hour_rows = np.minimum(np.round(hour / self.dt_h).astype(np.int64), idx)
        readings["yield"] = self._lagged["yield"][hour_rows] + self._yield_noise[hour]
        return readings
