"""The recommendation answer: the one contract, defined here and nowhere else.

These pydantic models are what the recommender returns, what the HTTP server publishes in
`/openapi.json` (as the `response_model` of `/invocations`), what `dragon recommend --json`
prints and what CSV / JSON Lines rows are flattened from (inference/payloads.py). Field names
of the top level follow ARCHITECTURE.md ("HTTP contract").

Extending it: add a field with a `description` (and its unit: tag and model values are in the
unit of that tag in the plant spec, see `units`) to the model it belongs to. Every model forbids
extra keys, so the published schema lists every field an answer can carry and the schema
fuzz test (tests/inference/test_schema_fuzz.py) fails on an undocumented one.

Numbers are kept at full precision in Python and rounded to `DIGITS` significant decimals
only when serialised; a non-finite number is serialised as null.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

DIGITS = 6  # decimals kept when an answer is serialised


def _rounded(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), DIGITS)


# A float serialised rounded to DIGITS decimals (null when not finite).
Number = Annotated[float, PlainSerializer(_rounded, return_type=float | None)]
Status = Literal["recommended", "hold", "blocked"]


class Contract(BaseModel):
    """Base of every part of the answer: typed, frozen, no undocumented keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PredictedValue(Contract):
    """One model of the chain at the current and at the recommended setpoints."""

    current: Number = Field(
        description="Bias-corrected prediction at the current setpoints, in the target tag's unit."
    )
    recommended: Number | None = Field(
        None, description="Prediction at the recommended setpoints (null when blocked), in the target's unit."
    )
    lower: Number | None = Field(
        None,
        description="Lower end of the 95 % prediction interval at the recommended setpoints, target's unit.",
    )
    upper: Number | None = Field(
        None,
        description="Upper end of the 95 % prediction interval at the recommended setpoints, target's unit.",
    )


class ObjectiveResult(Contract):
    """The model the optimizer maximises or minimises."""

    model: str = Field(description="Model name from the plant spec's [objective].")
    sense: Literal["maximize", "minimize"] = Field(
        description="Whether a larger or a smaller value is better."
    )
    current: Number = Field(description="Prediction at the current setpoints, in the model target's unit.")
    recommended: Number = Field(description="Prediction at the recommended setpoints, in the target's unit.")
    gain: Number = Field(
        description="Predicted improvement (recommended - current; negated for minimize), target's unit."
    )
    gain_sd: Number = Field(
        description="Standard deviation of the predicted gain, target's unit: the uncertainty of the change "
        "the move causes, from every GAM's (calibrated) coefficient covariance propagated through the chain."
    )
    gain_lower: Number = Field(
        description="gain - risk_aversion x gain_sd ([optimizer] risk_aversion): the lower confidence bound "
        "the optimizer maximised; below min_benefit the answer is hold. Target's unit."
    )


class ConstraintCheck(Contract):
    """One [[constraints]] entry of the plant spec, checked at the recommended setpoints."""

    model: str = Field(
        description="Model name the constraint limits, or 'production' for the [production] expression."
    )
    max: Number | None = Field(
        None, description="Upper limit (null for a lower limit), in the target's unit."
    )
    min: Number | None = Field(
        None, description="Lower limit (null for an upper limit), in the target's unit."
    )
    confidence: float = Field(description="Probability the prediction bound stands for (e.g. 0.95).")
    bound: Number = Field(
        description="Prediction bound at that confidence (upper bound for max, lower for min) at the "
        "recommended setpoints, or the current ones when nothing is recommended; target's unit."
    )
    margin: Number = Field(
        description="Distance of the bound from the limit (positive = inside), target's unit."
    )
    satisfied: bool = Field(description="The bound respects the limit.")
    active: bool = Field(
        description="The bound sits on the limit: this constraint is what stops a larger move."
    )
    sd: Number = Field(
        description="Standard deviation the bound used, target's unit: of the level (anchor and change in "
        "quadrature) for an absolute limit, of the change alone for a limit on the current value."
    )
    basis: Literal["level", "change"] = Field(
        description="level: bound = value ± q·sd(level); change: bound = current + change ± q·sd(change) "
        '(a limit "current", with or without tolerance, and the production guard).'
    )
    guard: Literal["constraint", "production"] = Field(
        description="constraint: a [[constraints]] entry; production: the [production] guard (the limit is "
        "the current production less its tolerance)."
    )

    @property
    def side(self) -> Literal["max", "min"]:
        return "max" if self.max is not None else "min"

    @property
    def limit(self) -> float:
        return self.max if self.max is not None else self.min  # type: ignore[return-value]


