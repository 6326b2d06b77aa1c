"""What-if: every model of the chain and every detector at hypothetical setpoints.

The engineers' local simulation: take a plant state, override some setpoints (or disturbances),
and see each model's bias-corrected prediction with its 95 % prediction interval next to its
value at the current setpoints, and what the detectors would say about the resulting state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dragon.bundle import Bundle
from dragon.errors import DataError
from optimizer.chain import CompiledChain
from optimizer.gate import DetectorVerdict, Gate

INTERVAL_WIDTH = 0.95


@dataclass(frozen=True)
class ModelWhatIf:
    current: float
    predicted: float
    lower: float
    upper: float

    def to_dict(self) -> dict:
        return {k: round(float(v), 6) for k, v in vars(self).items()}


@dataclass(frozen=True)
class WhatIf:
    inputs: dict[str, float]  # the overridden tags with their hypothetical values
    setpoints: dict[str, float]  # the full setpoint vector evaluated
    predictions: dict[str, ModelWhatIf]
    anomaly: dict[str, DetectorVerdict]
    bias_offsets: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "inputs": dict(self.inputs),
            "setpoints": dict(self.setpoints),
            "predictions": {k: v.to_dict() for k, v in self.predictions.items()},
            "anomaly": {k: v.to_dict() for k, v in self.anomaly.items()},
            "bias_offsets": {k: round(v, 6) for k, v in self.bias_offsets.items()},
        }


def what_if(
    bundle: Bundle,
    state: Mapping[str, float],
    overrides: Mapping[str, float],
    *,
    chain: CompiledChain | None = None,
    gate: Gate | None = None,
) -> WhatIf:
    """Predict the chain at `state` with `overrides` applied; DataError for a tag that cannot be set."""
    spec = bundle.spec
    targets = set(spec.model_targets.values())
    problems = []
    for tag, value in overrides.items():
        if tag not in spec.tags:
            problems.append(f"{tag}: not a tag of plant '{spec.name}'")
        elif tag in targets:
            problems.append(
                f"{tag}: predicted by a model, it cannot be set (set the setpoints that drive it)"
            )
        elif not spec.tags[tag].valid[0] <= value <= spec.tags[tag].valid[1]:
            problems.append(f"{tag} = {value}: outside the valid range {list(spec.tags[tag].valid)}")
    if problems:
        raise DataError("what-if: " + "; ".join(problems))
    chain = chain or CompiledChain.from_bundle(bundle)
    gate = gate or Gate(bundle.detectors, bundle.baselines)
    biases = chain.biases(state)  # anchored at the current (measured) state
    changed = {**state, **{tag: float(v) for tag, v in overrides.items()}}
    current_u = np.array([[state[tag] for tag in spec.setpoints]])
    new_u = np.array([[changed[tag] for tag in spec.setpoints]])
    now = chain.evaluate(current_u, state, biases)
    then = chain.evaluate(new_u, changed, biases)
    predictions = {}
    for k, model in enumerate(chain.models):
        half = chain.quantile(model, 0.5 + INTERVAL_WIDTH / 2) * then.prediction_sd(model)[0]
        value = float(then.values[0, k])
        predictions[model] = ModelWhatIf(float(now.values[0, k]), value, value - half, value + half)
        changed[spec.models[model].target] = value
    verdicts = gate.check(changed).verdicts
    return WhatIf(
        {tag: float(v) for tag, v in overrides.items()},
        {tag: float(changed[tag]) for tag in spec.setpoints},
        predictions,
        verdicts,
        {m: float(b) for m, b in zip(chain.models, biases, strict=True)},
    )
