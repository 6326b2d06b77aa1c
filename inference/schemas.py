"""Request bodies and the HTTP envelope around the recommendation (ARCHITECTURE.md, "HTTP contract").

The recommendation itself is defined once, by its producer (optimizer/recommendation.py);
this module adds what only HTTP has: the request bodies, the multi-record envelope, the
per-record and whole-request errors, /ping and /execution-parameters. These pydantic models
are what the OpenAPI schema publishes: they document the bodies for clients and for the
schemathesis fuzz run, which checks that every answer the server gives matches them.
Decoding itself is done by `inference/payloads.py`, because a bad field must become a
per-tag message (not pydantic's 422) and CSV/JSON Lines bodies have no pydantic shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from optimizer.recommendation import Recommendation

# A plant state: tag name -> reading. Values are `float` in the schema; anything else is
# answered with a 400 naming the tag.
State = dict[str, float]


class StateRequest(BaseModel):
    """One plant state."""

    model_config = ConfigDict(extra="forbid")
    state: State = Field(description="Every tag a model or detector reads, as tag: value.")
    recent: list[State] | None = Field(
        default=None,
        description="The plant's states just before `state`, oldest first, with the same tags (and the "
        "time column when the state has it, at most 2 h before it): each model's anchor is then their "
        "mean with its standard error instead of one noisy reading.",
    )


class InstancesRequest(BaseModel):
    """Several plant states; each is answered in place (a bad one with a per-record error)."""

    model_config = ConfigDict(extra="forbid")
    instances: list[State] = Field(min_length=1)


class RecordError(BaseModel):
    """A record of a multi-record payload that could not be read; the others are still answered."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["error"] = "error"
    record: int = Field(
        description="Position of the record in the payload, counted from 1 (a CSV header is not a record)."
    )
    errors: list[str] = Field(description="Every problem of the record, each naming its tag.")


Answer = Recommendation | RecordError  # one input record's answer


class Predictions(BaseModel):
    """The answer to a multi-record payload: one entry per input record, in order."""

    model_config = ConfigDict(extra="forbid")
    predictions: list[Answer] = Field(description="One answer per input record, in order.")
    model_version: str = Field(description="Registered model version (or bundle fingerprint) that answered.")


class ErrorResponse(BaseModel):
    """A request that was refused as a whole (4xx)."""

    model_config = ConfigDict(extra="forbid")
    error: str = Field(description="What was wrong with the request as a whole.")
    details: list[str] = Field(default_factory=list, description="Each problem, naming its record or tag.")


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