class AnchorEstimate(Contract):
    """Where one model is anchored: how far its measured target sits from the model (optimizer/anchor.py)."""

    tag: str = Field(description="The measured tag (the model's target).")
    value: Number = Field(description="The de-noised measurement (readings averaged), in the tag's unit.")
    predicted: Number = Field(
        description="The model at the inputs those readings answer to (lag-compensated with a timed window), "
        "averaged over the same rows, in the tag's unit."
    )
    sd: Number = Field(
        description="The standard error of the anchor, in the tag's unit (never zero): of value - predicted, "
        "and of the unsettled change's model estimate (its coefficient covariance), in quadrature."
    )
    method: Literal["window mean, lag-compensated", "window mean", "single reading"] = Field(
        description="window mean, lag-compensated: residuals over the window's last hour and the state, "
        "the model's inputs lagged over the whole window (moves that have not settled are followed); "
        "window mean: the same without times (the plant taken as settled); single reading: the state "
        "alone. sd = max(sample sd, measurement noise) / sqrt(rows), or the tag's measurement noise "
        "estimated at training for one reading."
    )
    rows: int = Field(description="Readings averaged.")
    history_hours: Number = Field(
        description="How far back the window reached, in h (0: no timed window): moves older are taken as "
        "settled."
    )
    unsettled_change: Number = Field(
        description="How much the target will still change from moves already made (model at the current "
        "inputs - at the lagged ones the last reading answers to), in the tag's unit; 0 without a timed "
        "window."
    )
    settled: Number | None = Field(
        default=None,
        description="The target's value once every move so far has settled (model at the current setpoints + "
        "value - predicted), in the tag's unit: the level absolute limits and the gain start from.",
    )

    @property
    def bias(self) -> float:
        """The bias update: measured - model, in the tag's unit."""
        return self.value - self.predicted


class StuckSensor(Contract):
    """A live sensor whose readings stopped changing over the recent window (optimizer/sensors.py)."""

    tag: str = Field(description="The tag.")
    value: Number = Field(description="The value it repeats, in the tag's unit.")
    readings: int = Field(description="Identical readings in a row up to the state, the state's included.")
    hours: Number | None = Field(description="Since when, in h before the state (null without times).")
    training_repeat_share: Number = Field(
        description="How often its readings repeated the one before in training, as a share (0-1)."
    )


class ConsistencyCheck(Contract):
    """A measured model target against its model's prediction at the current state."""

    tag: str = Field(description="The measured tag.")
    model: str = Field(description="The model that predicts it.")
    measured: Number = Field(description="Its anchor (de-noised measurement), in the tag's unit.")
    predicted: Number = Field(description="The model fed the state's measured inputs, in the tag's unit.")
    sd: Number = Field(
        description="The model's state residual sd (hold-out) and the anchor's sd in quadrature, tag's unit."
    )
    z: Number = Field(description="(measured - predicted) / sd, in standard deviations.")
    consistent: bool = Field(
        description="|z| <= [optimizer] consistency_sigma; otherwise the answer is blocked (a biased "
        "analyser or a stuck sensor)."
    )


class DetectorVerdict(Contract):
    """One anomaly detector (Isolation Forest) on the current state."""

    score: Number | None = Field(
        description="Anomaly score (higher = more unusual; null when it cannot be computed), dimensionless."
    )
    threshold: Number = Field(description="Score above which the detector flags the state, dimensionless.")
    anomalous: bool = Field(description="The detector flags the state: no move is recommended.")
    outside_envelope: list[str] = Field(
        default_factory=list,
        description="Detector features outside the range they had in training (also flags the state).",
    )


