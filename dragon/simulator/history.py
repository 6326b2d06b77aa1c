"""The historian layer: a minute-sampled history of the default plant (PLANT.md, "Dynamics").

Disturbances, drifts, the shift operator, planned step tests and abnormal episodes make the
true inputs of every sample; the steady-state truth is evaluated over all samples at once,
passed through first-order lags (exact zero-order-hold discretisation, `lfilter`), and read
through noisy sensors and 8-hourly lab samples. Every random component draws from its own
child of one `SeedSequence`, so the same (days, seed) gives identical frames.

The operator acts once per 8-h shift on what the plant shows, so the closed loop runs on the
shift grid (about 1100 iterations a year), with the lagged outputs advanced exactly between
shifts; everything per sample is vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from dragon.simulator.episodes import Episode, schedule_episodes
from dragon.simulator.truth import (
    DEFAULT_PARAMETERS,
    DISTURBANCES,
    OUTPUTS,
    SETPOINTS,
    PlantParameters,
    steady_state,
)

START = pd.Timestamp("2026-01-01", tz="UTC")
SHIFT_HOURS = 8.0
LAB_HOURS = 8.0
LAB_OFFSET_HOURS = 6.0  # lab samples at 06:00, 14:00, 22:00
NOMINAL_FEED = 215.0

# Columns of the history, in PLANT.md's table order (hidden states excluded).
HISTORY_TAGS = (*SETPOINTS, *DISTURBANCES, "phenol_plan", *OUTPUTS)

LAG_HOURS = {
    "ox1_chp": 3.0,
    "ox2_chp": 5.0,
    "ox2_dmba": 5.0,
    "ox2_ap": 5.0,
    "concentrated_chp": 5.5,
    "yield": 8.0,
    "ox1_air_flow": 0.2,
    "ox2_air_flow": 0.2,
    "evaporator_steam_temperature": 0.5,
    "phenol_production": 6.0,
}
STEADY_OUTPUTS = ("ox1_chp", "ox2_chp", "concentrated_chp", "yield")

# Sensor noise: absolute sigma, or relative ("rel") for flows and pressure.
ABS_NOISE = {
    "ox1_temperature": 0.1,
    "ox2_temperature": 0.1,
    "ox1_offgas_o2": 0.05,
    "ox2_offgas_o2": 0.05,
    "oxidation_ph": 0.03,
    "evaporator_temperature": 0.15,
    "ox1_level": 0.3,
    "ox2_level": 0.3,
    "cooling_water_temperature": 0.2,
    "ox1_chp": 0.15,
    "ox2_chp": 0.2,
    "concentrated_chp": 0.3,
    "evaporator_steam_temperature": 0.2,
}
REL_NOISE = {
    "evaporator_pressure": 0.01,
    "cumene_feed": 0.005,
    "ox1_air_flow": 0.01,
    "ox2_air_flow": 0.01,
    "phenol_production": 0.01,
}
LAB_NOISE = {
    "feed_inhibitor": ("uniform", 0.10),
    "feed_chp": ("abs", 0.03),
    "ox2_dmba": ("rel", 0.03),
    "ox2_ap": ("rel", 0.05),
}
YIELD_SIGMA = 0.20  # the hourly yield estimate

STEP_SIZE = dict(zip(SETPOINTS, (1.5, 1.5, 0.8, 0.8, 0.35, 3.0, 0.35), strict=True))
BOUNDS = {  # the optimizer's setpoint bounds (PLANT.md); step tests never leave them
    "ox1_temperature": (100.0, 114.0),
    "ox2_temperature": (92.0, 108.0),
    "ox1_offgas_o2": (1.0, 5.0),
    "ox2_offgas_o2": (1.0, 5.0),
    "oxidation_ph": (6.8, 9.4),
    "evaporator_temperature": (65.0, 92.0),
    "evaporator_pressure": (2.0, 6.0),
}
AIR_CAP = 20.0  # kNm3/h on OX1 during an air-compressor limit
AIR_CAPACITY = {"ox1_offgas_o2": 34.0, "ox2_offgas_o2": 28.0}  # compressor capacities, kNm3/h
_COMPONENTS = (
    "load",
    "cooling",
    "inhibitor",
    "levels",
    "feed_chp",
    "kinetics",
    "fouling",
    "operator",
    "step_tests",
    "episodes",
    "faults",
    "noise",
    "lab",
)


@dataclass
class SimulatedHistory:
    """A history (what the historian shows) and its row-aligned truth (for scoring only)."""

    history: pd.DataFrame
    truth: pd.DataFrame
    episodes: list[Episode] = field(default_factory=list)
    # (tag, start hour, end hour, step) of every planned step test
    step_tests: list[tuple[str, float, float, float]] = field(default_factory=list)
    parameters_hash: str = ""


def _ar1(rng: np.random.Generator, n: int, dt_h: float, tau_h: float, sigma: float) -> np.ndarray:
    """Stationary AR(1) (an exactly discretised Ornstein-Uhlenbeck process) with std `sigma`."""
    a = np.exp(-dt_h / tau_h)
    shocks = rng.standard_normal(n) * sigma * np.sqrt(1.0 - a * a)
    return lfilter([1.0], [1.0, -a], shocks, zi=[a * sigma * rng.standard_normal()])[0]


def first_order_lag(values: np.ndarray, dt_h: float, tau_h: float) -> np.ndarray:
    """y[k] = a y[k-1] + (1-a) u[k], a = exp(-dt/tau): exact for a held input, starts settled."""
    a = np.exp(-dt_h / tau_h)
    return lfilter([1.0 - a], [1.0, -a], values, zi=[a * values[0]])[0]


@dataclass
class _Drivers:
    """Per-sample true disturbances, hidden states and fault signals (everything but the operator)."""

    hours: np.ndarray
    disturbances: dict[str, np.ndarray]
    hidden: dict[str, np.ndarray]
    ph_process: np.ndarray
    episode: np.ndarray  # object array of labels, "" when normal
    inhibitor_spike: np.ndarray  # ppm added to the feed inhibitor
    fouling_step: np.ndarray  # drop of xi_ev
    t1_walk: np.ndarray  # true T1 minus setpoint while the T1 sensor is stuck
    step_offset: dict[str, np.ndarray]
    step_mask: np.ndarray
    chp2_bias: np.ndarray


def _drivers(
    n: int, dt_h: float, rngs: dict[str, np.random.Generator], step_tests: bool, episodes: Sequence[Episode]
) -> tuple[_Drivers, list[tuple[str, float, float, float]]]:
    hours = np.arange(n) * dt_h
    days = hours / 24.0
    total_h = n * dt_h

    # Load plan: 3-12 day segments at 0.80-1.10 x 215 t/h, ramped at 4 t/h per h.
    rng = rngs["load"]
    times, levels, clock = [0.0], [NOMINAL_FEED * rng.uniform(0.85, 1.05)], 0.0
    while clock < total_h:
        clock += rng.uniform(3.0, 12.0) * 24.0
        new = NOMINAL_FEED * rng.uniform(0.80, 1.10)
        times += [clock, clock + abs(new - levels[-1]) / 4.0]
        levels += [levels[-1], new]
    feed = np.interp(hours, times, levels) + _ar1(rng, n, dt_h, 1.0, 0.6)

    rng = rngs["cooling"]
    season = 2.0 * np.pi * (days - 105.0) / 365.0  # coldest mid-January, warmest mid-July
    diurnal = 2.0 * np.pi * (hours % 24.0 - 9.0) / 24.0
    cooling = np.clip(
        25.0 + 7.0 * np.sin(season) + 1.5 * np.sin(diurnal) + _ar1(rng, n, dt_h, 12.0, 0.6), 16.0, 35.0
    )
    inhibitor = 15.0 * np.exp(_ar1(rngs["inhibitor"], n, dt_h, 24.0, 0.2))
    rng = rngs["levels"]
    level1 = np.clip(80.0 + _ar1(rng, n, dt_h, 12.0, 0.8), 70.0, 90.0)
    level2 = np.clip(80.0 + _ar1(rng, n, dt_h, 12.0, 0.8), 70.0, 90.0)
    feed_chp = np.clip(0.5 + _ar1(rngs["feed_chp"], n, dt_h, 24.0, 0.05), 0.25, 1.2)

    # Drifts: activity random walk (0.06 %/h), sparger decline over a year, evaporator saw-tooth.
    rng = rngs["kinetics"]
    walk = np.cumsum(rng.standard_normal(n) * 0.0006 * np.sqrt(dt_h))
    chi = np.clip(1.0 + rng.uniform(-0.02, 0.02) + walk, 0.92, 1.08)
    xi_sp = 1.0 - 0.2 * (days % 365.0) / 365.0
    phase = rngs["fouling"].uniform(0.0, 90.0)
    xi_ev = 1.0 - 0.4 * ((days + phase) % 90.0) / 90.0
    ph_process = _ar1(rngs["fouling"], n, dt_h, 1.0, 0.06)

    # Episodes act on the true inputs; sensor faults act on the readings later.
    label = np.full(n, "", dtype=object)
    t1_walk = np.zeros(n)
    chp2_bias = np.zeros(n)
    inhibitor_spike = np.zeros(n)
    fouling_step = np.zeros(n)
    rng = rngs["faults"]
    for episode in episodes:
        window = (hours >= episode.start_hours) & (hours < episode.end_hours)
        label[window] = episode.kind
        since = hours[window] - episode.start_hours
        if episode.kind == "t1_sensor_stuck":  # the blind controller lets T1 wander (0.4 °C/sqrt h)
            t1_walk[window] = np.cumsum(rng.standard_normal(window.sum()) * 0.4 * np.sqrt(dt_h))
        elif episode.kind == "chp2_analyser_bias":
            chp2_bias[window] = np.minimum(0.05 * since, 2.5)
        elif episode.kind == "feed_inhibitor_spike":
            inhibitor_spike[window] = 250.0
        elif episode.kind == "evaporator_fouling_step":
            fouling_step[window] = 0.3

    # Planned step tests: every 7-13 days, one setpoint, 24-48 h, away from episodes.
    tests: list[tuple[str, float, float, float]] = []
    step_offset = {name: np.zeros(n) for name in SETPOINTS}
    step_mask = np.zeros(n, dtype=bool)
    rng = rngs["step_tests"]
    clock = rng.uniform(2.0, 7.0) * 24.0
    while step_tests and clock < total_h:
        name = SETPOINTS[rng.integers(len(SETPOINTS))]
        step = STEP_SIZE[name] * rng.choice([-1.0, 1.0])
        start = np.floor(clock)
        duration = np.floor(rng.uniform(24.0, 48.0))
        clock += rng.uniform(7.0, 13.0) * 24.0
        # A test that would meet an episode waits until 12 h after it.
        for e in episodes:
            if start < e.end_hours + 12.0 and start + duration > e.start_hours - 12.0:
                start = np.ceil(e.end_hours + 12.0)
        end = start + duration
        if end > total_h or any(start < e.end_hours + 12.0 and end > e.start_hours - 12.0 for e in episodes):
            continue
        clock = max(clock, end + 24.0)
        window = (hours >= start) & (hours < end)
        step_offset[name][window] = step
        step_mask |= window
        tests.append((name, float(start), float(end), float(step)))

    drivers = _Drivers(
        hours=hours,
        disturbances={
            "cumene_feed": feed,
            "ox1_level": level1,
            "ox2_level": level2,
            "feed_inhibitor": inhibitor,
            "feed_chp": feed_chp,
            "cooling_water_temperature": cooling,
        },
        hidden={"chi": chi, "xi_sp": xi_sp, "xi_ev": xi_ev},
        ph_process=ph_process,
        episode=label,
        inhibitor_spike=inhibitor_spike,
        fouling_step=fouling_step,
        t1_walk=t1_walk,
        step_offset=step_offset,
        step_mask=step_mask,
        chp2_bias=chp2_bias,
    )
    return drivers, tests


def true_drivers(idx: np.ndarray, drivers: _Drivers, with_episodes: bool = True) -> dict[str, np.ndarray]:
    """The true disturbances and hidden states at sample indices `idx` (they do not depend on setpoints)."""
    values = {
        **{k: v[idx] for k, v in drivers.disturbances.items()},
        **{k: v[idx] for k, v in drivers.hidden.items()},
    }
    if with_episodes:
        values["feed_inhibitor"] = values["feed_inhibitor"] + drivers.inhibitor_spike[idx]
        values["xi_ev"] = np.maximum(values["xi_ev"] - drivers.fouling_step[idx], 0.2)
    return values


def _true_inputs(
    idx: np.ndarray,
    operator: dict[str, np.ndarray],
    drivers: _Drivers,
    params: PlantParameters,
    with_episodes: bool = True,
) -> dict[str, np.ndarray]:
    """The true plant inputs at sample indices `idx` given the operator's setpoints there."""
    setpoints = {
        name: np.clip(operator[name] + drivers.step_offset[name][idx], *BOUNDS[name]) for name in SETPOINTS
    }
    setpoints["oxidation_ph"] = setpoints["oxidation_ph"] + drivers.ph_process[idx]
    inputs = {**setpoints, **true_drivers(idx, drivers, with_episodes)}
    if not with_episodes:
        return inputs
    label = drivers.episode[idx]
    inputs["ox1_temperature"] = inputs["ox1_temperature"] + drivers.t1_walk[idx]
    inputs["ox1_offgas_o2"] = np.where(
        label == "ox1_o2_analyser_low", inputs["ox1_offgas_o2"] + 2.0, inputs["ox1_offgas_o2"]
    )
    inputs["oxidation_ph"] = np.where(label == "carbonate_pump_trip", 6.2, inputs["oxidation_ph"])
    inputs["evaporator_pressure"] = np.where(
        label == "vacuum_loss", inputs["evaporator_pressure"] + 5.0, inputs["evaporator_pressure"]
    )
    novel = label == "novel_operation"
    inputs["ox1_temperature"] = np.where(novel, 101.0, inputs["ox1_temperature"])
    inputs["ox2_temperature"] = np.where(novel, 104.0, inputs["ox2_temperature"])
    capacity = np.where(label == "air_compressor_limit", AIR_CAP, AIR_CAPACITY["ox1_offgas_o2"])
    inputs["ox1_offgas_o2"] = _cap_air(inputs, "ox1_offgas_o2", "ox1_air_flow", capacity, params)
    inputs["ox2_offgas_o2"] = _cap_air(
        inputs, "ox2_offgas_o2", "ox2_air_flow", AIR_CAPACITY["ox2_offgas_o2"], params
    )
    return inputs


