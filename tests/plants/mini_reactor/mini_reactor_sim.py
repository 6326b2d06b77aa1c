"""The mini reactor's simulator, a plug-in of dragon/simulator/protocol.py (plant.toml beside it).

Truth (steady state, closed form): first-order conversion in a reactor of residence time 40/feed h,
    conversion = 100 (1 - exp(-k tau)),  k = 2 activity exp(-6000 (1/T - 1/443.15)) r/(r+1) / (1 + S/100)
    impurity   = 55 exp(0.035 (T - 170)) (conversion/70)^3 (1 + S/200) / (0.2 + 0.2 duty)      ppm
    selectivity = 97 - 0.08 (T - 170) - 0.05 (conversion - 70) - 0.15 (r - 4.5)^2 - 0.15 duty   %
    product_flow = feed x conversion x selectivity / 10^4                                        t/h
(T reactor_temp in K inside the exponential, r h2_ratio, S feed_sulfur, duty stripper_duty). The
stripper buys purity with product loss, so the selectivity optimum sits on the 100 ppm impurity limit,
and production can always be traded for selectivity by lowering conversion.

Dynamics: first-order lags (conversion 1 h, impurity 2 h, selectivity 2.5 h, product 2 h), 5-minute
samples, Gaussian sensor noise (the impurity analyser: 6 ppm). Disturbances: a feed plan of 2-5 day
segments, sulfur as an AR(1) around 40 ppm, catalyst activity declining 2 % a month; `sulfur_spike`
episodes (+150 ppm for 6-18 h). The operators act once per 8-h shift: reactor temperature holds the
conversion near 66 %, stripper duty the impurity near 55 ppm, H2 ratio weekly; with `step_tests` one
setpoint in three shifts is stepped for the shift (excitation for training histories).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.signal import lfilter

from dragon.simulator.protocol import EPISODE, Samples, Scoring
from dragon.spec import PlantSpec

START = pd.Timestamp("2026-03-01", tz="UTC")
SETPOINTS = ("reactor_temp", "h2_ratio", "stripper_duty")
DISTURBANCES = ("feed_flow", "feed_sulfur")
OUTPUTS = ("conversion", "impurity_ppm", "selectivity", "product_flow")
LAG_HOURS = {"conversion": 1.0, "impurity_ppm": 2.0, "selectivity": 2.5, "product_flow": 2.0}
NOISE = {
    "reactor_temp": 0.2,
    "h2_ratio": 0.02,
    "stripper_duty": 0.03,
    "feed_flow": 0.2,
    "feed_sulfur": 2.0,
    "conversion": 0.4,
    "impurity_ppm": 6.0,
    "selectivity": 0.15,
    "product_flow": 0.2,
}
IMPURITY_LIMIT = 100.0
SHIFT_HOURS = 8.0
STEP_SIZE = {"reactor_temp": 4.0, "h2_ratio": 0.6, "stripper_duty": 1.5}
INITIAL = {"reactor_temp": 172.0, "h2_ratio": 3.0, "stripper_duty": 5.0}


def steady_state(inputs: Mapping[str, np.ndarray | float]) -> dict[str, np.ndarray]:
    """The settled plant, vectorised over any broadcastable inputs (+ hidden `activity`)."""
    x = {k: np.asarray(v, dtype=float) for k, v in inputs.items()}
    t, r, duty, sulfur = x["reactor_temp"], x["h2_ratio"], x["stripper_duty"], x["feed_sulfur"]
    rate = 2.0 * x["activity"] * np.exp(-6000.0 * (1.0 / (t + 273.15) - 1.0 / 443.15))
    rate = rate * r / (r + 1.0) / (1.0 + sulfur / 100.0)
    conversion = 100.0 * (1.0 - np.exp(-rate * 40.0 / x["feed_flow"]))
    impurity = (55.0 * np.exp(0.035 * (t - 170.0)) * (conversion / 70.0) ** 3 * (1.0 + sulfur / 200.0)) / (
        0.2 + 0.2 * duty
    )
    selectivity = 97.0 - 0.08 * (t - 170.0) - 0.05 * (conversion - 70.0) - 0.15 * (r - 4.5) ** 2 - 0.15 * duty
    return {
        "conversion": conversion,
        "impurity_ppm": impurity,
        "selectivity": selectivity,
        "product_flow": x["feed_flow"] * conversion * selectivity / 1e4,
    }


def _ar1(rng: np.random.Generator, n: int, dt_h: float, tau_h: float, sigma: float) -> np.ndarray:
    a = np.exp(-dt_h / tau_h)
    shocks = rng.standard_normal(n) * sigma * np.sqrt(1.0 - a * a)
    return lfilter([1.0], [1.0, -a], shocks, zi=[a * sigma * rng.standard_normal()])[0]


class MiniReactor:
    """The mini reactor behind the simulator protocol."""

    scoring = Scoring(
        objective="selectivity", production="product_flow", limits={"impurity_ppm": (None, IMPURITY_LIMIT)}
    )
    sample_minutes = 5.0

    def __init__(self, spec: PlantSpec, *, days: float, seed: int, step_tests: bool = False) -> None:
        self.spec = spec
        self.dt_h = self.sample_minutes / 60.0
        self.n = int(round(days * 24.0 / self.dt_h)) + 1
        disturbance_rng, noise_rng, operator_rng = (
            np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)
        )
        self._disturbances(disturbance_rng)
        self._noise = {tag: noise_rng.standard_normal(self.n) * sigma for tag, sigma in NOISE.items()}
        shifts = int(self.n * self.dt_h / SHIFT_HOURS) + 2
        self._h2_weekly = np.clip(operator_rng.normal(3.0, 0.25, size=shifts // 21 + 1), 2.4, 3.6)
        self._steps = [
            (SETPOINTS[operator_rng.integers(3)], operator_rng.choice([-1.0, 1.0]), operator_rng.random())
            for _ in range(shifts)
        ]
        self.step_tests = step_tests
        self._k = 0  # next sample
        self._lagged: dict[str, float] | None = None
        self._shift = -1
        self._held = dict(INITIAL)  # the operator's own setpoints, before any step test

    def _disturbances(self, rng: np.random.Generator) -> None:
        hours = np.arange(self.n) * self.dt_h
        times, levels, clock = [0.0], [42.0], 0.0
        while clock < hours[-1]:
            clock += rng.uniform(2.0, 5.0) * 24.0
            times += [clock, clock + 3.0]
            levels += [levels[-1], rng.uniform(36.0, 48.0)]
        self.feed = np.interp(hours, times, levels) + _ar1(rng, self.n, self.dt_h, 1.0, 0.3)
        self.sulfur = np.clip(40.0 + _ar1(rng, self.n, self.dt_h, 24.0, 8.0), 5.0, None)
        self.activity = 1.0 - 0.02 * hours / 720.0 + np.cumsum(rng.normal(0.0, 0.0002, self.n))
        self.episode = np.full(self.n, "", dtype=object)
        clock = rng.uniform(24.0, 96.0)
        while clock < hours[-1]:
            window = (hours >= clock) & (hours < clock + rng.uniform(6.0, 18.0))
            self.sulfur = np.where(window, self.sulfur + 150.0, self.sulfur)
            self.episode[window] = "sulfur_spike"
            clock += rng.uniform(5.0, 12.0) * 24.0
        self.hours = hours

    # --- the protocol ---------------------------------------------------------------------
    def _inputs(self, setpoints: Mapping[str, float], idx: np.ndarray | int) -> dict[str, np.ndarray]:
        return {
            **{tag: np.full(np.shape(idx), float(setpoints[tag])) for tag in SETPOINTS},
            "feed_flow": self.feed[idx],
            "feed_sulfur": self.sulfur[idx],
            "activity": self.activity[idx],
        }

    def step(self, setpoints: Mapping[str, float], hours: float) -> Samples:
        count = max(1, int(round(hours / self.dt_h)))
        if self._k + count > self.n:
            raise ValueError(f"the simulation covers {self.n * self.dt_h:.0f} h; it cannot step further")
        idx = np.arange(self._k, self._k + count)
        inputs = self._inputs(setpoints, idx)
        steady = steady_state(inputs)
        if self._lagged is None:  # the plant starts settled
            self._lagged = {tag: float(steady[tag][0]) for tag in OUTPUTS}
        truth = {}
        for tag in OUTPUTS:
            a = np.exp(-self.dt_h / LAG_HOURS[tag])
            truth[tag] = lfilter([1.0 - a], [1.0, -a], steady[tag], zi=[a * self._lagged[tag]])[0]
            self._lagged[tag] = float(truth[tag][-1])
        time = START + pd.to_timedelta(self.hours[idx], unit="h")
        measured = {tag: inputs[tag] + self._noise[tag][idx] for tag in (*SETPOINTS, *DISTURBANCES)}
        measured.update({tag: truth[tag] + self._noise[tag][idx] for tag in OUTPUTS})
        self._k += count
        column = self.spec.time_column
        return Samples(
            pd.DataFrame({column: time, **measured, EPISODE: self.episode[idx].astype(str)}),
            pd.DataFrame({column: time, **truth}),
        )

    def steady_state(self, setpoints: Mapping[str, float]) -> dict[str, float]:
        now = min(self._k, self.n - 1)
        return {tag: float(value) for tag, value in steady_state(self._inputs(setpoints, now)).items()}

    def oracle(self, setpoints: Mapping[str, float]) -> dict[str, float]:
        u0 = np.array([float(setpoints[tag]) for tag in SETPOINTS])
        tags = [self.spec.tags[tag] for tag in SETPOINTS]
        low = np.maximum([t.bounds[0] for t in tags], u0 - [t.max_move for t in tags])
        high = np.maximum(np.minimum([t.bounds[1] for t in tags], u0 + [t.max_move for t in tags]), low)
        width = np.where(high > low, high - low, 1.0)

        def outputs(z: np.ndarray) -> dict[str, float]:
            return self.steady_state(dict(zip(SETPOINTS, low + z * width, strict=True)))

        production = self.steady_state(setpoints)["product_flow"]
        constraints = [
            {"type": "ineq", "fun": lambda z: IMPURITY_LIMIT - outputs(z)["impurity_ppm"]},
            {"type": "ineq", "fun": lambda z: 10.0 * (outputs(z)["product_flow"] - production)},
        ]

        def violation(z: np.ndarray) -> float:
            found = outputs(z)
            excess = max(found["impurity_ppm"] - IMPURITY_LIMIT, 0.0)
            return excess**2 + (10.0 * max(production - found["product_flow"], 0.0)) ** 2

        here = np.clip((u0 - low) / width, 0.0, 1.0)
        best, best_value = None, -np.inf
        for z0 in (here, np.full(3, 0.5), np.ones(3), np.zeros(3)):
            z = np.clip(
                minimize(
                    lambda z: -outputs(z)["selectivity"],
                    z0,
                    method="SLSQP",
                    bounds=[(0.0, 1.0)] * 3,
                    constraints=constraints,
                    options={"ftol": 1e-10, "maxiter": 200},
                ).x,
                0.0,
                1.0,
            )
            value = outputs(z)["selectivity"]
            if violation(z) <= 1e-9 and value > best_value:
                best, best_value = z, value
        if best is None:  # nothing within the move limits is feasible: the move that violates least
            best = np.clip(minimize(violation, here, method="L-BFGS-B", bounds=[(0.0, 1.0)] * 3).x, 0.0, 1.0)
        return dict(zip(SETPOINTS, (float(v) for v in low + best * width), strict=True))

    def operator(self, recent: pd.DataFrame) -> dict[str, float]:
        shift = int(self._k * self.dt_h // SHIFT_HOURS)
        if shift != self._shift and len(recent):
            conversion = float(recent["conversion"].iloc[-1])
            impurity = float(recent["impurity_ppm"].iloc[-1])
            held = self._held
            held["reactor_temp"] = float(
                np.clip(held["reactor_temp"] + np.clip(0.5 * (66.0 - conversion), -1.5, 1.5), 160.0, 185.0)
            )
            held["stripper_duty"] = float(
                np.clip(held["stripper_duty"] + np.clip(0.03 * (impurity - 55.0), -0.5, 0.5), 3.0, 7.0)
            )
        self._shift = shift
        setpoints = {**self._held, "h2_ratio": float(self._h2_weekly[shift // 21])}
        tag, sign, chance = self._steps[shift]
        if self.step_tests and chance < 1 / 3:
            low, high = self.spec.tags[tag].bounds
            setpoints[tag] = float(np.clip(setpoints[tag] + sign * STEP_SIZE[tag], low, high))
        return setpoints