class FarTag(Contract):
    """A tag a flagged detector reads (directly or through a derived feature) and how far it sits from its
    training distribution: a tag an operator can look at, never only a computed quantity."""

    tag: str = Field(
        description="Tag the detector reads, or a tag a derived feature it reads is computed from."
    )
    value: Number = Field(description="Its value in the state, in its unit.")
    z_score: Number = Field(description="(value - training mean) / training sd, in standard deviations.")
    moves: dict[str, Literal["raises", "lowers"]] = Field(
        default_factory=dict,
        description="Derived feature computed from this tag -> whether the tag's distance from its training "
        "mean raises or lowers that feature (compared with the tag at its training mean).",
    )


class Explanation(Contract):
    """Why this answer."""

    contributions: dict[str, Number] = Field(
        default_factory=dict,
        description="Setpoint -> its share of the objective gain (integrated gradients; they sum to the "
        "gain), in the objective target's unit.",
    )
    method: str = Field("", description="How the contributions were computed.")
    quadrature_error: Number = Field(
        0.0, description="Remainder of the integration, spread over the contributions; objective's unit."
    )
    active_constraints: list[str] = Field(
        default_factory=list,
        description="Constraints on their limit at the answer, each as '<model> <max|min>'.",
    )
    bias_offsets: dict[str, Number] = Field(
        default_factory=dict,
        description="Model -> measured minus predicted target at the current state, added to every "
        "prediction of that model; in the target's unit.",
    )
    candidate_anomaly: dict[str, Number] = Field(
        default_factory=dict,
        description="Detector -> anomaly score of the state the recommended move leads to, dimensionless.",
    )
    far_tags: dict[str, list[FarTag]] = Field(
        default_factory=dict,
        description="Blocked answers: flagging detector -> its features furthest from training, worst first.",
    )


class Recommendation(Contract):
    """One recommendation. `recommended`: new setpoints (also a recovery move, reason "recovery: ...",
    when a detector flags a state after setpoint moves in its recent window and stepping them back brings
    it closer to known territory); `hold`: no move improves the objective enough (current setpoints, zero
    moves); `blocked`: a detector flags the state or it cannot be used (no setpoints)."""

    status: Status = Field(description="recommended | hold | blocked.")
    reason: str = Field(description="Why, in words.")
    setpoints: dict[str, Number] | None = Field(
        description="Setpoint tag -> new value (the full vector; the current one on hold; null when "
        "blocked), in the tag's unit."
    )
    moves: dict[str, Number] | None = Field(
        description="Setpoint tag -> new minus current value (null when blocked), in the tag's unit."
    )
    current_setpoints: dict[str, Number] = Field(
        default_factory=dict, description="Setpoint tag -> value in the state, in the tag's unit."
    )
    predicted: dict[str, PredictedValue] = Field(
        default_factory=dict,
        description="Model name -> its prediction (empty when blocked before predicting).",
    )
    objective: ObjectiveResult | None = Field(None, description="The objective (null when blocked).")
    constraints: list[ConstraintCheck] = Field(default_factory=list, description="Every constraint checked.")
    anomaly: dict[str, DetectorVerdict] = Field(
        default_factory=dict, description="Detector name -> its verdict on the current state."
    )
    units: dict[str, str] = Field(
        default_factory=dict,
        description="Unit of every tag and model named in this answer (a model's unit is its target's).",
    )
    model_version: str = Field(description="Registered model version (or bundle fingerprint) that answered.")
    explanation: Explanation = Field(default_factory=Explanation, description="Why this answer.")
    anchors: dict[str, AnchorEstimate] = Field(
        default_factory=dict,
        description="Model -> the anchor its predictions start from (empty when blocked before anchoring).",
    )
    stuck_sensors: list[StuckSensor] = Field(
        default_factory=list,
        description="Live sensors repeating one reading over the recent window: the answer is blocked.",
    )
    consistency: list[ConsistencyCheck] = Field(
        default_factory=list,
        description="Every measured model target against its model at the current state.",
    )
