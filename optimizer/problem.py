"""The setpoint problem at one plant state, in the form SLSQP wants.

Decision variables are the setpoints; disturbances and other inputs stay at their current
values. The box is bounds ∩ [current - max_move, current + max_move]; SLSQP works on the box
rescaled to [0, 1] per setpoint (setpoints whose box is a single point are fixed).

Objective: the lower confidence bound of the gain, sense·Δobjective - risk_aversion·sd(Δobjective),
with sd the uncertainty of the *change* the move causes (optimizer/chain.py), divided by the objective
model's residual scale. A direction the data barely supports pays for its risk.

Constraints are margins (>= 0 satisfied), each divided by its output's scale:

* an absolute limit (`max = 85`) bounds the level: anchor + change ± q·sd, with the anchor's own
  uncertainty and the change's in quadrature (the chain's level variance);
* a limit on `"current"` (± tolerance) bounds the change alone: the current value + change ± q·sd(change),
  so the state it refers to always meets it and a move is only allowed what its slope uncertainty
  leaves of the tolerance;
* the production guard (`[production]`) is a limit on "current" of the production output, with a
  tolerance that is a share of the current production.

Values, margins and gradients come from one chain evaluation, cached per point, since SLSQP asks for
objective and constraints at the same point separately.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dragon.spec import PlantSpec
from optimizer.chain import PRODUCTION, ChainAnchor, ChainEvaluation, CompiledChain

FEASIBILITY_TOLERANCE = 1e-6  # model units; SLSQP lands on active constraints within ~1e-10


@dataclass(frozen=True)
class ConstraintTerm:
    """One side of one limit, resolved to a number at this state (for a limit on "current": the current
    value ± the tolerance)."""

    output: str  # a model, or the production output
    side: Literal["max", "min"]
    limit: float
    confidence: float
    relative_to_current: bool
    guard: Literal["constraint", "production"] = "constraint"


@dataclass(frozen=True)
class Box:
    low: np.ndarray
    high: np.ndarray
    problems: list[str]  # setpoints whose bounds and move limit do not intersect

    @property
    def free(self) -> np.ndarray:
        return self.high > self.low


def setpoint_box(spec: PlantSpec, u0: np.ndarray) -> Box:
    """bounds ∩ [u0 - max_move, u0 + max_move]; a setpoint outside its bounds by less than its move
    limit gets a box that brings it back inside; by more, the box is empty and named."""
    low, high, problems = [], [], []
    for tag, current in zip(spec.setpoints, u0, strict=True):
        info = spec.tags[tag]
        b_low, b_high = info.bounds
        lo, hi = max(b_low, current - info.max_move), min(b_high, current + info.max_move)
        if lo > hi:
            problems.append(
                f"setpoint {tag} = {current:.6g} is outside its bounds [{b_low}, {b_high}] by more "
                f"than its max_move {info.max_move}: bring it back inside by hand first"
            )
            lo = hi = current
        low.append(lo)
        high.append(hi)
    return Box(np.array(low), np.array(high), problems)


def within_limits(spec: PlantSpec, u: np.ndarray, u0: np.ndarray) -> np.ndarray:
    """`u` clipped to the setpoint box of `u0` (a setpoint outside its bounds by more than its move
    stays where it is) and nudged by a few ulps so that the move limits hold exactly in floats."""
    box = setpoint_box(spec, u0)
    u = np.clip(u, box.low, box.high)
    for i, tag in enumerate(spec.setpoints):
        while abs(u[i] - u0[i]) > spec.tags[tag].max_move:  # u0 ± max_move rounded away from u0
            u[i] = np.nextafter(u[i], u0[i])
    return u


class SetpointProblem:
    """Objective, constraint margins and their gradients at one plant state."""

    def __init__(
        self, chain: CompiledChain, spec: PlantSpec, state: Mapping[str, float], anchor: ChainAnchor
    ) -> None:
        self.chain = chain
        self.spec = spec
        self.state = state
        self.anchor = anchor
        self.u0 = np.array([state[tag] for tag in spec.setpoints])
        self.box = setpoint_box(spec, self.u0)
        self.objective_model = spec.objective.model
        self.sense = 1.0 if spec.objective.sense == "maximize" else -1.0
        self.risk_aversion = spec.optimizer.risk_aversion
        self.current = self.chain.evaluate(self.u0[None, :], state, anchor)
        self.constraints = self._resolve_constraints()
        self._objective_index = chain.outputs.index(self.objective_model)
        self._objective_scale = self.output_scale(self._objective_index)
        columns = np.array([chain.outputs.index(c.output) for c in self.constraints], dtype=np.intp)
        self._constraint_scales = np.array([self.output_scale(k) for k in columns])
        # Every constraint in one set of array operations: output column, bound side (+1 upper,
        # -1 lower), quantile at its confidence, limit, and whether it bounds the change or the level.
        self._bound_sign = np.array([1.0 if c.side == "max" else -1.0 for c in self.constraints])
        steps = self._bound_sign * [chain.quantile(c.output, c.confidence) for c in self.constraints]
        relative = np.array([c.relative_to_current for c in self.constraints], dtype=bool)
        self._level = (columns[~relative], steps[~relative], np.flatnonzero(~relative))
        self._change = (columns[relative], steps[relative], np.flatnonzero(relative))
        self._limits = np.array([c.limit for c in self.constraints])
        self._free = self.box.free
        self._free_index = np.flatnonzero(self._free)
        self._free_low = self.box.low[self._free]
        self._width = (self.box.high - self.box.low)[self._free]
        self._point_key: bytes | None = None
        self._point: tuple[ChainEvaluation, np.ndarray, np.ndarray] | None = None

    def output_scale(self, k: int) -> float:
        """An output's yardstick for scaling: its residual scale (a production expression has none: a
        thousandth of its current value)."""
        scale = self.chain.scales[k] or 1e-3 * abs(float(self.anchor.values[k]))
        return max(float(scale), 1e-9)

    def _resolve_constraints(self) -> list[ConstraintTerm]:
        terms = []
        for constraint in self.spec.constraints:
            current = float(self.anchor.values[self.chain.outputs.index(constraint.model)])
            for side, limit in (("max", constraint.max), ("min", constraint.min)):
                if limit is None:
                    continue
                relative = limit == "current"
                if relative:
                    limit = (
                        current + constraint.tolerance if side == "max" else current - constraint.tolerance
                    )
                terms.append(
                    ConstraintTerm(constraint.model, side, float(limit), constraint.confidence, relative)
                )
        production = self.spec.production
        if production is not None:
            output = production.model or PRODUCTION
            current = float(self.anchor.values[self.chain.outputs.index(output)])
            terms.append(
                ConstraintTerm(
                    output,
                    "min",
                    current - production.tolerance * abs(current),
                    production.confidence,
                    True,
                    "production",
                )
            )
        return terms

    def evaluate(self, U: np.ndarray) -> ChainEvaluation:
        """The chain at setpoint rows U (n, S) at this state."""
        return self.chain.evaluate(np.asarray(U, dtype=float), self.state, self.anchor)

    def objective(self, ev: ChainEvaluation) -> tuple[np.ndarray, np.ndarray]:
        """Objective model values (n,) and gradients (n, S) at the evaluated rows."""
        k = self._objective_index
        return ev.values[:, k], ev.gradient[:, k, :]

    def gain(self, ev: ChainEvaluation) -> np.ndarray:
        """Predicted improvement of the objective over the current state (positive = better)."""
        return self.sense * ev.change[:, self._objective_index]

    def gain_sd(self, ev: ChainEvaluation) -> np.ndarray:
        """The sd of the predicted gain: the uncertainty of the objective's change."""
        return np.sqrt(ev.change_variance[:, self._objective_index])

    def gain_lower_bound(self, ev: ChainEvaluation) -> tuple[np.ndarray, np.ndarray]:
        """gain - risk_aversion·sd(gain) (n,) and its gradient (n, S): what the optimizer maximises."""
        k = self._objective_index
        bound, gradient = ev.change_bounds(np.array([k]), np.array([-self.sense * self.risk_aversion]))
        return self.sense * bound[:, 0], self.sense * gradient[:, 0]

    def margins(self, ev: ChainEvaluation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Margins (n, C) (>= 0 satisfied), their gradients (n, C, S) and the bounds (n, C).

        Bound = value ± q·level sd for an absolute limit, current value + change ± q·change sd for a limit
        on "current" (module docstring); margin = limit - bound for `max`, bound - limit for `min`, i.e.
        -sign·(bound - limit) with sign +1 for an upper bound."""
        n, C = len(ev.values), len(self.constraints)
        bounds = np.empty((n, C))
        d_bounds = np.empty((n, C, ev.gradient.shape[2]))
        columns, steps, at = self._level
        bounds[:, at], d_bounds[:, at] = ev.level_bounds(columns, steps)
        columns, steps, at = self._change
        change, d_change = ev.change_bounds(columns, steps)
        bounds[:, at] = self.anchor.values[columns] + change
        d_bounds[:, at] = d_change
        return -self._bound_sign * (bounds - self._limits), -self._bound_sign[:, None] * d_bounds, bounds

    def feasible(self, margins: np.ndarray) -> np.ndarray:
        return (
            np.all(margins >= -FEASIBILITY_TOLERANCE, axis=1) if margins.size else np.ones(len(margins), bool)
        )

    def violation(self, margins: np.ndarray) -> np.ndarray:
        """Total scaled constraint violation of each row (0 when feasible)."""
        if not margins.size:
            return np.zeros(len(margins))
        return np.sum(np.maximum(-margins / self._constraint_scales, 0.0), axis=1)

    # --- the scaled problem for scipy: z in [0, 1] over the free setpoints -----------------
    @property
    def n_free(self) -> int:
        return int(np.count_nonzero(self._free))

    def to_setpoints(self, z: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(z)
        U = np.empty((len(z), len(self.box.low)))
        U[:] = self.box.low
        U[:, self._free_index] = self._free_low + np.minimum(np.maximum(z, 0.0), 1.0) * self._width
        return U

    def to_scaled(self, U: np.ndarray) -> np.ndarray:
        U = np.atleast_2d(U)
        return np.clip((U[:, self._free] - self._free_low) / self._width, 0.0, 1.0)

    def _at(self, z: np.ndarray) -> tuple[ChainEvaluation, np.ndarray, np.ndarray]:
        """Evaluation, margins and margin gradients at z, computed once per point: SLSQP asks for the
        objective, the constraints and their Jacobian at the same point separately."""
        key = np.asarray(z, dtype=float).tobytes()
        if key != self._point_key:
            ev = self.evaluate(self.to_setpoints(z))
            margins, gradients, _ = self.margins(ev)
            self._point = (ev, margins[0], gradients[0])
            self._point_key = key
        return self._point

    def scaled_objective(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """Minimised by SLSQP: -(gain lower bound) / scale and its gradient wrt z."""
        ev, _, _ = self._at(z)
        bound, gradient = self.gain_lower_bound(ev)
        f = -bound[0] / self._objective_scale
        g = -gradient[0].take(self._free_index) * self._width / self._objective_scale
        return float(f), g

    def scaled_margins(self, z: np.ndarray) -> np.ndarray:
        return self._at(z)[1] / self._constraint_scales

    def scaled_margin_jacobian(self, z: np.ndarray) -> np.ndarray:
        gradients = self._at(z)[2]
        return gradients.take(self._free_index, axis=1) * self._width / self._constraint_scales[:, None]

    def scaled_violation(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """½ Σ (scaled violation)², for moving an infeasible state toward feasibility."""
        scaled = self.scaled_margins(z)
        short = np.minimum(scaled, 0.0)
        return float(0.5 * short @ short), short @ self.scaled_margin_jacobian(z)
