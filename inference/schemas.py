"""Request and response models of the HTTP contract (ARCHITECTURE.md, "HTTP contract").

These pydantic models are what the OpenAPI schema publishes: they document the
bodies for clients and for the schemathesis fuzz run, which checks that every
answer the server gives matches them. Decoding itself is done by
`inference/payloads.py`, because a bad field must become a per-tag message (not
pydantic's 422) and CSV/JSON Lines bodies have no pydantic shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# A plant state: tag name -> reading. Values are `float` in the schema; anything else is
# answered with a 400 naming the tag.
State = dict[str, float]


class StateRequest(BaseModel):
    """One plant state."""

    model_config = ConfigDict(extra="forbid")
    state: State = Field(description="Every tag a model or detector reads, as tag: value.")


class InstancesRequest(BaseModel):
    """Several plant states; each is answered in place (a bad one with a per-record error)."""

    model_config = ConfigDict(extra="forbid")
    instances: list[State] = Field(min_length=1)


class PredictedValue(BaseModel):
    model_config = ConfigDict(extra="allow")
    current: float | None = None
    recommended: float | None = None
    lower: float | None = None
    upper: float | None = None


class ObjectiveValue(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    current: float | None = None
    recommended: float | None = None
    gain: float | None = None


class ConstraintCheck(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    max: float | None = None
    min: float | None = None
    bound: float | None = None
    satisfied: bool | None = None
    margin: float | None = None
    active: bool | None = None
    confidence: float | None = None


class AnomalyCheck(BaseModel):
    model_config = ConfigDict(extra="allow")
    score: float
    threshold: float
    anomalous: bool


class Explanation(BaseModel):
    """Why this answer: per-setpoint shares of the gain, active constraints, bias offsets, far tags."""

    model_config = ConfigDict(extra="allow")
    contributions: dict[str, float | None] = Field(default_factory=dict)
    active_constraints: list[str] = Field(default_factory=list)
    far_tags: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


class Recommendation(BaseModel):
    """One recommendation. `blocked`: a detector flags the state (no setpoints); `hold`: no move helps
    (the current setpoints, zero moves)."""

    model_config = ConfigDict(extra="allow")
    status: Literal["recommended", "hold", "blocked"]
    reason: str
    setpoints: dict[str, float] | None = None
    moves: dict[str, float] | None = None
    predicted: dict[str, PredictedValue] = Field(default_factory=dict)
    objective: ObjectiveValue | None = None
    constraints: list[ConstraintCheck] = Field(default_factory=list)
    anomaly: dict[str, AnomalyCheck] = Field(default_factory=dict)
    model_version: str
    explanation: Explanation | None = None


class RecordError(BaseModel):
    """A record of a multi-record payload that could not be read; the others are still answered."""

    status: Literal["error"]
    record: int = Field(description="0-based position of the record in the payload.")
    errors: list[str] = Field(description="Every problem of the record, each naming its tag.")


class Predictions(BaseModel):
    """The answer to a multi-record payload: one entry per input record, in order."""

    predictions: list[Recommendation | RecordError]
    model_version: str


class ErrorResponse(BaseModel):
    """A request that was refused as a whole (4xx)."""

    error: str
    details: list[str] = Field(default_factory=list)


class CaptureCounters(BaseModel):
    enabled: bool
    captured: int
    dropped_queue_full: int
    write_errors: int
    rotations: int


class Ping(BaseModel):
    status: Literal["ok"]
    model_version: str
    plant: str
    worker_pid: int
    capture: CaptureCounters


class ExecutionParameters(BaseModel):
    """Hints SageMaker batch transform reads before sending work (names fixed by SageMaker)."""

    MaxConcurrentTransforms: int
    BatchStrategy: Literal["MULTI_RECORD", "SINGLE_RECORD"]
    MaxPayloadInMB: int
