"""Candidates keep a margin inside the detectors' territory, so the product never walks itself out.

The gate screens a candidate move with the same envelope and threshold the next state will meet.
A candidate that lands just inside a feature's envelope is flagged as soon as that feature is read
with noise, or drifts a little, after the move: in closed loop (`dragon trial`) the advisor walked the
evaporator pressure to its envelope edge and was then blocked for days. So a candidate may not take
a feature further into the band within `TERRITORY_MARGIN` of its envelope width from either edge than
the current state already is: a state inside the band can still move back towards the middle.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from optimizer.gate import Gate

TERRITORY_MARGIN = 0.1  # share of each feature's envelope width kept clear on both sides


def _beyond_inner_band(low: np.ndarray, high: np.ndarray, X: np.ndarray, margin: float) -> np.ndarray:
    """How far each feature value lies beyond the envelope shrunk by `margin` x its width (0 inside)."""
    inset = margin * (high - low)
    return np.maximum(low + inset - X, 0.0) + np.maximum(X - (high - inset), 0.0)


def leaves_territory(
    gate: Gate,
    candidates: Mapping[str, np.ndarray],
    current: Mapping[str, float],
    margin: float = TERRITORY_MARGIN,
) -> np.ndarray:
    """(n,) True where a candidate takes some detector feature further into its envelope's margin band
    than the current state has it (features a detector cannot compute are left to the gate)."""
    n = len(next(iter(candidates.values())))
    leaves = np.zeros(n, dtype=bool)
    here = {tag: np.array([value]) for tag, value in current.items()}
    for detector in gate.detectors.values():
        if not detector.envelope_low:
            continue
        low, high = np.asarray(detector.envelope_low), np.asarray(detector.envelope_high)
        beyond = _beyond_inner_band(low, high, np.atleast_2d(detector.feature_rows(candidates)), margin)
        now = _beyond_inner_band(low, high, np.atleast_2d(detector.feature_rows(here)), margin)
        worse = np.nan_to_num(beyond - now, nan=0.0) > 1e-12
        leaves |= np.any(worse, axis=1)
    return leaves


def setpoint_targets(
    gate: Gate, setpoints: list[str], u0: np.ndarray, margin: float = TERRITORY_MARGIN
) -> np.ndarray:
    """Each setpoint brought into the inner band of every envelope that reads it directly (unchanged
    inside the band, or when no detector reads it): where a recovery move heads a setpoint that sits
    outside the detectors' territory, however long ago it was set."""
    target = np.array(u0, dtype=float)
    for detector in gate.detectors.values():
        if not detector.envelope_low:
            continue
        for i, tag in enumerate(setpoints):
            if tag in detector.features:
                j = detector.features.index(tag)
                low, high = detector.envelope_low[j], detector.envelope_high[j]
                inset = margin * (high - low)
                target[i] = min(max(target[i], low + inset), high - inset)
    return target


def distance_outside(gate: Gate, rows: Mapping[str, np.ndarray]) -> np.ndarray:
    """(n,) how far each row lies outside the detectors' territory, 0 inside: every detector's score above
    its threshold plus every feature's distance beyond its envelope, in envelope widths. A recovery move
    (optimizer/recommender.py) must make it smaller."""
    n = len(next(iter(rows.values())))
    distance = np.zeros(n)
    for name, (X, scores, _) in gate.assess(rows).items():
        detector = gate.detectors[name]
        distance += np.nan_to_num(np.maximum(scores - detector.threshold, 0.0), nan=np.inf)
        if detector.envelope_low:
            low, high = np.asarray(detector.envelope_low), np.asarray(detector.envelope_high)
            width = np.where(high > low, high - low, 1.0)
            distance += np.sum(_beyond_inner_band(low, high, np.atleast_2d(X), 0.0) / width, axis=1)
    return distance