def _cap_air(
    inputs: dict[str, np.ndarray],
    o2_tag: str,
    air_tag: str,
    capacity: np.ndarray | float,
    params: PlantParameters,
) -> np.ndarray:
    """The off-gas O2 the plant reaches where the compressor cannot deliver the air the setpoint needs.

    Air demand rises monotonically with the O2 setpoint, so each capped row is one scalar root (bisection).
    """
    o2 = inputs[o2_tag].copy()
    capacity = np.broadcast_to(capacity, o2.shape)
    capped = steady_state(inputs, params)[air_tag] > capacity
    if not capped.any():
        return o2
    rows = {k: v[capped] for k, v in inputs.items()}
    limit = capacity[capped]
    low, high = np.full(capped.sum(), 0.01), rows[o2_tag].copy()
    for _ in range(40):
        mid = 0.5 * (low + high)
        above = steady_state({**rows, o2_tag: mid}, params)[air_tag] > limit
        high, low = np.where(above, mid, high), np.where(above, low, mid)
    o2[capped] = low
    return o2


@dataclass(frozen=True)
class OperatorCalendar:
    """The historical operator's own draws, per shift: the T1 - T2 offset (redrawn monthly), the O2
    and Pev setpoints (weekly), the pH (per shift) and the evaporator jitter."""

    offset: np.ndarray
    o2_1: np.ndarray
    o2_2: np.ndarray
    pev: np.ndarray
    ph: np.ndarray
    jitter: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, shift_days: np.ndarray) -> OperatorCalendar:
        k_shifts = len(shift_days)
        offset = rng.normal(8.0, 1.2, size=int(shift_days[-1] // 30) + 1)[(shift_days // 30).astype(int)]
        weeks = (shift_days // 7).astype(int)
        o2_1 = np.clip(rng.normal(3.5, 0.35, size=weeks[-1] + 1), 2.6, 4.4)[weeks]
        o2_2 = np.clip(rng.normal(3.5, 0.35, size=weeks[-1] + 1), 2.6, 4.4)[weeks]
        pev = np.clip(rng.normal(2.8, 0.15, size=weeks[-1] + 1), 2.4, 3.2)[weeks]
        ph = np.clip(rng.normal(7.3, 0.12, size=k_shifts), 6.9, 7.7)
        jitter = rng.normal(0.0, 0.5, size=k_shifts)
        return cls(offset, o2_1, o2_2, pev, ph, jitter)

    def setpoints(self, k: int, t2: float, tev: float) -> dict[str, float]:
        """Shift k's setpoints once the operator has settled T2 and Tev."""
        return {
            "ox1_temperature": float(np.clip(t2 + self.offset[k], 101.0, 110.0)),
            "ox2_temperature": t2,
            "ox1_offgas_o2": float(self.o2_1[k]),
            "ox2_offgas_o2": float(self.o2_2[k]),
            "oxidation_ph": float(self.ph[k]),
            "evaporator_temperature": tev,
            "evaporator_pressure": float(self.pev[k]),
        }


def operator_correction(
    t2: float, tev: float, reading2: float | None, readingc: float | None, jitter: float
) -> tuple[float, float]:
    """One shift's feedback of the historical operator on the CHP2 and CHPc readings (None: that loop
    is held for a test); returns the new T2 and Tev, clipped to the window they use."""
    if reading2 is not None:
        # They cut T2 faster than they raise it: CHP2 high is a safety matter.
        t2 += float(np.clip(0.35 * (23.5 - reading2), -3.0, 1.5))
    if readingc is not None and not 79.5 <= readingc <= 82.5:
        tev += float(np.clip(1.5 * (81.0 - readingc), -3.0, 3.0))
    tev += jitter
    return float(np.clip(t2, 94.5, 100.5)), float(np.clip(tev, 74.0, 90.0))


def _operate(
    n: int, dt_h: float, drivers: _Drivers, rng: np.random.Generator, params: PlantParameters
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The historical operator, one decision per shift; returns per-shift setpoints and shift starts."""
    per_shift = max(1, round(SHIFT_HOURS / dt_h))
    starts = np.arange(0, n, per_shift)
    k_shifts = len(starts)
    # Draws made up front on their own calendars (monthly offset, weekly O2 and Pev).
    calendar = OperatorCalendar.draw(rng, starts * dt_h / 24.0)
    chp2_noise = rng.normal(0.0, 0.2, size=k_shifts)
    chpc_noise = rng.normal(0.0, 0.3, size=k_shifts)

    plan = {name: np.empty(k_shifts) for name in SETPOINTS}
    t2, tev = 98.0, 82.0
    lag2 = lagc = None
    decay2 = np.exp(-SHIFT_HOURS / LAG_HOURS["ox2_chp"])
    decayc = np.exp(-SHIFT_HOURS / LAG_HOURS["concentrated_chp"])
    previous = None
    for k, i in enumerate(starts):
        idx = np.array([i])
        # Operators hold the loop a planned test or engineering run is exciting.
        novel = drivers.episode[i] == "novel_operation"
        hold_t2 = novel or any(drivers.step_offset[name][i] != 0.0 for name in SETPOINTS[:2])
        hold_tev = any(drivers.step_offset[name][i] != 0.0 for name in SETPOINTS[5:])
        if previous is not None:
            # What the plant shows now: the lag advanced over the last shift (held inputs).
            lag2 = previous["ox2_chp"] + (lag2 - previous["ox2_chp"]) * decay2
            lagc = previous["concentrated_chp"] + (lagc - previous["concentrated_chp"]) * decayc
            t2, tev = operator_correction(
                t2,
                tev,
                None if hold_t2 else lag2 + drivers.chp2_bias[i] + chp2_noise[k],
                None if hold_tev else lagc + chpc_noise[k],
                calendar.jitter[k],
            )
        values = calendar.setpoints(k, t2, tev)
        for name in SETPOINTS:
            plan[name][k] = values[name]
        operator = {name: np.array([float(values[name])]) for name in SETPOINTS}
        current = steady_state(_true_inputs(idx, operator, drivers, params), params)
        previous = {key: float(current[key][0]) for key in ("ox2_chp", "concentrated_chp")}
        if lag2 is None:
            lag2, lagc = previous["ox2_chp"], previous["concentrated_chp"]
    return plan, starts


def generate_history(
    days: float,
    seed: int,
    sample_minutes: float = 1.0,
    step_tests: bool = True,
    episodes: bool | Sequence[Episode] = True,
    params: PlantParameters = DEFAULT_PARAMETERS,
) -> SimulatedHistory:
    """A history of `days` days sampled every `sample_minutes`, and its truth.

    `episodes`: True schedules about three of each type per year, False none, or give the
    `Episode` list to inject.
    """
    if days <= 0 or sample_minutes <= 0:
        raise ValueError("days and sample_minutes must be positive")
    dt_h = sample_minutes / 60.0
    n = max(2, int(round(days * 24.0 / dt_h)))
    children = np.random.SeedSequence(seed).spawn(len(_COMPONENTS))
    rngs = {name: np.random.default_rng(child) for name, child in zip(_COMPONENTS, children, strict=True)}
    if episodes is True:
        plan_episodes = schedule_episodes(n * dt_h / 24.0, rngs["episodes"])
    else:
        plan_episodes = list(episodes or [])
    drivers, tests = _drivers(n, dt_h, rngs, step_tests, plan_episodes)
    shift_plan, shift_starts = _operate(n, dt_h, drivers, rngs["operator"], params)

    shift_of_sample = np.minimum(np.arange(n) // max(1, round(SHIFT_HOURS / dt_h)), len(shift_starts) - 1)
    operator = {name: shift_plan[name][shift_of_sample] for name in SETPOINTS}
    every = np.arange(n)
    inputs = _true_inputs(every, operator, drivers, params)
    steady = steady_state(inputs, params)
    lagged = {name: first_order_lag(steady[name], dt_h, LAG_HOURS[name]) for name in OUTPUTS}
    plan_inputs = _true_inputs(
        shift_starts, {k: v for k, v in shift_plan.items()}, drivers, params, with_episodes=False
    )
    phenol_plan = np.round(steady_state(plan_inputs, params)["phenol_production"], 1)[shift_of_sample]

    history = _read_sensors(n, dt_h, inputs, operator, drivers, lagged, rngs)
    history["phenol_plan"] = phenol_plan
    timestamps = START + pd.to_timedelta(np.round(drivers.hours * 3600.0 * 1e6).astype(np.int64), unit="us")
    history_frame = pd.DataFrame({"timestamp": timestamps, **{tag: history[tag] for tag in HISTORY_TAGS}})
    history_frame["episode"] = pd.Series(drivers.episode, dtype=str).to_numpy()
    history_frame["step_test"] = drivers.step_mask

    truth = {"timestamp": timestamps}
    truth.update({f"{name}_true": inputs[name] for name in (*SETPOINTS, *DISTURBANCES)})
    truth.update({name: inputs[name] for name in ("chi", "xi_sp", "xi_ev")})
    truth.update({f"{name}_true": steady[name] for name in OUTPUTS})
    truth.update({f"{name}_lagged": lagged[name] for name in OUTPUTS})
    truth["steady"] = np.logical_and.reduce(
        [np.abs(lagged[name] - steady[name]) <= 0.01 * np.abs(steady[name]) + 0.05 for name in STEADY_OUTPUTS]
    )
    return SimulatedHistory(
        history=history_frame,
        truth=pd.DataFrame(truth),
        episodes=plan_episodes,
        step_tests=tests,
        parameters_hash=params.version_hash(),
    )


def _read_sensors(
    n: int,
    dt_h: float,
    inputs: dict[str, np.ndarray],
    operator: dict[str, np.ndarray],
    drivers: _Drivers,
    lagged: dict[str, np.ndarray],
    rngs: dict[str, np.random.Generator],
) -> dict[str, np.ndarray]:
    """What the historian records: noisy online sensors, held lab samples, faulty analysers."""
    noise, lab_rng = rngs["noise"], rngs["lab"]
    true_values = {**inputs, **lagged}
    readings: dict[str, np.ndarray] = {}
    for tag in (*SETPOINTS, *DISTURBANCES, *OUTPUTS):
        if tag in LAB_NOISE or tag == "yield":
            continue
        value = true_values[tag]
        if tag in REL_NOISE:
            readings[tag] = value * (1.0 + REL_NOISE[tag] * noise.standard_normal(n))
        else:
            readings[tag] = value + ABS_NOISE[tag] * noise.standard_normal(n)
    label = drivers.episode
    stuck = label == "t1_sensor_stuck"
    setpoint_t1 = operator["ox1_temperature"] + drivers.step_offset["ox1_temperature"]
    # A stuck PV freezes at the setpoint it showed when it stuck, whatever the operator does next.
    first = stuck & ~np.concatenate([[False], stuck[:-1]])
    frozen_from = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    readings["ox1_temperature"] = np.where(stuck, setpoint_t1[frozen_from], readings["ox1_temperature"])
    readings["ox1_offgas_o2"] = np.where(
        label == "ox1_o2_analyser_low", readings["ox1_offgas_o2"] - 2.0, readings["ox1_offgas_o2"]
    )
    readings["ox2_chp"] = readings["ox2_chp"] + drivers.chp2_bias

    # Lab values every 8 h, held until the next sample.
    hours = drivers.hours
    sample_number = np.floor((hours - LAB_OFFSET_HOURS) / LAB_HOURS).astype(np.int64) + 1
    sample_hours = np.maximum((np.arange(sample_number[-1] + 1) - 1) * LAB_HOURS + LAB_OFFSET_HOURS, 0.0)
    sample_rows = np.minimum(np.round(sample_hours / dt_h).astype(np.int64), n - 1)
    for tag, (kind, size) in LAB_NOISE.items():
        sampled = true_values[tag][sample_rows]
        if kind == "uniform":
            sampled = sampled * (1.0 + lab_rng.uniform(-size, size, len(sampled)))
        elif kind == "rel":
            sampled = sampled * (1.0 + size * lab_rng.standard_normal(len(sampled)))
        else:
            sampled = sampled + size * lab_rng.standard_normal(len(sampled))
        readings[tag] = sampled[sample_number]
    # Yield: an hourly estimate from the lagged balance.
    hour_number = np.floor(hours).astype(np.int64)
    hour_rows = np.minimum(np.round(np.arange(hour_number[-1] + 1) / dt_h).astype(np.int64), n - 1)
    hourly = lagged["yield"][hour_rows]
    readings["yield"] = (hourly + YIELD_SIGMA * lab_rng.standard_normal(len(hourly)))[hour_number]
    return readings


def write_history(days: float, seed: int, out: Path, sample_minutes: float = 1.0) -> tuple[Path, Path]:
    """Write the history to `out` (.csv or .parquet) and its truth to `<stem>.truth.<suffix>`."""
    from dragon.errors import DataError

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"{out}: unknown history format '{out.suffix}'; name the file *.csv or *.parquet")
    truth_path = out.with_name(f"{out.stem}.truth{out.suffix}")
    simulated = generate_history(days, seed, sample_minutes=sample_minutes)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for frame, path in ((simulated.history, out), (simulated.truth, truth_path)):
            if suffix == ".csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False, compression="zstd")
    except OSError as error:
        raise DataError(
            f"{out}: cannot write the history ({error.strerror or error}); choose a writable path"
        ) from error
    return out, truth_path
