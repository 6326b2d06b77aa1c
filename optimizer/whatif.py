"""What-if: every model of the chain and every detector at hypothetical setpoints.

The engineers' local simulation: take a plant state, override some setpoints (or disturbances),
and see each model's anchored prediction with its 95 % prediction interval next to its
value at the current setpoints, and what the detectors would say about the resulting state.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import Field

from dragon.bundle import Bundle
from dragon.errors import DataError
from optimizer.anchor import estimate_anchors
from optimizer.chain import CompiledChain, output_units
from optimizer.gate import Gate
from optimizer.recommendation import Contract, DetectorVerdict, Number

INTERVAL_WIDTH = 0.95


class ModelWhatIf(Contract):
    """One model of the chain at the current and at the hypothetical state."""

    target: str = Field(description="The tag the model predicts.")
    current: Number = Field(
        description="Bias-corrected prediction at the current state, in the target's unit."
    )
    predicted: Number = Field(description="Prediction at the hypothetical state, in the target's unit.")
    lower: Number = Field(description="Lower end of the 95 % prediction interval, in the target's unit.")
    upper: Number = Field(description="Upper end of the 95 % prediction interval, in the target's unit.")


class WhatIf(Contract):
    """`dragon whatif --json`: every model and detector at hypothetical setpoints."""

    inputs: dict[str, Number] = Field(description="The overridden tags with their hypothetical values.")
    setpoints: dict[str, Number] = Field(description="The full setpoint vector evaluated, in tag units.")
    predictions: dict[str, ModelWhatIf] = Field(description="Model name -> its prediction.")
    anomaly: dict[str, DetectorVerdict] = Field(
        description="Detector -> its verdict at the hypothetical state."
    )
    bias_offsets: dict[str, Number] = Field(
        description="Model -> measured minus predicted target at the current state, in the target's unit."
    )
    units: dict[str, str] = Field(description="Unit of every tag and model named above.")


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
    anchors = estimate_anchors(chain, bundle.calibration, state)  # each measured target, one reading
    anchor = chain.anchor(state, {model: (a.bias, a.sd) for model, a in anchors.items()})
    changed = {**state, **{tag: float(v) for tag, v in overrides.items()}}
    new_u = np.array([[changed[tag] for tag in spec.setpoints]])
    then = chain.evaluate(new_u, changed, anchor)
    predictions = {}
    for k, output in enumerate(chain.outputs):
        half = chain.quantile(output, 0.5 + INTERVAL_WIDTH / 2) * then.level_sd(output)[0]
        value = float(then.values[0, k])
        target = chain.target(output)
        predictions[output] = ModelWhatIf(
            target=target,
            current=float(anchor.values[k]),
            predicted=value,
            lower=value - half,
            upper=value + half,
        )
        if output in spec.models:
            changed[target] = value
    verdicts = gate.check(changed).verdicts
    named = [*overrides, *spec.setpoints, *(spec.models[m].target for m in chain.models)]
    return WhatIf(
        inputs={tag: float(v) for tag, v in overrides.items()},
        setpoints={tag: float(changed[tag]) for tag in spec.setpoints},
        predictions=predictions,
        anomaly=verdicts,
        bias_offsets={model: float(anchor.biases[k]) for k, model in enumerate(chain.models)},
        units={tag: spec.tags[tag].unit for tag in named} | output_units(spec),
    )
