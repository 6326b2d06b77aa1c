"""One setpoint recommendation per plant state: gate, anchors, consistency, multi-start SLSQP, explanation.

`Recommender(bundle).recommend(state)` never raises for a validated state: a state a detector
flags, a setpoint too far outside its bounds or any numerical failure becomes a `blocked` or
`hold` answer with its reason. Steps:

1. The gate: every detector scores the state; one flag = `blocked` (no setpoints), unless the
   setpoints explain it (in closed loop, the advisor's own moves walking the plant out of the territory
   its detectors know): a setpoint beyond an envelope, or setpoints moved within the recent window or
   far from their training means whose return would clear the flag, get a recovery move back, within
   the move limits, when the step brings the state closer to known territory (a fault or a
   disturbance stays blocked: `Recommender._recover`).
   Before it, a live sensor repeating one reading over the recent window blocks ("stuck sensor",
   optimizer/sensors.py).
2. Anchors: every model whose target the state carries is anchored on a de-noised estimate of it
   (the bias measured - model over the recent window, lag-compensated so that a move that has not
   settled is followed rather than taken for model error, or the single reading with the tag's
   measurement noise; optimizer/anchor.py), and the chain's uncertainty is pinned to that state
   (optimizer/chain.py).
3. Sensor consistency: a measured target further than `consistency_sigma` of its model's state
   residual sd from the model's prediction at the current state blocks ("model and measurement
   disagree on TAG"): a biased analyser or a stuck sensor the detectors cannot see in one state.
4. Starts: the current setpoints (clipped into the box) plus `spec.optimizer.starts - 1`
   Latin-hypercube points of the box (fixed seed), screened in one batched chain evaluation; the
   best of them (feasible first, then by gain) is refined too. If the current point violates a
   constraint, a least-violation solve from it comes first and is added as a start.
5. SLSQP from each start, on analytic gradients, maximising the gain's lower bound
   (gain - risk_aversion·sd(gain)). Every end point, and points part-way back along
   the line to the current setpoints (in case the full move leaves known territory), is clipped
   into the box and re-checked in one batched evaluation: feasibility, then the detectors (with a
   margin inside their envelopes, optimizer/territory.py).
6. The best feasible unflagged candidate wins. If its gain's lower bound is below
   `spec.optimizer.min_benefit` the answer is `hold` (current setpoints kept), unless the current
   setpoints are outside their bounds or violate a constraint: then the move that fixes (or reduces)
   that is recommended.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.stats import qmc

from dragon.bundle import Bundle
from dragon.data import RecentWindow
from dragon.tables import figure
from optimizer.anchor import estimate_anchors
from optimizer.chain import ChainAnchor, CompiledChain, output_units
from optimizer.explain import attribute_gain
from optimizer.gate import Gate, GateResult
from optimizer.problem import FEASIBILITY_TOLERANCE, SetpointProblem, within_limits
from optimizer.recommendation import (
    AnchorEstimate,
    ConsistencyCheck,
    ConstraintCheck,
    DetectorVerdict,
    Explanation,
    FarTag,
    ObjectiveResult,
    PredictedValue,
    Recommendation,
    Status,
    StuckSensor,
)
from optimizer.sensors import stuck_sensors
from optimizer.territory import distance_outside, leaves_territory, setpoint_targets

SEED = 0
SLSQP_OPTIONS = {"maxiter": 60, "ftol": 1e-6}  # objective in units of the model's residual scale
REFINED_STARTS = 1  # screened space-filling starts refined by SLSQP, besides the current point
BACKTRACK = (0.75, 0.5, 0.25)  # fractions of each move tried as well, in case the full move is flagged
INTERVAL_WIDTH = 0.95  # predicted.lower/upper: two-sided 95 % prediction interval
RECOVERY_MOVED_SHARE = 0.1  # a setpoint moved within the window by more than this share of its max_move
RECOVERY_NOISE_SDS = 4.0  # ... and by more than this many sd of its reading's measurement noise
RECOVERY_EARLIER_ROWS = 5  # the window's first rows, averaged: where the setpoints were
RECOVERY_FRACTIONS = (1.0, 0.5)  # of the move-limited step back, tried side by side
RECOVERY_FAR_SDS = 1.5  # a setpoint this many training sd from its training mean may explain a flag
ACTIVE_TOLERANCE = 0.01  # a constraint is active when its margin is below this share of its model's scale


@dataclass(frozen=True)
class _Pinned:
    """What the optimisation knows about one state besides the setpoints: gate, anchors, consistency."""

    gate: GateResult
    anchors: dict[str, AnchorEstimate]
    consistency: list[ConsistencyCheck]


class Recommender:
    """Compiles a bundle once (and checks the compiled models against pygam and sklearn)."""

    def __init__(self, bundle: Bundle, *, model_version: str | None = None) -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        self.chain = CompiledChain.from_bundle(bundle)
        self.gate = Gate(bundle.detectors, bundle.baselines)
        self.model_version = model_version if model_version is not None else bundle.path.name
        # each setpoint's training mean and sd (sd inf without a baseline: never called far from it)
        baselines = [bundle.baselines.get(tag) for tag in self.spec.setpoints]
        self._setpoint_means = np.array([b.mean if b is not None else 0.0 for b in baselines], dtype=float)
        self._setpoint_sds = np.array(
            [b.std if b is not None and b.std > 0 else np.inf for b in baselines], dtype=float
        )
        n_setpoints = len(self.spec.setpoints)
        extra = max(self.spec.optimizer.starts - 1, 0)
        self._unit_starts = (
            qmc.LatinHypercube(d=n_setpoints, seed=SEED).random(extra)
            if extra
            else np.empty((0, n_setpoints))
        )

    def recommend(self, state: Mapping[str, float], window: RecentWindow | None = None) -> Recommendation:
        """One recommendation for a validated `state`; `window` holds the validated states just before it
        (dragon/data.py: parse_window), from which the anchors are estimated (optimizer/anchor.py)."""
        current = {tag: float(state[tag]) for tag in self.spec.setpoints if tag in state}
        try:
            missing = [tag for tag in self.spec.required_state_tags if tag not in state]
            if missing:
                return self._blocked(current, f"the state lacks tag(s) {', '.join(missing)}", {})
            stuck = stuck_sensors(self.spec, self.bundle.calibration, state, window)
            if stuck:
                return self._stuck(current, stuck)
            gate = self.gate.check(state)
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                if gate.passed:
                    return self._optimise(state, window, gate)
                recovery = self._recover(state, window, gate)
            if recovery is not None:
                return recovery
            return self._blocked(current, gate.reason(), gate.verdicts, far_tags=gate.far_tags)
        except Exception as error:  # numerical trouble must not reach the plant as a traceback
            return self._blocked(
                current,
                f"the optimizer failed on this state ({type(error).__name__}: {error}); "
                "no move is recommended",
                {},
            )

    def _recover(
        self, state: Mapping[str, float], window: RecentWindow | None, gate: GateResult
    ) -> Recommendation | None:
        """A move back toward known territory for a state the detectors flag because of its setpoints,
        each setpoint stepping within its move limit toward (first that applies):

        1. its envelope's inner band, for a setpoint beyond an envelope that reads it (optimizer/
           territory.py, setpoint_targets): it is itself what the detectors flag;
        2. its value at the window's start, for setpoints moved inside the recent window (in closed loop,
           the advisor's own moves), when undoing them would clear the flag;
        3. its training mean, for setpoints further than `RECOVERY_FAR_SDS` training sd from it, when
           bringing them there would clear the flag (moves older than the window that walked the state
           to where the forests' scores, not an envelope, flag it).

        Returned only when the step brings the state closer to the detectors' territory
        (distance_outside) and, unless a setpoint is outside, the sensors agree with the models;
        otherwise None and the answer stays `blocked` (a fault or a disturbance: no setpoint explains
        it)."""
        spec = self.spec
        u0 = np.array([state[tag] for tag in spec.setpoints])
        max_move = np.array([spec.tags[tag].max_move for tag in spec.setpoints])
        # a setpoint's reading carries noise: a move is larger than a share of its limit and than that noise
        noise = np.array([self.bundle.calibration.measurement_noise.get(tag, 0.0) for tag in spec.setpoints])
        # a setpoint beyond an envelope (not only in its margin band: a state flagged for a fault with its
        # setpoints inside stays blocked) heads for the envelope's inner band
        outside = np.abs(setpoint_targets(self.gate, list(spec.setpoints), u0, margin=0.0) - u0) > (
            RECOVERY_NOISE_SDS * noise
        )
        anchor, pinned = self._pin(state, window, gate)
        # Outside the territory the models extrapolate and may well disagree with the measurements; the
        # way back does not rest on them. Moves undone inside it trust the sensors only when they agree.
        if not outside.any() and self._disagreement(pinned):
            return None
        problem = SetpointProblem(self.chain, spec, state, anchor)
        if outside.any():
            toward = np.where(outside, setpoint_targets(self.gate, list(spec.setpoints), u0), u0)
            why = ["outside the detectors' territory" if out else "" for out in outside]
        else:
            first = window.rows[:RECOVERY_EARLIER_ROWS] if window and window.rows else [state]
            earlier = np.array([np.mean([row[tag] for row in first]) for tag in spec.setpoints])
            moved = np.abs(u0 - earlier) > np.maximum(
                RECOVERY_MOVED_SHARE * max_move, RECOVERY_NOISE_SDS * noise
            )
            since = (
                f"in the last {window.hours_before[0]:.1f} h" if window and window.hours_before else "lately"
            )
            mean, sd = self._setpoint_means, self._setpoint_sds
            far = np.abs(u0 - mean) > RECOVERY_FAR_SDS * sd
            for chosen, target, words in (
                (moved, earlier, f"moved {since}"),
                (far, mean, "far from its training mean"),
            ):
                toward = np.where(chosen, target, u0)
                if chosen.any() and self._explains_flag(problem, toward):
                    why = [words if c else "" for c in chosen]
                    break
            else:
                return None
        step = np.clip(toward - u0, -max_move, max_move)
        rows = np.array([within_limits(spec, u0 + fraction * step, u0) for fraction in RECOVERY_FRACTIONS])
        ev = problem.evaluate(rows)
        candidates = self._candidate_rows(problem, rows, ev)
        distance = distance_outside(self.gate, candidates)
        now = distance_outside(self.gate, self._candidate_rows(problem, u0[None, :], problem.current))[0]
        margins, _, _ = problem.margins(ev)
        closer = (distance < now) & np.all(np.isfinite(ev.values), axis=1)
        if not closer.any():
            return None
        feasible = closer & problem.feasible(margins)
        pick = np.flatnonzero(feasible if feasible.any() else closer)
        best = pick[np.argmin(distance[pick])]
        named = ", ".join(f"{tag} {words}" for tag, words in zip(spec.setpoints, why, strict=True) if words)
        reason = (
            f"recovery: {gate.reason()}; {named}: this move takes them back toward known territory "
            f"(distance outside it {now:.3g} -> {distance[best]:.3g})"
        )
        _, scores = self.gate.screen(candidates)
        anomaly = {name: float(values[best]) for name, values in scores.items()}
        return self._recommended(problem, pinned, rows[best], reason, anomaly)

    def _explains_flag(self, problem: SetpointProblem, toward: np.ndarray) -> bool:
        """True when the setpoints explain the flag: with every setpoint where the recovery heads (however
        many moves that takes), the models' predictions and every other tag as they are, no detector
        flags the state. A fault or a disturbance (a fouled evaporator, a tripped pump, a feed beyond
        training) stays flagged whatever the setpoints do, and must stay `blocked`: the operators' own
        corrections inside the window are then not moves to undo. (A setpoint beyond an envelope is
        itself what the detectors flag, and is led back without this test.)"""
        low, high = np.array(self._bounds()).T
        undone = np.clip(toward, low, high)[None, :]
        ev = problem.evaluate(undone)
        if not np.all(np.isfinite(ev.values)):
            return False
        flagged, _ = self.gate.screen(self._candidate_rows(problem, undone, ev))
        return not bool(flagged[0])

    # --- answers --------------------------------------------------------------------------
    def _answer(
        self,
        status: Status,
        reason: str,
        current: dict[str, float],
        *,
        setpoints: dict[str, float] | None = None,
        described: tuple | None = None,
        anomaly: dict[str, DetectorVerdict] | None = None,
        explanation: Explanation | None = None,
        pinned: _Pinned | None = None,
    ) -> Recommendation:
        """`described`: (predicted, objective, constraints) from `_describe`."""
        predicted, objective, constraints = described or ({}, None, [])
        spec = self.spec
        units = {tag: spec.tags[tag].unit for tag in spec.setpoints} | output_units(spec)
        return Recommendation(
            status=status,
            reason=reason,
            setpoints=setpoints,
            moves=None if setpoints is None else {tag: setpoints[tag] - current[tag] for tag in current},
            current_setpoints=current,
            predicted=predicted,
            objective=objective,
            constraints=constraints,
            anomaly=anomaly or {},
            units=units,
            model_version=self.model_version,
            explanation=explanation or Explanation(),
            anchors=pinned.anchors if pinned else {},
            consistency=pinned.consistency if pinned else [],
        )

    def _blocked(
        self,
        current: dict[str, float],
        reason: str,
        verdicts: dict[str, DetectorVerdict],
        *,
        far_tags: dict[str, list[FarTag]] | None = None,
        problem: SetpointProblem | None = None,
        pinned: _Pinned | None = None,
    ) -> Recommendation:
        return self._answer(
            "blocked",
            reason,
            current,
            described=None if problem is None else self._describe(problem, None),
            anomaly=verdicts,
            explanation=Explanation(far_tags=far_tags or {}),
            pinned=pinned,
        )

    def _stuck(self, current: dict[str, float], stuck: list[StuckSensor]) -> Recommendation:
        parts = []
        for sensor in stuck:
            since = f" ({sensor.hours:.2g} h)" if sensor.hours is not None else ""
            value = _quantity(sensor.value, self.spec.tags[sensor.tag].unit)
            parts.append(
                f"{sensor.tag} repeats {value} over its last {sensor.readings} readings{since}, where in "
                f"training {sensor.training_repeat_share:.1%} of its readings repeated"
            )
        reason = f"stuck sensor: {'; '.join(parts)}: check the sensor before trusting a move"
        answer = self._blocked(current, reason, {})
        return answer.model_copy(update={"stuck_sensors": stuck})

    def _pin(self, state: Mapping[str, float], window, gate: GateResult) -> tuple[ChainAnchor, _Pinned]:
        """Anchor the chain on the state (and window) and check each measured target against its model."""
        estimates = estimate_anchors(self.chain, self.bundle.calibration, state, window)
        anchor = self.chain.anchor(state, {model: (a.bias, a.sd) for model, a in estimates.items()})
        anchors = {
            model: estimate.model_copy(
                update={"settled": float(anchor.values[self.chain.models.index(model)])}
            )
            for model, estimate in estimates.items()
        }
        sigma = self.spec.optimizer.consistency_sigma
        checks = []
        for model, estimate in anchors.items():
            if not self.spec.models[model].consistency_check:
                continue
            lagged = estimate.method == "window mean, lag-compensated"
            sd = float(self.bundle.calibration.consistency_sd(model, estimate.sd, lag_compensated=lagged))
            checks.append(
                ConsistencyCheck(
                    tag=estimate.tag,
                    model=model,
                    measured=estimate.value,
                    predicted=estimate.predicted,
                    sd=sd,
                    z=estimate.bias / sd,
                    consistent=sigma == 0 or abs(estimate.bias) <= sigma * sd,
                )
            )
        return anchor, _Pinned(gate, anchors, checks)

    def _disagreement(self, pinned: _Pinned) -> str | None:
        """The block reason when a measurement and its model disagree (None when they agree)."""
        off = [check for check in pinned.consistency if not check.consistent]
        if not off:
            return None
        parts = [
            f"{c.tag} (measured {_quantity(c.measured, self.spec.tags[c.tag].unit)}, "
            f"model {_quantity(c.predicted, self.spec.tags[c.tag].unit)}: {c.z:+.1f} sd)"
            for c in off
        ]
        return (
            f"model and measurement disagree on {', '.join(parts)} beyond "
            f"{self.spec.optimizer.consistency_sigma:g} sd: check the sensor (bias, stuck value) before "
            "trusting a move"
        )

    def _optimise(self, state: Mapping[str, float], window, gate: GateResult) -> Recommendation:
        spec = self.spec
        anchor, pinned = self._pin(state, window, gate)
        problem = SetpointProblem(self.chain, spec, state, anchor)
        u0 = problem.u0
        current = dict(zip(spec.setpoints, u0.tolist(), strict=True))
        disagreement = self._disagreement(pinned)
        if disagreement:
            return self._blocked(current, disagreement, gate.verdicts, problem=problem, pinned=pinned)
        if problem.box.problems:
            return self._blocked(
                current, "; ".join(problem.box.problems), gate.verdicts, problem=problem, pinned=pinned
            )
        if not np.all(np.isfinite(problem.current.values)):
            return self._blocked(current, "the models give no finite prediction at this state", gate.verdicts)

        margins0, _, _ = problem.margins(problem.current)
        out_of_bounds = [
            tag
            for tag, value, (lo, hi) in zip(spec.setpoints, u0, self._bounds(), strict=True)
            if not lo <= value <= hi
        ]
        infeasible_now = not problem.feasible(margins0)[0]

        candidates = self._solve(problem, infeasible_now)
        rows = np.vstack([candidates, self._backtracked(u0, candidates)])
        rows = np.array([within_limits(spec, row, u0) for row in rows])
        ev = problem.evaluate(rows)
        gains, _ = problem.gain_lower_bound(ev)
        margins, _, _ = problem.margins(ev)
        feasible = problem.feasible(margins) & np.all(np.isfinite(ev.values), axis=1)
        candidate_rows = self._candidate_rows(problem, rows, ev)
        flagged, candidate_scores = self.gate.screen(candidate_rows)
        usable = ~flagged & ~leaves_territory(self.gate, candidate_rows, problem.state)

        if not usable.any():
            return self._hold(
                problem,
                pinned,
                "every candidate move, even a quarter of one, leaves the detectors' known territory",
            )
        if (feasible & usable).any():
            pick = np.flatnonzero(feasible & usable)
            best = pick[np.argmax(gains[pick])]
        else:  # nothing feasible in reach: the move that reduces the violation most
            pick = np.flatnonzero(usable)
            best = pick[np.argmin(problem.violation(margins[pick]))]
            if (
                problem.violation(margins[best : best + 1])[0] >= problem.violation(margins0)[0]
                and not out_of_bounds
            ):
                return self._hold(
                    problem,
                    pinned,
                    "the current state violates a constraint and no move "
                    "within the move limits reduces the violation",
                )
        u_star = rows[best]
        gain = float(gains[best])
        unit = spec.tags[self.chain.target(spec.objective.model)].unit
        if out_of_bounds:
            reason = f"brings {', '.join(out_of_bounds)} back inside bounds"
        elif infeasible_now:
            reason = (
                "the current state violates a constraint; this move restores it"
                if feasible[best]
                else "the current state violates a constraint; no move within the limits restores it, "
                "this one reduces the violation most"
            )
        elif gain < spec.optimizer.min_benefit:
            return self._hold(
                problem,
                pinned,
                f"the best move's gain lower bound {_quantity(gain, unit)} "
                f"(gain - {spec.optimizer.risk_aversion:g} sd) is below the minimum benefit "
                f"{_quantity(spec.optimizer.min_benefit, unit)}",
            )
        else:
            reason = (
                f"predicted {spec.objective.model} gain lower bound {_quantity(gain, unit)} within bounds, "
                "move limits and constraints"
            )
        anomaly = {name: float(scores[best]) for name, scores in candidate_scores.items()}
        return self._recommended(problem, pinned, u_star, reason, anomaly)

    def _solve(self, problem: SetpointProblem, infeasible_now: bool) -> np.ndarray:
        """End points of SLSQP from every start (setpoint units), plus the clipped current point."""
        u0c = np.clip(problem.u0, problem.box.low, problem.box.high)
        found = [u0c]
        if problem.n_free == 0:
            return np.array(found)
        starts = [problem.to_scaled(u0c)[0]]
        if infeasible_now:
            repaired = minimize(
                problem.scaled_violation,
                starts[0],
                jac=True,
                method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * problem.n_free,
            )
            starts.insert(0, np.clip(repaired.x, 0.0, 1.0))
            found.append(problem.to_setpoints(starts[0])[0])
        starts.extend(self._screened_starts(problem))
        constraints = (
            [{"type": "ineq", "fun": problem.scaled_margins, "jac": problem.scaled_margin_jacobian}]
            if problem.constraints
            else []
        )
        for z0 in starts:
            result = minimize(
                problem.scaled_objective,
                z0,
                jac=True,
                method="SLSQP",
                bounds=[(0.0, 1.0)] * problem.n_free,
                constraints=constraints,
                options=SLSQP_OPTIONS,
            )
            if np.all(np.isfinite(result.x)):
                found.append(problem.to_setpoints(np.clip(result.x, 0.0, 1.0))[0])
        return np.array(found)

    def _screened_starts(self, problem: SetpointProblem) -> np.ndarray:
        """The space-filling starts ranked in one batched chain evaluation (feasible first, then by
        gain); SLSQP refines only the best REFINED_STARTS of them, which keeps a recommendation fast."""
        unit = self._unit_starts[:, problem.box.free]
        if not len(unit):
            return unit
        ev = problem.evaluate(problem.to_setpoints(unit))
        margins, _, _ = problem.margins(ev)
        order = np.lexsort((-problem.gain(ev), problem.violation(margins)))
        return unit[order[:REFINED_STARTS]]

    @staticmethod
    def _backtracked(u0: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return np.vstack([u0 + fraction * (candidates - u0) for fraction in BACKTRACK])

    def _bounds(self) -> list[tuple[float, float]]:
        return [self.spec.tags[tag].bounds for tag in self.spec.setpoints]

    def _candidate_rows(self, problem: SetpointProblem, U: np.ndarray, ev) -> dict[str, np.ndarray]:
        """Detector inputs at candidate setpoints: setpoints moved, model targets predicted
        (bias-corrected), every other tag at its current value."""
        n = len(U)
        rows = {tag: np.full(n, value) for tag, value in problem.state.items()}
        for i, tag in enumerate(self.spec.setpoints):
            rows[tag] = U[:, i]
        for k, model in enumerate(self.chain.models):
            rows[self.spec.models[model].target] = ev.values[:, k]
        return rows

    def _hold(self, problem: SetpointProblem, pinned: _Pinned, reason: str) -> Recommendation:
        current = dict(zip(self.spec.setpoints, problem.u0.tolist(), strict=True))
        described = self._describe(problem, problem.u0)
        explanation = Explanation(
            bias_offsets=self._offsets(problem.anchor), active_constraints=_active(described[2])
        )
        return self._answer(
            "hold",
            reason,
            current,
            setpoints=dict(current),
            described=described,
            anomaly=pinned.gate.verdicts,
            explanation=explanation,
            pinned=pinned,
        )

    def _recommended(
        self,
        problem: SetpointProblem,
        pinned: _Pinned,
        u_star: np.ndarray,
        reason: str,
        candidate_anomaly: dict[str, float],
    ) -> Recommendation:
        """`candidate_anomaly`: each detector's score of u_star (screened with the other candidates)."""
        current = dict(zip(self.spec.setpoints, problem.u0.tolist(), strict=True))
        described = self._describe(problem, u_star)
        attribution = attribute_gain(problem, u_star)
        explanation = Explanation(
            contributions=attribution.contributions,
            method="integrated gradients along the straight line from the current to the recommended "
            "setpoints through the anchored model chain (sums to the predicted gain)",
            quadrature_error=attribution.quadrature_error,
            active_constraints=_active(described[2]),
            bias_offsets=self._offsets(problem.anchor),
            candidate_anomaly=candidate_anomaly,
        )
        return self._answer(
            "recommended",
            reason,
            current,
            setpoints=dict(zip(self.spec.setpoints, u_star.tolist(), strict=True)),
            described=described,
            anomaly=pinned.gate.verdicts,
            explanation=explanation,
            pinned=pinned,
        )

    def _offsets(self, anchor: ChainAnchor) -> dict[str, float]:
        return {model: float(anchor.biases[k]) for k, model in enumerate(self.chain.models)}

    def _describe(
        self, problem: SetpointProblem, u: np.ndarray | None
    ) -> tuple[dict[str, PredictedValue], ObjectiveResult, list[ConstraintCheck]]:
        """predicted, objective and constraint status at the current and (if any) the new setpoints."""
        at = problem.current if u is None else problem.evaluate(u[None, :])
        predicted = {}
        for k, output in enumerate(self.chain.outputs):
            half = problem.chain.quantile(output, 0.5 + INTERVAL_WIDTH / 2) * at.level_sd(output)[0]
            value = float(at.values[0, k])
            predicted[output] = PredictedValue(
                current=float(problem.anchor.values[k]),
                recommended=None if u is None else value,
                lower=None if u is None else value - half,
                upper=None if u is None else value + half,
            )
        k = at.index(problem.objective_model)
        lower, _ = problem.gain_lower_bound(at)
        objective = ObjectiveResult(
            model=problem.objective_model,
            sense=self.spec.objective.sense,
            current=float(problem.anchor.values[k]),
            recommended=float(at.values[0, k]),
            gain=float(problem.gain(at)[0]),
            gain_sd=float(problem.gain_sd(at)[0]),
            gain_lower=float(lower[0]),
        )
        margins, _, bounds = problem.margins(at)
        constraints = []
        for i, term in enumerate(problem.constraints):
            scale = problem.output_scale(problem.chain.outputs.index(term.output))
            margin = float(margins[0, i])
            sd = at.change_sd(term.output) if term.relative_to_current else at.level_sd(term.output)
            constraints.append(
                ConstraintCheck(
                    model=term.output,
                    **{term.side: term.limit},
                    confidence=term.confidence,
                    bound=float(bounds[0, i]),
                    margin=margin,
                    satisfied=margin >= -FEASIBILITY_TOLERANCE,
                    active=margin < ACTIVE_TOLERANCE * scale,
                    sd=float(sd[0]),
                    basis="change" if term.relative_to_current else "level",
                    guard=term.guard,
                )
            )
        return predicted, objective, constraints


def _active(constraints: list[ConstraintCheck]) -> list[str]:
    """Constraints on their limit, as '<model> <side>' (a model may carry a max and a min)."""
    return [f"{c.model} {c.side}" for c in constraints if c.active]


def _quantity(value: float, unit: str) -> str:
    """A number a person reads, with its unit when the tag has one (a rounding residue reads as 0)."""
    return figure(value, unit=unit)
