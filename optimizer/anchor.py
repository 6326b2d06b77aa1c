"""Where each model is anchored: a de-noised estimate of its target's current value, with its sd.

The bias update re-anchors a model on the measured value of its target. One reading carries the
sensor's noise (an analyser's, a lab sample's), and near an active threshold that noise decides
whether the bound holds. So:

* with a recent window (the states just before this one, oldest first), the anchor is the mean of
  the target over the window and the state, with its standard error: the larger of the window's
  sample sd and the tag's measurement noise (from training), over √rows;
* with one state only, the anchor is that reading and its sd is the tag's measurement noise,
  estimated at training (dragon/calibration.py): never zero.

The answer says which anchor it used (`AnchorEstimate.method`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dragon.calibration import Calibration
from dragon.spec import PlantSpec
from optimizer.recommendation import AnchorEstimate


def estimate_anchors(
    spec: PlantSpec,
    calibration: Calibration,
    state: Mapping[str, float],
    recent: Sequence[Mapping[str, float]] = (),
) -> dict[str, AnchorEstimate]:
    """{model: anchor} for every model whose target the state carries (module docstring)."""
    anchors = {}
    for name in spec.model_order:
        tag = spec.models[name].target
        if tag not in state:
            continue
        noise = calibration.noise(tag)
        readings = np.array([row[tag] for row in recent if tag in row] + [state[tag]], dtype=float)
        if len(readings) >= 2:
            spread = max(float(np.std(readings, ddof=1)), noise)
            anchors[name] = AnchorEstimate(
                tag=tag,
                value=float(readings.mean()),
                sd=spread / np.sqrt(len(readings)),
                method="window mean",
                rows=len(readings),
            )
        else:
            anchors[name] = AnchorEstimate(
                tag=tag, value=float(state[tag]), sd=noise, method="single reading", rows=1
            )
    return anchors
