"""Each setpoint's contribution to a recommendation's predicted gain.

Method: integrated gradients along the straight line from the current setpoints u0 to the
recommended u*, through the whole (bias-corrected) chain:

    contribution_i = (u*_i - u0_i) ∫₀¹ ∂y/∂u_i (u0 + α (u* - u0)) dα

which sums to y(u*) - y(u0) (the gradient theorem). For a single additive GAM this is exact per
term: a setpoint's own spline term contributes exactly its change, and a tensor term is split
between its two inputs. Through the chain, a setpoint also gets the share it causes via the
upstream models it feeds. The integral is a 16-node Gauss–Legendre rule in one batched chain
evaluation; the splines are only piecewise polynomial, so the rule leaves a small remainder
(`quadrature_error`, reported), which is spread over the setpoints in proportion to their
contributions so that the contributions add up to the gain exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.problem import SetpointProblem

NODES = 16
_LEGENDRE = np.polynomial.legendre.leggauss(NODES)


@dataclass(frozen=True)
class GainAttribution:
    contributions: dict[str, float]
    quadrature_error: float


def attribute_gain(problem: SetpointProblem, u_star: np.ndarray) -> GainAttribution:
    u0 = problem.u0
    nodes, weights = _LEGENDRE
    alphas, weights = (nodes + 1.0) / 2.0, weights / 2.0
    path = u0 + alphas[:, None] * (u_star - u0)
    ev = problem.evaluate(np.vstack([path, u_star]))
    _, gradients = problem.objective(ev)
    raw = problem.sense * (u_star - u0) * (weights @ gradients[:-1])
    gain = float(problem.gain(ev)[-1])
    remainder = gain - float(raw.sum())
    total = float(np.abs(raw).sum())
    adjusted = raw + remainder * np.abs(raw) / total if total > 0 else raw
    return GainAttribution(
        {tag: float(value) for tag, value in zip(problem.spec.setpoints, adjusted, strict=True)},
        remainder,
    )
