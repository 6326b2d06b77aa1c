"""The exact oracle: the best setpoints of the *true* plant, to score recommendations (PLANT.md).

For a state (current setpoints u0 and disturbances d) and hidden states h it maximises the
true steady-state yield subject to concentrated_chp <= 85, ox2_chp <= 30, phenol production
>= (1 - tolerance) x production at u0, the air-flow capacities, inside the setpoint bounds
(and, when move-limited, inside u0 +- max_move). SLSQP in variables scaled to [0, 1] over
the box, started from u0, the box centre and seeded random points; the best feasible
answer is clipped into the box and re-checked, so it can never violate a bound or a move
limit. Gradients are central differences computed in one vectorised truth call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from dragon.simulator.truth import (
    DEFAULT_PARAMETERS,
    DISTURBANCES,
    HIDDEN,
    NOMINAL_HIDDEN,
    SETPOINTS,
    PlantParameters,
    steady_state,
)

CHP_LIMIT = 85.0
OX2_CHP_LIMIT = 30.0
AIR_LIMITS = {"ox1_air_flow": (14.0, 34.0), "ox2_air_flow": (10.0, 28.0)}
_FD_STEP = 1e-6  # in scaled variables (box width = 1)
_FEASIBILITY_SLACK = 1e-6  # constraint violation accepted from SLSQP's final iterate


@dataclass(frozen=True)
class OracleResult:
    """The true optimum for one state."""

    setpoints: dict[str, float]
    yield_: float
    concentrated_chp: float
    phenol_production: float
    gain: float  # yield at the optimum minus yield at u0
    current_yield: float
    current_phenol_production: float
    outputs: dict[str, float]  # every true output at the optimum
    active: list[str]  # constraints within 1e-4 of their limit
    spread: float  # max - min optimal yield over the feasible starts
    box: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Problem:
    lower: np.ndarray
    upper: np.ndarray
    fixed: dict[str, float]
    phenol_min: float


class Oracle:
    """Solves the true constrained optimum; see the module docstring."""

    def __init__(
        self,
        params: PlantParameters = DEFAULT_PARAMETERS,
        *,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        max_move: Mapping[str, float] | None = None,
        starts: int = 8,
        seed: int = 0,
    ) -> None:
        if bounds is None or max_move is None:
            from dragon.spec import load_plant

            spec = load_plant()
            bounds = bounds or {name: spec.tags[name].bounds for name in SETPOINTS}
            max_move = max_move or {name: spec.tags[name].max_move for name in SETPOINTS}
        self.params = params
        self.bounds = {name: (float(bounds[name][0]), float(bounds[name][1])) for name in SETPOINTS}
        self.max_move = {name: float(max_move[name]) for name in SETPOINTS}
        self.starts = starts
        self.seed = seed

    def evaluate(
        self,
        setpoints: Mapping[str, float],
        state: Mapping[str, float],
        hidden: Mapping[str, float] | None = None,
    ) -> dict[str, float]:
        """The true steady-state outputs for these setpoints in this state."""
        inputs = {**_fixed_inputs(state, hidden), **{k: float(setpoints[k]) for k in SETPOINTS}}
        return {key: float(value) for key, value in steady_state(inputs, self.params).items()}

    def best_setpoints(
        self,
        state: Mapping[str, float],
        hidden: Mapping[str, float] | None = None,
        move_limited: bool = True,
        tolerance: float = 0.0,
    ) -> OracleResult:
        """argmax of the true yield under the plant's constraints; `state` holds u0 and d."""
        _require(state, SETPOINTS)
        u0 = np.array([float(state[name]) for name in SETPOINTS])
        lower = np.array([self.bounds[name][0] for name in SETPOINTS])
        upper = np.array([self.bounds[name][1] for name in SETPOINTS])
        if move_limited:
            moves = np.array([self.max_move[name] for name in SETPOINTS])
            lower, upper = np.maximum(lower, u0 - moves), np.minimum(upper, u0 + moves)
        upper = np.maximum(upper, lower)  # a u0 outside the bounds still leaves a (degenerate) box
        fixed = _fixed_inputs(state, hidden)
        current = self.evaluate(dict(zip(SETPOINTS, u0, strict=True)), state, hidden)
        problem = _Problem(lower, upper, fixed, (1.0 - tolerance) * current["phenol_production"])

        rng = np.random.default_rng(self.seed)
        width = np.where(upper > lower, upper - lower, 1.0)
        starts = [
            np.clip((u0 - lower) / width, 0.0, 1.0),
            np.full(len(SETPOINTS), 0.5),
            *rng.uniform(0.0, 1.0, size=(self.starts, len(SETPOINTS))),
        ]
        solutions = []
        for z0 in starts:
            z = self._solve(problem, z0, width)
            u = np.clip(lower + z * width, lower, upper)
            outputs = steady_state({**fixed, **dict(zip(SETPOINTS, u, strict=True))}, self.params)
            if _violation(outputs, problem) <= _FEASIBILITY_SLACK:
                solutions.append((float(outputs["yield"]), u))
        if not solutions:  # nothing feasible found: holding u0 is the honest answer
            solutions.append((current["yield"], np.clip(u0, lower, upper)))
        best_yield, best_u = max(solutions, key=lambda item: item[0])
        best = dict(zip(SETPOINTS, (float(v) for v in best_u), strict=True))
        outputs = self.evaluate(best, state, hidden)
        return OracleResult(
            setpoints=best,
            yield_=outputs["yield"],
            concentrated_chp=outputs["concentrated_chp"],
            phenol_production=outputs["phenol_production"],
            gain=outputs["yield"] - current["yield"],
            current_yield=current["yield"],
            current_phenol_production=current["phenol_production"],
            outputs=outputs,
            active=_active(outputs, problem),
            spread=max(y for y, _ in solutions) - min(y for y, _ in solutions),
            box={name: (float(lo), float(hi)) for name, lo, hi in zip(SETPOINTS, lower, upper, strict=True)},
        )

    def _solve(self, problem: _Problem, z0: np.ndarray, width: np.ndarray) -> np.ndarray:
        cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        n = len(SETPOINTS)

        def values_and_jacobian(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            key = z.tobytes()
            if key not in cache:
                # Rows: z, then z +- h e_i (central differences) -> one vectorised truth call.
                steps = np.vstack([np.zeros(n), np.eye(n) * _FD_STEP, -np.eye(n) * _FD_STEP])
                u = problem.lower + (z + steps) * width
                outputs = steady_state(
                    {**problem.fixed, **dict(zip(SETPOINTS, u.T, strict=True))}, self.params
                )
                rows = np.column_stack([-outputs["yield"], *_constraints(outputs, problem)])
                jacobian = (rows[1 : n + 1] - rows[n + 1 :]) / (2.0 * _FD_STEP)
                cache.clear()
                cache[key] = (rows[0], jacobian.T)
            values, jacobian = cache[key]
            return values.copy(), jacobian.copy()  # SLSQP may write into what it is given

        result = minimize(
            lambda z: values_and_jacobian(z)[0][0],
            z0,
            jac=lambda z: values_and_jacobian(z)[1][0],
            method="SLSQP",
            bounds=[(0.0, 1.0)] * n,
            constraints=[
                {
                    "type": "ineq",
                    "fun": lambda z: values_and_jacobian(z)[0][1:],
                    "jac": lambda z: values_and_jacobian(z)[1][1:],
                }
            ],
            options={"ftol": 1e-12, "maxiter": 300},
        )
        return np.clip(result.x, 0.0, 1.0)


def _fixed_inputs(state: Mapping[str, float], hidden: Mapping[str, float] | None) -> dict[str, float]:
    hidden = {**NOMINAL_HIDDEN, **(hidden or {})}
    _require(state, DISTURBANCES)
    return {
        **{name: float(state[name]) for name in DISTURBANCES},
        **{name: float(hidden[name]) for name in HIDDEN},
    }


def _require(state: Mapping[str, float], tags: tuple[str, ...]) -> None:
    missing = [name for name in tags if name not in state]
    if missing:
        from dragon.errors import DataError

        raise DataError(f"oracle state lacks the tags {missing}: give every setpoint and disturbance")


def _constraints(outputs: Mapping[str, np.ndarray], problem: _Problem) -> list[np.ndarray]:
    """Every constraint as g >= 0, in comparable units (wt %, t/h x 10, kNm3/h)."""
    a1, a2 = outputs["ox1_air_flow"], outputs["ox2_air_flow"]
    (a1_min, a1_max), (a2_min, a2_max) = AIR_LIMITS["ox1_air_flow"], AIR_LIMITS["ox2_air_flow"]
    return [
        CHP_LIMIT - outputs["concentrated_chp"],
        OX2_CHP_LIMIT - outputs["ox2_chp"],
        10.0 * (outputs["phenol_production"] - problem.phenol_min),
        a1 - a1_min,
        a1_max - a1,
        a2 - a2_min,
        a2_max - a2,
    ]


_CONSTRAINT_NAMES = (
    "concentrated_chp_max",
    "ox2_chp_max",
    "production_min",
    "ox1_air_min",
    "ox1_air_max",
    "ox2_air_min",
    "ox2_air_max",
)


def _violation(outputs: Mapping[str, np.ndarray], problem: _Problem) -> float:
    return float(max(0.0, *(-float(g) for g in _constraints(outputs, problem))))


def _active(outputs: Mapping[str, float], problem: _Problem) -> list[str]:
    values = _constraints(outputs, problem)
    return [name for name, g in zip(_CONSTRAINT_NAMES, values, strict=True) if abs(float(g)) < 1e-4]
